package herd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// pipeNet is a Transport over net.Pipe, for nodes inside a synctest
// bubble (where loopback TCP would not count as blocked).
type pipeNet struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeNet() *pipeNet {
	return &pipeNet{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (p *pipeNet) Listen(context.Context, string) (net.Listener, error) { return p, nil }
func (p *pipeNet) Dial(context.Context, string) (net.Conn, error) {
	return nil, errors.New("pipeNet dials no one")
}
func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.closed:
		return nil, net.ErrClosed
	}
}
func (p *pipeNet) Close() error   { p.once.Do(func() { close(p.closed) }); return nil }
func (p *pipeNet) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

// pipeClient is a client connection over a pipeNet: its reply lines
// arrive on lines.
type pipeClient struct {
	c     net.Conn
	lines chan string
}

func (p *pipeNet) dial(t *testing.T) *pipeClient {
	a, b := net.Pipe()
	p.conns <- b
	pc := &pipeClient{c: a, lines: make(chan string, 1000)}
	go func() {
		defer close(pc.lines)
		br := bufio.NewReader(a)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			pc.lines <- line
		}
	}()
	t.Cleanup(func() { a.Close() })
	return pc
}

// send writes s in a goroutine (a pipe write blocks until it is read).
func (pc *pipeClient) send(s string) { go io.WriteString(pc.c, s) }

// received returns the lines that have arrived so far.
func (pc *pipeClient) received() []string {
	var out []string
	for {
		select {
		case l, ok := <-pc.lines:
			if !ok {
				return out
			}
			out = append(out, l)
		default:
			return out
		}
	}
}

// heldSync is a sync hook that can hold fsyncs until released.
type heldSync struct {
	mu   sync.Mutex
	gate chan struct{} // non-nil while holding
	held int           // fsyncs that waited at the gate
	fail atomic.Bool   // fail fsyncs instead
	// entered, if set, gets a value (if it has room) when an fsync
	// starts waiting at the gate.
	entered chan struct{}
}

func (h *heldSync) sync(f *os.File) error {
	h.mu.Lock()
	gate := h.gate
	if gate != nil {
		h.held++
	}
	h.mu.Unlock()
	if gate != nil {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		<-gate
	}
	if h.fail.Load() {
		return errors.New("injected fsync failure")
	}
	return f.Sync()
}

func (h *heldSync) hold() {
	h.mu.Lock()
	h.gate = make(chan struct{})
	h.mu.Unlock()
}

func (h *heldSync) release() {
	h.mu.Lock()
	close(h.gate)
	h.gate = nil
	h.mu.Unlock()
}

func (h *heldSync) heldCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// newLogNode returns a started node with cfg and hooks; the caller closes
// it.
func newLogNode(t *testing.T, cfg Config, hooks walHooks) *Node {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.walHooks = hooks
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return n
}

// reportLine and reportAT are client i's IAMAT and the AT line Goloman
// answers it with under kiwiClock.
func reportLine(i int) string {
	return fmt.Sprintf("IAMAT c%d +34.068930-118.445127 1520023934.%09d", i, i)
}

func reportAT(i int) string {
	skew := 1520023935182837383 - 1520023934000000000 - int64(i) // ns, from kiwiClock
	return fmt.Sprintf("AT Goloman +%d.%09d c%d +34.068930-118.445127 1520023934.%09d", skew/1e9, skew%1e9, i, i)
}

// TestAckDurableWaitsForFsync: in durable mode no reply is written before
// the fsync that makes its record durable; each lane fsyncs on its own,
// and replies waiting while every lane is busy share one fsync (group
// commit).
func TestAckDurableWaitsForFsync(t *testing.T) {
	for _, lanes := range []int{walLanes, 3} {
		t.Run(fmt.Sprintf("lanes=%d", lanes), func(t *testing.T) { testAckDurableWaitsForFsync(t, lanes) })
	}
}

