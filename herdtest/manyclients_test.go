package herdtest

// Many clients (issue 12): ten thousand distinct clients reported at
// random servers while partitions come and go, links reset and servers
// crash and restart empty. Links owe each client at most once and are
// never dropped for falling behind; a restarted server refills through
// the link-up reconciliation. After the final heal every table must hold
// exactly the newest accepted report of every client.

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/proxyherd/herd"
)

const (
	manyClients = 10_000 // distinct client IDs of the many-clients scenario
	manyRounds  = 6      // rounds of faults and reports after the first report of every client
	manyPerRnd  = 800    // reports per round
)

// manyOptions picks the herd from the seed: the 2018 herd or a random one
// of 4-6 servers (sparse: every link multiplies the AT lines of ten
// thousand clients, and the race detector's cost with them).
var manyTraceOut io.Writer

func manyOptions(seed uint64) Options {
	r := newRand(seed, "many options")
	topo := herd.Presets["2018"]
	if r.IntN(2) == 0 {
		topo = RandomTopology(r, 4+r.IntN(3), 2.2)
	}
	return Options{
		Seed:      seed,
		Topology:  topo,
		MaxEvents: 2_000_000,
		Trace:     manyTraceOut,
		Configure: func(cfg *herd.Config) {
			// Every record of a link-up waits as a line, so that what a
			// link sends never depends on when its writer runs.
			cfg.PeerQueue = 1 << 20
			cfg.RedialMin = 20 * time.Millisecond
			cfg.RedialMax = time.Second
		},
	}
}

// manyRun is one run of the many-clients scenario.
type manyRun struct {
	t    *testing.T
	c    *Cluster
	best lww
	log  []string
	slow uint64 // PeerSlow of nodes that crashed

	reports, fresh, faults, crashes int
}

func (m *manyRun) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.log = append(m.log, m.c.Sim().Elapsed().String()+" "+msg)
	m.c.Sim().Note("%s", msg)
}

// manyTime returns a client time near the epoch that moves forward with
// the round, so that a report can be newer or older than the one before;
// few fractions, so that ties between servers are common.
func manyTime(r *rand.Rand, round int) string {
	sec := DefaultEpoch.Unix() - 300 + int64(round*10+r.IntN(40))
	return strconv.FormatInt(sec, 10) + []string{"", ".5", ".123456789", ".123456789999"}[r.IntN(4)]
}

// report sends the given clients' reports to random running servers.
func (m *manyRun) report(clients []int, round int) {
	c, r := m.c, m.c.Sim().Rand("many reports "+strconv.Itoa(round))
	names := c.Names()
	batches := make([][]iamatReq, len(names))
	for _, i := range clients {
		var s int
		for {
			s = r.IntN(len(names))
			if c.Up(names[s]) {
				break
			}
		}
		batches[s] = append(batches[s], iamatReq{clientName(i), scenarioPlaces[r.IntN(len(scenarioPlaces))], manyTime(r, round)})
	}
	m.note("round %d: %d reports", round, len(clients))
	m.reports += len(clients)
	m.fresh += bulkReport(m.t, c, names, batches, m.best)
}

// crash crashes server, keeping its PeerSlow count.
func (m *manyRun) crash(server string) {
	m.slow += m.c.Node(server).Stats().PeerSlow
	m.crashes++
	m.note("crash %s", server)
	m.c.Crash(server)
}

// fault applies one random fault.
func (m *manyRun) fault(r *rand.Rand) {
	c := m.c
	names := c.Names()
	m.faults++
	switch r.IntN(6) {
	case 0, 1:
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		group := names[:1+r.IntN(len(names)-1)]
		m.note("partition %v", group)
		c.Partition(group...)
	case 2:
		m.note("heal")
		c.Heal()
	case 3:
		m.note("reset links")
		c.ResetLinks()
	case 4:
		l := c.Topology().Links[r.IntN(len(c.Topology().Links))]
		m.note("cut %s %s", l[0], l[1])
		c.Sim().Cut(l[0], l[1])
	default:
		// A crash and an immediate restart, when no report is lost by it.
		live := c.Live()
		name := live[r.IntN(len(live))]
		if len(live) > 1 && holdsElsewhere(c, name) {
			m.crash(name)
			m.note("restart %s", name)
			c.Restart(name)
		}
	}
}

