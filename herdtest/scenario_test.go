package herdtest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/proxyherd/herd"
)

// scenario is one randomised run: clients reporting to random servers with
// random times (ties, stale reports, extra fraction digits), WHATSATs,
// while links reset, partitions come and go and servers crash and
// restart; then a final heal and restart of everything, and the checks.
//
// What must survive: every report a server accepted (its reply was the
// new AT line). A report held only by a server that crashes is lost
// legitimately, so the scenario only crashes a server when every record
// it holds is held, equal or newer, by another running server: then, by
// induction, some running server always holds each accepted report or a
// newer one, and after the final heal every table must equal the newest
// accepted report of every client (by herd.Record.Compare).
type scenario struct {
	t    *testing.T
	c    *Cluster
	r    *rand.Rand
	best map[string]herd.Record // client -> newest accepted report
	log  []string               // what the scenario did, for failures

	reports, accepted, whatsats, faults int
}

var (
	scenarioClients = []string{"kiwi.cs.ucla.edu", "gopher", "c1", "c2", "δ-client", "x"}
	scenarioPlaces  = []string{"+34.068930-118.445127", "-33.8688+151.2093", "+0.0+0.0", "+90.0-180.0", "-12.5+45.25"}
	scenarioRadii   = []string{"10", "0.5", "50", "1.25"}
)

// tinyQueue makes every node's PeerQueue 1, so that neighbours are cut
// as too slow all the time (TestConvergenceTinyQueues).
var tinyQueue bool

// scenarioOptions picks the herd and its settings from the seed.
func scenarioOptions(seed uint64) Options {
	r := newRand(seed, "scenario options")
	var topo herd.Topology
	switch r.IntN(4) {
	case 0:
		topo = herd.Presets["2018"]
	case 1:
		years := []string{"2016", "2020", "2021", "2022", "2023"}
		topo = herd.Presets[years[r.IntN(len(years))]]
	case 2:
		topo = RingTopology(4 + r.IntN(5))
	default:
		topo = RandomTopology(r, 5+r.IntN(5), 2+r.Float64()*2)
	}
	lat := Latency{Min: time.Duration(r.IntN(5)+1) * time.Millisecond}
	if r.IntN(4) == 0 {
		lat.Max = lat.Min // many events at the same instant: keys decide
	} else {
		lat.Max = lat.Min + time.Duration(r.IntN(30)+1)*time.Millisecond
	}
	var secret []byte
	if r.IntN(2) == 0 {
		secret = []byte("herd secret " + strconv.FormatUint(seed, 10))
	}
	return Options{
		MaxEvents:   200_000,
		Seed:        seed,
		Topology:    topo,
		Latency:     lat,
		SplitWrites: r.IntN(2) == 0,
		Secret:      secret,
		Places: PlacesOptions{
			Latency:     Latency{Min: 10 * time.Millisecond, Max: 250 * time.Millisecond},
			FailureRate: 0.2,
		},
		Configure: func(cfg *herd.Config) {
			cfg.RedialMin = 20 * time.Millisecond
			cfg.RedialMax = time.Second
			cfg.HandshakeTimeout = 2 * time.Second
			cfg.PlacesTimeout = 200 * time.Millisecond
			if tinyQueue {
				cfg.PeerQueue = 1
			}
		},
	}
}

