// Package bench is "herd bench", a load generator and measuring kit;
// command herd parses nothing of it and calls [Run].
package bench

// bench.go: the dispatcher and what the modes share. load, prop, idle and
// echo measure any server that speaks the herd protocol (docs/protocol.md):
// they talk raw TCP and the wire protocol only, never package herd's
// internals, so they measure other implementations as well as this one.
// table and resync run nodes in this process, through package herd's
// public API only; faults runs "herd serve" processes and reads their HTTP
// endpoints. The modes live in load.go (with loadconn.go and sched.go),
// prop.go, idle.go, echo.go, table.go, resync.go (with linkbytes.go and
// runtime.go) and faults.go (with faultplan.go, faultrun.go and
// herdproc.go); this file holds the dispatcher and what
// they share: the latency histogram, percentiles and the formatting of
// durations and client times.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Exit statuses, as the herd command's.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Args is the synopsis of "herd bench", for its usage line.
const Args = "load|prop|idle|echo|table|resync|faults [flags]"

// Summary is the one line "herd help" shows for bench.
const Summary = "measure a herd: throughput, propagation, memory per connection"

// Help is what "herd help bench" says after the usage line.
const Help = "Measures any server that speaks the herd protocol, over plain TCP on loopback or a LAN:\n\n" +
	"  herd bench load -addr A [-conns 32] [-inflight 16] [-duration 10s] [-clients N] [-prefill] [-rate R] [-echo ADDR|inproc]\n" +
	"      pipelined IAMAT load (every request a new report, so it floods); replies/s and latency\n" +
	"      percentiles; -rate R is open loop (latency from each request's scheduled time); -clients 0\n" +
	"      makes every report a new client; with -echo, the same load against a line-echo server\n" +
	"  herd bench prop -from A -to B [-n 1000] [-load-rate R [-load-clients N] [-load-addr X]]\n" +
	"      IAMAT at A, then WHATSAT CLIENT 1 0 at B until B has the record; propagation percentiles,\n" +
	"      idle or under a background open-loop load\n" +
	"  herd bench idle -addr A [-n 10000] [-pid PID] [-hold D]\n" +
	"      N idle client connections; the server's resident memory per connection\n" +
	"  herd bench echo -addr A [-for D]\n" +
	"      a bare line-echo server: this machine's ceiling for a line protocol\n" +
	"  herd bench table [-clients 1000000] [-steady 10s]\n" +
	"      one node in this process: fill N clients, then repeat reports; RSS and heap per record, GC CPU\n" +
	"  herd bench resync [-clients 1000000] [-changed 0.001,0.01,1]\n" +
	"      two linked nodes in this process: bytes and time of a link-up after a restart from the state\n" +
	"      file, with a fraction of the clients changed meanwhile, against a full push\n" +
	"  herd bench faults [-herd PATH] [-port 12000] [-faults 4] [-seed S] [-pause 1s] [-state-dir DIR] [load flags]\n" +
	"      five herd serve processes, the load of \"load\" at Hands while a seeded schedule SIGKILLs,\n" +
	"      SIGSTOPs and SIGTERMs the others (then restarts or continues them); throughput, latency,\n" +
	"      link drops and the time until every server holds the same records\n\n" +
	"\"herd bench MODE -h\" lists a mode's flags. docs/performance.md has the figures and how to\n" +
	"reproduce them."

// Env is what a bench run may touch outside its arguments, so that tests
// run it in-process: its output goes to Stdout, its diagnostics and
// usage to Stderr.
type Env struct {
	Stdout, Stderr io.Writer
}

// env is the Env a mode sees.
type env struct {
	stdout, stderr io.Writer
}

// benchMode is one "herd bench" mode. Like command.flags, flags declares the
// mode's flags and returns the function that runs it.
type benchMode struct {
	name, args, summary string
	flags               func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) int
}

