package herd

import (
	"bufio"
	"crypto/tls"
	"testing"
	"time"

	"github.com/proxyherd/herd/internal/testcert"
	"github.com/proxyherd/herd/transport"
)

// tlsTransport is a node's transport: its own certificate, the herd's CA
// for both directions, client certificates verified when given.
func tlsTransport(ca *testcert.CA, cert tls.Certificate) *transport.TCP {
	return &transport.TCP{TLS: &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.Pool,
		ClientCAs:    ca.Pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS13,
	}}
}

func TestMutualTLSLinks(t *testing.T) {
	ca, rogue := testcert.New(t, "herd test CA"), testcert.New(t, "herd test CA")
	logs := newLogSink()
	fast := func(c Config) Config {
		c.RequirePeerCert = true
		c.RedialMin, c.RedialMax = 5*time.Millisecond, 20*time.Millisecond
		c.Logger = logs.logger()
		return c
	}
	b := startNode(t, fast(Config{Name: "B", Transport: tlsTransport(ca, ca.Issue(t, "B")), Clock: kiwiClock(),
		Peers: []Peer{{Name: "A"}}}))
	a := startNode(t, fast(Config{Name: "A", Transport: tlsTransport(ca, ca.Issue(t, "A")),
		Peers: []Peer{{Name: "B", Addr: b.Addr().String()}}}))
	waitNode(t, a, "TLS link", func(n *Node) bool { return len(n.Links()) == 1 })

	// A client without a certificate still speaks the protocol over TLS.
	conn, err := tls.Dial("tcp", b.Addr().String(), &tls.Config{RootCAs: ca.Pool})
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
	startNode(t, fast(Config{Name: "A", Transport: tlsTransport(ca, rogue.Issue(t, "A")),
		Peers: []Peer{{Name: "B", Addr: b.Addr().String()}}}))
	logs.waitFor(t, `msg="TLS handshake failed" server=B`, `msg="peer refused" server=A`, "unknown certificate authority")

	// A certificate from the right CA that names another server is
	// refused by the handshake on top.
	startNode(t, fast(Config{Name: "A", Transport: tlsTransport(ca, ca.Issue(t, "C")),
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
