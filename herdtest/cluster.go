package herdtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/proxyherd/herd"
)

// Options configures a [Cluster]. The zero value runs the 2018 herd with
// seed 0.
type Options struct {
	// Seed selects the run: one seed gives one trace.
	Seed uint64
	// Topology is the herd; zero means herd.Presets["2018"].
	Topology herd.Topology
	// Latency is the one-way delay of every link; zero means
	// DefaultLatency.
	Latency Latency
	// SplitWrites cuts deliveries at random points (see SimOptions).
	SplitWrites bool
	// Window is the flow-control window of every connection direction
	// (see SimOptions.Window); zero means writes never block.
	Window int
	// Epoch is the virtual wall-clock time at the start; zero means
	// DefaultEpoch.
	Epoch time.Time
	// Places configures the fake Places provider every node uses.
	Places PlacesOptions
	// Secret, when set, is every node's Config.Secret.
	Secret []byte
	// Configure, when set, adjusts every node's Config (at start and at
	// every restart) before herd.New. Transport, Clock, Places and Entropy
	// are already set to the simulation's; replacing them breaks
	// determinism.
	Configure func(*herd.Config)
	// Trace, when non-nil, receives every trace entry.
	Trace io.Writer
	// ReplyTimeout bounds, in virtual time, how long a client helper
	// waits for a connection or a reply; zero means one minute.
	ReplyTimeout time.Duration
	// MaxEvents bounds the events the whole run may apply (see
	// SimOptions.MaxEvents); zero means 10 million. Cluster methods that
	// run the simulation fail the test once it is reached.
	MaxEvents int
}

// Port is the port every node of a Cluster listens on; its address is
// its name and this port ("Goloman:7000").
const Port = 7000

// Cluster is a herd of herd.Nodes on a [Sim]: one node per server of a
// topology, each with the simulation's transport, clock and fake Places
// provider, and entropy seeded from the seed and its name. Its methods
// drive the simulation, so call them from the goroutine that created it
// (the test's), inside the synctest bubble.
type Cluster struct {
	t      testing.TB
	sim    *Sim
	places *Places
	opts   Options
	topo   herd.Topology
	names  []string // sorted
	addrs  map[string]string
	nodes  map[string]*herd.Node // nil while crashed
	inc    map[string]int
	closed bool
}

// Run runs f in a new synctest bubble with a cluster built from opts, and
// closes the cluster (waiting for every goroutine) when f returns. The t
// passed to f belongs to the bubble: use it, not the outer one.
func Run(t *testing.T, opts Options, f func(t *testing.T, c *Cluster)) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		c := NewCluster(t, opts)
		f(t, c)
		c.Close()
	})
}

// NewCluster builds and starts a cluster and lets it settle (no event is
// applied: links come up as the caller runs the simulation). It must be
// called inside a synctest bubble, from the goroutine that will drive it;
// the cluster is closed at the end of the test.
func NewCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if !inBubble() {
		t.Fatal("herdtest: NewCluster must run inside a testing/synctest bubble: use herdtest.Run or synctest.Test")
	}
	topo := opts.Topology
	if len(topo.Servers) == 0 {
		topo = herd.Presets["2018"]
	}
	if err := checkTopology(topo); err != nil {
		t.Fatal(err)
	}
	if opts.ReplyTimeout <= 0 {
		opts.ReplyTimeout = time.Minute
	}
	if opts.MaxEvents <= 0 {
		opts.MaxEvents = 10_000_000
	}
	sim := NewSim(SimOptions{Seed: opts.Seed, Epoch: opts.Epoch, Latency: opts.Latency, SplitWrites: opts.SplitWrites, Trace: opts.Trace, MaxEvents: opts.MaxEvents, Window: opts.Window})
	c := &Cluster{
		t:      t,
		sim:    sim,
		places: NewPlaces(sim, opts.Places),
		opts:   opts,
		topo:   topo,
		names:  slices.Sorted(slices.Values(topo.Servers)),
		addrs:  make(map[string]string),
		nodes:  make(map[string]*herd.Node),
		inc:    make(map[string]int),
	}
	for _, name := range c.names {
		c.addrs[name] = net.JoinHostPort(name, strconv.Itoa(Port))
	}
	t.Cleanup(c.Close)
	for _, name := range topo.Servers {
		c.start(name)
	}
	sim.Wait()
	return c
}

func inBubble() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	synctest.Wait()
	return true
}