// runManyClients runs seed's many-clients scenario in the current bubble,
// checks the tables and returns the trace hash:
//
//  1. every link up; every client reported once at a random server;
//  2. manyRounds rounds, each of one or two faults (partitions, heals,
//     link resets, cut links, crash and restart), manyPerRnd reports of
//     random clients at random running servers and a random run of up to
//     half a second; in one round the herd is healed and quiesced, one
//     server crashes, and it restarts (empty) a few rounds later, maybe
//     behind a partition;
//  3. heal, restart, quiesce, and compare every table with the newest
//     accepted report of every client.
func runManyClients(t *testing.T, seed uint64) string {
	c := NewCluster(t, manyOptions(seed))
	m := &manyRun{t: t, c: c, best: make(lww)}
	defer func() {
		if t.Failed() {
			t.Logf("seed %d: %d reports (%d fresh), %d faults, %d crashes; last steps:\n  %s\ntrace tail:\n  %s",
				seed, m.reports, m.fresh, m.faults, m.crashes,
				strings.Join(m.log[max(0, len(m.log)-20):], "\n  "),
				strings.Join(c.Sim().Trace().Tail(), "\n  "))
		}
	}()
	r := c.Sim().Rand("many")
	if _, ok := c.Quiesce(time.Minute); !ok {
		t.Fatal("links did not come up")
	}
	m.report(r.Perm(manyClients), 0)

	crashRound := 1 + r.IntN(manyRounds/2)
	restartRound := crashRound + 1 + r.IntN(manyRounds/2-1)
	var down string
	for round := 1; round <= manyRounds; round++ {
		switch round {
		case crashRound:
			// A server that crashes while the herd holds every client,
			// and comes back empty later.
			m.note("heal")
			c.Heal()
			if _, ok := c.Quiesce(5 * time.Minute); !ok {
				t.Fatal("herd did not quiesce")
			}
			live := c.Live()
			down = live[r.IntN(len(live))]
			if !holdsElsewhere(c, down) {
				t.Fatalf("after quiescing, %s holds a record no other server holds", down)
			}
			m.crash(down)
		case restartRound:
			if !c.Up(down) {
				m.note("restart %s", down)
				c.Restart(down)
			}
		}
		for range 1 + r.IntN(2) {
			m.fault(r)
		}
		m.report(r.Perm(manyClients)[:manyPerRnd], round)
		d := time.Duration(r.IntN(500)) * time.Millisecond
		m.note("run %v", d)
		c.RunFor(d)
	}

	m.note("finish")
	c.Heal()
	for _, n := range c.Names() {
		if !c.Up(n) {
			c.Restart(n)
		}
	}
	if d, ok := c.Quiesce(5 * time.Minute); !ok {
		t.Fatalf("herd did not quiesce in %v", d)
	}
	if len(m.best) != manyClients {
		t.Fatalf("%d clients accepted, want %d", len(m.best), manyClients)
	}
	checkTables(t, c, m.best.sorted())
	if slow := m.slow + peerSlow(c); slow != 0 {
		t.Errorf("%d links dropped for falling behind (PeerSlow)", slow)
	}
	st := c.Sim().Stats()
	t.Logf("seed %d: %d servers, %d clients, %d reports (%d fresh), %d faults, %d crashes; %d events, %d conns, %d resets, %d AT lines between servers, %v virtual",
		seed, len(c.Names()), manyClients, m.reports, m.fresh, m.faults, m.crashes, st.Events, st.Conns, st.Resets, st.PeerRecords, c.Sim().Elapsed())
	return c.Sim().Trace().Sum()
}

// TestManyClients runs the many-clients scenario for 4 seeds
// (HERD_SIM_SEEDS for more, HERD_SIM_SEED to replay one).
func TestManyClients(t *testing.T) {
	forSeeds(t, 4, func(t *testing.T, seed uint64) { runManyClients(t, seed) })
}

// TestManyClientsDeterminism checks that the many-clients scenario gives
// one trace per seed, with GOMAXPROCS 1 and 8: link writers start only
// once the lines that gave them work are all handled (Node.flushWakes), so
// what a step queues on a link does not depend on the scheduler, even
// when a link-up makes thousands of lines. With HERD_TRACE_DIR set, each
// run's trace is written there (trace1.txt, trace8.txt), for diffing a
// failing seed.
func TestManyClientsDeterminism(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, seed := range hostileSeeds(t, 1) {
		var first string
		for i, procs := range []int{1, 8} {
			runtime.GOMAXPROCS(procs)
			if d := os.Getenv("HERD_TRACE_DIR"); d != "" {
				f, _ := os.Create(fmt.Sprintf("%s/trace%d.txt", d, procs))
				manyTraceOut = f
				defer f.Close()
			}
			var sum string
			t.Run(fmt.Sprintf("seed=%d/procs=%d", seed, procs), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { sum = runManyClients(t, seed) })
			})
			switch {
			case sum == "":
				t.Fatalf("seed %d: run %d failed", seed, i)
			case first == "":
				first = sum
				t.Logf("seed %d: trace %s", seed, sum)
			case sum != first:
				t.Fatalf("seed %d: GOMAXPROCS=%d gave trace %s, GOMAXPROCS=1 gave %s\nreplay: HERD_SIM_SEED=%d go test ./herdtest -run '^TestManyClientsDeterminism$' -v", seed, procs, sum, first, seed)
			}
		}
	}
}
