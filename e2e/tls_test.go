package e2e_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proxyherd/herd/client"
)

// writeCA makes a certificate authority, writes its certificate to
// dir/ca.pem, and writes dir/NAME.crt and dir/NAME.key for each name:
// certificates naming the server and 127.0.0.1, for servers and clients.
func writeCA(t *testing.T, dir string, names ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(file, kind string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "e2e CA " + dir},
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	write("ca.pem", "CERTIFICATE", caDER)
	for i, name := range names {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i) + 2),
			Subject:      pkix.Name{CommonName: name},
			DNSNames:     []string{name},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:    time.Unix(0, 0),
			NotAfter:     time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		write(name+".crt", "CERTIFICATE", der)
		write(name+".key", "PRIVATE KEY", keyDER)
	}
}

// waitLog polls a log file until re matches it.
func waitLog(t *testing.T, path string, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for {
		data, _ := os.ReadFile(path)
		if re.Match(data) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never matched %s within %v:\n%s", path, re, waitBound, data)
		}
		time.Sleep(pollPause)
	}
}

// TestTLSHerdProcesses runs two "herd serve" processes with mutual TLS
// from a config file's tls section: the link comes up and floods, the
// client subcommands talk TLS with -tls-ca, and a server whose certificate
// another CA signed gets no link, with the reason in the log.
func TestTLSHerdProcesses(t *testing.T) {
	dir := t.TempDir()
	writeCA(t, filepath.Join(dir, "good"), "Goloman", "Hands")
	writeCA(t, filepath.Join(dir, "rogue"), "Hands")
	addrs := freePorts(t, 2)
	config := func(certDir string) string {
		path := filepath.Join(dir, filepath.Base(certDir)+".json")
		cfg := fmt.Sprintf(`{
  "servers": [{"name": "Goloman", "addr": %q}, {"name": "Hands", "addr": %q}],
  "links": [["Goloman", "Hands"]],
  "provider": {"kind": "offline"},
  "redial_min": "10ms",
  "redial_max": "100ms",
  "log": %q,
  "tls": {"cert": %q, "key": %q, "ca": %q, "require_peer_cert": true}
}`, addrs[0], addrs[1], filepath.Join(dir, "logs", "{name}.log"),
			filepath.Join(certDir, "{name}.crt"), filepath.Join(certDir, "{name}.key"), filepath.Join(dir, "good", "ca.pem"))
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good, rogue := config(filepath.Join(dir, "good")), config(filepath.Join(dir, "rogue"))
	env := childEnv()
	serve := func(cfg, name string) *proc {
		p := start(t, name, env, bins["herd"], "serve", "-config", cfg, "-name", name)
		p.expectLine(t, listening)
		return p
	}
	goloman := serve(good, "Goloman")
	hands := serve(good, "Hands")

	// herd iamat, a process, over TLS.
	caFile := filepath.Join(dir, "good", "ca.pem")
	out, err := exec.Command(bins["herd"], "iamat", "-addr", addrs[0], "-tls-ca", caFile, "kiwi", "+34.068930-118.445127", "1520023934.5").CombinedOutput()
	at := strings.TrimSuffix(string(out), "\n")
	if err != nil || !regexp.MustCompile(`^AT Goloman [+-]\d+\.\d{9} kiwi \+34\.068930-118\.445127 1520023934\.5$`).MatchString(at) {
		t.Fatalf("herd iamat -tls-ca: %v: %q", err, out)
	}
	// It floods to Hands over the TLS link.
	pool, err := loadPool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	d := client.Dialer{DialContext: (&tls.Dialer{Config: &tls.Config{RootCAs: pool}}).DialContext}
	deadline := time.Now().Add(waitBound)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var got string
		c, err := d.Dial(ctx, addrs[1])
		if err == nil {
			var nb *client.Nearby
			if nb, err = c.WHATSATText(ctx, "kiwi", "1", "0"); err == nil {
				got = nb.AT.Line
			}
			c.Close()
		}
		cancel()
		if got == at {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Hands never held %q within %v; last: %q, %v", at, waitBound, got, err)
		}
		time.Sleep(pollPause)
	}
	for _, name := range []string{"Goloman", "Hands"} {
		waitLog(t, filepath.Join(dir, "logs", name+".log"), regexp.MustCompile(`msg="peer link up" server=`+name))
	}

	// Hands comes back with a certificate from another CA: no link, and
	// Goloman's log says why.
	hands.stop(t, syscall.SIGTERM)
	hands = serve(rogue, "Hands")
	waitLog(t, filepath.Join(dir, "logs", "Goloman.log"),
		regexp.MustCompile(`msg="peer dial failed" server=Goloman peer=Hands .*certificate signed by unknown authority`))
	hands.stop(t, syscall.SIGTERM)
	goloman.stop(t, syscall.SIGTERM)
}

func loadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return pool, nil
}
