package herd

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// loggedLine is one line a node logged.
type loggedLine struct {
	via             string // "HandleLines" or "Handle"
	time            time.Time
	dir, conn, line string
}

// lineRecorder records the lines a node logs through Handle; it drops
// every other record.
type lineRecorder struct {
	mu     sync.Mutex
	lines  []loggedLine
	done   chan struct{} // closed once want lines have come
	want   int
	notify chan struct{} // if set, signalled at each line
}

func (h *lineRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *lineRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lineRecorder) WithGroup(string) slog.Handler            { return h }

func (h *lineRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Level != LevelLines {
		return nil
	}
	l := loggedLine{via: "Handle", time: r.Time, dir: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "conn":
			l.conn = a.Value.String()
		case "line":
			l.line = a.Value.String()
		}
		return true
	})
	h.add(l)
	return nil
}

func (h *lineRecorder) add(l loggedLine) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, l)
	if len(h.lines) == h.want && h.done != nil {
		close(h.done)
	}
	select {
	case h.notify <- struct{}{}:
	default:
	}
}

// lineHandler is a lineRecorder that is a LineHandler.
type lineHandler struct{ *lineRecorder }

func (h lineHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lineHandler) WithGroup(string) slog.Handler      { return h }

func (h lineHandler) HandleLines(t time.Time, dir, conn string, lines [][]byte) {
	for _, line := range lines {
		h.add(loggedLine{via: "HandleLines", time: t, dir: dir, conn: conn, line: string(line)})
	}
}

// TestLogLines checks the record of each line a client session reads and
// writes: exact line, no newline, its conn, the receive time of its read,
// given to HandleLines when the handler has it and as a record otherwise.
func TestLogLines(t *testing.T) {
	for _, asLines := range []bool{false, true} {
		rec := &lineRecorder{done: make(chan struct{}), want: 4}
		var h slog.Handler = rec
		via := "Handle"
		if asLines {
			h, via = lineHandler{rec}, "HandleLines"
		}
		n := startNode(t, Config{Name: "Goloman", Clock: kiwiClock(), Logger: slog.New(h)})
		c := dialNode(t, n)
		c.send("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997\nWHATSAT nobody 10 5\n")
		at := strings.TrimSuffix(c.line(), "\n")
		c.line()
		<-rec.done
		recv := kiwiClock().Now()
		want := []loggedLine{
			{via, recv, "in", "c1", "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"},
			{via, recv, "out", "c1", at},
			{via, recv, "in", "c1", "WHATSAT nobody 10 5"},
			{via, recv, "out", "c1", "? WHATSAT nobody 10 5"},
		}
		rec.mu.Lock()
		got := slices.Clone(rec.lines)
		rec.mu.Unlock()
		if !slices.EqualFunc(got, want, func(a, b loggedLine) bool {
			return a.time.Equal(b.time) && a.via == b.via && a.dir == b.dir && a.conn == b.conn && a.line == b.line
		}) {
			t.Errorf("%s: lines\n%+v\nwant\n%+v", via, got, want)
		}
	}
}

// TestLogLinesOfLinks checks the lines a link writer and a link reader
// log through a LineHandler: a record B holds before the link comes up is
// "out" in B's link-up push and "in" at A; a record flooded from A is
// "out" on A's link to B and "in" on B's.
func TestLogLinesOfLinks(t *testing.T) {
	recA := &lineRecorder{notify: make(chan struct{}, 1)}
	recB := &lineRecorder{notify: make(chan struct{}, 1)}
	b := startNode(t, Config{Name: "B", Peers: []Peer{{Name: "A"}}, Clock: kiwiClock(), Logger: slog.New(lineHandler{recB})})
	cb := dialNode(t, b)
	cb.send("IAMAT lemon -33.868800+151.209300 1520023934.5\n")
	pushed := strings.TrimSuffix(cb.line(), "\n")
	a := startNode(t, Config{Name: "A", Peers: []Peer{{Name: "B", Addr: b.Addr().String()}}, Clock: kiwiClock(), Logger: slog.New(lineHandler{recA})})
	recB.waitFor(t, loggedLine{via: "HandleLines", dir: "out", conn: "c2", line: pushed})
	recA.waitFor(t, loggedLine{via: "HandleLines", dir: "in", conn: "B#1", line: pushed})

	c := dialNode(t, a)
	c.send("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997\n")
	at := strings.TrimSuffix(c.line(), "\n")
	recA.waitFor(t, loggedLine{via: "HandleLines", dir: "out", conn: "B#1", line: at})
	recB.waitFor(t, loggedLine{via: "HandleLines", dir: "in", conn: "c2", line: at})
}

// waitFor waits until want (time aside) has been logged.
func (h *lineRecorder) waitFor(t *testing.T, want loggedLine) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		h.mu.Lock()
		found := slices.ContainsFunc(h.lines, func(l loggedLine) bool {
			l.time = time.Time{}
			return l == want
		})
		lines := slices.Clone(h.lines)
		h.mu.Unlock()
		if found {
			return
		}
		select {
		case <-h.notify:
		case <-timeout:
			t.Fatalf("%+v never logged; lines:\n%+v", want, lines)
		}
	}
}
