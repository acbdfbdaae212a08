package herdtest

// Hostile neighbours and clients (issue 6): a peer that stops reading, a
// client that never reads, handshakes with the wrong secret or replayed,
// record injection without a handshake, and links that break in the
// middle of a record line. Every scenario checks exact replies while the
// fault lasts, bounded buffering (the simulation's flow-control counters),
// convergence at the end and, through synctest, that no goroutine
// survives Close.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/proxyherd/herd"
)

// hostileSeeds returns the seeds of a hostile scenario: HERD_SIM_SEED
// alone if set, else 1..HERD_SIM_SEEDS, else 1..def (fewer with -short).
func hostileSeeds(t *testing.T, def int) []uint64 {
	if os.Getenv("HERD_SIM_SEED") == "" && os.Getenv("HERD_SIM_SEEDS") == "" {
		if testing.Short() {
			def = min(def, 2)
		}
		seeds := make([]uint64, def)
		for i := range seeds {
			seeds[i] = uint64(i + 1)
		}
		return seeds
	}
	return simSeeds(t)
}

// forSeeds runs f in a fresh bubble for each seed, as subtest seed=N, and
// prints the replay command of a seed that fails.
func forSeeds(t *testing.T, def int, f func(t *testing.T, seed uint64)) {
	name := t.Name()
	for _, seed := range hostileSeeds(t, def) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					msg := fmt.Sprintf("replay: HERD_SIM_SEED=%d go test ./herdtest -run '^%s$' -v", seed, name)
					t.Log(msg)
					fmt.Println(msg)
				}
			}()
			synctest.Test(t, func(t *testing.T) { f(t, seed) })
		})
	}
}

// logEntry is one log record a node wrote.
type logEntry struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// logRecorder is a slog.Handler that keeps every record but the per-line
// "in" and "out" ones, for tests that check why a node did something.
type logRecorder struct {
	mu    *sync.Mutex
	recs  *[]logEntry
	attrs []slog.Attr
}

