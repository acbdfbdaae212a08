package bench

// resync.go: "herd bench resync", what a link-up costs after a
// server restarts from its state file while some clients moved. In one
// process, through package herd's public API, it runs two nodes: Hands
// (A), which gets every report, and Goloman (B), its only neighbour, which
// dials A. Both use a transport that counts the bytes written on peer
// links (linkbytes.go).
//
//  1. A alone is filled with N clients (the load of load.go with
//     -prefill).
//  2. Full push, for reference: B starts empty and links up; measured
//     until B holds A's table and the link has been quiet (no byte
//     written and no write under way) for -quiet.
//     B closes, which writes its state file (Config.StateFile).
//  3. For each fraction F of -changed: while B is down, a fraction F of
//     the clients, spread evenly, report anew at A; B restarts from its
//     state file and links up; measured as in 2; B closes again (and so
//     saves the changes it received).
//
// Measured for each link-up: the bytes written on the link both ways
// (handshake included), the time B's Start took (it loads the state
// file), and from then the times until the link was up, until B held A's
// record of every changed client and as many clients as A, and until the
// last byte on the link. Then every client is compared at A and B.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/proxyherd/herd"
)

type resyncOptions struct {
	clients int
	changed []float64
	load    loadOptions   // conns, inflight, drain
	quiet   time.Duration // the link counts as done once this long without a byte
	timeout time.Duration // bound on one link-up
	verify  bool
	dir     string // for the state file; "" makes a temporary one
	poll    time.Duration
}

// resyncRow is one link-up.
type resyncRow struct {
	Label      string        `json:"label"`
	Fraction   float64       `json:"fraction"` // of the clients changed at A while B was down; 0 for the full push
	Changed    uint64        `json:"changed"`  // records changed at A
	BytesAB    int64         `json:"bytes_a_to_b"`
	BytesBA    int64         `json:"bytes_b_to_a"`
	OfFull     float64       `json:"of_full_push"` // (BytesAB+BytesBA) / the full push's
	StateBytes int64         `json:"state_file_bytes"`
	Start      time.Duration `json:"start_ns"` // B's Start: reading the state file
	// From Start's return.
	LinkUp    time.Duration `json:"link_up_ns"`
	Identical time.Duration `json:"identical_ns"`
	LastByte  time.Duration `json:"last_byte_ns"`
	Links     int           `json:"links"`                // peer connections in this link-up: 1 unless it dropped
	Mismatch  int           `json:"mismatches,omitempty"` // clients whose records differ at the end
	Verified  bool          `json:"verified"`
}

type resyncResult struct {
	Clients  int           `json:"clients"`
	Fill     *loadResult   `json:"fill"`
	Rows     []resyncRow   `json:"rows"`
	Quiet    time.Duration `json:"quiet_ns"`
	FirstErr string        `json:"first_error,omitempty"`
}

