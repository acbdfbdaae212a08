package bench

// faults.go: "herd bench faults", throughput and convergence of a herd
// of separate "herd serve" processes while a seeded schedule of faults
// (SIGKILL, SIGSTOP, SIGTERM, each followed by a restart or SIGCONT)
// hits every server but the loaded one. It starts the herd (herdproc.go),
// plans the faults (faultplan.go), runs the closed- or open-loop load of
// "bench load" (load.go) at one server and applies the faults during its
// window (faultrun.go); then it brings every server back and measures how
// long the herd takes to converge: every server's Stats.Digest and
// Stats.Clients equal.

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/proxyherd/herd"
)

// faultsOptions are the flags of faults beyond the load's.
type faultsOptions struct {
	bin             string
	preset          string
	at              string // the loaded server
	port, httpPort  int
	dir, stateDir   string
	seed            uint64
	faults          int
	pause           time.Duration
	kinds           []faultKind
	startTimeout    time.Duration
	convergeTimeout time.Duration
}

// faultsReport is what faults prints.
type faultsReport struct {
	Seed    uint64          `json:"seed"`
	Dir     string          `json:"dir"`
	Loaded  string          `json:"loaded"`
	Planned []fault         `json:"planned"`
	Applied []*appliedFault `json:"applied"`
	Load    *loadResult     `json:"load"`
	// Unanswered counts the load's requests without a reply: none is
	// explained by a fault, since the loaded server is never faulted.
	Unanswered uint64 `json:"unanswered"`
	Converged  bool   `json:"converged"`
	// ConvergeTime runs from when every server was running again
	// (restarted and listening, or continued) to when every server had
	// the same Digest and Clients; BackAfter from the load's end to then.
	ConvergeTime time.Duration        `json:"converge_ns"`
	BackAfter    time.Duration        `json:"back_after_load_ns"`
	Servers      []faultsServerReport `json:"servers"`
	// UnexpectedDrops counts link drops between two servers neither of
	// which was faulted.
	UnexpectedDrops uint64 `json:"unexpected_link_drops"`
	Error           string `json:"error,omitempty"`
}

// faultsServerReport is one server at the end of a run.
type faultsServerReport struct {
	Name     string `json:"name"`
	Addr     string `json:"addr"`
	HTTP     string `json:"http"`
	Faults   int    `json:"faults"`
	Starts   int    `json:"starts"`
	Clients  int64  `json:"clients"`
	Digest   string `json:"digest"` // Stats.Digest in hex
	LinksUp  int64  `json:"links_up"`
	Links    int    `json:"links"`
	Drops    uint64 `json:"link_drops"` // Stats.LinkDrops since the herd linked up, summed over its processes
	StatsErr string `json:"stats_error,omitempty"`
}

