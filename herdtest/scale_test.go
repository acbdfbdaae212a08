package herdtest

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/proxyherd/herd"
)

// scaleResult is what TestScale measures for one herd.
type scaleResult struct {
	name           string
	seed           uint64
	servers, links int
	startup        time.Duration // until every link is up and the network quiet
	perUpdate      float64       // AT lines servers sent per client update
	floodTime      time.Duration // mean time for one update to reach every server
	heal           time.Duration // from heal to every table equal
	healMsgs       int           // AT lines sent from heal to quiescence
	events         int
	wall           time.Duration
}

// TestScale measures herds of 50 servers (and of 500 with
// HERD_SIM_SCALE=500): messages per update and the virtual time to
// converge after a partition heals, on a seeded random topology (average
// degree 4) and on a ring. It prints one line per herd and seed
// (HERD_SIM_SCALE_SEEDS, default 1), and with several seeds a summary.
//
//	HERD_SIM_SCALE=500 HERD_SIM_SCALE_SEEDS=10 go test ./herdtest -run TestScale -v
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	sizes := []int{50}
	if os.Getenv("HERD_SIM_SCALE") == "500" {
		sizes = append(sizes, 500)
	}
	seeds := 1
	if s := os.Getenv("HERD_SIM_SCALE_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HERD_SIM_SCALE_SEEDS=%q: want a positive count", s)
		}
		seeds = n
	}
	var lines []string
	for _, n := range sizes {
		for _, kind := range []string{"random", "ring"} {
			var heals, floods []time.Duration
			for seed := uint64(1); seed <= uint64(seeds); seed++ {
				t.Run(fmt.Sprintf("%s-%d/seed=%d", kind, n, seed), func(t *testing.T) {
					topo := RingTopology(n)
					if kind == "random" {
						topo = RandomTopology(newRand(uint64(n), "scale topology"), n, 4)
					}
					start := time.Now()
					var r scaleResult
					synctest.Test(t, func(t *testing.T) { r = measureScale(t, kind, topo, seed) })
					r.wall = time.Since(start)
					lines = append(lines, r.String())
					heals = append(heals, r.heal)
					floods = append(floods, r.floodTime)
				})
			}
			if seeds > 1 && len(heals) == seeds {
				slices.Sort(heals)
				slices.Sort(floods)
				lines = append(lines, fmt.Sprintf("scale: %-6s n=%-3d over %d seeds: flood median %v max %v; heal->converged min %v median %v max %v",
					kind, n, seeds, floods[seeds/2].Round(time.Millisecond), floods[seeds-1].Round(time.Millisecond),
					heals[0].Round(time.Millisecond), heals[seeds/2].Round(time.Millisecond), heals[seeds-1].Round(time.Millisecond)))
			}
		}
	}
	fmt.Println(strings.Join(lines, "\n"))
}

func (r scaleResult) String() string {
	return fmt.Sprintf("scale: %-6s n=%-3d seed=%-2d links=%-4d startup=%-8v msgs/update=%6.1f (2E-N+1=%d) flood=%-8v heal->converged=%-8v heal msgs=%-6d events=%-7d wall=%v",
		r.name, r.servers, r.seed, r.links, r.startup.Round(time.Millisecond), r.perUpdate, 2*r.links-r.servers+1,
		r.floodTime.Round(time.Millisecond), r.heal.Round(time.Millisecond), r.healMsgs, r.events, r.wall.Round(10*time.Millisecond))
}

// measureScale runs the scale scenario on topo with node defaults
// (RedialMin 50ms, RedialMax 5s) and DefaultLatency (1-10ms per hop):
//
//  1. start and wait until every link is up;
//  2. 10 updates from fresh clients at random servers, one at a time: count
//     the AT lines servers send each other, and time until every server
//     has the update;
//  3. cut the herd in two halves (by name: for a ring, two arcs) for 30s,
//     with 10 updates on each side, heal, and time until every table is
//     equal.
func measureScale(t *testing.T, kind string, topo herd.Topology, seed uint64) scaleResult {
	c := NewCluster(t, Options{Seed: seed, Topology: topo, MaxEvents: 50_000_000})
	res := scaleResult{name: kind, seed: seed, servers: len(topo.Servers), links: len(topo.Links)}
	var ok bool
	if res.startup, ok = c.Quiesce(10 * time.Minute); !ok {
		t.Fatal("links did not come up")
	}
	r := c.Sim().Rand("scale")
	names := c.Names()
	want := make(map[string]string) // client -> line
	// has reports whether every server holds every wanted line; it starts
	// where it last failed, so waiting costs little.
	next := 0
	has := func() bool {
		for k := range names {
			i := (next + k) % len(names)
			n := c.Node(names[i])
			for client, line := range want {
				if got, ok := n.Lookup(client); !ok || got.Line != line {
					next = i
					return false
				}
			}
		}
		return true
	}
	update := func(i int, servers []string) {
		client := fmt.Sprintf("client%d", i)
		server := servers[r.IntN(len(servers))]
		tm := fmt.Sprintf("%d.%09d", DefaultEpoch.Unix()+int64(i), r.IntN(1e9))
		reply := c.IAMAT(server, client, "+34.068930-118.445127", tm)
		want[client] = strings.TrimSuffix(reply, "\n")
	}

	const updates = 10
	var flood time.Duration
	before := c.Sim().Stats().PeerRecords
	// With every link up and one update at a time, the server that took
	// the report sends it on each of its links, and every other server
	// on each of its links but the one it first came by: 2E-N+1 AT lines.
	perUpdate := 2*len(topo.Links) - len(topo.Servers) + 1
	for i := range updates {
		start := c.Sim().Elapsed()
		sent := c.Sim().Stats().PeerRecords
		update(i, names)
		if !c.RunUntil(has, time.Minute) {
			t.Fatalf("update %d did not reach every server", i)
		}
		flood += c.Sim().Elapsed() - start
		c.Settle()
		if got := c.Sim().Stats().PeerRecords - sent; got != perUpdate {
			t.Errorf("update %d: servers sent %d AT lines, want 2E-N+1 = %d", i, got, perUpdate)
		}
	}
	res.perUpdate = float64(c.Sim().Stats().PeerRecords-before) / updates
	res.floodTime = flood / updates

	half := names[:len(names)/2]
	c.Partition(half...)
	for i := range updates {
		update(100+i, half)
		update(200+i, names[len(names)/2:])
	}
	c.RunFor(30 * time.Second)
	c.Heal()
	before = c.Sim().Stats().PeerRecords
	start := c.Sim().Elapsed()
	if !c.RunUntil(has, 10*time.Minute) {
		t.Fatal("the herd did not converge after the heal")
	}
	res.heal = c.Sim().Elapsed() - start
	if _, ok := c.Quiesce(10 * time.Minute); !ok {
		t.Fatal("links did not come back up")
	}
	if ok, diff := c.Converged(); !ok {
		t.Fatalf("not converged: %s", diff)
	}
	res.healMsgs = c.Sim().Stats().PeerRecords - before
	res.events = c.Sim().Stats().Events
	return res
}
