package herdtest

// A property of link-up reconciliation (issue 12): whatever the two sides
// of a partition did meanwhile, once it heals the fingerprint exchange
// plus flooding leave every table equal to the last-writer-wins merge of
// every accepted report.

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/proxyherd/herd"
)

// TestReconcileProperty runs, per seed (40 by default), a herd of two or
// three servers: a shared base of random clients, then a partition during
// which each side gets its own reports (new clients, newer and older
// records, the same client time at servers on both sides), sometimes a
// crash and empty restart of a server, then a heal with sometimes more
// reports racing the link-ups. Every table must then be identical and
// equal to the newest accepted report of every client (by
// herd.Record.Compare), and no sync line may have been refused.
func TestReconcileProperty(t *testing.T) {
	forSeeds(t, 40, runReconcileProperty)
}

func runReconcileProperty(t *testing.T, seed uint64) {
	r := newRand(seed, "reconcile options")
	topo := RingTopology(2 + r.IntN(2))
	c := NewCluster(t, Options{
		Seed:     seed,
		Topology: topo,
		Configure: func(cfg *herd.Config) {
			cfg.RedialMin = 10 * time.Millisecond
			cfg.RedialMax = 200 * time.Millisecond
		},
	})
	r = c.Sim().Rand("reconcile")
	names := c.Names()
	nClients := 100 + r.IntN(300)
	best := make(lww)
	var log []string
	note := func(format string, args ...any) {
		c.Sim().Note(format, args...)
		log = append(log, c.Sim().Elapsed().String()+" "+format)
	}
	defer func() {
		if t.Failed() {
			t.Logf("seed %d: %d servers, %d clients; steps: %q", seed, len(names), nClients, log)
		}
	}()
	// A small pool of times, so that ties (and equal times at different
	// servers) are common; later phases reach further forward.
	clientTime := func(phase int) string {
		sec := DefaultEpoch.Unix() - 100 + int64(phase*3+r.IntN(6))
		return strconv.FormatInt(sec, 10) + []string{"", ".5", ".25"}[r.IntN(3)]
	}
	// report sends a random fraction of the clients to the given servers,
	// each client at one of them.
	report := func(phase int, servers []string, frac float64) {
		batches := make([][]iamatReq, len(names))
		for i := range nClients {
			if r.Float64() >= frac {
				continue
			}
			s := servers[r.IntN(len(servers))]
			k := slices.Index(names, s)
			batches[k] = append(batches[k], iamatReq{clientName(i), scenarioPlaces[r.IntN(len(scenarioPlaces))], clientTime(phase)})
		}
		bulkReport(t, c, names, batches, best)
	}
	if _, ok := c.Quiesce(time.Minute); !ok {
		t.Fatal("links did not come up")
	}
	if r.IntN(4) != 0 {
		note("base")
		report(0, names, r.Float64())
		if _, ok := c.Quiesce(time.Minute); !ok {
			t.Fatal("herd did not quiesce after the base")
		}
	}
	// Divergence: each side of a partition gets its own reports; the
	// same client at the same time on both sides ties on time.
	group := names[:1+r.IntN(len(names)-1)]
	other := names[len(group):]
	note("partition")
	c.Partition(group...)
	for phase := 1; phase <= 1+r.IntN(3); phase++ {
		report(phase, group, r.Float64())
		report(phase, other, r.Float64())
		c.RunFor(time.Duration(r.IntN(100)) * time.Millisecond)
	}
	if r.IntN(3) == 0 {
		// A server restarts empty: its side's accepted reports survive
		// only if another server holds them.
		name := names[r.IntN(len(names))]
		if holdsElsewhere(c, name) {
			note("crash and restart")
			c.Crash(name)
			c.Restart(name)
		}
	}
	note("heal")
	c.Heal()
	if r.IntN(2) == 0 {
		// Reports racing the link-ups: flooded while ranges are compared.
		c.RunFor(time.Duration(r.IntN(30)) * time.Millisecond)
		report(5, names, r.Float64()/2)
	}
	if _, ok := c.Quiesce(time.Minute); !ok {
		t.Fatal("herd did not quiesce after the heal")
	}
	if ok, diff := c.Converged(); !ok {
		t.Errorf("tables differ:\n%s", diff)
	}
	checkTables(t, c, best.sorted())
	var syncLines, refused uint64
	for _, n := range names {
		st := c.Node(n).Stats()
		syncLines += st.SyncLines
		refused += st.SyncRefused
	}
	if refused != 0 {
		t.Errorf("%d sync lines refused", refused)
	}
	t.Logf("seed %d: %d servers, %d clients, %d in the tables; %d sync lines, %d AT lines between servers",
		seed, len(names), nClients, len(best), syncLines, c.Sim().Stats().PeerRecords)
}
