package herd

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/proxyherd/herd/transport"
)

// farAddr is a documentation address (TEST-NET-1, RFC 5737): what a
// connection from beyond the machine looks like, without leaving it.
var farAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 40000}

// disguise is a transport over loopback TCP whose connections claim to
// come from (or go to) remote, and whose listener claims to listen on
// listen, when set: protected mode sees addresses beyond the machine
// while the test stays on loopback.
type disguise struct {
	transport.TCP
	remote net.Addr
	listen net.Addr
}

type disguisedListener struct {
	net.Listener
	d *disguise
}

type disguisedConn struct {
	net.Conn
	remote net.Addr
}

func (c disguisedConn) RemoteAddr() net.Addr { return c.remote }

func (d *disguise) Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := d.TCP.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &disguisedListener{ln, d}, nil
}

func (d *disguise) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := d.TCP.Dial(ctx, addr)
	if err != nil || d.remote == nil {
		return c, err
	}
	return disguisedConn{c, d.remote}, nil
}

func (l *disguisedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.d.remote == nil {
		return c, err
	}
	return disguisedConn{c, l.d.remote}, nil
}

func (l *disguisedListener) Addr() net.Addr {
	if l.d.listen != nil {
		return l.d.listen
	}
	return l.Listener.Addr()
}

// forger is the 20-line script of issue 17: it dials a node, claims to be
// a neighbour, and answers the handshake with HMAC-SHA256 under a key of
// its choice (the empty key, which anyone can compute), written here
// from docs/protocol.md rather than with the package's own code.
type forger struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	want string // the hello sent
}

// forgeHello connects to addr and sends the hello of dialer to acceptor.
func forgeHello(t *testing.T, addr, dialer, acceptor string) *forger {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f := &forger{t: t, c: c, r: bufio.NewReader(c)}
	f.want = fmt.Sprintf("HERD 2 %s %s 00112233445566778899aabbccddeeff", dialer, acceptor)
	f.send(f.want + "\n")
	return f
}

func (f *forger) send(s string) {
	f.t.Helper()
	if _, err := f.c.Write([]byte(s)); err != nil {
		f.t.Fatal(err)
	}
}

func (f *forger) line() string {
	f.t.Helper()
	s, err := f.r.ReadString('\n')
	if err != nil {
		f.t.Fatalf("read: %v (got %q)", err, s)
	}
	return s
}

// auth answers the node's HERD-OK with a MAC under key, followed by more
// in the same write, and returns the node's answer line.
func (f *forger) auth(key []byte, more string) (authLine, answer string) {
	f.t.Helper()
	ok := strings.Fields(f.line())
	if len(ok) != 4 || ok[0] != "HERD-OK" {
		f.t.Fatalf("expected HERD-OK, got %q", ok)
	}
	hello := strings.Fields(f.want)
	h := hmac.New(sha256.New, key)
	fmt.Fprintf(h, "herd/2 dial\n%s\n%s\n%s\n%s", hello[2], hello[3], hello[4], ok[2])
	authLine = "HERD-AUTH " + hex.EncodeToString(h.Sum(nil))
	f.send(authLine + "\n" + more)
	return authLine, f.line()
}

// eof waits for the node to close the connection.
func (f *forger) eof() {
	f.t.Helper()
	if rest, err := f.r.ReadString('\n'); err == nil || rest != "" {
		f.t.Fatalf("expected EOF, got %q, %v", rest, err)
	}
}

const forgedAT = "AT Goloman +0.000000000 victim.example +1.0+1.0 1520023934.5"

// TestProtectedModeRefusesForgedPeer: without a secret, a hello from an
// address beyond loopback is refused before any handshake, counted and
// logged; with InsecurePeers the same script gets in (which is what
// protected mode is for), but cannot replace the live link it made.
func TestProtectedModeRefusesForgedPeer(t *testing.T) {
	logs := newLogSink()
	hands := startNode(t, Config{
		Name: "Hands", Peers: []Peer{{Name: "Goloman"}}, Clock: kiwiClock(),
		Transport: &disguise{remote: farAddr}, Logger: logs.logger(),
	})
	f := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	if got := f.line(); got != "? "+f.want+"\n" {
		t.Fatalf("hello answered %q", got)
	}
	f.eof()
	logs.waitFor(t, `msg="peer refused"`, "source=192.0.2.7", "count=1", "protected mode: 192.0.2.7:40000 is not a loopback address and no Secret is set")
	if st := hands.Stats(); st.PeersRefused != 1 || st.HandshakeFails != 1 || st.LinksUp != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, ok := hands.Lookup("victim.example"); ok {
		t.Fatal("a forged record got in")
	}
}