func testAckDurableWaitsForFsync(t *testing.T, lanes int) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNet()
		hs := &heldSync{}
		n := newLogNode(t, Config{Name: "Goloman", Transport: pn, Clock: kiwiClock(), Ack: AckDurable,
			StateFile: filepath.Join(t.TempDir(), "Goloman.state")}, walHooks{sync: hs.sync, lanes: lanes})
		defer n.Close()
		hs.hold()
		// One report at a time: each takes a lane, whose fsync is held.
		var busy []*pipeClient
		for i := range lanes {
			c := pn.dial(t)
			c.send(reportLine(i) + "\n")
			synctest.Wait()
			if _, ok := n.Lookup(fmt.Sprintf("c%d", i)); !ok || hs.heldCount() != i+1 {
				t.Fatalf("report %d: stored %v, fsyncs held %d: want one more fsync under way", i, ok, hs.heldCount())
			}
			busy = append(busy, c)
		}
		// More reports while every lane is busy: stored, not answered,
		// and no fsync started for them.
		var waiting []*pipeClient
		for i := lanes; i < lanes+5; i++ {
			c := pn.dial(t)
			c.send(reportLine(i) + "\n")
			waiting = append(waiting, c)
		}
		synctest.Wait()
		for i, c := range append(busy, waiting...) {
			if _, ok := n.Lookup(fmt.Sprintf("c%d", i)); !ok {
				t.Fatalf("report %d not stored", i)
			}
			if got := c.received(); len(got) != 0 {
				t.Fatalf("client %d got %q before its fsync", i, got)
			}
		}
		if hs.heldCount() != lanes {
			t.Fatalf("%d fsyncs started, want %d (one per lane)", hs.heldCount(), lanes)
		}
		hs.release()
		synctest.Wait()
		for i, c := range append(busy, waiting...) {
			if got, want := c.received(), []string{reportAT(i) + "\n"}; !slices.Equal(got, want) {
				t.Errorf("client %d got %q, want %q", i, got, want)
			}
		}
		// One fsync per lane, then one for the five that waited.
		if s := n.Stats(); s.LogSyncs != uint64(lanes+1) || s.StateErrors != 0 {
			t.Errorf("%d fsyncs for %d reports, want %d; stats %+v", s.LogSyncs, lanes+5, lanes+1, s)
		}

		// A pipelining client gets many replies per fsync.
		p := pn.dial(t)
		var burst strings.Builder
		const pipelined = 64
		for i := range pipelined {
			burst.WriteString(reportLine(100+i) + "\n")
		}
		syncs := n.Stats().LogSyncs
		p.send(burst.String())
		synctest.Wait()
		got := p.received()
		for i := range pipelined {
			if i >= len(got) || got[i] != reportAT(100+i)+"\n" {
				t.Fatalf("pipelined reply %d: got %q", i, got[min(i, len(got)):])
			}
		}
		if d := n.Stats().LogSyncs - syncs; d > pipelined/8 {
			t.Errorf("%d fsyncs for %d pipelined reports", d, pipelined)
		} else {
			t.Logf("%d pipelined reports took %d fsyncs", pipelined, d)
		}
	})
}

