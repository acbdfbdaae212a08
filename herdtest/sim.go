package herdtest

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing/synctest"
	"time"
)

// DefaultEpoch is the wall-clock time at which a simulation starts unless
// [SimOptions.Epoch] says otherwise: 2018-03-02 20:52:14 UTC, the day of
// the 2018 herd's sample IAMAT, so AT lines look realistic.
var DefaultEpoch = time.Unix(1520023934, 0).UTC()

// DefaultLatency is the one-way latency of every simulated link unless
// [SimOptions.Latency] says otherwise.
var DefaultLatency = Latency{Min: time.Millisecond, Max: 10 * time.Millisecond}

// Latency is a range of one-way delays. Each delivery draws a delay
// uniformly from [Min, Max] (in nanoseconds) from the random stream of its
// link direction. Max below Min means Min.
type Latency struct {
	Min, Max time.Duration
}

func (l Latency) draw(r *rand.Rand) time.Duration {
	if l.Max <= l.Min {
		return max(l.Min, 0)
	}
	return max(l.Min+time.Duration(r.Int64N(int64(l.Max-l.Min)+1)), 0)
}

// SimOptions configures a [Sim]. The zero value is valid.
type SimOptions struct {
	// Seed selects the run: one seed gives one trace.
	Seed uint64
	// Epoch is the wall-clock time the simulation starts at; zero means
	// DefaultEpoch.
	Epoch time.Time
	// Latency is the one-way delay of every link; zero means
	// DefaultLatency. Sim.SetLatency overrides it per pair of hosts.
	Latency Latency
	// SplitWrites, when set, cuts the bytes a step wrote on a connection
	// into up to three deliveries at random points, so readers see partial
	// lines the way they do over TCP.
	SplitWrites bool
	// Trace, when non-nil, receives every trace entry as it is recorded.
	Trace io.Writer
	// MaxEvents, when positive, bounds the events a run may apply: once
	// reached, no more are applied and Exhausted reports true. It turns a
	// runaway (a flooding loop) into a failure instead of a hang.
	MaxEvents int
	// Window, when positive, is the flow-control window of every
	// connection direction, in bytes: at most Window bytes written on it
	// may be unread by the receiver (queued, in flight or in its receive
	// buffer) and a Write that finds the window full blocks until the
	// receiver reads, like TCP with its send and receive buffers together.
	// Zero means writes never block. See Sim.StopReading and Sim.Flows.
	Window int
}

// Stats counts what a simulation did.
type Stats struct {
	// Events is the number of events applied.
	Events int
	// Dials counts dial attempts, Refused those refused (no listener, or a
	// partition), Conns the connections established.
	Dials, Refused, Conns int
	// Resets counts connections reset by faults (partitions, ResetConns,
	// crashes of the other side are not counted: they close normally).
	Resets int
	// Bytes counts bytes delivered to endpoints.
	Bytes int64
	// PeerRecords counts the AT lines servers sent each other: the
	// messages of flooding and anti-entropy.
	PeerRecords int
	// MaxBuffered is the most bytes one connection direction has held at
	// once: written and neither read by the receiver nor lost. With
	// SimOptions.Window it never exceeds the window.
	MaxBuffered int
	// Breaks counts BreakMidLine faults fired.
	Breaks int
}

