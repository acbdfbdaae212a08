package bench

// load.go: "herd bench load", pipelined IAMAT load, closed or open
// loop.
//
// Closed loop (no -rate): each connection keeps exactly -inflight
// requests outstanding: a writer goroutine sends as many new requests as
// replies have come back, in one write, and a reader goroutine reads
// replies with its own buffer, checks each and records its latency from a
// ring of send times. This measures the most a server answers, and the
// latency of the generator's own queue at that rate.
//
// Open loop (-rate R): each connection sends its share of R on a fixed
// schedule whatever the replies do (sched.go), and a request's
// latency counts from when it was due. -inflight does not limit it; the
// report gives the most requests one connection had unanswered.
//
// Every request is a new report (times strictly increasing), so against a
// herd every one changes the table and floods. Client IDs are formatted as
// the requests are written, never stored: "bench-RUN-CONN-K" for client K
// of connection CONN ("bench-RUN-CONN" with one client per connection).
// With -prefill every client reports once, closed loop and unmeasured,
// before the warm-up, so the measured reports are all repeat reports of
// known clients; with -clients 0 every report is a client never seen
// before. At the end the writer half-closes; a server that follows the
// protocol answers everything pending and closes, and the reader stops at
// EOF.
//
// The connections themselves are in loadconn.go.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/proxyherd/herd/internal/cli"
)

// benchLocation is the location every benchmark report carries.
const benchLocation = "+34.068930-118.445127"

type loadOptions struct {
	addr        string
	conns       int
	inflight    int
	duration    time.Duration // the measured window
	warmup      time.Duration // load before the window, not counted
	expect      string        // auto, at, echo or any
	clients     int           // client IDs per connection, used in turn; 0: every report a new client ID
	prefill     bool          // report every client once, closed loop, before the warm-up
	rate        float64       // requests per second over all connections, open loop; 0: closed loop
	dialTimeout time.Duration
	drain       time.Duration // bound on waiting for the last replies (and, in the prefill, for any reply)

	// Set only by the tools that run a load inside a larger measurement
	// (bench table, resync, prop); none has a flag.
	totalClients int             // > 0: this many client IDs (at least conns) over all connections, instead of clients per connection
	run          string          // the client IDs' run tag; "" picks a new one
	timeBase     int64           // client time of request 0, ns since the epoch; 0: now
	fillFraction float64         // > 0: the prefill reports only this fraction of each connection's clients, evenly spread
	stop         <-chan struct{} // closed: end the load now, as if the window were over
	hooks        loadHooks
}

// loadHooks are called at the boundaries of a run's phases, from the
// goroutine that runs it (windowStart from a timer's). Each may be nil.
type loadHooks struct {
	dialled     func() // connections open, nothing sent
	filled      func() // the prefill is answered; the warm-up starts after the hook returns
	windowStart func() // the measured window starts
}

// clientsOf returns how many client IDs connection i uses, 0 meaning a new
// one for every report.
func (o *loadOptions) clientsOf(i int) int {
	if o.totalClients > 0 {
		n := o.totalClients / o.conns
		if i < o.totalClients%o.conns {
			n++
		}
		return n
	}
	return o.clients
}

