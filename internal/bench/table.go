package bench

// table.go: "herd bench table", what a table of many clients costs
// a server. In one process it starts a node (package herd's public API,
// loopback TCP, no peers), reports N distinct clients to it through the
// client protocol over a few connections as fast as it answers (the load
// of load.go with -prefill), then keeps reporting those clients
// again (repeat reports) for a steady phase. It reports the node's table
// size, the process's resident memory and Go heap per record, and the
// collector's CPU in both phases (runtime.go).
//
// The load generator runs in the same process. It keeps nothing per
// client (IDs are formatted from a counter as requests are written) and
// allocates its buffers when it connects, before the baseline sample, so
// the growth measured is the node's: the table, and the few client
// sessions' buffers.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/proxyherd/herd"
)

type tableOptions struct {
	clients int // distinct clients to report
	load    loadOptions
}

// tableResult is what bench table measures.
type tableResult struct {
	Clients    int     `json:"clients"`
	Records    int64   `json:"records"`       // the node's Stats().Clients after the fill
	LineBytes  float64 `json:"at_line_bytes"` // mean AT line length of a sample of records
	GOMAXPROCS int     `json:"gomaxprocs"`

	// Resident memory (VmRSS): at the baseline (node started, load
	// connected, after a forced collection), at the end of the fill and
	// of the steady phase (as the phases left it), and after a forced
	// collection and debug.FreeOSMemory at the end.
	RSSBase   int64 `json:"rss_base"`
	RSSFilled int64 `json:"rss_filled"`
	RSSSteady int64 `json:"rss_steady"`
	RSSFloor  int64 `json:"rss_floor"`
	// Go heap: objects after the forced collection that ends the fill,
	// against the baseline's; and all memory the runtime maps then.
	HeapBase   uint64 `json:"heap_objects_base"`
	HeapFilled uint64 `json:"heap_objects_filled"`
	MappedBase uint64 `json:"go_mapped_base"`
	MappedFull uint64 `json:"go_mapped_filled"`

	Fill        gcPhase     `json:"fill"`
	Steady      gcPhase     `json:"steady"`
	FullGC      gcCost      `json:"full_gc"` // the forced collection that ends the fill, the table full
	Load        *loadResult `json:"load"`    // the fill (prefill figures) and the steady phase
	NodeInvalid uint64      `json:"node_invalid"`
	TableFull   uint64      `json:"node_table_full"`
}

// perRecord returns bytes per record of the growth from a to b.
func (r *tableResult) perRecord(a, b int64) float64 {
	if r.Records <= 0 {
		return 0
	}
	return float64(b-a) / float64(r.Records)
}

func tableFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	var o tableOptions
	fs.IntVar(&o.clients, "clients", 1_000_000, "distinct `clients` to report")
	fs.IntVar(&o.load.conns, "conns", 4, "client connections of the load")
	fs.IntVar(&o.load.inflight, "inflight", 64, "requests in flight on each connection")
	fs.DurationVar(&o.load.duration, "steady", 10*time.Second, "repeat reports of the known clients after the fill, for this long")
	fs.Float64Var(&o.load.rate, "steady-rate", 0, "open loop: repeat reports at this rate per second (0: as fast as the node answers)")
	fs.DurationVar(&o.load.drain, "drain", 30*time.Second, "bound on waiting for a reply")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	return func(ctx context.Context, e *env, _ []string) int {
		switch {
		case o.clients < 1 || o.clients > 100_000_000:
			return benchUsage(e, "table", "-clients %d: want 1 to 100000000", o.clients)
		case o.load.conns < 1 || o.load.conns > min(1000, o.clients):
			return benchUsage(e, "table", "-conns %d: want 1 to 1000, and no more than -clients", o.load.conns)
		case o.load.inflight < 1 || o.load.inflight > 1<<16:
			return benchUsage(e, "table", "-inflight %d: want 1 to 65536", o.load.inflight)
		case o.load.duration <= 0:
			return benchUsage(e, "table", "-steady %v: want more than 0", o.load.duration)
		case o.load.rate < 0:
			return benchUsage(e, "table", "-steady-rate %v: want 0 or more", o.load.rate)
		case o.load.drain <= 0:
			return benchUsage(e, "table", "-drain %v: want more than 0", o.load.drain)
		}
		res, err := runTable(ctx, o)
		if err != nil {
			fmt.Fprintf(e.stderr, "herd bench table: %v\n", err)
			return exitFailure
		}
		if *asJSON {
			writeJSON(e, res)
		} else {
			printTable(e.stdout, res)
		}
		if res.Load.Errors > 0 || res.Records != int64(o.clients) {
			return exitFailure
		}
		return exitOK
	}
}