// Sim is a deterministic simulation of a network of hosts: virtual time,
// an event queue, connections with latency, partitions, resets and
// crashes. It must be created and driven inside a testing/synctest
// bubble, by one goroutine (the driver, usually the test's): only the
// driver calls Step, RunFor, RunUntil and the fault methods. Everything
// else (Transport, Clock, connections) may be used from any goroutine of
// the bubble.
//
// # How a run stays deterministic
//
// The driver applies one event at a time, in (time, key, seq) order, and
// between events waits with synctest.Wait until every other goroutine of
// the bubble is blocked (a settle step). Keys name what an event belongs
// to: a connection direction ("Goloman->Hands#3>"), a dial
// ("dial Goloman->Hands:7000") or a host's clock ("timer Goloman"); seq
// counts the events of one key. Bytes written on a connection during a
// settle step are held and sent, concatenated, when the step ends, in key
// order, so how the writer happened to chunk them and which goroutine ran
// first do not matter. Each key has its own random stream (PCG seeded with
// SHA-256 of the seed and the key) for latencies and write splits. Timers
// of one clock due at the same instant fire together in one step.
type Sim struct {
	mu    sync.Mutex
	seed  uint64
	epoch time.Time
	now   time.Duration
	opts  SimOptions

	q       eventQueue
	seqs    map[string]uint64
	rngs    map[string]*rand.Rand
	last    map[string]time.Duration // latest delivery time per key, for in-order streams
	outbox  map[string]*outbox       // bytes written during the current step, by key
	netBusy int                      // queued non-timer events

	hosts     map[string]*host
	listeners map[string]*listener // by address
	conns     map[string]*conn     // live connections, by id
	connN     map[string]int       // connections made per "from->to"
	dials     map[*pendingDial]struct{}
	cuts      map[[2]string]bool
	silent    map[[2]string]bool // cuts that drop packets without a reset (see SilentPartition)
	links     map[[2]string]Latency
	nextPort  int
	dialN     map[string]int     // dial attempts per "from->addr"
	stopped   map[[2]string]bool // {reader, sender} pairs that do not read; sender "" for all
	breaks    []*breakFault      // armed BreakMidLine faults
	onEvent   func()             // run by the driver after each event

	trace *Trace
	stats Stats
}

// host is a named machine that runs a node.
type host struct {
	name string
	inc  int // bumped by Crash: transports of older incarnations are dead
}

// NewSim returns a simulation. It must be called inside a synctest bubble;
// it panics otherwise.
func NewSim(opts SimOptions) *Sim {
	synctest.Wait() // panics outside a bubble, which is what we want
	if opts.Epoch.IsZero() {
		opts.Epoch = DefaultEpoch
	}
	if opts.Latency == (Latency{}) {
		opts.Latency = DefaultLatency
	}
	return &Sim{
		seed:      opts.Seed,
		epoch:     opts.Epoch,
		opts:      opts,
		seqs:      make(map[string]uint64),
		rngs:      make(map[string]*rand.Rand),
		last:      make(map[string]time.Duration),
		outbox:    make(map[string]*outbox),
		hosts:     make(map[string]*host),
		listeners: make(map[string]*listener),
		conns:     make(map[string]*conn),
		connN:     make(map[string]int),
		dials:     make(map[*pendingDial]struct{}),
		cuts:      make(map[[2]string]bool),
		silent:    make(map[[2]string]bool),
		links:     make(map[[2]string]Latency),
		nextPort:  40000,
		dialN:     make(map[string]int),
		stopped:   make(map[[2]string]bool),
		trace:     newTrace(opts.Trace),
	}
}

// Now returns the virtual wall-clock time: the epoch plus the time elapsed
// in the simulation.
func (s *Sim) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch.Add(s.now)
}

// Elapsed returns the virtual time since the simulation started.
func (s *Sim) Elapsed() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Trace returns the simulation's trace.
func (s *Sim) Trace() *Trace { return s.trace }

// Stats returns the counters so far.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Seed returns the seed the simulation was created with.
func (s *Sim) Seed() uint64 { return s.seed }

// Rand returns a random generator seeded from the simulation's seed and
// label, for tests that need their own deterministic choices (which
// server, which fault). Equal labels give equal streams.
func (s *Sim) Rand(label string) *rand.Rand { return newRand(s.seed, "user "+label) }

func newRand(seed uint64, label string) *rand.Rand {
	h := seedHash(seed, label)
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(h[:8]), binary.LittleEndian.Uint64(h[8:16])))
}

func seedHash(seed uint64, label string) [32]byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h := sha256.New()
	h.Write(b[:])
	h.Write([]byte(label))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// rng returns the random stream of key. s.mu must be held.