func newLogRecorder() *logRecorder {
	return &logRecorder{mu: new(sync.Mutex), recs: new([]logEntry)}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "in" || r.Message == "out" {
		return nil
	}
	e := logEntry{Level: r.Level, Msg: r.Message, Attrs: make(map[string]string)}
	for _, a := range h.attrs {
		e.Attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		e.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, e)
	h.mu.Unlock()
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{mu: h.mu, recs: h.recs, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// find returns the records of server with message msg.
func (h *logRecorder) find(server, msg string) []logEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logEntry
	for _, e := range *h.recs {
		if e.Msg == msg && e.Attrs["server"] == server {
			out = append(out, e)
		}
	}
	return out
}

// oracle knows every AT line a server wrote for the test's reports and
// the newest accepted report of every client. With watch installed as
// the simulation's OnEvent, it checks after every event that no node
// holds a record whose AT line no server wrote (a torn or injected line).
type oracle struct {
	t       *testing.T
	c       *Cluster
	legit   map[string]bool
	best    map[string]herd.Record
	pending []*sentReport
	bad     map[string]string // a line no server wrote -> where it was first seen
	// maxReply bounds how long a reply may take: two one-way latencies.
	maxReply time.Duration
	reports  int
	slowest  time.Duration
}

func newOracle(t *testing.T, c *Cluster, lat Latency) *oracle {
	if lat == (Latency{}) {
		lat = DefaultLatency
	}
	return &oracle{t: t, c: c, legit: make(map[string]bool), best: make(map[string]herd.Record),
		bad: make(map[string]string), maxReply: 2 * max(lat.Max, lat.Min)}
}

// sentReport is an IAMAT on its own connection, written but not yet
// answered.
type sentReport struct {
	server, client, loc, tm string
	cc                      *ClientConn
	a                       *Arrival
	sent                    time.Duration
}

// connect opens the connection of a report without writing it, so that
// many reports can be written in one step.
func (o *oracle) connect(server, client, loc, tm string) *sentReport {
	o.t.Helper()
	cc, err := o.c.Connect(client, server)
	if err != nil {
		o.t.Fatalf("connect to %s: %v", server, err)
	}
	p := &sentReport{server: server, client: client, loc: loc, tm: tm, cc: cc, a: cc.Watch(client)}
	o.pending = append(o.pending, p)
	return p
}

// write sends the report's line and half-closes.
func (o *oracle) write(p *sentReport) {
	o.t.Helper()
	p.sent = o.c.Sim().Elapsed()
	if err := p.cc.Write("IAMAT " + p.client + " " + p.loc + " " + p.tm + "\n"); err != nil {
		o.t.Fatalf("write to %s: %v", p.server, err)
	}
	p.cc.CloseWrite()
}

// finish reads the reply and checks it: exact (by ATLine and what the
// server held when the line arrived), and within maxReply of the write.
func (o *oracle) finish(p *sentReport) {
	o.t.Helper()
	reply, err := p.cc.ReadAll()
	p.cc.Close()
	took := o.c.Sim().Elapsed() - p.sent
	o.promote()
	if err != nil {
		o.t.Errorf("IAMAT %s at %s: %v (got %q)", p.client, p.server, err, reply)
		return
	}
	o.reports++
	o.slowest = max(o.slowest, took)
	want, accepted := p.a.IAMAT(p.server, p.client, p.loc, p.tm)
	if reply != want {
		o.t.Errorf("IAMAT %s %s %s at %s:\n got %q\nwant %q", p.client, p.loc, p.tm, p.server, reply, want)
		return
	}
	if took > o.maxReply {
		o.t.Errorf("IAMAT %s at %s: reply took %v, more than two one-way latencies (%v)", p.client, p.server, took, o.maxReply)
	}
	if accepted {
		rec, _ := RecordOf(strings.TrimSuffix(want, "\n"))
		if old, ok := o.best[p.client]; !ok || rec.Compare(&old) > 0 {
			o.best[p.client] = rec
		}
	}
}

// report sends one IAMAT on a new connection and checks the reply.
func (o *oracle) report(server, client, loc, tm string) {
	o.t.Helper()
	p := o.connect(server, client, loc, tm)
	o.write(p)
	o.finish(p)
}

// promote makes the AT lines of reports that reached their server legit.
func (o *oracle) promote() {
	keep := o.pending[:0]
	for _, p := range o.pending {
		if !p.a.Seen {
			keep = append(keep, p)
			continue
		}
		if line, ok := ATLine(p.server, p.a.At, p.client, p.loc, p.tm); ok {
			o.legit[line] = true
		}
	}
	clear(o.pending[len(keep):])
	o.pending = keep
}

// watch checks every running node's table (install with Sim.OnEvent).
func (o *oracle) watch() {
	o.promote()
	for _, name := range o.c.Live() {
		for _, r := range o.c.Node(name).Records() {
			if !o.legit[r.Line] {
				if _, seen := o.bad[r.Line]; !seen {
					o.bad[r.Line] = fmt.Sprintf("%s at %v", name, o.c.Sim().Elapsed())
				}
			}
		}
	}
}

// check fails the test unless every node among servers holds exactly the
// newest accepted report of every client.
func (o *oracle) check(servers ...string) {
	o.t.Helper()
	o.checkClients(func(string) bool { return true }, servers...)
}

// checkClients is check for the clients for which keep holds.
func (o *oracle) checkClients(keep func(client string) bool, servers ...string) {
	o.t.Helper()
	var want []string
	for _, r := range o.best {
		if keep(r.Client) {
			want = append(want, r.Line)
		}
	}
	slices.SortFunc(want, func(a, b string) int {
		ra, _ := RecordOf(a)
		rb, _ := RecordOf(b)
		return strings.Compare(ra.Client, rb.Client)
	})
	for _, n := range servers {
		var got []string
		for _, r := range o.c.Node(n).Records() {
			got = append(got, r.Line)
		}
		if !slices.Equal(got, want) {
			o.t.Errorf("%s's table differs from the accepted reports:\n got %q\nwant %q", n, got, want)
		}
	}
}

// verdict fails the test for every record a node held whose AT line no
// server wrote. One that is a strict prefix of a line a server wrote is a
// torn line: a record cut where its link ended (TestTornLineAtEOF).
func (o *oracle) verdict() {
	o.t.Helper()
	o.watch()
	var bad []string
	for line, where := range o.bad {
		kind := "a record no server wrote"
		for l := range o.legit {
			if strings.HasPrefix(l, line) {
				kind = "a torn record line (see TestTornLineAtEOF)"
				break
			}
		}
		bad = append(bad, fmt.Sprintf("%s: %q (%s)", kind, line, where))
	}
	slices.Sort(bad)
	for _, b := range bad {
		o.t.Errorf("a node held %s", b)
	}
}

// hostileTimes are the client times of the test clients' reports: each
// report is newer than the last, so it changes every table.
func hostileTime(i int) string {
	return strconv.FormatInt(DefaultEpoch.Unix()+int64(i), 10) + ".5"
}

// peerFlow returns the flow of the up link from server from to server to,
// if one is live: the newest connection between them.
func peerFlow(s *Sim, from, to string) (Flow, bool) {
	var best Flow
	found := false
	for _, f := range s.Flows() {
		if f.From == from && f.To == to {
			best, found = f, true
		}
	}
	return best, found
}

// stuckPeer: one server stops reading what a neighbour sends it. The
// neighbour's writer blocks once the window is full; then WriteTimeout
// cuts the link, whether records trickle or burst: what the link owes is
// bounded by the table (one entry per client), so no burst can make the
// server cut a link for falling behind. Clients of every
// server get exact, prompt replies meanwhile; once the server reads again
// the herd converges.
func stuckPeer(t *testing.T, seed uint64, burst bool) (traceSum string) {
	r := newRand(seed, fmt.Sprintf("stuck peer burst=%v", burst))
	const writeTimeout = 2 * time.Second
	window := 1024 + r.IntN(3072)
	logs := newLogRecorder()
	opts := Options{
		Seed: seed, Window: window, SplitWrites: r.IntN(2) == 0, MaxEvents: 500_000,
		Configure: func(cfg *herd.Config) {
			cfg.WriteTimeout = writeTimeout
			// The reader that stops reading would otherwise cut the link
			// itself, hearing nothing for PeerTimeout: this test is about
			// the writer's side.
			cfg.PeerTimeout = time.Hour
			cfg.RedialMin = 50 * time.Millisecond
			cfg.RedialMax = time.Second
			cfg.HandshakeTimeout = time.Second
			cfg.Logger = slog.New(logs)
		},
	}
	if r.IntN(2) == 0 {
		opts.Secret = []byte("stuck " + strconv.FormatUint(seed, 10))
	}
	c := NewCluster(t, opts)
	s := c.Sim()
	o := newOracle(t, c, opts.Latency)
	s.OnEvent(o.watch)
	if _, ok := c.Quiesce(time.Minute); !ok {
		t.Fatal("links did not come up")
	}
	names := c.Names()
	locs := scenarioPlaces
	n := 0
	for range 5 {
		o.report(names[r.IntN(len(names))], "c"+strconv.Itoa(r.IntN(3)), locs[r.IntN(len(locs))], hostileTime(n))
		n++
	}
	c.Settle()

	links := c.Topology().Links
	l := links[r.IntN(len(links))]
	reader, writer := l[0], l[1]
	if r.IntN(2) == 0 {
		reader, writer = writer, reader
	}
	w := c.Node(writer)
	before := w.Stats()
	t.Logf("seed %d: window %d, %s stops reading %s; burst %v, split writes %v, secret %v", seed, window, reader, writer, burst, opts.SplitWrites, opts.Secret != nil)

	// Watch the stuck direction: when the writer first blocks, when it is
	// cut, and the most it held.
	var blockedAt, cutAt time.Duration = -1, -1
	held := 0
	s.OnEvent(func() {
		o.watch()
		if f, ok := peerFlow(s, writer, reader); ok {
			held = max(held, f.Held)
			if f.Blocked > 0 && blockedAt < 0 {
				blockedAt = s.Elapsed()
			}
		}
		if st := w.Stats(); cutAt < 0 && (st.PeerSlow > before.PeerSlow || st.WriteTimeouts > before.WriteTimeouts) {
			cutAt = s.Elapsed()
		}
	})

	s.StopReading(reader, writer)
	stallStart := s.Elapsed()
	// A trickle of reports at every server until the writer blocks (and,
	// without a burst, until the link is cut). Each must be exact and
	// prompt: no client waits on the stuck neighbour.
	for i := 0; i < 400 && cutAt < 0 && !(burst && blockedAt >= 0); i++ {
		server := names[i%len(names)]
		if burst {
			server = writer // only the writer's own records, so the queue count is exact
		}
		o.report(server, "t"+strconv.Itoa(i%7), locs[r.IntN(len(locs))], hostileTime(n))
		n++
		c.RunFor(time.Duration(50+r.IntN(150)) * time.Millisecond)
	}
	if blockedAt < 0 {
		t.Fatalf("%s's writer to %s never blocked (window %d)", writer, reader, window)
	}
	if burst {
		// Connected once the writer is blocked (no record arrives at the
		// writer meanwhile), written all at once: the records reach it one
		// event each.
		var burstConns []*sentReport
		for i := range 64 { // more than the old PeerQueue of 32 that cut links here
			burstConns = append(burstConns, o.connect(writer, "burst"+strconv.Itoa(i), locs[i%len(locs)], hostileTime(1000+i)))
		}
		if cutAt >= 0 {
			t.Fatalf("%s cut its link to %s before the burst", writer, reader)
		}
		for _, p := range burstConns {
			o.write(p)
		}
		for _, p := range burstConns {
			o.finish(p)
		}
	}
	if !c.RunUntil(func() bool { return cutAt >= 0 }, 10*time.Second) {
		t.Fatalf("%s never cut its link to %s, which stopped reading at %v (writer blocked at %v)", writer, reader, stallStart, blockedAt)
	}
	after := w.Stats()
	slow, timeouts := after.PeerSlow-before.PeerSlow, after.WriteTimeouts-before.WriteTimeouts
	// Swept every WriteTimeout/4: cut between 3/4 and 5/4 of it after the
	// write began (the sweep's epoch is coarse), burst or not.
	blocked := cutAt - blockedAt
	if timeouts != 1 || slow != 0 || blocked < writeTimeout*3/4 || blocked > writeTimeout*5/4 {
		t.Errorf("burst=%v: WriteTimeouts +%d, PeerSlow +%d, cut %v after the writer blocked; want +1, +0, about %v", burst, timeouts, slow, blocked, writeTimeout)
	}
	if cuts := logs.find(writer, "connection cut"); !slices.ContainsFunc(cuts, func(e logEntry) bool { return strings.Contains(e.Attrs["why"], "WriteTimeout") }) {
		t.Errorf("no WriteTimeout log from %s: %+v", writer, cuts)
	}
	if held > window || s.Stats().MaxBuffered > window {
		t.Errorf("the stuck direction held %d bytes, the network at most %d; window %d", held, s.Stats().MaxBuffered, window)
	}
	// The stall goes on a while: the writer redials (or is redialed) and
	// gets nowhere, clients still get prompt replies.
	for i := range 10 {
		o.report(names[i%len(names)], "t"+strconv.Itoa(i%7), locs[r.IntN(len(locs))], hostileTime(n))
		n++
		c.RunFor(200 * time.Millisecond)
	}
	stuckBytes := 0
	for _, f := range s.Flows() {
		if f.Stopped {
			stuckBytes += f.Held
		}
	}
	t.Logf("seed %d: blocked %v after the stall, cut %v later (PeerSlow +%d, WriteTimeouts +%d); stuck direction held at most %d bytes, %d bytes wait on %d stopped flows after 2s more",
		seed, blockedAt-stallStart, cutAt-blockedAt, slow, timeouts, held, stuckBytes, countStopped(s))

	s.ResumeReading(reader, writer)
	if d, ok := c.Quiesce(2 * time.Minute); !ok {
		t.Fatalf("no quiesce %v after the reader resumed", d)
	}
	if ok, diff := c.Converged(); !ok {
		t.Errorf("not converged:\n%s", diff)
	}
	o.check(names...)
	t.Logf("seed %d: %d exact replies, slowest %v; %d events, %v virtual", seed, o.reports, o.slowest, s.Stats().Events, s.Elapsed())
	s.OnEvent(nil)
	c.Close()
	if n := s.Buffered(); n != 0 {
		t.Errorf("%d bytes still buffered after Close", n)
	}
	o.verdict()
	return s.Trace().Sum()
}

func countStopped(s *Sim) int {
	n := 0
	for _, f := range s.Flows() {
		if f.Stopped {
			n++
		}
	}
	return n
}

func TestHostileStuckPeerWriteTimeout(t *testing.T) {
	forSeeds(t, 4, func(t *testing.T, seed uint64) { stuckPeer(t, seed, false) })
}

// TestHostileStuckPeerBurst: a burst of records for a neighbour that
// stopped reading never cuts the link as too slow; WriteTimeout does.
func TestHostileStuckPeerBurst(t *testing.T) {
	forSeeds(t, 4, func(t *testing.T, seed uint64) { stuckPeer(t, seed, true) })
}

// TestHostileClientNeverReads: a client pipelines IAMATs and WHATSATs and
// never reads a reply. Its server stops reading it once the replies fill
// the window and its reply buffer, and WriteTimeout cuts it; clients of
// every server meanwhile get exact, prompt replies, and neither the
// network nor the server holds more than the window and the reply buffer
// for it.
func TestHostileClientNeverReads(t *testing.T) {
	forSeeds(t, 4, func(t *testing.T, seed uint64) { clientNeverReads(t, seed) })
}

func clientNeverReads(t *testing.T, seed uint64) (traceSum string) {
	{
		r := newRand(seed, "client never reads")
		const writeTimeout = 2 * time.Second
		window := 1024 + r.IntN(3072)
		replyBuffer := 1024 + r.IntN(8192)
		logs := newLogRecorder()
		opts := Options{
			Seed: seed, Window: window, SplitWrites: r.IntN(2) == 0, MaxEvents: 500_000,
			Configure: func(cfg *herd.Config) {
				cfg.WriteTimeout = writeTimeout
				cfg.ReplyBuffer = replyBuffer
				cfg.Logger = slog.New(logs)
			},
		}
		c := NewCluster(t, opts)
		s := c.Sim()
		o := newOracle(t, c, opts.Latency)
		s.OnEvent(o.watch)
		if _, ok := c.Quiesce(time.Minute); !ok {
			t.Fatal("links did not come up")
		}
		names := c.Names()
		victim := names[r.IntN(len(names))]
		// The hog's record is newer than anything it will send, so its own
		// IAMATs are stale and leave every table alone.
		o.report(names[r.IntN(len(names))], "hog", "+1.0+1.0", hostileTime(100))
		c.Settle()
		v := c.Node(victim)
		before := v.Stats()

		hog, err := c.Connect("hog", victim)
		if err != nil {
			t.Fatal(err)
		}
		cmds := []string{
			"IAMAT hog +2.0+2.0 " + hostileTime(0) + "\n",
			"WHATSAT hog 10 0\n",
			"IAMAT hog +2.0+2.0 " + hostileTime(1) + "\n",
			"WHATSAT hog 1.5 0\n",
		}
		var flood strings.Builder
		for flood.Len() < 1<<20 {
			flood.WriteString(cmds[flood.Len()%len(cmds)])
		}
		done := make(chan writeResult, 1)
		go func() {
			n, err := hog.Conn().Write([]byte(flood.String()))
			done <- writeResult{n, err}
		}()
		// Watch the hog's two directions until the node cuts it.
		var in, out Flow
		var blockedAt, cutAt time.Duration = -1, -1
		s.OnEvent(func() {
			o.watch()
			for _, f := range s.Flows() {
				switch {
				case f.From == "hog" && f.To == victim:
					in = f
				case f.From == victim && f.To == "hog":
					out = f
					if f.Blocked > 0 && blockedAt < 0 {
						blockedAt = s.Elapsed()
					}
				}
			}
			if cutAt < 0 && v.Stats().WriteTimeouts > before.WriteTimeouts {
				cutAt = s.Elapsed()
			}
		})
		locs := scenarioPlaces
		for i := 0; cutAt < 0 && i < 200; i++ {
			o.report(names[i%len(names)], "c"+strconv.Itoa(i%5), locs[r.IntN(len(locs))], hostileTime(i))
			c.RunFor(time.Duration(r.IntN(200)) * time.Millisecond)
		}
		if cutAt < 0 {
			t.Fatalf("%s never cut the client that does not read", victim)
		}
		var res writeResult
		if !c.RunUntil(func() bool {
			select {
			case res = <-done:
				return true
			default:
				return false
			}
		}, time.Minute) {
			t.Fatal("the hog's write never ended")
		}
		hog.Close()
		after := v.Stats()
		if after.WriteTimeouts-before.WriteTimeouts != 1 || res.err == nil || res.n >= flood.Len() {
			t.Errorf("WriteTimeouts +%d; hog's write: %d of %d bytes, %v", after.WriteTimeouts-before.WriteTimeouts, res.n, flood.Len(), res.err)
		}
		if blocked := cutAt - blockedAt; blockedAt < 0 || blocked < writeTimeout*3/4 || blocked > writeTimeout*5/4 {
			t.Errorf("cut %v after the server's write blocked (at %v); want about %v", blocked, blockedAt, writeTimeout)
		}
		if cuts := logs.find(victim, "connection cut"); !slices.ContainsFunc(cuts, func(e logEntry) bool { return strings.Contains(e.Attrs["why"], "WriteTimeout") }) {
			t.Errorf("no WriteTimeout log from %s: %+v", victim, cuts)
		}
		// What the server read of the hog's commands is bounded by what it
		// could answer: the window, the reply buffer and one more reply,
		// plus one read of the line reader (512 bytes while lines are
		// short). Replies are at least as long as the commands here.
		bound := int64(window + replyBuffer + 512 + 200)
		if in.Read > bound {
			t.Errorf("%s read %d bytes of the hog's commands; bound %d", victim, in.Read, bound)
		}
		if in.Held > window || out.Held > window || s.Stats().MaxBuffered > window {
			t.Errorf("held %d bytes in, %d out, at most %d anywhere; window %d", in.Held, out.Held, s.Stats().MaxBuffered, window)
		}
		t.Logf("seed %d: window %d, reply buffer %d; %s blocked %v after the flood began, cut %v later; read %d of the hog's %d bytes (%d written), sent it %d; %d exact replies to others, slowest %v",
			seed, window, replyBuffer, victim, blockedAt, cutAt-blockedAt, in.Read, flood.Len(), in.Written, out.Written, o.reports, o.slowest)

		if d, ok := c.Quiesce(time.Minute); !ok {
			t.Fatalf("no quiesce in %v", d)
		}
		o.check(names...)
		s.OnEvent(nil)
		c.Close()
		o.verdict()
		return s.Trace().Sum()
	}
}