// TestAckDurablePipelines: a durable session reads and handles the next
// lines while its earlier replies wait for their fsync; the replies still
// go out in command order, none before the fsync it needs and none that
// needs no fsync ("? " lines, WHATSAT) ahead of an earlier one; and a
// session with ackQueue batches waiting beyond the one being written stops
// reading until they go out.
func TestAckDurablePipelines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNet()
		hs := &heldSync{}
		n := newLogNode(t, Config{Name: "Goloman", Transport: pn, Clock: kiwiClock(), Ack: AckDurable,
			StateFile: filepath.Join(t.TempDir(), "Goloman.state")}, walHooks{sync: hs.sync})
		defer n.Close()
		c := pn.dial(t)
		c.send(reportLine(0) + "\n")
		synctest.Wait()
		if got := strings.Join(c.received(), ""); got != reportAT(0)+"\n" {
			t.Fatalf("got %q", got)
		}
		hs.hold()
		c.send(reportLine(1) + "\n")
		synctest.Wait()
		if hs.heldCount() != 1 {
			t.Fatalf("%d fsyncs held, want 1", hs.heldCount())
		}
		// The next batch is read and handled while the first waits.
		c.send("WHATSAT c0 10 0\nbad\n" + reportLine(2) + "\n")
		synctest.Wait()
		if _, ok := n.Lookup("c2"); !ok {
			t.Fatal("second batch not handled while the first waits for its fsync")
		}
		want := reportAT(1) + "\n" + reportAT(0) + "\n" + string(emptyJSON) + "\n\n? bad\n" + reportAT(2) + "\n"
		// Batches 3.. fill the queue; the last one handled waits to be
		// queued, and the one after it is not read.
		last := 2 + ackQueue
		for i := 3; i <= last; i++ {
			c.send(reportLine(i) + "\n")
			synctest.Wait()
			if _, ok := n.Lookup(fmt.Sprintf("c%d", i)); !ok {
				t.Fatalf("batch %d not handled with %d waiting", i, i-2)
			}
			want += reportAT(i) + "\n"
		}
		c.send(reportLine(last+1) + "\n")
		synctest.Wait()
		if _, ok := n.Lookup(fmt.Sprintf("c%d", last+1)); ok {
			t.Fatalf("batch %d read with %d batches waiting: no backpressure", last+1, ackQueue+1)
		}
		want += reportAT(last+1) + "\n"
		if got := c.received(); len(got) != 0 {
			t.Fatalf("got %q before the fsync", got)
		}
		hs.release()
		synctest.Wait()
		if got := strings.Join(c.received(), ""); got != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	})
}

// TestAckDurableEndWaitsForWriter: a durable session that ends (close
// after reply, the client's EOF, the node's Close) first writes every reply
// its writer still waits to write.
func TestAckDurableEndWaitsForWriter(t *testing.T) {
	t.Run("CloseAfterReply", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			pn := newPipeNet()
			hs := &heldSync{}
			n := newLogNode(t, Config{Name: "Goloman", Transport: pn, Clock: kiwiClock(), Ack: AckDurable, CloseAfterReply: true,
				StateFile: filepath.Join(t.TempDir(), "Goloman.state")}, walHooks{sync: hs.sync})
			defer n.Close()
			hs.hold()
			c := pn.dial(t)
			c.send(reportLine(1) + "\n")
			synctest.Wait()
			if got := c.received(); len(got) != 0 {
				t.Fatalf("got %q before the fsync", got)
			}
			hs.release()
			synctest.Wait()
			if got := c.received(); !slices.Equal(got, []string{reportAT(1) + "\n"}) {
				t.Fatalf("got %q", got)
			}
			if _, open := <-c.lines; open {
				t.Fatal("connection still open")
			}
		})
	})
	for _, end := range []string{"EOF", "Close"} {
		t.Run(end, func(t *testing.T) {
			hs := &heldSync{entered: make(chan struct{}, 1)}
			n := newLogNode(t, Config{Name: "Goloman", Clock: kiwiClock(), Ack: AckDurable,
				StateFile: filepath.Join(t.TempDir(), "Goloman.state")}, walHooks{sync: hs.sync})
			defer n.Close()
			hs.hold()
			c := dialNode(t, n)
			c.send(reportLine(1) + "\n" + reportLine(2) + "\n")
			<-hs.entered
			closed := make(chan struct{})
			if end == "EOF" {
				c.c.CloseWrite()
			} else {
				go func() { n.Close(); close(closed) }()
			}
			hs.release()
			if got, want := c.rest(), reportAT(1)+"\n"+reportAT(2)+"\n"; got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
			if end == "Close" {
				<-closed
			}
		})
	}
}

