package main

// bench_load.go: "herd bench load", closed-loop pipelined IAMAT load.
//
// Each connection keeps exactly -inflight requests outstanding: a writer
// goroutine sends as many new requests as replies have come back, in one
// write, and a reader goroutine reads replies with its own buffer, checks
// each and records its latency from a ring of send times. Every request
// is a new report (a client ID per connection and run, times strictly
// increasing), so against a herd every one of them changes the table and
// floods. At the end the writer half-closes; a server that follows the
// protocol answers everything pending and closes, and the reader stops at
// EOF.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
	clients     int           // client IDs per connection, used in turn
	rate        float64       // requests per second over all connections; 0: as fast as replies come
	dialTimeout time.Duration
	drain       time.Duration // bound on waiting for the last replies
}

// loadResult is one run of load against one server.
type loadResult struct {
	Addr     string         `json:"addr"`
	Replies  string         `json:"replies"` // what the replies were: "AT", "echo", "any" or "mixed"
	Conns    int            `json:"conns"`
	Inflight int            `json:"inflight"`
	Clients  int            `json:"clients_per_conn"`
	Offered  float64        `json:"offered_per_s,omitempty"` // -rate
	Window   time.Duration  `json:"window_ns"`
	Count    uint64         `json:"count"` // replies received in the window
	Rate     float64        `json:"replies_per_s"`
	Sent     uint64         `json:"sent"`     // requests sent, warm-up and window
	Answered uint64         `json:"answered"` // replies received, warm-up, window and drain
	Errors   uint64         `json:"errors"`   // bad replies, unanswered requests, connection failures
	FirstErr string         `json:"first_error,omitempty"`
	Latency  latencySummary `json:"latency"`
	// CPU time over the whole run (warm-up, window and drain): this
	// process's (the load generator's, and an -echo inproc server's) and,
	// when its pid is known (a listener on this machine), the server's.
	SelfCPU   time.Duration `json:"self_cpu_ns"`
	ServerPid int           `json:"server_pid,omitempty"`
	ServerCPU time.Duration `json:"server_cpu_ns,omitempty"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	hist      *latHist
}

func loadFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	var o loadOptions
	fs.StringVar(&o.addr, "addr", DefaultAddr, "server `address`")
	fs.IntVar(&o.conns, "conns", 32, "client `connections`")
	fs.IntVar(&o.inflight, "inflight", 16, "requests in flight on each connection")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured `window`")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "load before the window starts, not counted")
	fs.IntVar(&o.clients, "clients", 1, "client IDs per connection, used in turn (each request is still a new report of its client)")
	fs.Float64Var(&o.rate, "rate", 0, "send at most this many requests per second over all connections (0: a new request as soon as a reply comes)")
	fs.StringVar(&o.expect, "expect", "auto", "what replies must be: at (AT lines), echo (the request echoed), any, or auto (decided by the first reply)")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", 5*time.Second, "bound on connecting")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "bound on waiting for the last replies after the window")
	echoAddr := fs.String("echo", "", "also run the same load against the line-echo server at `ADDR` (\"inproc\": one in this process) and report the ratio")
	vsAddr := fs.String("vs", "", "instead of -echo: also run the same load against the server at `ADDR` (another herd, e.g. the same one with full logging), expecting the same replies, and report the ratio of the first to it")
	rounds := fs.Int("rounds", 1, "with -echo or -vs: alternate the two servers this many times and report medians")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	return func(ctx context.Context, e *env, _ []string) int {
		switch {
		case o.conns < 1 || o.conns > 100000:
			return benchUsage(e, "load", "-conns %d: want 1 to 100000", o.conns)
		case o.inflight < 1 || o.inflight > 1<<16:
			return benchUsage(e, "load", "-inflight %d: want 1 to 65536", o.inflight)
		case o.duration <= 0:
			return benchUsage(e, "load", "-duration %v: want more than 0", o.duration)
		case o.warmup < 0:
			return benchUsage(e, "load", "-warmup %v: want 0 or more", o.warmup)
		case o.clients < 1 || o.clients > 1_000_000:
			return benchUsage(e, "load", "-clients %d: want 1 to 1000000", o.clients)
		case o.rate < 0:
			return benchUsage(e, "load", "-rate %v: want 0 or more", o.rate)
		case *rounds < 1 || *rounds > 1000:
			return benchUsage(e, "load", "-rounds %d: want 1 to 1000", *rounds)
		}
		switch o.expect {
		case "auto", "at", "echo", "any":
		default:
			return benchUsage(e, "load", "-expect %q: want auto, at, echo or any", o.expect)
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
	fmt.Fprintf(w, "%s %s: %.0f replies/s (%d %s replies in %s; %d conns x %d in flight",
		label, r.Addr, r.Rate, r.Count, r.Replies, r.Window, r.Conns, r.Inflight)
	if r.Clients > 1 {
		fmt.Fprintf(w, ", %d clients each", r.Clients)
	}
	if r.Offered > 0 {
		fmt.Fprintf(w, ", offered %.0f/s", r.Offered)
	}
	fmt.Fprintf(w, ")\n")
	fmt.Fprintf(w, "  latency %s\n", r.Latency)
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

// runLoad runs one load against o.addr. It fails only when a connection
// cannot be opened; everything that goes wrong later is counted in the
// result's Errors.
func runLoad(ctx context.Context, o loadOptions) (*loadResult, error) {
	o.clients = max(o.clients, 1)
	d := net.Dialer{Timeout: o.dialTimeout}
	conns := make([]*loadConn, 0, o.conns)
	defer func() {
		for _, lc := range conns {
			lc.c.Close()
		}
	}()
	run := runID()
	wall := time.Now().UnixNano()
	for i := 0; i < o.conns; i++ {
		c, err := d.DialContext(ctx, "tcp", o.addr)
		if err != nil {
			return nil, fmt.Errorf("connection %d of %d: %w", i+1, o.conns, err)
		}
		lc := &loadConn{
			o:    &o,
			c:    c,
			base: wall,
			ring: make([]atomic.Int64, o.inflight),
			wake: make(chan struct{}, 1),
			hist: newLatHist(),
		}
		for k := 0; k < o.clients; k++ {
			id := "bench-" + run + "-" + strconv.Itoa(i)
			if o.clients > 1 {
				id += "-" + strconv.Itoa(k)
			}
			lc.prefixes = append(lc.prefixes, []byte("IAMAT "+id+" "+benchLocation+" "))
		}
		switch o.expect {
		case "at":
			lc.kind = "AT"
		case "echo", "any":
			lc.kind = o.expect
		}
		conns = append(conns, lc)
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
	timer := time.AfterFunc(time.Duration(winEnd), halt)
	defer timer.Stop()
	defer context.AfterFunc(ctx, halt)()

	var wg sync.WaitGroup
	for _, lc := range conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			lc.write(stop, winEnd, now)
			// Half-close: the server answers what is pending, then closes.
			if cw, ok := lc.c.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			lc.c.SetReadDeadline(time.Now().Add(o.drain))
		}()
		go func() {
			defer wg.Done()
			lc.read(winStart, winEnd, now)
		}()
	}
	wg.Wait()
	elapsed := time.Duration(now())
	window := time.Duration(max(min(int64(elapsed), winEnd)-winStart, 0))

	res := &loadResult{Addr: o.addr, Conns: o.conns, Inflight: o.inflight, Window: window, Elapsed: elapsed, hist: newLatHist(),
		Clients: o.clients, Offered: o.rate}
	res.SelfCPU = processCPU() - selfCPU0
	if serverPid != 0 {
		res.ServerPid, res.ServerCPU = serverPid, procCPU(serverPid)-serverCPU0
	}
	for _, lc := range conns {
		res.Count += lc.counted
		res.Sent += lc.sent.Load()
		res.Answered += lc.recvd.Load()
		res.Errors += lc.errs
		if lost := lc.sent.Load() - lc.recvd.Load(); lost > 0 {
			res.Errors += lost
			lc.noteErr(fmt.Sprintf("%d requests unanswered", lost))
		}
		if res.FirstErr == "" {
			res.FirstErr = lc.firstErr
		}
		if lc.writeErr != nil {
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = "write: " + lc.writeErr.Error()
			}
		}
		res.hist.merge(lc.hist)
		switch {
		case res.Replies == "":
			res.Replies = lc.kind
		case lc.kind != "" && lc.kind != res.Replies:
			res.Replies = "mixed"
		}
	}
	if window > 0 {
		res.Rate = float64(res.Count) / window.Seconds()
	}
	res.Latency = res.hist.summary()
	return res, nil
}

// loadConn is one connection of a load run.
type loadConn struct {
	o        *loadOptions
	c        net.Conn
	prefixes [][]byte // "IAMAT <client> <location> ", one per client ID
	base     int64    // client time of request 0, ns since the epoch

	ring  []atomic.Int64 // send time of request i at i % inflight (ns since t0)
	sent  atomic.Uint64  // requests handed to the connection (stored before the write)
	recvd atomic.Uint64  // replies read
	wake  chan struct{}  // the reader freed room for more requests

	writeErr error // writer only

	// Reader only.
	hist     *latHist
	counted  uint64 // replies received in the window
	kind     string // "AT", "echo", "any", or "" until the first reply decides
	errs     uint64
	firstErr string
}

// write keeps inflight requests outstanding until stop is closed or end
// (ns since t0) has passed.
func (lc *loadConn) write(stop <-chan struct{}, end int64, now func() int64) {
	w := uint64(len(lc.ring))
	buf := make([]byte, 0, int(w)*(len(lc.prefixes[0])+32))
	var seq uint64
	// With a rate, request k is due at k/perConn seconds after t0.
	perConn := lc.o.rate / float64(lc.o.conns)
	var pace *time.Timer
	if perConn > 0 {
		pace = time.NewTimer(time.Hour)
		defer pace.Stop()
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		t := now()
		if t >= end {
			return
		}
		free := w - (seq - lc.recvd.Load())
		if free == 0 {
			select {
			case <-lc.wake:
			case <-stop:
				return
			}
			continue
		}
		if perConn > 0 {
			due := uint64(float64(t)/1e9*perConn) + 1 // requests due by now
			if due <= seq {
				next := time.Duration(float64(seq) / perConn * 1e9)
				pace.Reset(next - time.Duration(t))
				select {
				case <-pace.C:
				case <-stop:
					return
				}
				continue
			}
			free = min(free, due-seq)
		}
		buf = buf[:0]
		for k := seq; k < seq+free; k++ {
			buf = append(buf, lc.prefixes[k%uint64(len(lc.prefixes))]...)
			buf = appendClientTime(buf, lc.base+int64(k))
			buf = append(buf, '\n')
			lc.ring[k%w].Store(t)
		}
		seq += free
		lc.sent.Store(seq)
		if _, err := lc.c.Write(buf); err != nil {
			lc.writeErr = err
			return
		}
	}
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU returns the CPU time (user and system) process pid has used, from
// /proc/PID/stat, or 0 if it is unknown.
func procCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses and may
	// hold anything: state is the 3rd field, utime the 14th, stime the 15th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	const clockTicks = 100 // USER_HZ, 100 on every Linux that Go supports
	return time.Duration(utime+stime) * (time.Second / clockTicks)
}

// maxReplyBytes bounds one reply line in load; IAMAT replies are about
// 100 bytes.
const maxReplyBytes = 64 << 10

// read reads and checks replies until EOF, an error or the drain deadline.
func (lc *loadConn) read(winStart, winEnd int64, now func() int64) {
	w := uint64(len(lc.ring))
	buf := make([]byte, maxReplyBytes)
	start, end := 0, 0
	var idx uint64
	for {
		n, err := lc.c.Read(buf[end:])
		t := now()
		end += n
		got := uint64(0)
		for {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			line := buf[start : start+i]
			start += i + 1
			r := idx + got
			if r >= lc.sent.Load() {
				lc.noteErr(fmt.Sprintf("a reply nobody asked for: %q", truncate(line, 80)))
				lc.errs++
				lc.recvd.Store(r)
				return
			}
			lc.check(line)
			if t >= winStart && t < winEnd {
				lc.hist.record(t - lc.ring[r%w].Load())
				lc.counted++
			}
			got++
		}
		if got > 0 {
			idx += got
			lc.recvd.Store(idx)
			select {
			case lc.wake <- struct{}{}:
			default:
			}
		}
		switch {
		case start == end:
			start, end = 0, 0
		case end == len(buf):
			if start == 0 {
				lc.noteErr(fmt.Sprintf("a reply longer than %d bytes", len(buf)))
				lc.errs++
				return
			}
			end = copy(buf, buf[start:end])
			start = 0
		}
		if err != nil {
			if !errors.Is(err, io.EOF) || idx < lc.sent.Load() {
				lc.noteErr("read: " + err.Error())
			}
			if start < end {
				lc.noteErr(fmt.Sprintf("a partial reply at the end: %q", truncate(buf[start:end], 80)))
				lc.errs++
			}
			return
		}
	}
}

// check counts line as an error unless it is the kind of reply expected.
func (lc *loadConn) check(line []byte) {
	ok := true
	switch lc.kind {
	case "":
		switch {
		case bytes.HasPrefix(line, []byte("AT ")):
			lc.kind = "AT"
		case bytes.HasPrefix(line, []byte("IAMAT ")):
			lc.kind = "echo"
		default:
			ok = false
		}
	case "AT":
		ok = bytes.HasPrefix(line, []byte("AT "))
	case "echo":
		ok = bytes.HasPrefix(line, []byte("IAMAT "))
	}
	if !ok {
		lc.errs++
		lc.noteErr(fmt.Sprintf("unexpected reply %q", truncate(line, 80)))
	}
}

func (lc *loadConn) noteErr(s string) {
	if lc.firstErr == "" {
		lc.firstErr = s
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
