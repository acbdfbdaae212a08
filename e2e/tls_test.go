package e2e_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proxyherd/herd/client"
	"github.com/proxyherd/herd/internal/testcert"
)

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
	// A CA per directory: dir/ca.pem, and dir/NAME.crt and dir/NAME.key
	// for each server, naming it and 127.0.0.1.
	goodCA := testcert.New(t, "e2e CA "+filepath.Join(dir, "good"))
	goodCA.WriteFiles(t, filepath.Join(dir, "good", "ca.pem"), filepath.Join(dir, "good"), "Goloman", "Hands")
	testcert.New(t, "e2e CA "+filepath.Join(dir, "rogue")).WriteFiles(t, filepath.Join(dir, "rogue", "ca.pem"), filepath.Join(dir, "rogue"), "Hands")
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
	d := client.Dialer{DialContext: (&tls.Dialer{Config: &tls.Config{RootCAs: goodCA.Pool}}).DialContext}
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
		waitLog(t, filepath.Join(dir, "logs", name+".log"), regexp.MustCompile(` INFO `+name+` peer link up `))
	}

	// Hands comes back with a certificate from another CA: no link, and
	// Goloman's log says why.
	hands.stop(t, syscall.SIGTERM)
	hands = serve(rogue, "Hands")
	waitLog(t, filepath.Join(dir, "logs", "Goloman.log"),
		regexp.MustCompile(` INFO Goloman peer dial failed peer=Hands .*certificate signed by unknown authority`))
	hands.stop(t, syscall.SIGTERM)
	goloman.stop(t, syscall.SIGTERM)
}