func TestInsecurePeersAcceptsForgedPeerButNoReplacement(t *testing.T) {
	logs := newLogSink()
	hands := startNode(t, Config{
		Name: "Hands", Peers: []Peer{{Name: "Goloman"}}, Clock: kiwiClock(), InsecurePeers: true,
		Transport: &disguise{remote: farAddr}, Logger: logs.logger(),
	})
	logs.waitFor(t, `level=WARN msg="insecure peers: no Secret is set and InsecurePeers is on`)
	f := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	if _, got := f.auth(nil, forgedAT+"\n"); got != "HERD-WELCOME\n" {
		t.Fatalf("auth answered %q", got)
	}
	waitNode(t, hands, "the forged record", hasLine("victim.example", forgedAT))

	// A second link for Goloman while the first is up proves nothing
	// with the empty key: refused, and the first stays.
	g := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	authLine, got := g.auth(nil, "")
	if got != "? "+authLine+"\n" {
		t.Fatalf("replacement answered %q", got)
	}
	g.eof()
	logs.waitFor(t, "a live link to Goloman exists, and without a Secret nothing proves this one should replace it")
	if st := hands.Stats(); st.PeersRefused != 1 || fmt.Sprint(hands.Links()) != "[Goloman]" {
		t.Fatalf("links %v, stats %+v", hands.Links(), st)
	}
}

// TestLoopbackReplacementWithoutSecretWarns: in protected mode over
// loopback, a link that replaces a live one is kept, with a warning.
func TestLoopbackReplacementWithoutSecretWarns(t *testing.T) {
	logs := newLogSink()
	hands := startNode(t, Config{Name: "Hands", Peers: []Peer{{Name: "Goloman"}}, Clock: kiwiClock(), Logger: logs.logger()})
	logs.waitFor(t, "protected mode: no Secret is set, so peer links are made only over loopback")
	f := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	if _, got := f.auth(nil, ""); got != "HERD-WELCOME\n" {
		t.Fatalf("first link: %q", got)
	}
	waitNode(t, hands, "link", func(n *Node) bool { return len(n.Links()) == 1 })
	g := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	if _, got := g.auth(nil, forgedAT+"\n"); got != "HERD-WELCOME\n" {
		t.Fatalf("replacement: %q", got)
	}
	logs.waitFor(t, `level=WARN msg="peer link replaced without a secret"`, "source=127.0.0.1", "peer=Goloman")
	waitNode(t, hands, "the new link's record", hasLine("victim.example", forgedAT))
	if st := hands.Stats(); st.PeersRefused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSecretProvesReplacement: with a secret, from any address, a link
// that proves it replaces the live one; the empty key proves nothing.
func TestSecretProvesReplacement(t *testing.T) {
	secret := []byte("s3cret")
	hands := startNode(t, Config{
		Name: "Hands", Peers: []Peer{{Name: "Goloman"}}, Clock: kiwiClock(), Secret: secret,
		Transport: &disguise{remote: farAddr},
	})
	empty := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	if authLine, got := empty.auth(nil, ""); got != "? "+authLine+"\n" {
		t.Fatalf("empty key answered %q", got)
	}
	f := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	if _, got := f.auth(secret, ""); got != "HERD-WELCOME\n" {
		t.Fatalf("first link: %q", got)
	}
	waitNode(t, hands, "link", func(n *Node) bool { return len(n.Links()) == 1 })
	g := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	if _, got := g.auth(secret, forgedAT+"\n"); got != "HERD-WELCOME\n" {
		t.Fatalf("replacement: %q", got)
	}
	waitNode(t, hands, "the new link's record", hasLine("victim.example", forgedAT))
	f.eof() // the old link is closed
	if st := hands.Stats(); st.PeersRefused != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestProtectedModeListenAddress: without a secret, a node refuses to
// start on an address beyond loopback unless InsecurePeers, which it then
// warns about; with a secret it starts.
func TestProtectedModeListenAddress(t *testing.T) {
	far := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 12000}
	any := &net.TCPAddr{IP: net.IPv6unspecified, Port: 12000}
	for _, tc := range []struct {
		name   string
		listen net.Addr
		cfg    Config
		want   string // error, or "" to start
	}{
		{"far", far, Config{}, "herd: invalid config: Addr: 192.0.2.1:12000 is not a loopback address and no Secret is set: anyone who reaches it could pose as a neighbour (protected mode); set Secret, or InsecurePeers to run without one anyway"},
		{"every interface", any, Config{}, "herd: invalid config: Addr: [::]:12000 is not a loopback address"},
		{"insecure", far, Config{InsecurePeers: true}, ""},
		{"secret", any, Config{Secret: []byte("x")}, ""},
		{"ipv6 loopback", &net.TCPAddr{IP: net.IPv6loopback, Port: 1}, Config{}, ""},
		{"127.0.0.2", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 1}, Config{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := newLogSink()
			cfg := tc.cfg
			cfg.Name, cfg.Addr, cfg.Logger = "Hands", "127.0.0.1:0", logs.logger()
			cfg.Transport = &disguise{listen: tc.listen}
			n, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			err = n.Start(context.Background())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				if tc.cfg.InsecurePeers && !strings.Contains(logs.String(), "level=WARN msg=\"insecure peers") {
					t.Errorf("no warning:\n%s", logs)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Start: %v\nwant %s", err, tc.want)
			}
			if n.Addr() != nil {
				t.Fatal("the refused node kept its listener")
			}
		})
	}
}

