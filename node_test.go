package herd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	kiwiIAMAT = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"
	kiwiAT    = "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"
)

func kiwiClock() *testClock { return newTestClock(1520023935, 182837383) }

func TestClientSessionExactReplies(t *testing.T) {
	n := startNode(t, Config{Name: "Goloman", Clock: kiwiClock()})
	c := dialNode(t, n)
	c.send(kiwiIAMAT + "\n")
	if got := c.line(); got != kiwiAT+"\n" {
		t.Fatalf("IAMAT reply = %q, want %q", got, kiwiAT+"\n")
	}
	c.send("WHATSAT kiwi.cs.ucla.edu 10 0\n")
	want := kiwiAT + "\n" + string(emptyJSON) + "\n\n"
	if got := c.whatsat(); got != want {
		t.Fatalf("WHATSAT reply:\n%s", cmp.Diff(want, got))
	}
}

func TestClientSessionPipelinedFraming(t *testing.T) {
	n := startNode(t, Config{Name: "Goloman", Clock: kiwiClock()})
	c := dialNode(t, n)
	// Many commands in one write, every kind of white space, CRLF, an
	// empty line, an invalid command, a peer-only line from a client, and
	// a last line that ends at EOF without a newline.
	c.send("\t IAMAT\fkiwi.cs.ucla.edu\v+34.068930-118.445127   1520023934.918963997 \r\n" +
		"\n" +
		"FOO bar\r\n" +
		kiwiAT + "\n" +
		"IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963996\n" +
		"WHATSAT nobody 10 0\n" +
		"WHATSAT kiwi.cs.ucla.edu 10 0")
	got := c.rest()
	want := kiwiAT + "\n" +
		"? \n" +
		"? FOO bar\r\n" +
		"? " + kiwiAT + "\n" +
		kiwiAT + "\n" + // an older report gets the stored line
		"? WHATSAT nobody 10 0\n" +
		kiwiAT + "\n" + string(emptyJSON) + "\n\n"
	if got != want {
		t.Fatalf("replies:\n%s", cmp.Diff(want, got))
	}
}

func TestClientSessionInvalidCommands(t *testing.T) {
	n := startNode(t, Config{Name: "Goloman", Clock: kiwiClock()})
	c := dialNode(t, n)
	c.send(kiwiIAMAT + "\n")
	c.line()
	for _, line := range []string{
		"IAMAT kiwi +34-118 1520023934.9",
		"IAMAT kiwi 34.06-118.44 1520023934.9",
		"IAMAT kiwi +34.06 1520023934.9",
		"IAMAT kiwi +91.0+10.0 1520023934.9",
		"IAMAT kiwi +34.06-118.44 -1",
		"IAMAT kiwi +34.06-118.44 1e9",
		"IAMAT kiwi +34.06-118.44 nan",
		"IAMAT kiwi +34.06-118.44 9223372036854775808",
		"IAMAT kiwi +34.06-118.44",
		"IAMAT kiwi +34.06-118.44 1 extra",
		"iamat kiwi +34.06-118.44 1",
		"WHATSAT kiwi.cs.ucla.edu 0 5",
		"WHATSAT kiwi.cs.ucla.edu -1 5",
		"WHATSAT kiwi.cs.ucla.edu 51 5",
		"WHATSAT kiwi.cs.ucla.edu 1e1 5",
		"WHATSAT kiwi.cs.ucla.edu 10 21",
		"WHATSAT kiwi.cs.ucla.edu 10 -1",
		"WHATSAT kiwi.cs.ucla.edu 10",
		"HERD 2 Hands Goloman 00",
		"\xff\xfe garbage \x00",
	} {
		c.send(line + "\n")
		if got, want := c.line(), "? "+line+"\n"; got != want {
			t.Errorf("reply to %q = %q, want %q", line, got, want)
		}
	}
}

func TestClientSessionNonUTF8ClientID(t *testing.T) {
	n := startNode(t, Config{Name: "Goloman", Clock: newTestClock(100, 0)})
	c := dialNode(t, n)
	c.send("IAMAT \xff\x80id +0.0+0.0 99.5\n")
	if got, want := c.line(), "AT Goloman +0.500000000 \xff\x80id +0.0+0.0 99.5\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestClientSessionLineTooLong(t *testing.T) {
	logs := newLogSink()
	n := startNode(t, Config{Name: "Goloman", MaxLineBytes: 100, Logger: logs.logger()})
	c := dialNode(t, n)
	long := strings.Repeat("x", 250)
	c.send(long + "\n")
	if got, want := c.rest(), "? "+long[:100]+"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	logs.waitFor(t, "line too long")
}