func checkTopology(t herd.Topology) error {
	seen := make(map[string]bool)
	for _, s := range t.Servers {
		if seen[s] {
			return fmt.Errorf("herdtest: topology lists %q twice", s)
		}
		seen[s] = true
	}
	for _, l := range t.Links {
		if !seen[l[0]] || !seen[l[1]] {
			return fmt.Errorf("herdtest: topology link %v names an unknown server", l)
		}
		if l[0] == l[1] {
			return fmt.Errorf("herdtest: topology links %q to itself", l[0])
		}
	}
	return nil
}

// start builds and starts a fresh node for name.
func (c *Cluster) start(name string) {
	c.t.Helper()
	inc := c.inc[name]
	c.inc[name]++
	var peers []herd.Peer
	for _, p := range c.topo.Neighbours(name) {
		peers = append(peers, herd.Peer{Name: p, Addr: c.addrs[p]})
	}
	seed := seedHash(c.opts.Seed, "entropy "+name+"#"+strconv.Itoa(inc))
	cfg := herd.Config{
		Name:      name,
		Addr:      c.addrs[name],
		Peers:     peers,
		Secret:    c.opts.Secret,
		Transport: c.sim.Transport(name),
		Clock:     c.sim.Clock(name),
		Places:    c.places.For(name),
		Entropy:   rand.NewChaCha8(seed),
	}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	n, err := herd.New(cfg)
	if err != nil {
		c.t.Fatalf("herdtest: %s: %v", name, err)
	}
	if err := n.Start(context.Background()); err != nil {
		c.t.Fatalf("herdtest: %s: %v", name, err)
	}
	c.nodes[name] = n
}

// Sim returns the simulation the cluster runs on.
func (c *Cluster) Sim() *Sim { return c.sim }

// Places returns the fake Places provider of the cluster.
func (c *Cluster) Places() *Places { return c.places }

// Topology returns the cluster's topology.
func (c *Cluster) Topology() herd.Topology { return c.topo }

// Names returns the servers' names, sorted.
func (c *Cluster) Names() []string { return slices.Clone(c.names) }

// Addr returns the address server listens on.
func (c *Cluster) Addr(server string) string { return c.addrs[server] }

// Node returns the running node of server, or nil while it is crashed.
func (c *Cluster) Node(server string) *herd.Node { return c.nodes[server] }

// Up reports whether server is running.
func (c *Cluster) Up(server string) bool { return c.nodes[server] != nil }

// Live returns the names of the running servers, sorted.
func (c *Cluster) Live() []string {
	var out []string
	for _, name := range c.names {
		if c.nodes[name] != nil {
			out = append(out, name)
		}
	}
	return out
}

// Now returns the virtual wall-clock time.
func (c *Cluster) Now() time.Time { return c.sim.Now() }

// Crash kills server: its sockets close at once (see Sim.Crash) and its
// node is closed, losing its table.
func (c *Cluster) Crash(server string) {
	c.t.Helper()
	n := c.nodes[server]
	if n == nil {
		c.t.Fatalf("herdtest: Crash(%q): not running", server)
	}
	c.sim.Crash(server)
	n.Close()
	c.nodes[server] = nil
	c.sim.Wait()
}

// Restart starts a fresh node, with an empty table, on a crashed server's
// address.
func (c *Cluster) Restart(server string) {
	c.t.Helper()
	if _, ok := c.addrs[server]; !ok || c.nodes[server] != nil {
		c.t.Fatalf("herdtest: Restart(%q): not a crashed server", server)
	}
	c.sim.record("restart", server)
	c.start(server)
	c.sim.Wait()
}

// Partition cuts the servers in group off from the others (see
// Sim.Partition). Clients can still reach every server.
func (c *Cluster) Partition(group ...string) { c.sim.Partition(group...) }

// Heal removes every partition.
func (c *Cluster) Heal() { c.sim.Heal() }

// SilentPartition separates group from the other hosts without resetting
// anything: packets across are dropped (see Sim.SilentPartition).
func (c *Cluster) SilentPartition(group ...string) { c.sim.SilentPartition(group...) }

// ResetLinks resets every connection between servers.
func (c *Cluster) ResetLinks() { c.sim.ResetConns() }

// RunFor runs the simulation for d of virtual time.
func (c *Cluster) RunFor(d time.Duration) {
	c.t.Helper()
	c.sim.RunFor(d)
	c.checkBudget()
}