// TestProtectedModeDialsLoopbackOnly: without a secret, a node does not
// link to a neighbour beyond loopback either.
func TestProtectedModeDialsLoopbackOnly(t *testing.T) {
	logs := newLogSink()
	hands := startNode(t, Config{Name: "Hands", Peers: []Peer{{Name: "Goloman"}}})
	gol := startNode(t, Config{
		Name: "Goloman", Peers: []Peer{{Name: "Hands", Addr: hands.Addr().String()}}, Logger: logs.logger(),
		Transport: &disguise{remote: farAddr}, RedialMin: time.Hour,
	})
	logs.waitFor(t, `msg="peer refused"`, "protected mode: 192.0.2.7:40000 is not a loopback address and no Secret is set")
	if st := gol.Stats(); st.PeersRefused != 1 || st.LinksUp != 0 {
		t.Fatalf("stats %+v", st)
	}
	if links := hands.Links(); len(links) != 0 {
		t.Fatalf("Hands: links %v", links)
	}
}

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct {
		addr        net.Addr
		src         string
		trustedHere bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}, "127.0.0.1", true},
		{&net.TCPAddr{IP: net.IPv4(127, 9, 8, 7), Port: 5}, "127.9.8.7", true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 5}, "::/64", true},
		{&net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5}, "192.0.2.7", false},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 5}, "192.0.2.7", false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 5}, "2001:db8:1:2::/64", false},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 5, Zone: "eth0"}, "fe80::/64", false},
		{&net.UDPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5}, "10.1.2.3", false},
		{&net.UnixAddr{Name: "/tmp/sock", Net: "unix"}, "/tmp/sock", true},
		{simAddr("Goloman:12000"), "Goloman", true},
		{nil, "", true},
	} {
		if got := sourceOf(tc.addr); got != tc.src {
			t.Errorf("sourceOf(%v) = %q, want %q", tc.addr, got, tc.src)
		}
		if got := trustedLocal(tc.addr); got != tc.trustedHere {
			t.Errorf("trustedLocal(%v) = %v", tc.addr, got)
		}
	}
}

// simAddr is an address that is not an IP address, like herdtest's.
type simAddr string

func (a simAddr) Network() string { return "sim" }
func (a simAddr) String() string  { return string(a) }

func TestOffenceLogOncePerMinute(t *testing.T) {
	var o offenceLog
	t0 := time.Unix(1520023935, 0)
	step := func(at time.Duration, source string, wantCount uint64, wantLog bool) {
		t.Helper()
		_, count, log := o.note("x", source, t0.Add(at))
		if count != wantCount || log != wantLog {
			t.Fatalf("at %v from %s: (%d, %v), want (%d, %v)", at, source, count, log, wantCount, wantLog)
		}
	}
	step(0, "a", 1, true)
	step(time.Second, "a", 0, false)
	step(2*time.Second, "b", 1, true) // each source has its own minute
	step(59*time.Second, "a", 0, false)
	step(time.Minute, "a", 3, true) // the line covers the two not logged
	step(time.Minute+time.Second, "a", 0, false)
	if len(o.m) != 2 {
		t.Fatalf("%d sources", len(o.m))
	}
	// A full log forgets quiet sources, then lumps new ones together.
	for i := range maxOffenders - 2 {
		o.note("x", fmt.Sprint("s", i), t0.Add(time.Minute))
	}
	if src, _, _ := o.note("x", "new", t0.Add(time.Minute)); src != "other sources" {
		t.Fatalf("a source beyond the bound is logged as %q", src)
	}
	step(3*time.Minute, "newer", 1, true) // the quiet ones are forgotten
	if _, ok := o.m[offenceKey{"x", "newer"}]; !ok || len(o.m) > 4 {
		t.Fatalf("%d sources after forgetting", len(o.m))
	}
}
