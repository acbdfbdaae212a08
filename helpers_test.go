package herd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// testClock has a settable Now and real timers: node tests over loopback
// TCP need exact receive times, while backoff and handshake timers may run
// on the system clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock(sec int64, nsec int64) *testClock {
	return &testClock{now: time.Unix(sec, nsec)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *testClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// logSink collects log records and lets a test wait for one.
type logSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogSink() *logSink { return &logSink{changed: make(chan struct{})} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor waits until every one of substrs has been logged.
func (s *logSink) waitFor(t *testing.T, substrs ...string) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		text, ch := s.buf.String(), s.changed
		s.mu.Unlock()
		missing := ""
		for _, sub := range substrs {
			if !strings.Contains(text, sub) {
				missing = sub
				break
			}
		}
		if missing == "" {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("log never showed %q; log:\n%s", missing, text)
		}
	}
}

// waitNode waits, without sleeping, until cond holds for n: it re-checks
// on every change to n's table or links.
func waitNode(t testing.TB, n *Node, what string, cond func(*Node) bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		ch := n.Changed()
		if cond(n) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: never saw %s; records %v, links %v", n.Name(), what, n.Records(), n.Links())
		}
	}
}

func hasLine(client, line string) func(*Node) bool {
	return func(n *Node) bool {
		r, ok := n.Lookup(client)
		return ok && r.Line == line
	}
}

// placesFake answers every Nearby Search with a fixture from testdata, as
// a Google provider would pass it through.
func placesFake(t *testing.T, fixture string) PlacesClient {
	t.Helper()
	body, err := os.ReadFile("testdata/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	return PlacesFunc(func(context.Context, NearbyQuery) ([]byte, error) { return body, nil })
}

// testConn is a client connection for tests.
type testConn struct {
	t *testing.T
	c *net.TCPConn
	r *bufio.Reader
}

func dialNode(t *testing.T, n *Node) *testConn {
	t.Helper()
	c, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testConn{t: t, c: c.(*net.TCPConn), r: bufio.NewReader(c)}
}

func (tc *testConn) send(s string) {
	tc.t.Helper()
	if _, err := io.WriteString(tc.c, s); err != nil {
		tc.t.Fatal(err)
	}
}

// line reads one reply line, newline included.
func (tc *testConn) line() string {
	tc.t.Helper()
	s, err := tc.r.ReadString('\n')
	if err != nil {
		tc.t.Fatalf("read reply: %v (got %q)", err, s)
	}
	return s
}

// whatsat reads a WHATSAT reply: everything up to and including "\n\n".
func (tc *testConn) whatsat() string {
	tc.t.Helper()
	var b strings.Builder
	for !strings.HasSuffix(b.String(), "\n\n") {
		b.WriteString(tc.line())
	}
	return b.String()
}

// rest half-closes the connection and reads everything until EOF.
func (tc *testConn) rest() string {
	tc.t.Helper()
	tc.c.CloseWrite()
	b, err := io.ReadAll(tc.r)
	if err != nil {
		tc.t.Fatal(err)
	}
	return string(b)
}

// startNode starts a node with cfg and closes it at the end of the test.
func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}