func (s *Sim) rng(key string) *rand.Rand {
	r := s.rngs[key]
	if r == nil {
		r = newRand(s.seed, key)
		s.rngs[key] = r
	}
	return r
}

// SetLatency sets the one-way latency between hosts a and b, both ways.
func (s *Sim) SetLatency(a, b string, l Latency) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.links[pair(a, b)] = l
}

func (s *Sim) latency(a, b string) Latency {
	if l, ok := s.links[pair(a, b)]; ok {
		return l
	}
	return s.opts.Latency
}

func pair(a, b string) [2]string {
	if b < a {
		a, b = b, a
	}
	return [2]string{a, b}
}

// schedule queues e, giving it the next seq of its key. s.mu must be held.
func (s *Sim) schedule(e *event) {
	e.seq = s.seqs[e.key]
	s.seqs[e.key]++
	if e.kind != kindTimer {
		s.netBusy++
	}
	s.q.push(e)
}

// settle waits until every other goroutine of the bubble is blocked, then
// sends what they wrote.
func (s *Sim) settle() {
	synctest.Wait()
	s.mu.Lock()
	s.flush()
	s.mu.Unlock()
}

// Wait waits until every goroutine of the bubble but the caller is
// blocked (synctest.Wait) and sends what they wrote, without applying any
// event. Call it after acting on the simulated world from the driver
// (starting a node, say) to let the effects settle.
func (s *Sim) Wait() { s.settle() }

// Step settles, applies the next event (or all timers of one clock due at
// the same instant), advancing virtual time to it, and settles again. It
// reports false if no event is queued.
func (s *Sim) Step() bool {
	s.settle()
	return s.step(-1)
}

// step applies the next event if it is due by deadline (any time if
// deadline < 0). The bubble must be settled.
func (s *Sim) step(deadline time.Duration) bool {
	s.mu.Lock()
	if len(s.q) == 0 || (deadline >= 0 && s.q.peek().at > deadline) || s.exhaustedLocked() {
		s.mu.Unlock()
		return false
	}
	ev := s.q.pop()
	batch := []*event{ev}
	if ev.kind == kindTimer {
		for len(s.q) > 0 {
			top := s.q.peek()
			if top.kind != kindTimer || top.at != ev.at || top.key != ev.key {
				break
			}
			batch = append(batch, s.q.pop())
		}
	}
	d := ev.at - s.now
	s.mu.Unlock()
	if d > 0 {
		// Nothing else can run: this only moves the bubble's clock along
		// with ours, so time.Now in the bubble agrees with the Sim.
		time.Sleep(d)
	}
	s.mu.Lock()
	s.now = max(s.now, ev.at)
	if ev.kind == kindData && ev.ep.hook != nil {
		hook := ev.ep.hook
		s.mu.Unlock()
		hook(ev.data) // without s.mu: hooks may look at nodes
		s.mu.Lock()
	}
	for _, e := range batch {
		s.apply(e)
	}
	f := s.onEvent
	s.mu.Unlock()
	s.settle()
	if f != nil {
		f()
	}
	return true
}

// OnEvent makes the driver call f after every event it applies, once the
// bubble has settled again (nil removes it): a place to check invariants
// that must hold at all times, not only when a test looks. f runs on the
// driver's goroutine and must not drive the simulation.
func (s *Sim) OnEvent(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onEvent = f
}

func (s *Sim) exhaustedLocked() bool {
	return s.opts.MaxEvents > 0 && s.stats.Events >= s.opts.MaxEvents
}

// Exhausted reports whether the run has applied SimOptions.MaxEvents
// events and so stopped.
func (s *Sim) Exhausted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exhaustedLocked()
}

// advance moves virtual time to t if it is later. The bubble must be
// settled and no event may be due before t.
func (s *Sim) advance(t time.Duration) {
	s.mu.Lock()
	d := t - s.now
	s.mu.Unlock()
	if d <= 0 {
		return
	}
	time.Sleep(d)
	s.mu.Lock()
	s.now = t
	s.mu.Unlock()
}