// loadResult is one run of load against one server.
type loadResult struct {
	Addr     string         `json:"addr"`
	Replies  string         `json:"replies"` // what the replies were: "AT", "echo", "any" or "mixed"
	Conns    int            `json:"conns"`
	Inflight int            `json:"inflight"`
	Clients  int            `json:"clients_per_conn"` // 0: a new client ID for every report
	Distinct uint64         `json:"distinct_clients"` // client IDs reported, prefill included
	Offered  float64        `json:"offered_per_s,omitempty"`
	OpenLoop bool           `json:"open_loop"`
	Window   time.Duration  `json:"window_ns"`
	Count    uint64         `json:"count"` // replies received in the window
	Rate     float64        `json:"replies_per_s"`
	Sent     uint64         `json:"sent"`     // requests sent after the prefill: warm-up and window
	Answered uint64         `json:"answered"` // replies to those: warm-up, window and drain
	Errors   uint64         `json:"errors"`   // bad replies, unanswered requests, connection failures
	FirstErr string         `json:"first_error,omitempty"`
	Latency  latencySummary `json:"latency"`
	// Open loop: the most requests one connection had unanswered, and how
	// far behind schedule a writer fell at worst (the generator or the
	// socket could not keep up; latencies still count from the schedule).
	MaxOutstanding uint64        `json:"max_outstanding,omitempty"`
	MaxLag         time.Duration `json:"max_lag_ns,omitempty"`
	// Prefill: reports, time, and replies per second.
	Filled   uint64        `json:"prefill_count,omitempty"`
	FillTime time.Duration `json:"prefill_ns,omitempty"`
	FillRate float64       `json:"prefill_per_s,omitempty"`
	// CPU time after the prefill (warm-up, window and drain): this
	// process's (the load generator's, and an -echo inproc server's) and,
	// when its pid is known (a listener on this machine), the server's.
	SelfCPU   time.Duration `json:"self_cpu_ns"`
	ServerPid int           `json:"server_pid,omitempty"`
	ServerCPU time.Duration `json:"server_cpu_ns,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	hist      *latHist
}

// loadFlagSet declares the flags of a load on fs, with the given prefix
// ("" for bench load, "load-" for the background load of bench prop).
func loadFlagSet(fs *flag.FlagSet, o *loadOptions, prefix string) {
	fs.IntVar(&o.conns, prefix+"conns", 32, "client `connections`")
	fs.IntVar(&o.inflight, prefix+"inflight", 16, "requests in flight on each connection, without -rate (with -rate: the prefill's only)")
	fs.DurationVar(&o.warmup, prefix+"warmup", time.Second, "load before the window starts, not counted")
	fs.IntVar(&o.clients, prefix+"clients", 1, "client IDs per connection, used in turn (each request is still a new report of its client); 0: every report a client never seen before")
	fs.BoolVar(&o.prefill, prefix+"prefill", false, "first report every client once (closed loop, not measured), so the measured reports are repeat reports of known clients")
	fs.Float64Var(&o.rate, prefix+"rate", 0, "open loop: send this many requests per second over all connections on a fixed schedule, whatever the replies do, with latency counted from each request's scheduled time (0: closed loop, a new request as soon as a reply comes)")
	fs.StringVar(&o.expect, prefix+"expect", "auto", "what replies must be: at (AT lines), echo (the request echoed), any, or auto (decided by the first reply)")
	fs.DurationVar(&o.dialTimeout, prefix+"dial-timeout", 5*time.Second, "bound on connecting")
	fs.DurationVar(&o.drain, prefix+"drain", 5*time.Second, "bound on waiting for the last replies after the window")
}

// check returns what is wrong with o's flag values, or "".
func (o *loadOptions) check(prefix string) string {
	switch {
	case o.conns < 1 || o.conns > 100000:
		return fmt.Sprintf("-%sconns %d: want 1 to 100000", prefix, o.conns)
	case o.inflight < 1 || o.inflight > 1<<16:
		return fmt.Sprintf("-%sinflight %d: want 1 to 65536", prefix, o.inflight)
	case o.duration <= 0:
		return fmt.Sprintf("-%sduration %v: want more than 0", prefix, o.duration)
	case o.warmup < 0:
		return fmt.Sprintf("-%swarmup %v: want 0 or more", prefix, o.warmup)
	case o.clients < 0 || o.clients > 1_000_000:
		return fmt.Sprintf("-%sclients %d: want 0 (a new client for every report) to 1000000", prefix, o.clients)
	case o.clients == 0 && o.prefill:
		return fmt.Sprintf("-%sprefill: needs a number of clients (-%sclients 0 makes every report a new client)", prefix, prefix)
	case o.rate < 0:
		return fmt.Sprintf("-%srate %v: want 0 or more", prefix, o.rate)
	case o.drain <= 0:
		return fmt.Sprintf("-%sdrain %v: want more than 0", prefix, o.drain)
	}
	switch o.expect {
	case "auto", "at", "echo", "any":
	default:
		return fmt.Sprintf("-%sexpect %q: want auto, at, echo or any", prefix, o.expect)
	}
	return ""
}

func loadFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	var o loadOptions
	fs.StringVar(&o.addr, "addr", cli.DefaultAddr, "server `address`")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured `window`")
	loadFlagSet(fs, &o, "")
	echoAddr := fs.String("echo", "", "also run the same load against the line-echo server at `ADDR` (\"inproc\": one in this process) and report the ratio")
	vsAddr := fs.String("vs", "", "instead of -echo: also run the same load against the server at `ADDR` (another herd, e.g. the same one with full logging), expecting the same replies, and report the ratio of the first to it")
	rounds := fs.Int("rounds", 1, "with -echo or -vs: alternate the two servers this many times and report medians")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	return func(ctx context.Context, e *env, _ []string) int {
		if msg := o.check(""); msg != "" {
			return benchUsage(e, "load", "%s", msg)
		}
		if *rounds < 1 || *rounds > 1000 {
			return benchUsage(e, "load", "-rounds %d: want 1 to 1000", *rounds)
		}
		if *vsAddr != "" && *echoAddr != "" {
			return benchUsage(e, "load", "-vs and -echo: want one of them")
		}
		eo := o
		label := "echo"
		if *vsAddr != "" {
			*echoAddr, label = *vsAddr, "vs"
		}
		if *echoAddr == "inproc" && label == "echo" {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				fmt.Fprintf(e.stderr, "herd bench load: %v\n", err)
				return exitFailure
			}
			srv := serveEcho(ln)
			defer srv.close()
			eo.addr = ln.Addr().String()
		} else {
			eo.addr = *echoAddr
		}
		if label == "echo" {
			eo.expect = "echo"
		}

		var report loadReport
		for r := 0; r < *rounds; r++ {
			var round loadRound
			var err error
			if round.Server, err = runLoad(ctx, o); err != nil {
				fmt.Fprintf(e.stderr, "herd bench load: %v\n", err)
				return exitFailure
			}
			if *echoAddr != "" && ctx.Err() == nil {
				if round.Echo, err = runLoad(ctx, eo); err != nil {
					fmt.Fprintf(e.stderr, "herd bench load: echo: %v\n", err)
					return exitFailure
				}
				if round.Echo.Rate > 0 {
					round.Ratio = round.Server.Rate / round.Echo.Rate
				}
			}
			if !*asJSON {
				printLoadRound(e.stdout, r, *rounds, &round, label)
			}
			report.Rounds = append(report.Rounds, round)
			if ctx.Err() != nil {
				break
			}
		}
		report.summarise()
		if *asJSON {
			writeJSON(e, &report)
		} else if len(report.Rounds) > 1 {
			fmt.Fprintf(e.stdout, "median of %d rounds: %.0f replies/s", len(report.Rounds), report.MedianRate)
			if *echoAddr != "" {
				fmt.Fprintf(e.stdout, ", %s %.0f replies/s, ratio %.3f", label, report.MedianEchoRate, report.MedianRatio)
			}
			fmt.Fprintf(e.stdout, "; p50 %s, p99 %s\n", fmtDur(report.MedianP50), fmtDur(report.MedianP99))
		}
		for _, r := range report.Rounds {
			if r.Server.Errors > 0 || (r.Echo != nil && r.Echo.Errors > 0) {
				return exitFailure
			}
		}
		return exitOK
	}
}

// loadRound is one run against the server and, with -echo or -vs, one
// against the echo server or the other server.
type loadRound struct {
	Server *loadResult `json:"server"`
	Echo   *loadResult `json:"echo,omitempty"`  // the echo server's, or -vs's
	Ratio  float64     `json:"ratio,omitempty"` // server rate / echo rate
}

type loadReport struct {
	Rounds         []loadRound   `json:"rounds"`
	MedianRate     float64       `json:"median_replies_per_s"`
	MedianEchoRate float64       `json:"median_echo_replies_per_s,omitempty"`
	MedianRatio    float64       `json:"median_ratio,omitempty"`
	MedianP50      time.Duration `json:"median_p50_ns"`
	MedianP99      time.Duration `json:"median_p99_ns"`
}

func (r *loadReport) summarise() {
	var rates, echoRates, ratios, p50s, p99s []float64
	for _, round := range r.Rounds {
		rates = append(rates, round.Server.Rate)
		p50s = append(p50s, float64(round.Server.Latency.P50))
		p99s = append(p99s, float64(round.Server.Latency.P99))
		if round.Echo != nil {
			echoRates = append(echoRates, round.Echo.Rate)
			ratios = append(ratios, round.Ratio)
		}
	}
	r.MedianRate, r.MedianEchoRate, r.MedianRatio = median(rates), median(echoRates), median(ratios)
	r.MedianP50, r.MedianP99 = time.Duration(median(p50s)), time.Duration(median(p99s))
}

func printLoadRound(w io.Writer, i, n int, r *loadRound, label string) {
	if n > 1 {
		fmt.Fprintf(w, "round %d of %d\n", i+1, n)
	}
	printLoad(w, "server", r.Server)
	if r.Echo != nil {
		printLoad(w, fmt.Sprintf("%-6s", label), r.Echo)
		fmt.Fprintf(w, "server/%s %.3f\n", label, r.Ratio)
	}
}

func printLoad(w io.Writer, label string, r *loadResult) {
	fmt.Fprintf(w, "%s %s: %.0f replies/s (%d %s replies in %s; %d conns", label, r.Addr, r.Rate, r.Count, r.Replies, r.Window, r.Conns)
	if r.OpenLoop {
		fmt.Fprintf(w, ", open loop at %.0f/s", r.Offered)
	} else {
		fmt.Fprintf(w, " x %d in flight", r.Inflight)
	}
	switch {
	case r.Clients == 0:
		fmt.Fprintf(w, ", a new client for every report")
	case r.Clients > 1:
		fmt.Fprintf(w, ", %d clients each", r.Clients)
	}
	fmt.Fprintf(w, "; %d distinct client IDs)\n", r.Distinct)
	if r.Filled > 0 {
		fmt.Fprintf(w, "  prefill: %d first reports in %s (%.0f/s), not measured\n", r.Filled, fmtDur(r.FillTime), r.FillRate)
	}
	fmt.Fprintf(w, "  latency %s\n", r.Latency)
	if r.OpenLoop {
		fmt.Fprintf(w, "  latency from each request's scheduled time; at most %d unanswered on one connection, writers at most %s behind schedule\n",
			r.MaxOutstanding, fmtDur(r.MaxLag))
	}
	if r.Answered > 0 && r.Elapsed > 0 {
		per := func(d time.Duration) string {
			return fmt.Sprintf("%.2fµs per reply, %.2f cores", float64(d)/1e3/float64(r.Answered), float64(d)/float64(r.Elapsed))
		}
		fmt.Fprintf(w, "  cpu: this process %s", per(r.SelfCPU))
		if r.ServerPid != 0 {
			fmt.Fprintf(w, "; server (pid %d) %s", r.ServerPid, per(r.ServerCPU))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  errors %d (sent %d, answered %d)", r.Errors, r.Sent, r.Answered)
	if r.FirstErr != "" {
		fmt.Fprintf(w, "; first: %s", r.FirstErr)
	}
	fmt.Fprintln(w)
}

// runLoad runs one load against o.addr: the prefill if asked, then the
// warm-up and the window. It fails only when a connection cannot be
// opened; everything that goes wrong later is counted in the result's
// Errors. A cancelled ctx ends the run early.
func runLoad(ctx context.Context, o loadOptions) (*loadResult, error) {
	run := o.run
	if run == "" {
		run = runID()
	}
	base := o.timeBase
	if base == 0 {
		base = time.Now().UnixNano()
	}
	d := net.Dialer{Timeout: o.dialTimeout}
	conns := make([]*loadConn, 0, o.conns)
	defer func() {
		for _, lc := range conns {
			lc.c.Close()
		}
	}()
	for i := 0; i < o.conns; i++ {
		c, err := d.DialContext(ctx, "tcp", o.addr)
		if err != nil {
			return nil, fmt.Errorf("connection %d of %d: %w", i+1, o.conns, err)
		}
		conns = append(conns, newLoadConn(&o, c, i, run, base))
	}
	// A cancelled ctx closes the connections: every read and write fails
	// at once, whatever phase the run is in.
	defer context.AfterFunc(ctx, func() {
		for _, lc := range conns {
			lc.c.Close()
		}
	})()
	if o.hooks.dialled != nil {
		o.hooks.dialled()
	}

	res := &loadResult{Addr: o.addr, Conns: o.conns, Inflight: o.inflight, Clients: o.clientsOf(0),
		Offered: o.rate, OpenLoop: o.rate > 0, hist: newLatHist()}
	if o.prefill {
		t := time.Now()
		var wg sync.WaitGroup
		for _, lc := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lc.runFill()
			}()
		}
		wg.Wait()
		res.FillTime = time.Since(t)
		for _, lc := range conns {
			res.Filled += lc.recvd.Load()
		}
		res.FillRate = float64(res.Filled) / res.FillTime.Seconds()
	}
	if o.hooks.filled != nil {
		o.hooks.filled()
	}

	serverPid := 0
	if pid := listenerPid(o.addr); pid != os.Getpid() {
		serverPid = pid
	}
	selfCPU0, serverCPU0 := processCPU(), procCPU(serverPid)
	t0 := time.Now()
	now := func() int64 { return int64(time.Since(t0)) }
	winStart := int64(o.warmup)
	winEnd := winStart + int64(o.duration)
	stop := make(chan struct{})
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	if o.rate == 0 {
		// Open-loop writers stop by their schedule, after sending every
		// request due before the end, even late ones.
		defer time.AfterFunc(time.Duration(winEnd), halt).Stop()
	}
	defer context.AfterFunc(ctx, halt)()
	if o.stop != nil {
		ended := make(chan struct{})
		defer close(ended)
		go func() {
			select {
			case <-o.stop:
				halt()
			case <-ended:
			}
		}()
	}
	if o.hooks.windowStart != nil {
		defer time.AfterFunc(time.Duration(winStart), o.hooks.windowStart).Stop()
	}

	var wg sync.WaitGroup
	for _, lc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc.runMain(stop, winStart, winEnd, now)
		}()
	}
	wg.Wait()
	elapsed := time.Duration(now())
	res.Window = time.Duration(max(min(int64(elapsed), winEnd)-winStart, 0))
	res.Elapsed = elapsed
	res.SelfCPU = processCPU() - selfCPU0
	if serverPid != 0 {
		res.ServerPid, res.ServerCPU = serverPid, procCPU(serverPid)-serverCPU0
	}
	for _, lc := range conns {
		lc.addTo(res)
	}
	if res.Window > 0 {
		res.Rate = float64(res.Count) / res.Window.Seconds()
	}
	res.Latency = res.hist.summary()
	return res, nil
}