// TestAckTableDoesNotWait: in the default mode replies go out while an
// fsync is held, and the log is fsynced once per StateInterval while it
// changes.
func TestAckTableDoesNotWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNet()
		hs := &heldSync{}
		n := newLogNode(t, Config{Name: "Goloman", Transport: pn, Clock: kiwiClock(), StateInterval: time.Second,
			StateFile: filepath.Join(t.TempDir(), "Goloman.state")}, walHooks{sync: hs.sync})
		defer n.Close()
		c := pn.dial(t)
		c.send(reportLine(1) + "\n")
		synctest.Wait()
		if got := c.received(); !slices.Equal(got, []string{reportAT(1) + "\n"}) {
			t.Fatalf("got %q", got)
		}
		if s := n.Stats().LogSyncs; s != 0 {
			t.Fatalf("%d fsyncs before StateInterval", s)
		}
		time.Sleep(time.Second) // the bubble's clock
		synctest.Wait()
		if s := n.Stats().LogSyncs; s != 1 {
			t.Fatalf("%d fsyncs after StateInterval, want 1", s)
		}
		// Held fsyncs do not hold replies.
		hs.hold()
		c.send(reportLine(2) + "\n")
		time.Sleep(time.Second)
		synctest.Wait()
		if got := c.received(); !slices.Equal(got, []string{reportAT(2) + "\n"}) || hs.heldCount() != 1 {
			t.Fatalf("got %q with %d fsyncs held", got, hs.heldCount())
		}
		hs.release()
		// Nothing changes: no more fsyncs.
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if s := n.Stats().LogSyncs; s != 2 {
			t.Fatalf("%d fsyncs, want 2", s)
		}
	})
}

// TestAckDurableLogFailure: when an fsync fails, the waiting replies are
// never written (the connection closes), the failure is reported, and
// Close still saves the table as a snapshot.
func TestAckDurableLogFailure(t *testing.T) {
	logs := newLogSink()
	path := filepath.Join(t.TempDir(), "Goloman.state")
	hs := &heldSync{}
	cfg := Config{Name: "Goloman", Clock: kiwiClock(), Ack: AckDurable, StateFile: path, Logger: logs.logger()}
	n := newLogNode(t, cfg, walHooks{sync: hs.sync})
	c := dialNode(t, n)
	c.send(reportLine(1) + "\n")
	if got := c.line(); got != reportAT(1)+"\n" {
		t.Fatalf("got %q", got)
	}
	hs.fail.Store(true)
	c.send(reportLine(2) + "\nWHATSAT c1 10 0\n")
	if got := c.rest(); got != "" {
		t.Fatalf("got %q after the log failed", got)
	}
	logs.waitFor(t, `msg="state log failed"`, "injected fsync failure")
	if s := n.Stats(); s.StateErrors != 1 {
		t.Errorf("stats %+v", s)
	}
	// A new connection's report fails the same way.
	c2 := dialNode(t, n)
	c2.send(reportLine(3) + "\n")
	if got := c2.rest(); got != "" {
		t.Fatalf("got %q after the log failed", got)
	}
	n.Close()
	n2 := startNode(t, cfg)
	if got := len(n2.Records()); got != 3 {
		t.Errorf("restarted with %d records, want the 3 the table held at Close", got)
	}
}

// copyDir copies every regular file of src into a new directory: what a
// crash at this moment would leave on disk (a crash of the process; the
// kernel keeps what was written). It may run outside the test goroutine.
func copyDir(src string) (string, error) {
	dst, err := os.MkdirTemp(filepath.Dir(src), "crash")
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			return "", err
		}
	}
	return dst, nil
}