// runScenario runs seed's scenario in the current bubble and returns the
// trace hash. With check, it fails t on any wrong reply or on a herd that
// does not converge to the accepted reports.
func runScenario(t *testing.T, seed uint64, ops int) string {
	c := NewCluster(t, scenarioOptions(seed))
	sc := &scenario{t: t, c: c, r: c.Sim().Rand("scenario"), best: make(map[string]herd.Record)}
	defer func() {
		if t.Failed() {
			t.Logf("seed %d: %d reports (%d accepted), %d whatsats, %d faults; last steps:\n  %s\ntrace tail:\n  %s",
				seed, sc.reports, sc.accepted, sc.whatsats, sc.faults,
				strings.Join(sc.log[max(0, len(sc.log)-20):], "\n  "),
				strings.Join(c.Sim().Trace().Tail(), "\n  "))
		}
	}()
	// Some links are slow, so records overtake each other on the way.
	names := c.Names()
	for range sc.r.IntN(3) {
		a, b := sc.pick(names), sc.pick(names)
		if a != b {
			sc.note("slow link %s-%s", a, b)
			c.Sim().SetLatency(a, b, Latency{Min: 50 * time.Millisecond, Max: 800 * time.Millisecond})
		}
	}
	c.Quiesce(time.Minute)
	for range ops {
		sc.op()
		if t.Failed() {
			return ""
		}
	}
	sc.finish()
	st := c.Sim().Stats()
	var slow uint64
	for _, n := range c.Names() {
		slow += c.Node(n).Stats().PeerSlow
	}
	t.Logf("seed %d: %d servers, %d reports (%d accepted), %d whatsats, %d faults; %d events, %d conns, %d resets, %d slow-peer drops, %v virtual",
		seed, len(c.Names()), sc.reports, sc.accepted, sc.whatsats, sc.faults, st.Events, st.Conns, st.Resets, slow, c.Sim().Elapsed())
	return c.Sim().Trace().Sum()
}

func (sc *scenario) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	sc.log = append(sc.log, sc.c.Sim().Elapsed().String()+" "+msg)
	sc.c.Sim().Note("%s", msg)
}

func (sc *scenario) pick(list []string) string { return list[sc.r.IntN(len(list))] }

// clientTime returns a time near the epoch: whole seconds or with a
// fraction, sometimes with more than nine digits (ties in order, not in
// bytes), often equal to an earlier one.
func (sc *scenario) clientTime() string {
	sec := DefaultEpoch.Unix() + int64(sc.r.IntN(7)) - 3
	frac := []string{"", ".0", ".5", ".918963997", ".918963997123", ".999999999", ".000000001"}[sc.r.IntN(7)]
	return strconv.FormatInt(sec, 10) + frac
}

func (sc *scenario) op() {
	c, r := sc.c, sc.r
	switch w := r.IntN(20); {
	case w < 7:
		sc.report(sc.pick(c.Names()))
	case w < 8:
		sc.racingReports()
	case w < 10:
		sc.whatsat()
	case w < 13:
		d := time.Duration(r.IntN(300)) * time.Millisecond
		if r.IntN(4) == 0 {
			d = time.Duration(r.IntN(3000)) * time.Millisecond
		}
		sc.note("run %v", d)
		c.RunFor(d)
	case w < 14:
		sc.faults++
		sc.note("reset links")
		c.ResetLinks()
	case w < 16:
		sc.faults++
		if c.Sim().Partitioned() && r.IntN(2) == 0 {
			sc.note("heal")
			c.Heal()
			return
		}
		names := c.Names()
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		group := names[:1+r.IntN(len(names)-1)]
		sc.note("partition %v", group)
		c.Partition(group...)
	case w < 17:
		sc.crash()
	case w < 18:
		l := c.Topology().Links[r.IntN(len(c.Topology().Links))]
		sc.faults++
		if r.IntN(2) == 0 {
			sc.note("cut %s %s", l[0], l[1])
			c.Sim().Cut(l[0], l[1])
		} else {
			// A crash and an immediate restart: the neighbours may see
			// the new incarnation before the old links' end.
			if name := l[r.IntN(2)]; c.Up(name) && sc.safeToCrash(name) {
				sc.note("crash and restart %s", name)
				c.Crash(name)
				c.Restart(name)
			}
		}
	default:
		var down []string
		for _, n := range c.Names() {
			if !c.Up(n) {
				down = append(down, n)
			}
		}
		if len(down) > 0 {
			sc.faults++
			n := sc.pick(down)
			sc.note("restart %s", n)
			c.Restart(n)
		}
	}
}

