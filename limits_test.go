package herd

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/proxyherd/herd/transport"

	"github.com/google/go-cmp/cmp"
)

// readEOF reads until the server closes the connection and returns what it
// sent.
func readEOF(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func TestMaxConnsClosesExtraConnections(t *testing.T) {
	logs := newLogSink()
	n := startNode(t, Config{Name: "Goloman", MaxConns: 2, Clock: kiwiClock(), Logger: logs.logger()})
	a, b := dialNode(t, n), dialNode(t, n)
	a.send(kiwiIAMAT + "\n")
	a.line()
	b.send(kiwiIAMAT + "\n")
	b.line()
	extra := dialNode(t, n)
	if got := readEOF(t, extra.c); got != "" {
		t.Fatalf("refused connection got %q", got)
	}
	logs.waitFor(t, "connection refused", "MaxConns reached")
	if s := n.Stats(); s.ConnsRefused != 1 || s.ConnsAccepted != 2 {
		t.Fatalf("stats %+v", s)
	}
	// The connections within the limit still work.
	a.send("WHATSAT kiwi.cs.ucla.edu 1 0\n")
	if got := a.whatsat(); !strings.HasPrefix(got, kiwiAT+"\n") {
		t.Fatalf("got %q", got)
	}
}

func TestMaxClientsRefusesNewClientsOnly(t *testing.T) {
	logs := newLogSink()
	n := startNode(t, Config{Name: "A", MaxClients: 1, Clock: newTestClock(100, 0), Logger: logs.logger()})
	c := dialNode(t, n)
	c.send("IAMAT one +1.0+1.0 90\nIAMAT two +1.0+1.0 90\nIAMAT one +1.0+1.0 95\n")
	want := "AT A +10.000000000 one +1.0+1.0 90\n" +
		"? IAMAT two +1.0+1.0 90\n" +
		"AT A +5.000000000 one +1.0+1.0 95\n"
	if got := c.rest(); got != want {
		t.Fatalf("replies:\n%s", cmp.Diff(want, got))
	}
	logs.waitFor(t, "table full")
	if s := n.Stats(); s.TableFull != 1 || s.Clients != 1 || s.IAMAT != 2 || s.Invalid != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestIdleClientIsClosed(t *testing.T) {
	n := startNode(t, Config{Name: "A", IdleTimeout: 40 * time.Millisecond, Clock: kiwiClock()})
	c := dialNode(t, n)
	c.send(kiwiIAMAT + "\n")
	c.line()
	// The node's sweeper closes the connection; the read returns then.
	if got := readEOF(t, c.c); got != "" {
		t.Fatalf("got %q", got)
	}
	if s := n.Stats(); s.IdleClosed != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// stuckTransport is TCP whose accepted connections, from the stuckAfter-th
// on, never complete a write (as with a client that never reads and a full
// socket buffer) until they are closed.
type stuckTransport struct {
	transport.TCP
	stuckAfter int
	accepted   atomic.Int32
}

type stuckListener struct {
	net.Listener
	t *stuckTransport
}

type stuckConn struct {
	net.Conn
	closed chan struct{}
	once   sync.Once
}

func (t *stuckTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := t.TCP.Listen(ctx, addr)
	return &stuckListener{ln, t}, err
}

func (l *stuckListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || int(l.t.accepted.Add(1)) < l.t.stuckAfter {
		return c, err
	}
	return &stuckConn{Conn: c, closed: make(chan struct{})}, nil
}

func (c *stuckConn) Write([]byte) (int, error) {
	<-c.closed
	return 0, net.ErrClosed
}

func (c *stuckConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func TestClientThatNeverReadsIsCut(t *testing.T) {
	logs := newLogSink()
	n := startNode(t, Config{
		Name: "Goloman", WriteTimeout: 100 * time.Millisecond, Clock: kiwiClock(),
		Transport: &stuckTransport{stuckAfter: 2}, Logger: logs.logger(),
	})
	other := dialNode(t, n)
	other.send(kiwiIAMAT + "\n")
	other.line()
	stuck := dialNode(t, n)
	stuck.send("WHATSAT kiwi.cs.ucla.edu 1 0\n")
	// While the server's write to stuck is blocked, nobody else waits.
	for range 3 {
		other.send("WHATSAT kiwi.cs.ucla.edu 1 0\n")
		if got := other.whatsat(); !strings.HasPrefix(got, kiwiAT) {
			t.Fatalf("other client got %q", got)
		}
	}
	// The sweeper cuts the stuck connection after WriteTimeout.
	if got := readEOF(t, stuck.c); got != "" {
		t.Fatalf("stuck client got %q", got)
	}
	logs.waitFor(t, "connection cut", "write blocked longer than WriteTimeout")
	if s := n.Stats(); s.WriteTimeouts != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestStateFileSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	cfg := Config{Name: "A", Addr: "127.0.0.1:0", StateFile: path, Clock: kiwiClock()}
	n1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c := dialNode(t, n1)
	c.send(kiwiIAMAT + "\nIAMAT other +1.0+1.0 1\n")
	c.line()
	c.line()
	n1.Close()

	n2 := startNode(t, cfg)
	if d := cmp.Diff(n1.Records(), n2.Records()); d != "" {
		t.Fatalf("records after restart:\n%s", d)
	}
	if s := n2.Stats(); s.Clients != 2 || s.StateErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCorruptStateFileIsNotTrusted(t *testing.T) {
	valid := encodeState([]Record{mustParseAT(t, kiwiAT)}, 1)
	for name, data := range map[string][]byte{
		"torn":         valid[:len(valid)-10],
		"flipped byte": append(append([]byte(nil), valid[:len(valid)-5]...), 'X', '9', '9', '7', '\n'),
		"bad header":   []byte("herd-state 9 1 00\n" + kiwiAT + "\n"),
		"empty":        {},
		"wrong count":  []byte(strings.Replace(string(valid), "herd-state 2 00000000000000000001 ", "herd-state 2 00000000000000000002 ", 1)),
		// One digit of the latitude: the record still parses, so only
		// the checksum can tell.
		"coordinate digit": []byte(strings.Replace(string(valid), "+34.068930", "+34.068931", 1)),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			logs := newLogSink()
			n := startNode(t, Config{Name: "A", StateFile: path, Logger: logs.logger()})
			if recs := n.Records(); len(recs) != 0 {
				t.Fatalf("trusted a %s file: %v", name, recs)
			}
			logs.waitFor(t, "state file not trusted")
			if _, err := os.Stat(path + ".corrupt"); err != nil {
				t.Fatalf("corrupt file not set aside: %v", err)
			}
		})
	}
}

func TestStateRoundTrip(t *testing.T) {
	recs := []Record{mustParseAT(t, "AT A +0.000000000 a +1.0+1.0 1"), mustParseAT(t, kiwiAT)}
	got, seq, err := decodeState(encodeState(recs, 7))
	if err != nil || seq != 7 {
		t.Fatal(seq, err)
	}
	if d := cmp.Diff(recs, got); d != "" {
		t.Fatal(d)
	}
	if got, _, err := decodeState(encodeState(nil, 1)); err != nil || len(got) != 0 {
		t.Fatalf("empty state: %v %v", got, err)
	}
}

func mustParseAT(t *testing.T, line string) Record {
	t.Helper()
	r, ok := parseAT([]byte(line))
	if !ok {
		t.Fatalf("bad AT line %q", line)
	}
	return r
}

func TestTableFullDropsPeerRecords(t *testing.T) {
	tab := newTable(hashKey{})
	a, b := mustParseAT(t, "AT A +0.000000000 a +1.0+1.0 1"), mustParseAT(t, "AT A +0.000000000 b +1.0+1.0 1")
	if _, res := tab.offer(&a, 1); res != offerChanged {
		t.Fatal(res)
	}
	if _, res := tab.offer(&b, 1); res != offerFull {
		t.Fatal(res)
	}
	newer := mustParseAT(t, "AT A +0.000000000 a +1.0+1.0 2")
	if _, res := tab.offer(&newer, 1); res != offerChanged {
		t.Fatal("a known client must keep updating when the table is full")
	}
}

// TestIdleSessionIsParkedAndStillServes, in both ack modes: in durable
// mode the session's reply writer ends when it parks and a new one starts
// with its next reply.
func TestIdleSessionIsParkedAndStillServes(t *testing.T) {
	for _, ack := range []Ack{AckTable, AckDurable} {
		t.Run(ack.String(), func(t *testing.T) {
			logs := newLogSink()
			// IdleTimeout 2s: the sweeper runs every 500ms and parks a session
			// after one idle sweep, long before it would close it.
			cfg := Config{Name: "Goloman", IdleTimeout: 2 * time.Second, Clock: kiwiClock(), Logger: logs.logger(), Ack: ack}
			if ack == AckDurable {
				cfg.StateFile = filepath.Join(t.TempDir(), "Goloman.state")
			}
			n := startNode(t, cfg)
			c := dialNode(t, n)
			c.send(kiwiIAMAT + "\n")
			c.line()
			logs.waitFor(t, "connection parked")
			if s := n.Stats(); s.Parked != 1 {
				t.Fatalf("stats %+v", s)
			}
			// The parked session answers as before.
			c.send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 1 0\n")
			if got, want := c.line()+c.whatsat(), kiwiAT+"\n"+kiwiAT+"\n"+string(emptyJSON)+"\n\n"; got != want {
				t.Fatalf("after parking got %q", got)
			}
		})
	}
}