// TestCompactionCrashSafe compacts after every write while clients
// report, and copies the state directory at every step of every
// compaction, as a crash there would leave it: a node started from each
// copy holds every report acknowledged before the copy.
func TestCompactionCrashSafe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := 0 // reports 0..acked-1 are answered
	type crash struct {
		step  string
		dir   string
		acked int
		err   error
	}
	var crashes []crash
	hooks := walHooks{compactMin: 1, step: func(step string) {
		mu.Lock()
		a := acked
		mu.Unlock()
		d, err := copyDir(dir)
		crashes = append(crashes, crash{step, d, a, err}) // steps run one at a time
	}}
	cfg := Config{Name: "Goloman", Clock: kiwiClock(), Ack: AckDurable, StateFile: filepath.Join(dir, "Goloman.state")}
	n := newLogNode(t, cfg, hooks)
	c := dialNode(t, n)
	const reports = 30
	for i := range reports {
		c.send(reportLine(i) + "\n")
		if got := c.line(); got != reportAT(i)+"\n" {
			t.Fatalf("report %d: got %q", i, got)
		}
		mu.Lock()
		acked = i + 1
		mu.Unlock()
	}
	n.Close()
	steps := map[string]int{}
	for _, cr := range crashes {
		if cr.err != nil {
			t.Fatalf("copy at %q: %v", cr.step, cr.err)
		}
		steps[cr.step]++
	}
	for _, s := range []string{"rotated", "snapshot synced", "snapshot renamed", "segments removed"} {
		if steps[s] == 0 {
			t.Fatalf("no compaction reached %q (steps %v)", s, steps)
		}
	}
	t.Logf("%d crash points: %v", len(crashes), steps)
	for _, cr := range crashes {
		cfg.StateFile = filepath.Join(cr.dir, "Goloman.state")
		m := newLogNode(t, cfg, walHooks{})
		for i := range cr.acked {
			if r, ok := m.Lookup(fmt.Sprintf("c%d", i)); !ok || r.Line != reportAT(i) {
				t.Fatalf("crash at %q with %d reports acknowledged: report %d is %q, %v", cr.step, cr.acked, i, r.Line, ok)
			}
		}
		if s := m.Stats(); s.StateErrors != 0 {
			t.Errorf("crash at %q: %+v", cr.step, s)
		}
		m.Close()
	}
	// After Close the whole log is in the snapshot.
	names := dirNames(t, dir)
	if !slices.Equal(names, []string{"Goloman.state"}) {
		t.Errorf("after Close the state directory holds %v", names)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// segmentBytes builds a log segment holding lines.
func segmentBytes(lines ...string) []byte {
	b := []byte(walMagic)
	for _, l := range lines {
		b = appendFrame(b, l)
	}
	return b
}

// TestLogTailCut: a segment whose tail is torn or corrupt is cut at its
// last good record, and the cut is logged and counted; the records before
// it are kept, and the next start finds the segment clean.
func TestLogTailCut(t *testing.T) {
	recs := []string{
		"AT Goloman +0.100000000 a +1.0+1.0 10",
		"AT Goloman +0.100000000 b +34.068930-118.445127 10",
		"AT Goloman +0.100000000 c +1.0+1.0 10",
	}
	good := segmentBytes(recs...)
	second := len(segmentBytes(recs[0]))
	third := len(segmentBytes(recs[:2]...))
	for _, tc := range []struct {
		name string
		data []byte
		kept int
		why  string
		size int // the segment's size afterwards; -1: removed
	}{
		{"torn record", good[:len(good)-5], 2, "torn record", third},
		{"torn frame", append(slices.Clone(good), 7, 0, 0), 3, "torn record", len(good)},
		{"zeros", append(slices.Clone(good), make([]byte, 16)...), 3, "empty record", len(good)},
		// One digit of b's latitude: still a valid AT line, so only the
		// CRC can tell; the records after it are cut too.
		{"coordinate digit", []byte(strings.Replace(string(good), "+34.068930", "+34.068931", 1)), 1, "checksum mismatch", second},
		{"length too long", func() []byte {
			b := slices.Clone(good)
			binary.LittleEndian.PutUint32(b[third:], 1<<30)
			return b
		}(), 2, "torn record", third},
		{"not an AT line", segmentBytes(recs[0], "AT Goloman x"), 1, "record is not an AT line", second},
		{"torn header", []byte(walMagic[:4]), 0, "torn segment header", -1},
		{"bad header", append([]byte("herd-wal 9\n"), good[len(walMagic):]...), 0, "bad segment header", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "Goloman.state")
			seg := state + ".wal.0000000000000001"
			if err := os.WriteFile(seg, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			logs := newLogSink()
			cfg := Config{Name: "Goloman", StateFile: state, Logger: logs.logger()}
			n := newLogNode(t, cfg, walHooks{})
			var got []string
			for _, r := range n.Records() {
				got = append(got, r.Line)
			}
			if !slices.Equal(recs[:tc.kept], got) {
				t.Errorf("records %q, want %q", got, recs[:tc.kept])
			}
			if s := n.Stats(); s.LogCuts != 1 {
				t.Errorf("LogCuts %d, want 1", s.LogCuts)
			}
			logs.waitFor(t, `msg="state log cut"`, fmt.Sprintf("why=%q", tc.why))
			info, err := os.Stat(seg)
			switch {
			case tc.size < 0 && !errors.Is(err, os.ErrNotExist):
				t.Errorf("segment still there: %v", err)
			case tc.size >= 0 && (err != nil || info.Size() != int64(tc.size)):
				t.Errorf("segment cut to %v (%v), want %d bytes", info.Size(), err, tc.size)
			}
			if tc.why == "bad segment header" {
				if _, err := os.Stat(seg + ".corrupt"); err != nil {
					t.Errorf("bad segment not set aside: %v", err)
				}
			}
			// Crash again at once: the next start finds nothing to cut.
			before, err := copyDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			n.Close()
			cfg.StateFile = filepath.Join(before, "Goloman.state")
			m := newLogNode(t, cfg, walHooks{})
			defer m.Close()
			if s := m.Stats(); s.LogCuts != 0 || len(m.Records()) != tc.kept {
				t.Errorf("second start: %d records, stats %+v", len(m.Records()), s)
			}
		})
	}
}