func TestClientSessionCloseAfterReply(t *testing.T) {
	n := startNode(t, Config{Name: "Goloman", Clock: kiwiClock(), CloseAfterReply: true})
	c := dialNode(t, n)
	c.send(kiwiIAMAT + "\n" + kiwiIAMAT + "\n")
	if got := string(mustReadAll(t, c)); got != kiwiAT+"\n" {
		t.Fatalf("got %q", got)
	}
}

func mustReadAll(t *testing.T, c *testConn) []byte {
	t.Helper()
	var b []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.r.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			return b
		}
	}
}

func TestWhatsatProviderFailureKeepsShape(t *testing.T) {
	n := startNode(t, Config{
		Name:   "Goloman",
		Clock:  kiwiClock(),
		Places: PlacesFunc(func(context.Context, NearbyQuery) ([]byte, error) { return nil, errors.New("boom") }),
	})
	c := dialNode(t, n)
	c.send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
	c.line()
	got := c.whatsat()
	if !strings.HasPrefix(got, kiwiAT+"\n{\n") || !strings.Contains(got, `"status" : "UNKNOWN_ERROR"`) || !strings.Contains(got, "boom") || !strings.HasSuffix(got, "}\n\n") {
		t.Fatalf("reply %q", got)
	}
}

func TestWhatsatPassesQuery(t *testing.T) {
	var got NearbyQuery
	n := startNode(t, Config{
		Name:  "Goloman",
		Clock: kiwiClock(),
		Places: PlacesFunc(func(_ context.Context, q NearbyQuery) ([]byte, error) {
			got = q
			return os.ReadFile("testdata/nearby_legacy_ok.json")
		}),
	})
	c := dialNode(t, n)
	c.send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10.5871263 3\n")
	c.line()
	c.whatsat()
	want := NearbyQuery{Lat: 34.068930, Lon: -118.445127, RadiusMeters: 10587.1263, MaxResults: 3}
	if got != want {
		t.Fatalf("query %+v, want %+v", got, want)
	}
}