// faultsFlags declares the flags of faults: the load's, and those of the
// herd and its faults.
func faultsFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	var o loadOptions
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured `window`, during which the faults happen")
	loadFlagSet(fs, &o, "")
	var fo faultsOptions
	fs.StringVar(&fo.bin, "herd", "", "`path` of the herd command that runs the servers (default: this program)")
	fs.StringVar(&fo.preset, "preset", "2018", "the herd: `YEAR` of herd serve -preset")
	fs.StringVar(&fo.at, "at", "", "the server under load, never faulted (default: the preset's second server, Hands in 2018)")
	fs.IntVar(&fo.port, "port", 12000, "the first server's `port`; the others follow in the preset's order")
	fs.IntVar(&fo.httpPort, "http-port", 0, "the first server's HTTP `port` (herd serve -http); the others follow (default: after the servers' ports)")
	fs.StringVar(&fo.dir, "dir", "", "`directory` for the servers' output, NAME.log (default: a new temporary directory, kept)")
	fs.StringVar(&fo.stateDir, "state-dir", "", "give each server the state file `DIR`/NAME.state, so that restarted servers start from it")
	fs.Uint64Var(&fo.seed, "seed", 0, "seed of the fault schedule (default: random; always printed, so that a run can be replayed)")
	fs.IntVar(&fo.faults, "faults", 4, "faults to inject during the window")
	fs.DurationVar(&fo.pause, "pause", time.Second, "mean time a faulted server stays out; each pause is uniform in [D/2, 3D/2)")
	kinds := fs.String("kinds", "kill,stop,term", "the kinds of fault drawn from: kill (SIGKILL, restart), stop (SIGSTOP, SIGCONT), term (SIGTERM, restart)")
	fs.DurationVar(&fo.startTimeout, "start-timeout", 30*time.Second, "bound on the servers starting and linking up, and on a restarted server listening")
	fs.DurationVar(&fo.convergeTimeout, "converge-timeout", 60*time.Second, "bound on the herd converging after the load")
	asJSON := fs.Bool("json", false, "print the report as JSON (the faults as they happen go to stderr)")
	return func(ctx context.Context, e *env, _ []string) int {
		if msg := o.check(""); msg != "" {
			return benchUsage(e, "faults", "%s", msg)
		}
		t, ok := herd.Presets[fo.preset]
		if !ok {
			return benchUsage(e, "faults", "-preset %q: not a preset", fo.preset)
		}
		if fo.at == "" {
			fo.at = t.Servers[min(1, len(t.Servers)-1)]
		}
		var err error
		fo.kinds, err = parseKinds(*kinds)
		switch {
		case err != nil:
			return benchUsage(e, "faults", "-kinds %q: %v", *kinds, err)
		case !slices.Contains(t.Servers, fo.at):
			return benchUsage(e, "faults", "-at %q: not a server of the %s herd (%s)", fo.at, fo.preset, strings.Join(t.Servers, ", "))
		case fo.faults < 0 || fo.faults > 100000:
			return benchUsage(e, "faults", "-faults %d: want 0 to 100000", fo.faults)
		case fo.pause <= 0:
			return benchUsage(e, "faults", "-pause %v: want more than 0", fo.pause)
		case fo.startTimeout <= 0 || fo.convergeTimeout <= 0:
			return benchUsage(e, "faults", "-start-timeout and -converge-timeout: want more than 0")
		}
		if fo.httpPort == 0 {
			fo.httpPort = fo.port + len(t.Servers)
		}
		for _, p := range []struct {
			name string
			v    int
		}{{"port", fo.port}, {"http-port", fo.httpPort}} {
			if p.v < 1 || p.v+len(t.Servers)-1 > 65535 {
				return benchUsage(e, "faults", "-%s %d: want 1 to %d, so that the %d servers get ports", p.name, p.v, 65536-len(t.Servers), len(t.Servers))
			}
		}
		if fo.seed == 0 {
			fo.seed = randomSeed()
		}
		if fo.bin == "" {
			if fo.bin, err = os.Executable(); err != nil {
				fmt.Fprintf(e.stderr, "herd bench faults: the herd command: %v (give -herd)\n", err)
				return exitFailure
			}
		}
		if fo.dir == "" {
			fo.dir, err = os.MkdirTemp("", "herd-faults-")
		} else {
			err = os.MkdirAll(fo.dir, 0o755)
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "herd bench faults: %v\n", err)
			return exitFailure
		}
		if o.expect == "auto" {
			o.expect = "at"
		}
		progress := e.stdout
		if *asJSON {
			progress = e.stderr
		}
		rep, err := runFaults(ctx, o, fo, progress)
		if err != nil {
			fmt.Fprintf(e.stderr, "herd bench faults: %v\n", err)
		}
		if rep == nil {
			return exitFailure
		}
		if *asJSON {
			writeJSON(e, rep)
		} else {
			printFaults(e.stdout, rep)
		}
		if !rep.Converged || rep.Load.Errors > 0 || rep.Error != "" {
			return exitFailure
		}
		return exitOK
	}
}

// parseKinds parses -kinds: fault kinds, comma-separated.
func parseKinds(s string) ([]faultKind, error) {
	var kinds []faultKind
	for k := range strings.SplitSeq(s, ",") {
		k := faultKind(strings.TrimSpace(k))
		if !slices.Contains(faultKinds, k) {
			return nil, fmt.Errorf("%q is not kill, stop or term", k)
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}

// randomSeed returns a random seed other than 0 (which means "pick one").
func randomSeed() uint64 {
	var b [8]byte
	for {
		if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
			return uint64(time.Now().UnixNano())
		}
		if s := binary.LittleEndian.Uint64(b[:]) >> 1; s != 0 { // 63 bits: -seed takes it back as typed
			return s
		}
	}
}

// runFaults starts the herd, runs the load with the faults, and measures
// convergence. A nil report comes with the error that prevented any
// measurement; a report with Error set is a run that went wrong after the
// load started.
func runFaults(ctx context.Context, o loadOptions, fo faultsOptions, progress io.Writer) (*faultsReport, error) {
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(progress, format+"\n", args...)
	}
	var secret [32]byte
	if _, err := io.ReadFull(rand.Reader, secret[:]); err != nil {
		return nil, err
	}
	h, err := newHerdProcs(fo.bin, fo.preset, fo.port, fo.httpPort, fo.dir, fo.stateDir, hex.EncodeToString(secret[:]))
	if err != nil {
		return nil, err
	}
	defer h.stopAll()
	loaded := h.server(fo.at)
	o.addr = loaded.addr

	plan := planFaults(faultPlan{seed: fo.seed, n: fo.faults, window: o.duration, servers: serverNames(h), loaded: fo.at,
		kinds: fo.kinds, pause: fo.pause, margin: faultMargin})
	rep := &faultsReport{Seed: fo.seed, Dir: fo.dir, Loaded: fo.at, Planned: plan}
	say("herd bench faults: seed %d (replay with -seed %d); servers' output in %s", fo.seed, fo.seed, fo.dir)
	if len(plan) < fo.faults {
		say("%d of %d faults fit in the window", len(plan), fo.faults)
	}
	t0 := time.Now()
	if err := h.startAll(ctx, fo.startTimeout); err != nil {
		return nil, err
	}
	if err := h.baseline(ctx); err != nil {
		return nil, err
	}
	for _, s := range h.servers {
		say("  %-8s %s  http %s  pid %d", s.name, s.addr, s.http, s.pid())
	}
	say("herd of %d linked up in %s; load at %s %s; %d faults during the %s window",
		len(h.servers), fmtDur(time.Since(t0)), fo.at, o.addr, len(plan), o.duration)

	r := newFaultRunner(h, fo.startTimeout, say)
	o.hooks.windowStart = func() { r.start(ctx, plan) }
	res, err := runLoad(ctx, o)
	loadEnd := time.Now()
	rep.Applied = r.finish()
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	rep.Load = res
	rep.Unanswered = res.Sent - min(res.Answered, res.Sent)
	for _, a := range rep.Applied {
		if a.Err != "" && rep.Error == "" {
			rep.Error = fmt.Sprintf("%s %s: %s", a.Kind, a.Server, a.Err)
		}
	}
	allBack := time.Now()
	rep.BackAfter = allBack.Sub(loadEnd)
	say("load over; every server running %s later; waiting for the herd to converge", fmtDur(rep.BackAfter))

	took, stats, errs, err := h.converge(ctx, fo.convergeTimeout)
	rep.ConvergeTime = took
	rep.Converged = err == nil
	if err != nil && !errors.Is(err, errNotConverged) && rep.Error == "" {
		rep.Error = err.Error()
	}
	rep.Servers, rep.UnexpectedDrops = faultsServers(ctx, h, stats, errs, rep.Applied)
	return rep, nil
}