// TestLogStartFiles: at start, temporary snapshot files left by a crash
// are removed, segments a snapshot covers are removed unread, and the
// others are replayed on top of the snapshot.
func TestLogStartFiles(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "Goloman.state")
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	snap := []Record{mustParseAT(t, "AT Goloman +0.100000000 a +1.0+1.0 10"), mustParseAT(t, "AT Goloman +0.100000000 b +1.0+1.0 10")}
	write("Goloman.state", encodeState(snap, 3))
	write("Goloman.state.tmp123456", []byte("half a snapsh"))
	write("Goloman.state.tmp", nil)
	write("Goloman.state.wal.0000000000000002", segmentBytes("AT Goloman +0.100000000 x +1.0+1.0 10")) // covered: not replayed
	write("Goloman.state.wal.0000000000000003", segmentBytes("AT Goloman +0.100000000 a +1.0+1.0 11"))
	write("Goloman.state.wal.0000000000000004", segmentBytes("AT Goloman +0.100000000 c +1.0+1.0 10"))
	write("Other.state.tmp1", nil) // another server's
	logs := newLogSink()
	n := newLogNode(t, Config{Name: "Goloman", StateFile: state, Logger: logs.logger()}, walHooks{})
	var got []string
	for _, r := range n.Records() {
		got = append(got, r.Line)
	}
	want := []string{"AT Goloman +0.100000000 a +1.0+1.0 11", "AT Goloman +0.100000000 b +1.0+1.0 10", "AT Goloman +0.100000000 c +1.0+1.0 10"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("records (-want +got):\n%s", d)
	}
	logs.waitFor(t, `msg="stale temporary file removed"`, "Goloman.state.tmp123456", `msg="state loaded"`, "records=2 log_records=2 clients=3")
	wantFiles := []string{"Goloman.state", "Goloman.state.wal.0000000000000003", "Goloman.state.wal.0000000000000004",
		"Goloman.state.wal.0000000000000005", "Other.state.tmp1"}
	if d := cmp.Diff(wantFiles, dirNames(t, dir)); d != "" {
		t.Errorf("files at start (-want +got):\n%s", d)
	}
	n.Close()
	if d := cmp.Diff([]string{"Goloman.state", "Other.state.tmp1"}, dirNames(t, dir)); d != "" {
		t.Errorf("files after Close (-want +got):\n%s", d)
	}
	data, _ := os.ReadFile(state)
	recs, seq, err := decodeState(data)
	if err != nil || len(recs) != 3 || seq != 6 {
		t.Errorf("snapshot after Close: %d records, covers below %d, %v", len(recs), seq, err)
	}
}

// TestStateFileVersion1 loads a state file written before the log, and
// Close rewrites it in the current format.
func TestStateFileVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Goloman.state")
	body := kiwiAT + "\n"
	sum := sha256.Sum256([]byte(body))
	if err := os.WriteFile(path, []byte("herd-state 1 1 "+hex.EncodeToString(sum[:])+"\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	n := newLogNode(t, Config{Name: "Goloman", StateFile: path, Clock: kiwiClock()}, walHooks{})
	if r, ok := n.Lookup("kiwi.cs.ucla.edu"); !ok || r.Line != kiwiAT {
		t.Fatalf("version 1 file not loaded: %v %v", r, ok)
	}
	c := dialNode(t, n)
	c.send(reportLine(1) + "\n")
	c.line()
	n.Close()
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "herd-state 2 00000000000000000002 ") {
		t.Errorf("after Close: %q", data)
	}
}