// parseFractions parses a comma-separated list of fractions, each above 0
// and at most 1.
func parseFractions(s string) ([]float64, error) {
	var out []float64
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || math.IsNaN(v) || v <= 0 || v > 1 {
			return nil, fmt.Errorf("%q: want a fraction above 0 and at most 1", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func resyncFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	var o resyncOptions
	fs.IntVar(&o.clients, "clients", 1_000_000, "distinct `clients` in the table")
	changed := fs.String("changed", "0.001,0.01,1", "`fractions` of the clients that change while B is down, one link-up each")
	fs.IntVar(&o.load.conns, "conns", 4, "client connections of the fill")
	fs.IntVar(&o.load.inflight, "inflight", 64, "requests in flight on each connection of the fill")
	fs.DurationVar(&o.load.drain, "drain", 30*time.Second, "bound on waiting for a reply during the fill")
	fs.DurationVar(&o.quiet, "quiet", time.Second, "a link-up is over once the link has been this long without a byte or a write under way")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound on one link-up")
	fs.BoolVar(&o.verify, "verify", true, "after each link-up, compare every client's record at A and B")
	fs.StringVar(&o.dir, "dir", "", "`directory` for B's state file (default: a temporary one, removed at the end)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	return func(ctx context.Context, e *env, _ []string) int {
		var err error
		if o.changed, err = parseFractions(*changed); err != nil {
			return benchUsage(e, "resync", "-changed %s", err)
		}
		switch {
		case o.clients < 1 || o.clients > 100_000_000:
			return benchUsage(e, "resync", "-clients %d: want 1 to 100000000", o.clients)
		case o.load.conns < 1 || o.load.conns > min(1000, o.clients):
			return benchUsage(e, "resync", "-conns %d: want 1 to 1000, and no more than -clients", o.load.conns)
		case o.load.inflight < 1 || o.load.inflight > 1<<16:
			return benchUsage(e, "resync", "-inflight %d: want 1 to 65536", o.load.inflight)
		case o.load.drain <= 0 || o.quiet <= 0 || o.timeout <= 0:
			return benchUsage(e, "resync", "-drain, -quiet and -timeout must be more than 0")
		}
		o.poll = 5 * time.Millisecond
		res, err := runResync(ctx, o)
		if err != nil {
			fmt.Fprintf(e.stderr, "herd bench resync: %v\n", err)
			return exitFailure
		}
		if *asJSON {
			writeJSON(e, res)
		} else {
			printResync(e.stdout, res)
		}
		if res.FirstErr != "" {
			return exitFailure
		}
		return exitOK
	}
}

// resyncRun is the state of one resync measurement.
type resyncRun struct {
	o      resyncOptions
	lo     loadOptions // the fill's; the changes use its run tag and client counts
	a      *herd.Node
	ta, tb countingTransport
	state  string
	base   int64 // client time of the last load's request 0
	res    *resyncResult
}

func runResync(ctx context.Context, o resyncOptions) (*resyncResult, error) {
	dir := o.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "herd-resync-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	r := &resyncRun{o: o, state: filepath.Join(dir, "goloman.state"), res: &resyncResult{Clients: o.clients, Quiet: o.quiet}}
	if err := os.Remove(r.state); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	a, err := herd.New(herd.Config{Name: "Hands", Addr: "127.0.0.1:0", Peers: []herd.Peer{{Name: "Goloman"}},
		Transport: &r.ta, MaxClients: max(o.clients, herd.DefaultMaxClients)})
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	defer a.Close()
	r.a = a

	r.lo = o.load
	r.lo.addr = a.Addr().String()
	r.lo.totalClients = o.clients
	r.lo.prefill = true
	r.lo.expect = "at"
	r.lo.dialTimeout = 5 * time.Second
	r.lo.run = runID()
	if r.res.Fill, err = r.report(ctx, 1); err != nil {
		return nil, err
	}
	if got := a.Stats().Clients; got != int64(o.clients) {
		return nil, fmt.Errorf("fill: A holds %d clients, want %d", got, o.clients)
	}

	full, err := r.linkUp(ctx, "full push (B empty)", 1)
	if err != nil {
		return nil, err
	}
	full.Fraction, full.Changed = 0, uint64(o.clients)
	r.res.Rows = append(r.res.Rows, full)
	for _, f := range o.changed {
		load, err := r.report(ctx, f)
		if err != nil {
			return nil, err
		}
		row, err := r.linkUp(ctx, fmt.Sprintf("%g%% changed", 100*f), f)
		if err != nil {
			return nil, err
		}
		row.Changed = load.Filled
		r.res.Rows = append(r.res.Rows, row)
	}
	for i := range r.res.Rows {
		row := &r.res.Rows[i]
		row.OfFull = share(float64(row.BytesAB+row.BytesBA), float64(full.BytesAB+full.BytesBA))
	}
	return r.res, nil
}

// report makes a fraction frac of the clients (all of them for 1) report
// to A, newer than any earlier report, and waits for the replies.
func (r *resyncRun) report(ctx context.Context, frac float64) (*loadResult, error) {
	lo := r.lo
	lo.fillFraction = frac
	// Each load's times come after every time of the one before.
	r.base = max(time.Now().UnixNano(), r.base+int64(r.o.clients)+1)
	lo.timeBase = r.base
	res, err := runLoad(ctx, lo)
	if err != nil {
		return nil, err
	}
	if res.Errors > 0 {
		return nil, fmt.Errorf("reports to A: %d errors, first: %s", res.Errors, res.FirstErr)
	}
	return res, nil
}

// clientSet walks the clients a report of fraction frac changed: on each
// connection, fillCount of them spread evenly, as the load's prefill
// chose them.
type clientSet struct {
	lo   *loadOptions
	frac float64
	i    int    // connection
	j    uint64 // report on it
}

// id returns the current client's ID, or "" when the set is done.
func (s *clientSet) id() string {
	for s.i < s.lo.conns {
		n := uint64(s.lo.clientsOf(s.i))
		if c := fillCount(n, s.frac); s.j < c {
			return loadClientID(s.lo, s.lo.run, s.i, spreadClient(s.j, n, c))
		}
		s.i, s.j = s.i+1, 0
	}
	return ""
}

func (s *clientSet) next() { s.j++ }

// sameAt reports whether a and b hold the same record of client.
func sameAt(a, b *herd.Node, client string) bool {
	ra, okA := a.Lookup(client)
	rb, okB := b.Lookup(client)
	return okA == okB && ra.Line == rb.Line
}

// linkUp starts B from the state file (absent the first time), waits
// until it holds A's records of the clients in frac's set and as many
// clients as A, and until the link is quiet, then verifies and closes B.
func (r *resyncRun) linkUp(ctx context.Context, label string, frac float64) (resyncRow, error) {
	row := resyncRow{Label: label, Fraction: frac}
	if err := waitNoLinks(ctx, r.a); err != nil {
		return row, err
	}
	if fi, err := os.Stat(r.state); err == nil {
		row.StateBytes = fi.Size()
	}
	ab0, links0, _ := r.ta.peerBytes()
	ba0, _, _ := r.tb.peerBytes()
	b, err := herd.New(herd.Config{Name: "Goloman", Addr: "127.0.0.1:0", Peers: []herd.Peer{{Name: "Hands", Addr: r.a.Addr().String()}},
		Transport: &r.tb, StateFile: r.state, StateInterval: 1000 * time.Hour, MaxClients: max(r.o.clients, herd.DefaultMaxClients)})
	if err != nil {
		return row, err
	}
	t0 := time.Now()
	if err := b.Start(ctx); err != nil {
		return row, err
	}
	defer b.Close()
	row.Start = time.Since(t0)
	t0 = time.Now()

	set := clientSet{lo: &r.lo, frac: frac}
	tick := time.NewTicker(r.o.poll)
	defer tick.Stop()
	deadline := time.NewTimer(r.o.timeout)
	defer deadline.Stop()
	var last int64
	lastChange := t0
	for {
		now := time.Now()
		if row.LinkUp == 0 && len(b.Links()) > 0 {
			row.LinkUp = now.Sub(t0)
		}
		if row.Identical == 0 {
			for id := set.id(); id != "" && sameAt(r.a, b, id); id = set.id() {
				set.next()
			}
			if set.id() == "" && b.Stats().Clients == r.a.Stats().Clients {
				row.Identical = now.Sub(t0)
			}
		}
		ab, _, wa := r.ta.peerBytes()
		ba, _, wb := r.tb.peerBytes()
		if ab+ba != last || wa+wb > 0 {
			last, lastChange = ab+ba, now
		}
		if row.Identical > 0 && now.Sub(lastChange) >= r.o.quiet {
			row.BytesAB, row.BytesBA = ab-ab0, ba-ba0
			row.LastByte = max(lastChange.Sub(t0), 0)
			break
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return row, fmt.Errorf("%s: B not identical to A after %v (link up after %v)", label, r.o.timeout, row.LinkUp)
		case <-ctx.Done():
			return row, ctx.Err()
		}
	}
	_, links, _ := r.ta.peerBytes()
	row.Links = links - links0
	if r.o.verify {
		row.Verified = true
		all := clientSet{lo: &r.lo, frac: 1}
		for id := all.id(); id != ""; id = all.id() {
			if !sameAt(r.a, b, id) {
				row.Mismatch++
			}
			all.next()
		}
		if row.Mismatch > 0 && r.res.FirstErr == "" {
			r.res.FirstErr = fmt.Sprintf("%s: %d clients differ at A and B after the link-up", label, row.Mismatch)
		}
	}
	return row, b.Close()
}

func printResync(w io.Writer, r *resyncResult) {
	f := r.Fill
	fmt.Fprintf(w, "resync: %d clients at A (Hands), filled in %s (%.0f/s); B (Goloman) links up to A\n", r.Clients, fmtDur(f.FillTime), f.FillRate)
	fmt.Fprintf(w, "%-22s %9s %12s %12s %8s %10s %9s %9s %9s %9s %5s\n",
		"link-up", "changed", "bytes A->B", "bytes B->A", "of full", "state", "B start", "link up", "identical", "last byte", "links")
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%-22s %9d %12d %12d %7.1f%% %10s %9s %9s %9s %9s %5d",
			row.Label, row.Changed, row.BytesAB, row.BytesBA, 100*row.OfFull, fmtBytes(row.StateBytes),
			fmtDur(row.Start), fmtDur(row.LinkUp), fmtDur(row.Identical), fmtDur(row.LastByte), row.Links)
		if row.Verified {
			fmt.Fprintf(w, "  %d differ", row.Mismatch)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "times from B's Start returning (B start: reading its state file), polled every 5ms; a link-up ends after %s without a byte\n", fmtDur(r.Quiet))
	if r.FirstErr != "" {
		fmt.Fprintf(w, "error: %s\n", r.FirstErr)
	}
}

// waitNoLinks waits until n has no link up: the last B's is gone.
func waitNoLinks(ctx context.Context, n *herd.Node) error {
	for {
		ch := n.Changed()
		if len(n.Links()) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