// RunUntil runs the simulation until cond holds or limit of virtual time
// has passed, and reports whether cond held.
func (c *Cluster) RunUntil(cond func() bool, limit time.Duration) bool {
	c.t.Helper()
	ok := c.sim.RunUntil(cond, limit)
	c.checkBudget()
	return ok
}

// checkBudget fails the test once the run has used up MaxEvents.
func (c *Cluster) checkBudget() {
	c.t.Helper()
	if c.sim.Exhausted() {
		c.t.Fatalf("herdtest: %d events applied, the MaxEvents budget: a runaway (flooding loop?); trace tail:\n%s",
			c.opts.MaxEvents, strings.Join(c.sim.Trace().Tail(), "\n"))
	}
}

// Settle runs the simulation until the network is quiet: every byte
// written delivered, every dial answered; pending timers (redials) may
// remain. It fails the test if that takes more than ten virtual minutes.
func (c *Cluster) Settle() {
	c.t.Helper()
	ok := c.sim.RunQuiet(10 * time.Minute)
	c.checkBudget()
	if !ok {
		c.t.Fatalf("herdtest: network still busy after 10 virtual minutes; trace tail:\n%s", strings.Join(c.sim.Trace().Tail(), "\n"))
	}
}

// LinksUp reports whether every link of the topology whose ends are both
// running and not separated by a partition is up at both ends.
func (c *Cluster) LinksUp() bool {
	for _, l := range c.topo.Links {
		a, b := c.nodes[l[0]], c.nodes[l[1]]
		if a == nil || b == nil || c.sim.Separated(l[0], l[1]) {
			continue
		}
		if !slices.Contains(a.Links(), l[1]) || !slices.Contains(b.Links(), l[0]) {
			return false
		}
	}
	return true
}

// Quiesce runs the simulation until every link that can be up is up (see
// LinksUp) and the network is quiet, or until limit of virtual time has
// passed. It returns the virtual time it ran and whether it got there.
// After a Quiesce that succeeds, flooding and anti-entropy are done.
func (c *Cluster) Quiesce(limit time.Duration) (time.Duration, bool) {
	c.t.Helper()
	start := c.sim.Elapsed()
	ok := c.sim.RunUntil(func() bool { return !c.sim.Busy() && c.LinksUp() }, limit)
	c.checkBudget()
	return c.sim.Elapsed() - start, ok
}

// Converged reports whether every running node holds the same table. If
// not, diff describes the first differences.
func (c *Cluster) Converged() (ok bool, diff string) {
	return c.ConvergedAmong(c.Live()...)
}

// ConvergedAmong reports whether the running nodes among servers hold the
// same table (servers that are down are left out): for herds where some
// node is meant to stand apart, such as one configured with the wrong
// secret. If not, diff describes the first differences.
func (c *Cluster) ConvergedAmong(servers ...string) (ok bool, diff string) {
	var live []string
	for _, name := range servers {
		if c.nodes[name] != nil {
			live = append(live, name)
		}
	}
	if len(live) < 2 {
		return true, ""
	}
	ref := c.nodes[live[0]].Records()
	var b strings.Builder
	for _, name := range live[1:] {
		recs := c.nodes[name].Records()
		if d := diffTables(live[0], ref, name, recs); d != "" {
			b.WriteString(d)
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.Len() == 0, b.String()
}

// diffTables describes how table b differs from table a (both sorted by
// client), or returns "".
func diffTables(na string, a []herd.Record, nb string, b []herd.Record) string {
	var out strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Client < b[j].Client):
			fmt.Fprintf(&out, "%s lacks %q (%s has %q)\n", nb, a[i].Client, na, a[i].Line)
			i++
		case i == len(a) || b[j].Client < a[i].Client:
			fmt.Fprintf(&out, "%s lacks %q (%s has %q)\n", na, b[j].Client, nb, b[j].Line)
			j++
		default:
			if a[i].Line != b[j].Line {
				fmt.Fprintf(&out, "%q: %s has %q, %s has %q\n", a[i].Client, na, a[i].Line, nb, b[j].Line)
			}
			i++
			j++
		}
	}
	return out.String()
}

// Close crashes every running node (closing it and waiting for all its
// goroutines) and settles. It is idempotent; NewCluster registers it
// with t.Cleanup.
func (c *Cluster) Close() {
	if c.closed {
		return
	}
	c.closed = true
	for _, name := range c.names {
		if n := c.nodes[name]; n != nil {
			c.sim.Crash(name)
			n.Close()
			c.nodes[name] = nil
		}
	}
	c.sim.Wait()
}