func TestNewValidatesEveryField(t *testing.T) {
	_, err := New(Config{
		Name:         "Go loman",
		Addr:         "nope",
		Peers:        []Peer{{Name: "Hands"}, {Name: "Hands", Addr: "x:1"}, {Name: ""}},
		MaxLineBytes: 10,
		PeerQueue:    -1,
		RedialMin:    time.Second,
		RedialMax:    time.Millisecond,
	})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("err = %v, want ErrInvalidConfig", err)
	}
	for _, field := range []string{"Name", "Addr", "Peers[1].Name", "Peers[2].Name", "MaxLineBytes", "PeerQueue", "RedialMax"} {
		if !strings.Contains(err.Error(), field+":") {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

func TestLifecycle(t *testing.T) {
	n, err := New(Config{Name: "A", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Addr() != nil {
		t.Fatal("Addr before Start")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	waitNode(t, n, "listening", func(n *Node) bool { return n.Addr() != nil })
	if err := n.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
}

// herd2018 starts the 2018 herd on loopback with the given Places fake.
type testHerd struct {
	t     *testing.T
	cfgs  map[string]Config
	nodes map[string]*Node
}

func startHerd(t *testing.T, topo Topology, mutate func(*Config)) *testHerd {
	h := &testHerd{t: t, cfgs: map[string]Config{}, nodes: map[string]*Node{}}
	// Acceptors (names sorting later) start first, so every dialer knows
	// its neighbours' addresses.
	names := append([]string(nil), topo.Servers...)
	sortDesc(names)
	addrs := map[string]string{}
	for _, name := range names {
		cfg := Config{Name: name, Addr: "127.0.0.1:0", RedialMin: 5 * time.Millisecond, RedialMax: 50 * time.Millisecond}
		for _, p := range topo.Neighbours(name) {
			cfg.Peers = append(cfg.Peers, Peer{Name: p, Addr: addrs[p]})
		}
		if mutate != nil {
			mutate(&cfg)
		}
		n := startNode(t, cfg)
		addrs[name] = n.Addr().String()
		cfg.Addr = addrs[name]
		h.cfgs[name] = cfg
		h.nodes[name] = n
	}
	for _, name := range names {
		want := len(topo.Neighbours(name))
		waitNode(t, h.nodes[name], "all links up", func(n *Node) bool { return len(n.Links()) == want })
	}
	return h
}

func sortDesc(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] > s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

// restart starts a closed node again on its old address, with an empty
// table.
func (h *testHerd) restart(name string) *Node {
	h.t.Helper()
	n := startNode(h.t, h.cfgs[name])
	h.nodes[name] = n
	return n
}

func TestHerd2018OverTCP(t *testing.T) {
	fake := placesFake(t, "nearby_legacy_google_layout.json")
	clock := kiwiClock()
	h := startHerd(t, Presets["2018"], func(c *Config) {
		c.Clock = clock
		c.Places = fake
	})

	// An IAMAT at Goloman reaches every server.
	c := dialNode(t, h.nodes["Goloman"])
	c.send(kiwiIAMAT + "\n")
	if got := c.line(); got != kiwiAT+"\n" {
		t.Fatalf("IAMAT reply %q", got)
	}
	for name, n := range h.nodes {
		waitNode(t, n, name+" has kiwi", hasLine("kiwi.cs.ucla.edu", kiwiAT))
	}

	// WHATSAT at every server returns the original AT line and the
	// provider's JSON cut to the bound, with the newline rules applied.
	raw, err := os.ReadFile("testdata/nearby_legacy_google_layout.json")
	if err != nil {
		t.Fatal(err)
	}
	wantBody := string(whatsatJSON(raw, 2))
	if strings.Contains(wantBody, "\n\n") || strings.Count(wantBody, `"place_id"`) != 2 {
		t.Fatalf("fixture cut looks wrong: %q", wantBody)
	}
	for _, name := range Presets["2018"].Servers {
		c := dialNode(t, h.nodes[name])
		c.send("WHATSAT kiwi.cs.ucla.edu 10 2\n")
		if got, want := c.whatsat(), kiwiAT+"\n"+wantBody+"\n\n"; got != want {
			t.Fatalf("WHATSAT at %s:\n%s", name, cmp.Diff(want, got))
		}
	}

	// Two servers close; the rest keep serving and flooding.
	h.nodes["Hands"].Close()
	h.nodes["Wilkes"].Close()
	clock.Set(time.Unix(1520023999, 0))
	c = dialNode(t, h.nodes["Welsh"])
	c.send("IAMAT kiwi.cs.ucla.edu +1.0-2.0 1520023990\n")
	welshAT := "AT Welsh +9.000000000 kiwi.cs.ucla.edu +1.0-2.0 1520023990"
	if got := c.line(); got != welshAT+"\n" {
		t.Fatalf("IAMAT at Welsh: %q", got)
	}
	for _, name := range []string{"Goloman", "Holiday"} {
		waitNode(t, h.nodes[name], "Welsh's report", hasLine("kiwi.cs.ucla.edu", welshAT))
	}

	// A closed server started again, with an empty table, refills it
	// from its neighbours.
	hands := h.restart("Hands")
	waitNode(t, hands, "refill", hasLine("kiwi.cs.ucla.edu", welshAT))
	wilkes := h.restart("Wilkes")
	waitNode(t, wilkes, "refill", hasLine("kiwi.cs.ucla.edu", welshAT))
	for name, n := range h.nodes {
		want := len(Presets["2018"].Neighbours(name))
		waitNode(t, n, "links back", func(n *Node) bool { return len(n.Links()) == want })
	}
}

func TestWrongSecretIsRefusedAndLogged(t *testing.T) {
	logs := newLogSink()
	b := startNode(t, Config{Name: "B", Secret: []byte("right"), Peers: []Peer{{Name: "A"}}, Logger: logs.logger()})
	a := startNode(t, Config{
		Name: "A", Secret: []byte("wrong"), Logger: logs.logger(),
		Peers:     []Peer{{Name: "B", Addr: b.Addr().String()}},
		RedialMin: time.Millisecond, RedialMax: time.Millisecond,
	})
	logs.waitFor(t, `msg="peer refused" server=A`, "wrong secret")
	if len(a.Links()) != 0 || len(b.Links()) != 0 {
		t.Fatalf("links came up with a wrong secret: %v %v", a.Links(), b.Links())
	}
}

func TestRightSecretLinks(t *testing.T) {
	b := startNode(t, Config{Name: "B", Secret: []byte("s3"), Peers: []Peer{{Name: "A"}}, Clock: kiwiClock()})
	a := startNode(t, Config{Name: "A", Secret: []byte("s3"), Peers: []Peer{{Name: "B", Addr: b.Addr().String()}}})
	waitNode(t, a, "link", func(n *Node) bool { return fmt.Sprint(n.Links()) == "[B]" })
	c := dialNode(t, b)
	c.send(kiwiIAMAT + "\n")
	c.line()
	waitNode(t, a, "flood", func(n *Node) bool { _, ok := n.Lookup("kiwi.cs.ucla.edu"); return ok })
}

func TestNotANeighbourIsRefused(t *testing.T) {
	logs := newLogSink()
	b := startNode(t, Config{Name: "B", Logger: logs.logger()})
	c := dialNode(t, b)
	hello := "HERD 2 Mallory B 00112233445566778899aabbccddeeff"
	c.send(hello + "\n")
	if got := c.line(); got != "? "+hello+"\n" {
		t.Fatalf("got %q", got)
	}
	logs.waitFor(t, "peer refused", "not a neighbour")
}

func TestCloseAnswersPendingWhatsat(t *testing.T) {
	called := make(chan struct{})
	n := startNode(t, Config{
		Name:  "Goloman",
		Clock: kiwiClock(),
		Places: PlacesFunc(func(ctx context.Context, q NearbyQuery) ([]byte, error) {
			close(called)
			<-ctx.Done() // a provider that answers only when told to stop
			return nil, ctx.Err()
		}),
	})
	c := dialNode(t, n)
	c.send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 5\n")
	c.line()
	<-called
	n.Close()
	// The WHATSAT read before Close still gets its whole reply, then EOF.
	got := string(mustReadAll(t, c))
	if !strings.HasPrefix(got, kiwiAT+"\n{\n") || !strings.Contains(got, "context canceled") || !strings.HasSuffix(got, "}\n\n") {
		t.Fatalf("reply %q", got)
	}
}

// TestStatsDigestTellsConvergence checks that Stats.Digest is the same on
// every node of a converged herd, whatever order records arrived in, and
// differs on a node that misses a record.
func TestStatsDigestTellsConvergence(t *testing.T) {
	h := startHerd(t, Presets["2018"], func(c *Config) { c.Clock = kiwiClock() })
	if d := h.nodes["Hands"].Stats().Digest; d != 0 {
		t.Fatalf("empty table: Digest %#x, want 0", d)
	}
	// Reports at two servers, so records reach each node in another order.
	for i, at := range []string{"Goloman", "Welsh", "Goloman", "Welsh"} {
		c := dialNode(t, h.nodes[at])
		c.send(fmt.Sprintf("IAMAT client%d +34.068930-118.445127 1520023934.%d\n", i, i))
		c.line()
	}
	last := "client3"
	for name, n := range h.nodes {
		waitNode(t, n, name+" has "+last, func(n *Node) bool { _, ok := n.Lookup(last); return ok })
		waitNode(t, n, name+" has 4 clients", func(n *Node) bool { return n.Stats().Clients == 4 })
	}
	want := h.nodes["Goloman"].Stats().Digest
	if want == 0 {
		t.Fatal("Digest 0 for a table of 4 records")
	}
	for name, n := range h.nodes {
		if d := n.Stats().Digest; d != want {
			t.Errorf("%s: Digest %#x, Goloman %#x", name, d, want)
		}
	}

	// Welsh closes and misses a newer report of client0.
	h.nodes["Welsh"].Close()
	c := dialNode(t, h.nodes["Goloman"])
	c.send("IAMAT client0 +34.068930-118.445127 1520023935\n")
	at := c.line()
	waitNode(t, h.nodes["Holiday"], "Holiday has the newer report", hasLine("client0", strings.TrimSuffix(at, "\n")))
	if h.nodes["Holiday"].Stats().Digest == h.nodes["Welsh"].Stats().Digest {
		t.Fatal("Welsh misses a record but has Holiday's Digest")
	}
	if h.nodes["Holiday"].Stats().Digest != h.nodes["Goloman"].Stats().Digest {
		t.Fatal("Holiday and Goloman hold the same records but their Digests differ")
	}
}