var benchModes = []*benchMode{
	{"load", "[-addr A] [-conns C] [-inflight W] [-duration D] [-warmup D] [-clients N] [-prefill] [-rate R] [-expect MODE] [-echo ADDR|inproc] [-rounds R] [-json]",
		"pipelined IAMAT load, closed or open loop: replies/s and latency percentiles", loadFlags},
	{"prop", "-from A -to B [-n N] [-timeout D] [-warmup N] [-load-rate R [-load-addr X] [-load-clients N] [-load-prefill] ...] [-json]",
		"propagation time of a report from server A to server B", propFlags},
	{"idle", "[-addr A] [-n N] [-pid PID] [-settle D] [-hold D] [-touch] [-json]",
		"open N idle client connections and report the server's memory per connection", idleFlags},
	{"echo", "[-addr A] [-for D]",
		"a bare line-echo server, the baseline for load", echoFlags},
	{"table", "[-clients N] [-conns C] [-inflight W] [-steady D] [-steady-rate R] [-json]",
		"fill one in-process node with N clients; memory per record and collector CPU", tableFlags},
	{"resync", "[-clients N] [-changed F,F,...] [-quiet D] [-json]",
		"bytes and time of a link-up after a restart, with a fraction of the clients changed", resyncFlags},
	{"faults", "[-herd PATH] [-preset YEAR] [-at NAME] [-port N] [-http-port N] [-dir DIR] [-state-dir DIR] [-seed S] [-faults N] [-pause D] [-kinds kill,stop,term] [-converge-timeout D] [load flags] [-json]",
		"load at one herd serve process while a seeded schedule of faults hits the others; throughput and time to converge", faultsFlags},
}

// Run runs "herd bench" with args (the mode, then its flags) and returns
// the exit status: 0, 1 when the measurement failed, 2 for a usage error
// (reported on e.Stderr). It returns when the run ends or ctx is done.
func Run(ctx context.Context, e Env, args []string) int {
	return run(ctx, &env{stdout: e.Stdout, stderr: e.Stderr}, args)
}

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		return usageError(e, "want a mode: load, prop, idle, echo, table, resync or faults")
	}
	var m *benchMode
	for _, bm := range benchModes {
		if bm.name == args[0] {
			m = bm
		}
	}
	if m == nil {
		return usageError(e, "unknown mode %q (want load, prop, idle, echo, table, resync or faults)", args[0])
	}
	mfs := flag.NewFlagSet("herd bench "+m.name, flag.ContinueOnError)
	mfs.SetOutput(e.stderr)
	do := m.flags(mfs)
	mfs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: herd bench %s %s\n\n%s.\n\nFlags:\n", m.name, m.args, strings.ToUpper(m.summary[:1])+m.summary[1:])
		mfs.PrintDefaults()
	}
	if err := mfs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if mfs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "herd bench %s: unexpected arguments %q\n", m.name, mfs.Args())
		return exitUsage
	}
	return do(ctx, e, nil)
}

// usageError prints msg and the usage line of "herd bench", and returns
// exitUsage.
func usageError(e *env, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "herd bench: %s\nusage: herd bench %s\n", fmt.Sprintf(format, args...), Args)
	return exitUsage
}

// writeJSON prints v as indented JSON, the -json output of every bench mode.
func writeJSON(e *env, v any) {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// benchUsage reports a bad flag value of a bench mode and returns exitUsage.
func benchUsage(e *env, mode, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "herd bench %s: %s\n", mode, fmt.Sprintf(format, args...))
	return exitUsage
}

// runID returns a short random tag that keeps one run's client IDs apart
// from every other run's, against a herd that remembers them.
func runID() string {
	var b [4]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return strconv.FormatInt(time.Now().UnixNano()%1e8, 36)
	}
	return hex.EncodeToString(b[:])
}