// report sends one IAMAT and checks the reply exactly.
func (sc *scenario) report(server string) {
	client, loc, tm := sc.pick(scenarioClients), sc.pick(scenarioPlaces), sc.clientTime()
	sc.note("IAMAT %s %s %s at %s", client, loc, tm, server)
	rep, err := sc.c.Report(server, client, loc, tm)
	sc.checkReport(server, client, loc, tm, rep, err)
}

func (sc *scenario) checkReport(server, client, loc, tm string, rep Report, err error) {
	t := sc.t
	if !sc.c.Up(server) {
		if err == nil {
			t.Errorf("IAMAT to crashed %s answered %q", server, rep.Reply)
		}
		return
	}
	if err != nil {
		t.Errorf("IAMAT %s %s %s to %s: %v (got %q)", client, loc, tm, server, err, rep.Reply)
		return
	}
	sc.reports++
	want, accepted := rep.IAMAT(server, client, loc, tm)
	if rep.Reply != want {
		t.Errorf("IAMAT %s %s %s to %s at %v:\n got %q\nwant %q", client, loc, tm, server, rep.At, rep.Reply, want)
		return
	}
	if accepted {
		sc.accepted++
		rec, _ := RecordOf(strings.TrimSuffix(want, "\n"))
		if old, ok := sc.best[client]; !ok || rec.Compare(&old) > 0 {
			sc.best[client] = rec
		}
	}
}

// racingReports sends reports of one client to two servers at once, so
// they cross in the herd.
func (sc *scenario) racingReports() {
	c := sc.c
	live := c.Live()
	if len(live) < 2 {
		return
	}
	client := sc.pick(scenarioClients)
	type pending struct {
		server, loc, tm string
		cc              *ClientConn
		a               *Arrival
	}
	var ps []pending
	for range 2 {
		p := pending{server: sc.pick(live), loc: sc.pick(scenarioPlaces), tm: sc.clientTime()}
		sc.note("racing IAMAT %s %s %s at %s", client, p.loc, p.tm, p.server)
		cc, err := c.Connect(client, p.server)
		if err != nil {
			sc.t.Errorf("connect to %s: %v", p.server, err)
			return
		}
		p.cc, p.a = cc, cc.Watch(client)
		if err := cc.Write("IAMAT " + client + " " + p.loc + " " + p.tm + "\n"); err != nil {
			sc.t.Errorf("write: %v", err)
		}
		cc.CloseWrite()
		ps = append(ps, p)
	}
	for _, p := range ps {
		reply, err := p.cc.ReadAll()
		p.cc.Close()
		sc.checkReport(p.server, client, p.loc, p.tm, Report{Reply: reply, Arrival: *p.a}, err)
	}
}