// RunFor applies every event due within d of now, then moves virtual time
// to now+d.
func (s *Sim) RunFor(d time.Duration) {
	s.settle()
	deadline := s.Elapsed() + max(d, 0)
	for s.step(deadline) {
	}
	if !s.Exhausted() {
		s.advance(deadline)
	}
}

// RunUntil applies events until cond holds (it is checked before the first
// event and after each one, with the bubble settled) or until limit of
// virtual time has passed. It reports whether cond held.
func (s *Sim) RunUntil(cond func() bool, limit time.Duration) bool {
	s.settle()
	deadline := s.Elapsed() + max(limit, 0)
	for {
		if cond() {
			return true
		}
		if !s.step(deadline) {
			if s.Exhausted() {
				return false
			}
			s.advance(deadline)
			return cond()
		}
	}
}

// Busy reports whether any byte, end of stream, reset or dial is still on
// its way. Timers do not count.
func (s *Sim) Busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.netBusy > 0 || len(s.outbox) > 0
}

// RunQuiet applies events until nothing but timers is queued (every byte
// written has been delivered and every dial answered), or until limit of
// virtual time has passed. It reports whether the network went quiet.
func (s *Sim) RunQuiet(limit time.Duration) bool {
	return s.RunUntil(func() bool { return !s.Busy() }, limit)
}

// apply applies one event. s.mu must be held.
func (s *Sim) apply(e *event) {
	s.stats.Events++
	if e.kind != kindTimer {
		s.netBusy--
	}
	switch e.kind {
	case kindConnect:
		s.connect(e)
	case kindData, kindFIN, kindRST:
		e.ep.receive(e)
	case kindTimer:
		t := e.timer
		t.fired = true
		s.trace.add(s.now, e.key, "timer", "")
		go t.f()
	case kindBreak:
		s.applyBreak(e)
	}
}

// Note records a custom entry in the trace (a client operation, a phase
// of a test), so that it counts towards the trace hash.
func (s *Sim) Note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trace.add(s.now, "-", "note", fmt.Sprintf(format, args...))
}

// fault records a fault in the trace. s.mu must be held.
func (s *Sim) fault(kind, detail string) { s.trace.add(s.now, "-", kind, detail) }

// record records a fault in the trace.
func (s *Sim) record(kind, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault(kind, detail)
}

// hostNames returns the registered hosts, sorted. s.mu must be held.
func (s *Sim) hostNames() []string {
	out := make([]string, 0, len(s.hosts))
	for name := range s.hosts {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// cut reports whether a partition separates a and b. s.mu must be held.
func (s *Sim) cut(a, b string) bool { return len(s.cuts) > 0 && s.cuts[pair(a, b)] }

// Partition cuts the hosts in group off from every other registered host
// (those that have had a Transport): dials across the cut are refused
// (EHOSTUNREACH) and connections across it are reset at once. Calls add
// up: Partition("A") then Partition("B") leaves A, B and the rest in three
// islands; names that are not registered hosts are ignored. Connections
// of unregistered parties (clients dialing with Sim.Dial) are never cut:
// clients stand outside the herd.
func (s *Sim) Partition(group ...string) {
	s.settle()
	s.mu.Lock()
	a, b := s.sides(group)
	for _, x := range a {
		for _, y := range b {
			s.cuts[pair(x, y)] = true
		}
	}
	s.fault("partition", fmt.Sprintf("[%s] | [%s]", strings.Join(a, " "), strings.Join(b, " ")))
	s.resetWhere(func(c *conn) bool { return s.cut(c.ends[0].host, c.ends[1].host) })
	s.mu.Unlock()
	s.settle()
}

// sides splits the registered hosts into those in group and the others,
// each in host order. Called with s.mu held.
func (s *Sim) sides(group []string) (in, out []string) {
	member := make(map[string]bool, len(group))
	for _, g := range group {
		member[g] = true
	}
	for _, h := range s.hostNames() {
		if member[h] {
			in = append(in, h)
		} else {
			out = append(out, h)
		}
	}
	return in, out
}

// Cut separates hosts a and b only, as Partition does for groups.
func (s *Sim) Cut(a, b string) {
	s.settle()
	s.mu.Lock()
	s.cuts[pair(a, b)] = true
	s.fault("cut", a+" "+b)
	s.resetWhere(func(c *conn) bool { return s.cut(c.ends[0].host, c.ends[1].host) })
	s.mu.Unlock()
	s.settle()
}

// SilentPartition separates group from every other host as Partition
// does, but as a network that silently drops packets would: connections
// between the two sides are not reset, everything either end sends (data,
// FIN, reset) is lost, and new connections across fail. Nodes must notice
// by themselves (Config.PeerTimeout).
func (s *Sim) SilentPartition(group ...string) {
	s.settle()
	s.mu.Lock()
	a, b := s.sides(group)
	for _, x := range a {
		for _, y := range b {
			s.cuts[pair(x, y)] = true
			s.silent[pair(x, y)] = true
		}
	}
	s.fault("silent partition", fmt.Sprintf("[%s] | [%s]", strings.Join(a, " "), strings.Join(b, " ")))
	s.mu.Unlock()
	s.settle()
}

// Heal removes every partition and cut. Nodes find each other again by
// redialing.
func (s *Sim) Heal() {
	s.settle()
	s.mu.Lock()
	clear(s.cuts)
	clear(s.silent)
	s.fault("heal", "")
	s.mu.Unlock()
	s.settle()
}

// Partitioned reports whether any partition or cut is in place.
func (s *Sim) Partitioned() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cuts) > 0
}