// TestLogReplacesSnapshots: a node with a state file writes no snapshot
// while its log is below the compaction size, yet a copy of its files
// (what a crash would leave) holds every report it answered.
func TestLogReplacesSnapshots(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Name: "Goloman", Clock: kiwiClock(), Ack: AckDurable, StateFile: filepath.Join(dir, "Goloman.state")}
	n := newLogNode(t, cfg, walHooks{})
	defer n.Close()
	c := dialNode(t, n)
	var burst strings.Builder
	for i := range 100 {
		burst.WriteString(reportLine(i) + "\n")
	}
	c.send(burst.String())
	for i := range 100 {
		if got := c.line(); got != reportAT(i)+"\n" {
			t.Fatalf("reply %d: %q", i, got)
		}
	}
	crashed, err := copyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for i := range walLanes {
		segs = append(segs, fmt.Sprintf("Goloman.state.wal.%016x", i+1))
	}
	if names := dirNames(t, crashed); !slices.Equal(names, segs) {
		t.Errorf("state files %v, want %v: a log segment per lane and no snapshot", names, segs)
	}
	cfg.StateFile = filepath.Join(crashed, "Goloman.state")
	m := newLogNode(t, cfg, walHooks{})
	defer m.Close()
	if d := cmp.Diff(n.Records(), m.Records()); d != "" {
		t.Errorf("after the crash (-before +after):\n%s", d)
	}
	if s := n.Stats(); s.StateSaves != 0 || s.StateErrors != 0 || s.LogSyncs == 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestAckConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "A", Addr: ":1", Ack: AckDurable}, "Ack: AckDurable needs a StateFile"},
		{Config{Name: "A", Addr: ":1", Ack: 7, StateFile: "x"}, "Ack: Ack(7) is not AckTable or AckDurable"},
	} {
		_, err := New(tc.cfg)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	for _, a := range []Ack{AckTable, AckDurable} {
		text, err := a.MarshalText()
		var back Ack
		if err != nil || back.UnmarshalText(text) != nil || back != a {
			t.Errorf("%v: %q %v -> %v", a, text, err, back)
		}
	}
	if a, err := ParseAck("Durable"); a != AckDurable || err != nil {
		t.Errorf("ParseAck(Durable) = %v, %v", a, err)
	}
	if _, err := ParseAck("fsync"); err == nil || !strings.Contains(err.Error(), `"fsync" is not an ack mode`) {
		t.Errorf("ParseAck(fsync): %v", err)
	}
}

// TestSnapshotBodyHoldsEveryRecord checks the body a compaction writes:
// every record's line once, in the index's order, which decodes to the
// node's records.
func TestSnapshotBodyHoldsEveryRecord(t *testing.T) {
	n := startNode(t, Config{Name: "Goloman", Clock: kiwiClock()})
	c := dialNode(t, n)
	var burst strings.Builder
	for i := range 3000 {
		burst.WriteString(reportLine(i) + "\n")
	}
	c.send(burst.String())
	for range 3000 {
		c.line()
	}
	var body bytes.Buffer
	count, sum, err := n.writeSnapshotBody(&body)
	if err != nil || count != 3000 || strings.Count(body.String(), "\n") != 3000 {
		t.Fatalf("writeSnapshotBody: %d records, %d lines, %v; want 3000", count, strings.Count(body.String(), "\n"), err)
	}
	if sum != sha256.Sum256(body.Bytes()) {
		t.Fatal("writeSnapshotBody: the checksum is not the body's")
	}
	recs, seq, err := decodeState(append(stateHeader(sum, count, 9), body.Bytes()...))
	if err != nil || seq != 9 {
		t.Fatalf("decodeState: seq %d, %v", seq, err)
	}
	sortRecords(recs)
	if d := cmp.Diff(n.Records(), recs); d != "" {
		t.Fatalf("snapshot against Records (-want +got):\n%s", d)
	}
}