// faultMargin is how long after its pause a server counts as out in a
// plan: about what a restarted herd serve takes to listen.
const faultMargin = 200 * time.Millisecond

// serverNames returns the names of h's servers, in the preset's order.
func serverNames(h *herdProcs) []string {
	var names []string
	for _, s := range h.servers {
		names = append(names, s.name)
	}
	return names
}

// faultsServers reports each server from its last Stats, and counts the
// link drops between servers that were never faulted since the herd
// linked up, from their status pages.
func faultsServers(ctx context.Context, h *herdProcs, stats []herd.Stats, errs []error, applied []*appliedFault) ([]faultsServerReport, uint64) {
	faulted := map[string]int{}
	for _, a := range applied {
		faulted[a.Server]++
	}
	var out []faultsServerReport
	var unexpected uint64
	for i, s := range h.servers {
		st := stats[i]
		s.mu.Lock()
		starts, linkBase := s.starts, s.linkBase
		s.mu.Unlock()
		sr := faultsServerReport{Name: s.name, Addr: s.addr, HTTP: s.http, Faults: faulted[s.name], Starts: starts,
			Clients: st.Clients, Digest: fmt.Sprintf("%016x", st.Digest), LinksUp: st.LinksUp, Links: s.neighbours,
			Drops: s.runDrops(st.LinkDrops)}
		if errs[i] != nil {
			sr.StatsErr = errs[i].Error()
		}
		if faulted[s.name] == 0 {
			links, err := h.links(ctx, s)
			if err != nil && sr.StatsErr == "" {
				sr.StatsErr = err.Error()
			}
			for _, l := range links {
				if faulted[l.Peer] > 0 || l.Peer < s.name { // counted from the peer's side
					continue
				}
				unexpected += l.linkDrops() - min(linkBase[l.Peer], l.linkDrops())
			}
		}
		out = append(out, sr)
	}
	return out, unexpected
}

// printFaults prints rep after the progress lines.
func printFaults(w io.Writer, rep *faultsReport) {
	printLoad(w, "load at "+rep.Loaded, rep.Load)
	fmt.Fprintf(w, "requests unanswered: %d\n", rep.Unanswered)
	var kinds []string
	for _, k := range faultKinds {
		n := 0
		for _, a := range rep.Applied {
			if a.Kind == k {
				n++
			}
		}
		if n > 0 {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
	}
	fmt.Fprintf(w, "faults applied: %d of %d planned (%s); seed %d\n", len(rep.Applied), len(rep.Planned), strings.Join(kinds, ", "), rep.Seed)
	if rep.Converged {
		fmt.Fprintf(w, "converged %s after every server was running again (%s after the load)\n",
			fmtDur(rep.ConvergeTime), fmtDur(rep.BackAfter+rep.ConvergeTime))
	} else {
		fmt.Fprintf(w, "NOT converged after %s\n", fmtDur(rep.ConvergeTime))
	}
	for _, s := range rep.Servers {
		fmt.Fprintf(w, "  %-8s clients %d  digest %s  links %d/%d  link drops %d  faults %d  starts %d",
			s.Name, s.Clients, s.Digest, s.LinksUp, s.Links, s.Drops, s.Faults, s.Starts)
		if s.StatsErr != "" {
			fmt.Fprintf(w, "  (%s)", s.StatsErr)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "link drops between servers never faulted: %d\n", rep.UnexpectedDrops)
	if rep.Error != "" {
		fmt.Fprintf(w, "error: %s\n", rep.Error)
	}
}