// Separated reports whether a partition or cut separates hosts a and b.
func (s *Sim) Separated(a, b string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cut(a, b)
}

// ResetConns resets every live connection between two registered hosts
// (not client connections), as a middlebox that forgets its state would:
// both ends' reads and writes fail with ECONNRESET and bytes in flight are
// lost.
func (s *Sim) ResetConns() {
	s.settle()
	s.mu.Lock()
	s.fault("reset-links", "")
	s.resetWhere(func(c *conn) bool { return c.peers })
	s.mu.Unlock()
	s.settle()
}

// ResetConn resets the live connections between hosts a and b.
func (s *Sim) ResetConn(a, b string) {
	s.settle()
	s.mu.Lock()
	s.fault("reset-link", a+" "+b)
	p := pair(a, b)
	s.resetWhere(func(c *conn) bool { return pair(c.ends[0].host, c.ends[1].host) == p })
	s.mu.Unlock()
	s.settle()
}

// resetWhere resets, in id order, every live connection for which match
// holds. s.mu must be held.
func (s *Sim) resetWhere(match func(*conn) bool) {
	ids := make([]string, 0, len(s.conns))
	for id, c := range s.conns {
		if match(c) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		c := s.conns[id]
		s.stats.Resets++
		s.trace.add(s.now, id, "reset", "")
		for i := range c.ends {
			c.ends[i].reset()
		}
		s.forget(c)
	}
}

// Crash kills every socket of host at once, as the death of its process
// would: its listeners close, its connections close (FIN, or RST where
// unread bytes remain), its pending dials fail, and transports handed out
// for it stop working. The node itself must then be closed by the caller
// (Cluster.Crash does both). A later Sim.Transport(host) is a restart.
func (s *Sim) Crash(name string) {
	s.settle()
	s.mu.Lock()
	s.fault("crash", name)
	if h := s.hosts[name]; h != nil {
		h.inc++
	}
	var addrs []string
	for a, ln := range s.listeners {
		if ln.host == name {
			addrs = append(addrs, a)
		}
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		s.listeners[a].closeLocked()
	}
	ids := make([]string, 0, len(s.conns))
	for id, c := range s.conns {
		if c.ends[0].host == name || c.ends[1].host == name {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		c := s.conns[id]
		for i := range c.ends {
			if c.ends[i].host == name {
				c.ends[i].closeLocked()
			}
		}
	}
	for d := range s.dials {
		if d.from == name {
			d.fail(errHostDown)
		}
	}
	s.mu.Unlock()
	s.settle()
}