// runTable starts the node, fills it, runs the steady phase and measures.
func runTable(ctx context.Context, o tableOptions) (*tableResult, error) {
	n, err := herd.New(herd.Config{Name: "Hands", Addr: "127.0.0.1:0", MaxClients: max(o.clients, herd.DefaultMaxClients)})
	if err != nil {
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		return nil, err
	}
	defer n.Close()

	res := &tableResult{Clients: o.clients, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	lo := o.load
	lo.addr = n.Addr().String()
	lo.totalClients = o.clients
	lo.prefill = true
	lo.expect = "at"
	lo.dialTimeout = 5 * time.Second
	lo.run = runID()
	var base, filledEnd, filled rtSample
	lo.hooks.dialled = func() {
		debug.FreeOSMemory() // a forced collection too, so the sample is current
		base = sampleRuntime()
	}
	lo.hooks.filled = func() {
		filledEnd, filled, res.FullGC = collectAndSample()
		res.Records = n.Stats().Clients
	}
	load, err := runLoad(ctx, lo)
	if err != nil {
		return nil, err
	}
	steadyEnd, steady, _ := collectAndSample()
	debug.FreeOSMemory()
	floor := sampleRuntime()

	res.Load = load
	res.Fill = newGCPhase(base, filledEnd, filled)
	res.Steady = newGCPhase(filled, steadyEnd, steady)
	res.RSSBase, res.RSSFilled, res.RSSSteady, res.RSSFloor = base.rss, filledEnd.rss, steadyEnd.rss, floor.rss
	res.HeapBase, res.HeapFilled = base.heapObjects, filled.heapObjects
	res.MappedBase, res.MappedFull = base.mapped, filled.mapped
	res.LineBytes = meanLineBytes(n, &lo)
	st := n.Stats()
	res.NodeInvalid, res.TableFull = st.Invalid, st.TableFull
	return res, nil
}

// meanLineBytes returns the mean AT line length of a sample of records,
// 16 spread over each connection's clients.
func meanLineBytes(n *herd.Node, lo *loadOptions) float64 {
	var sum, count int
	for i := 0; i < lo.conns; i++ {
		nc := uint64(lo.clientsOf(i))
		s := min(nc, 16)
		for j := uint64(0); j < s; j++ {
			if r, ok := n.Lookup(loadClientID(lo, lo.run, i, spreadClient(j, nc, s))); ok {
				sum += len(r.Line)
				count++
			}
		}
	}
	return share(float64(sum), float64(count))
}

func printTable(w io.Writer, r *tableResult) {
	l := r.Load
	fmt.Fprintf(w, "table: %d clients reported to one node (no peers) over %d connections x %d in flight; GOMAXPROCS %d\n",
		r.Clients, l.Conns, l.Inflight, r.GOMAXPROCS)
	fmt.Fprintf(w, "  records %d, AT line %.0f bytes (mean of a sample)\n", r.Records, r.LineBytes)
	fmt.Fprintf(w, "  fill: %d first reports in %s (%.0f/s)\n", l.Filled, fmtDur(l.FillTime), l.FillRate)
	printGCPhase(w, &r.Fill)
	fmt.Fprintf(w, "  RSS: baseline %s; after the fill %s, %.0f bytes per record; after the steady phase %s, %.0f per record;\n",
		fmtBytes(r.RSSBase), fmtBytes(r.RSSFilled), r.perRecord(r.RSSBase, r.RSSFilled), fmtBytes(r.RSSSteady), r.perRecord(r.RSSBase, r.RSSSteady))
	fmt.Fprintf(w, "       after a forced collection and FreeOSMemory %s, %.0f per record\n", fmtBytes(r.RSSFloor), r.perRecord(r.RSSBase, r.RSSFloor))
	fmt.Fprintf(w, "  Go heap objects after a forced collection: %s, %.0f bytes per record; Go runtime mapped %s\n",
		fmtBytes(int64(r.HeapFilled)), r.perRecord(int64(r.HeapBase), int64(r.HeapFilled)), fmtBytes(int64(r.MappedFull)))
	fmt.Fprintf(w, "  one full collection with the table full: %s wall, %s collector CPU\n", fmtDur(r.FullGC.Wall), fmtDur(r.FullGC.CPU))
	fmt.Fprintf(w, "  steady: %d repeat reports in %s (%.0f replies/s", l.Answered, fmtDur(l.Window), l.Rate)
	if l.OpenLoop {
		fmt.Fprintf(w, ", open loop at %.0f/s", l.Offered)
	}
	fmt.Fprintf(w, "), latency %s\n", l.Latency)
	printGCPhase(w, &r.Steady)
	if l.Errors > 0 || r.NodeInvalid > 0 || r.TableFull > 0 {
		fmt.Fprintf(w, "  errors %d (first: %s); node: %d invalid, %d refused (table full)\n", l.Errors, l.FirstErr, r.NodeInvalid, r.TableFull)
	}
}

func printGCPhase(w io.Writer, p *gcPhase) {
	fmt.Fprintf(w, "    collector: %d natural cycles in %s", p.Cycles, fmtDur(p.Wall))
	if p.Cycles > 0 {
		fmt.Fprintf(w, "; over them %.1f%% of the available CPU (GOMAXPROCS x wall), %.1f%% of the busy CPU",
			100*share(p.GCCPU, p.Available), 100*share(p.GCCPU, p.Busy))
	}
	fmt.Fprintf(w, "; %.1f%% of the available CPU counting the closing forced collection\n", 100*share(p.GCCPUClosed, p.AvailableClosed))
	fmt.Fprintf(w, "    process CPU %s in %s (%.2f cores)\n", fmtDur(p.ProcessCPU), fmtDur(p.Wall), share(float64(p.ProcessCPU), float64(p.Wall)))
}
