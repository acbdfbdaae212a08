package herd

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/proxyherd/herd/transport"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "herd test CA"},
		NotBefore:             time.Unix(0, 0),
		NotAfter:              time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue makes a certificate for server name, valid for 127.0.0.1, usable
// both as a TLS server and as a TLS client.
func (ca *testCA) issue(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsTransport is a node's transport: its own certificate, the herd's CA
// for both directions, client certificates verified when given.
func tlsTransport(ca *testCA, cert tls.Certificate) *transport.TCP {
	return &transport.TCP{TLS: &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.pool,
		ClientCAs:    ca.pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS13,
	}}
}

func TestMutualTLSLinks(t *testing.T) {
	ca, rogue := newTestCA(t), newTestCA(t)
	logs := newLogSink()
	fast := func(c Config) Config {
		c.RequirePeerCert = true
		c.RedialMin, c.RedialMax = 5*time.Millisecond, 20*time.Millisecond
		c.Logger = logs.logger()
		return c
	}
	b := startNode(t, fast(Config{Name: "B", Transport: tlsTransport(ca, ca.issue(t, "B")), Clock: kiwiClock(),
		Peers: []Peer{{Name: "A"}}}))
	a := startNode(t, fast(Config{Name: "A", Transport: tlsTransport(ca, ca.issue(t, "A")),
		Peers: []Peer{{Name: "B", Addr: b.Addr().String()}}}))
	waitNode(t, a, "TLS link", func(n *Node) bool { return len(n.Links()) == 1 })

	// A client without a certificate still speaks the protocol over TLS.
	conn, err := tls.Dial("tcp", b.Addr().String(), &tls.Config{RootCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte(kiwiIAMAT + "\n"))
	wantAT := "AT B +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"
	if got, err := bufio.NewReader(conn).ReadString('\n'); err != nil || got != wantAT+"\n" {
		t.Fatalf("client over TLS got %q, %v", got, err)
	}
	waitNode(t, a, "flood over TLS", hasLine("kiwi.cs.ucla.edu", wantAT))

	// A certificate from another CA is refused by the TLS handshake; both
	// sides say why, and the dialer retries with backoff.
	startNode(t, fast(Config{Name: "A", Transport: tlsTransport(ca, rogue.issue(t, "A")),
		Peers: []Peer{{Name: "B", Addr: b.Addr().String()}}}))
	logs.waitFor(t, `msg="TLS handshake failed" server=B`, `msg="peer refused" server=A`, "unknown certificate authority")

	// A certificate from the right CA that names another server is
	// refused by the handshake on top.
	startNode(t, fast(Config{Name: "A", Transport: tlsTransport(ca, ca.issue(t, "C")),
		Peers: []Peer{{Name: "B", Addr: b.Addr().String()}}}))
	logs.waitFor(t, `certificate names \"C\"`)
	if got := b.Links(); len(got) != 1 {
		t.Fatalf("B links %v", got)
	}
}

func TestRequirePeerCertRefusesPlainTCP(t *testing.T) {
	logs := newLogSink()
	b := startNode(t, Config{Name: "B", RequirePeerCert: true, Peers: []Peer{{Name: "A"}}, Logger: logs.logger()})
	startNode(t, Config{Name: "A", Peers: []Peer{{Name: "B", Addr: b.Addr().String()}}, RedialMin: time.Millisecond, RedialMax: 5 * time.Millisecond})
	logs.waitFor(t, "peer refused", "not TLS")
}