// whatsat sends a WHATSAT and checks the reply: exact for unknown clients,
// a bound of 0 and answered queries; the provider's failure document
// otherwise.
func (sc *scenario) whatsat() {
	c, t := sc.c, sc.t
	live := c.Live()
	if len(live) == 0 {
		return
	}
	server, client, radius, bound := sc.pick(live), sc.pick(scenarioClients), sc.pick(scenarioRadii), sc.r.IntN(4)
	line := fmt.Sprintf("WHATSAT %s %s %d", client, radius, bound)
	sc.note("%s at %s", line, server)
	calls := len(c.Places().Calls())
	rep, err := c.Send(client, server, line, client)
	if err != nil {
		t.Errorf("%s to %s: %v (got %q)", line, server, err, rep.Reply)
		return
	}
	sc.whatsats++
	if !rep.Had {
		if want := "? " + line + "\n"; rep.Reply != want {
			t.Errorf("%s to %s (client unknown there): got %q, want %q", line, server, rep.Reply, want)
		}
		return
	}
	if bound == 0 {
		if want := WhatsatReply(rep.Before.Line, []byte(EmptyPlaces)); rep.Reply != want {
			t.Errorf("%s to %s: got %q, want %q", line, server, rep.Reply, want)
		}
		return
	}
	all := c.Places().Calls()
	if len(all) != calls+1 {
		t.Errorf("%s to %s: %d provider calls, want 1", line, server, len(all)-calls)
		return
	}
	var call PlacesCall
	for _, pc := range all {
		if pc.Server == server && pc.At.Equal(rep.At) {
			call = pc
		}
	}
	head := rep.Before.Line + "\n"
	switch {
	case !strings.HasPrefix(rep.Reply, head) || !strings.HasSuffix(rep.Reply, "}\n\n"):
		t.Errorf("%s to %s: reply %q is not %q + JSON + blank line", line, server, rep.Reply, head)
	case call.Err == nil:
		q := call.Query
		if want := WhatsatReply(rep.Before.Line, PlacesDocument(q)); rep.Reply != want {
			t.Errorf("%s to %s: got %q, want %q", line, server, rep.Reply, want)
		}
		lat, lon, _ := splitLocation(rep.Before.Location)
		r, _ := strconv.ParseFloat(radius, 64)
		if q.Lat != lat || q.Lon != lon || q.RadiusMeters != r*1000 || q.MaxResults != bound {
			t.Errorf("%s to %s: provider asked %+v", line, server, q)
		}
	default:
		if !strings.Contains(rep.Reply, `"UNKNOWN_ERROR"`) {
			t.Errorf("%s to %s: provider failed (%v) but reply is %q", line, server, call.Err, rep.Reply)
		}
	}
}

// splitLocation parses an ISO 6709 location as herd does.
func splitLocation(loc string) (lat, lon float64, ok bool) {
	i := strings.IndexAny(loc[1:], "+-") + 1
	if i <= 0 {
		return 0, 0, false
	}
	lat, err1 := strconv.ParseFloat(loc[:i], 64)
	lon, err2 := strconv.ParseFloat(loc[i:], 64)
	return lat, lon, err1 == nil && err2 == nil
}

// crash crashes a random running server whose every record is also held,
// equal or newer, by another running server.
func (sc *scenario) crash() {
	c := sc.c
	live := c.Live()
	sc.r.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	for _, name := range live {
		if sc.safeToCrash(name) {
			sc.faults++
			sc.note("crash %s", name)
			c.Crash(name)
			return
		}
	}
	sc.note("no server safe to crash")
}

func (sc *scenario) safeToCrash(name string) bool { return holdsElsewhere(sc.c, name) }

// finish heals everything, restarts every crashed server, waits for the
// herd to quiesce and checks every table against the accepted reports.
func (sc *scenario) finish() {
	c, t := sc.c, sc.t
	sc.note("finish")
	c.Heal()
	for _, n := range c.Names() {
		if !c.Up(n) {
			c.Restart(n)
		}
	}
	if d, ok := c.Quiesce(5 * time.Minute); !ok {
		var links []string
		for _, n := range c.Names() {
			links = append(links, fmt.Sprintf("%s%v", n, c.Node(n).Links()))
		}
		t.Errorf("herd did not quiesce in %v; links: %v", d, links)
		return
	}
	want := make([]string, 0, len(sc.best))
	for _, r := range sc.best {
		want = append(want, r.Line)
	}
	slices.Sort(want) // by client: lines start "AT server skew client", so sort by record client below
	slices.SortFunc(want, func(a, b string) int {
		ra, _ := RecordOf(a)
		rb, _ := RecordOf(b)
		return strings.Compare(ra.Client, rb.Client)
	})
	for _, n := range c.Names() {
		var got []string
		for _, r := range c.Node(n).Records() {
			got = append(got, r.Line)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s's table differs from the accepted reports:\n got %q\nwant %q", n, got, want)
		}
	}
	if ok, diff := c.Converged(); !ok {
		t.Errorf("not converged:\n%s", diff)
	}
}