// appendClientTime appends t (nanoseconds since the epoch) as an IAMAT
// time: whole seconds, a point and nine digits.
func appendClientTime(dst []byte, t int64) []byte {
	dst = strconv.AppendInt(dst, t/1e9, 10)
	dst = append(dst, '.')
	ns := t % 1e9
	var nine [9]byte
	for i := 8; i >= 0; i-- {
		nine[i] = byte('0' + ns%10)
		ns /= 10
	}
	return append(dst, nine[:]...)
}

// Latency histogram: log-linear buckets, exact below 2*histSub
// nanoseconds, then histSub buckets per power of two, so a recorded value
// is known to within 1/histSub (0.8%). Recording is an index computation
// and an increment; the histogram has a fixed size and never allocates
// after it is made.
const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histBuckets = 2*histSub + (63-histSubBits)*histSub
)

// histIndex returns the bucket of v nanoseconds (negative values count as
// zero).
func histIndex(v int64) int {
	if v < 2*histSub {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - (histSubBits + 1) // v>>shift is in [histSub, 2*histSub)
	return 2*histSub + (shift-1)*histSub + int(v>>shift) - histSub
}

// histUpper returns the largest value that falls in bucket i.
func histUpper(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	j := i - 2*histSub
	shift := j/histSub + 1
	sub := int64(j%histSub + histSub)
	return (sub+1)<<shift - 1
}

// latHist is a latency histogram. The zero value is not usable; use
// newLatHist.
type latHist struct {
	counts   []uint64
	n        uint64
	min, max int64
	sum      float64
}

func newLatHist() *latHist {
	return &latHist{counts: make([]uint64, histBuckets), min: math.MaxInt64}
}

// record adds one value in nanoseconds.
func (h *latHist) record(v int64) {
	v = max(v, 0)
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// merge adds o's values to h.
func (h *latHist) merge(o *latHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// quantile returns the value at percentile p (0 < p <= 100) by the
// nearest-rank method: the smallest recorded value v such that at least
// p% of the values are at most v, rounded up to its bucket's upper bound
// (never beyond the largest value recorded). It returns 0 for an empty
// histogram.
func (h *latHist) quantile(p float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			return max(min(histUpper(i), h.max), h.min)
		}
	}
	return h.max
}

func (h *latHist) mean() int64 {
	if h.n == 0 {
		return 0
	}
	return int64(h.sum / float64(h.n))
}

// latencySummary is what the reports print of a histogram.
type latencySummary struct {
	N    uint64        `json:"n"`
	Min  time.Duration `json:"min_ns"`
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p99_9_ns"`
	Max  time.Duration `json:"max_ns"`
}

func (h *latHist) summary() latencySummary {
	if h.n == 0 {
		return latencySummary{}
	}
	return latencySummary{
		N:    h.n,
		Min:  time.Duration(h.min),
		Mean: time.Duration(h.mean()),
		P50:  time.Duration(h.quantile(50)),
		P90:  time.Duration(h.quantile(90)),
		P99:  time.Duration(h.quantile(99)),
		P999: time.Duration(h.quantile(99.9)),
		Max:  time.Duration(h.max),
	}
}

func (s latencySummary) String() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, min %s, n %d)",
		fmtDur(s.P50), fmtDur(s.P90), fmtDur(s.P99), fmtDur(s.P999), fmtDur(s.Max), fmtDur(s.Mean), fmtDur(s.Min), s.N)
}

// fmtDur formats d with three significant digits in a unit that suits
// latencies: 850ns, 41.2µs, 1.37ms, 2.05s.
func fmtDur(d time.Duration) string {
	v := float64(d)
	unit := "ns"
	switch {
	case d >= time.Second:
		v, unit = v/1e9, "s"
	case d >= time.Millisecond:
		v, unit = v/1e6, "ms"
	case d >= time.Microsecond:
		v, unit = v/1e3, "µs"
	default:
		return strconv.FormatInt(int64(d), 10) + "ns"
	}
	prec := 2
	switch {
	case v >= 100:
		prec = 0
	case v >= 10:
		prec = 1
	}
	return strconv.FormatFloat(v, 'f', prec, 64) + unit
}

// median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
