package bench

// Tests of the many-clients tools: open-loop scheduling, client IDs,
// -prefill and -clients 0, the background load of prop, and smoke tests
// of bench table and bench resync with tiny tables.

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/proxyherd/herd"
)

func TestBenchSchedule(t *testing.T) {
	// 1000/s over 4 connections: connection 1's requests are due at 1, 5,
	// 9... ms, interleaved with the others'.
	s := schedule{rate: 1000, conns: 4, conn: 1}
	for k, want := range []int64{1e6, 5e6, 9e6, 13e6} {
		if got := s.at(uint64(k)); got != want {
			t.Errorf("at(%d) = %d, want %d", k, got, want)
		}
	}
	for _, tc := range []struct {
		t    int64
		want uint64
	}{{-1, 0}, {0, 0}, {1e6 - 1, 0}, {1e6, 1}, {5e6 - 1, 1}, {5e6, 2}, {1e9, 250}} {
		if got := s.due(tc.t); got != tc.want {
			t.Errorf("due(%d) = %d, want %d", tc.t, got, tc.want)
		}
	}
	// Latency counts from the scheduled time, not from when the request
	// was written: request 2 (due at 9 ms) answered at 10 ms took 1 ms
	// whenever it went out.
	if got := s.latency(2, 10e6); got != 1e6 {
		t.Errorf("latency(2, 10ms) = %d, want 1ms", got)
	}
	if got := s.latency(2, 8e6); got != 0 {
		t.Errorf("latency before the due time = %d, want 0", got)
	}

	// All connections together are due at g/rate, each g once.
	merged := map[int64]int{}
	for c := 0; c < 3; c++ {
		sc := schedule{rate: 300, conns: 3, conn: c}
		for k := uint64(0); k < 100; k++ {
			merged[sc.at(k)]++
		}
	}
	for g := int64(0); g < 300; g++ {
		if at := g * 1e9 / 300; merged[at] != 1 {
			t.Fatalf("request %d of the merged schedule (due %d ns): %d connections", g, at, merged[at])
		}
	}

	// due agrees with at for any rate: due(at(k)) = k+1, due(at(k)-1) = k.
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 2000; trial++ {
		conns := 1 + rng.IntN(64)
		s := schedule{rate: 1 + rng.Float64()*1e7, conns: conns, conn: rng.IntN(conns)}
		k := uint64(rng.IntN(1_000_000))
		at := s.at(k)
		if got := s.due(at); got != k+1 {
			t.Fatalf("%+v: due(at(%d)) = %d", s, k, got)
		}
		if got := s.due(at - 1); got != k {
			t.Fatalf("%+v: due(at(%d)-1) = %d", s, k, got)
		}
	}
}

func TestBenchFillSpread(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		frac float64
		want uint64
	}{{1000, 0, 1000}, {1000, 1, 1000}, {1000, 0.01, 10}, {1000, 0.001, 1}, {3, 0.001, 1}, {250000, 0.001, 250}, {0, 0.5, 0}} {
		if got := fillCount(tc.n, tc.frac); got != tc.want {
			t.Errorf("fillCount(%d, %v) = %d, want %d", tc.n, tc.frac, got, tc.want)
		}
	}
	// c of n clients, spread: distinct, in range, evenly apart.
	n, c := uint64(1000), uint64(30)
	seen := map[uint64]bool{}
	for j := uint64(0); j < c; j++ {
		k := spreadClient(j, n, c)
		if k >= n || seen[k] || j > 0 && (k-spreadClient(j-1, n, c) < n/c || k-spreadClient(j-1, n, c) > n/c+1) {
			t.Fatalf("spreadClient(%d, %d, %d) = %d", j, n, c, k)
		}
		seen[k] = true
	}
}

func TestBenchRequests(t *testing.T) {
	req := func(clients int, prefill bool, frac float64, seqs ...uint64) string {
		o := &loadOptions{conns: 2, inflight: 1, clients: clients, prefill: prefill, fillFraction: frac}
		lc := newLoadConn(o, nil, 1, "r1", 1520023934000000000)
		var b []byte
		for _, s := range seqs {
			b = lc.appendRequest(b, s)
		}
		return string(b)
	}
	const loc = " +34.068930-118.445127 "
	for _, tc := range []struct {
		name, got, want string
	}{
		{"one client per connection", req(1, false, 0, 0, 1),
			"IAMAT bench-r1-1" + loc + "1520023934.000000000\nIAMAT bench-r1-1" + loc + "1520023934.000000001\n"},
		{"three, in turn", req(3, false, 0, 2, 3),
			"IAMAT bench-r1-1-2" + loc + "1520023934.000000002\nIAMAT bench-r1-1-0" + loc + "1520023934.000000003\n"},
		{"a new client for every report", req(0, false, 0, 7, 8),
			"IAMAT bench-r1-1-7" + loc + "1520023934.000000007\nIAMAT bench-r1-1-8" + loc + "1520023934.000000008\n"},
		// Prefill of 10 clients, then the measured reports start again at client 0.
		{"after a prefill", req(10, true, 0, 9, 10, 11),
			"IAMAT bench-r1-1-9" + loc + "1520023934.000000009\nIAMAT bench-r1-1-0" + loc + "1520023934.000000010\nIAMAT bench-r1-1-1" + loc + "1520023934.000000011\n"},
		// A 20% prefill of 10 clients reports clients 0 and 5.
		{"a fractional prefill", req(10, true, 0.2, 0, 1),
			"IAMAT bench-r1-1-0" + loc + "1520023934.000000000\nIAMAT bench-r1-1-5" + loc + "1520023934.000000001\n"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, tc.got, tc.want)
		}
	}
	o := &loadOptions{conns: 3, totalClients: 10}
	if got := []int{o.clientsOf(0), o.clientsOf(1), o.clientsOf(2)}; got[0] != 4 || got[1] != 3 || got[2] != 3 {
		t.Errorf("10 clients over 3 connections: %v", got)
	}
	if got := loadClientID(o, "r1", 2, 2); got != "bench-r1-2-2" {
		t.Errorf("loadClientID = %q", got)
	}
}

// gatedEcho serves one connection that echoes lines, but holds every
// reply until it has read hold lines: a server that stalls.
func gatedEcho(t *testing.T, hold int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		var pending []byte
		for n := 1; ; n++ {
			line, err := r.ReadBytes('\n')
			pending = append(pending, line...)
			if n >= hold || err != nil {
				if _, werr := c.Write(pending); werr != nil || err != nil {
					return
				}
				pending = pending[:0]
			}
		}
	}()
	return ln.Addr().String()
}

func TestBenchLoadOpenLoop(t *testing.T) {
	// The server answers nothing until it has 50 requests. Closed loop,
	// with 8 in flight, would wait for ever; open loop keeps sending on
	// schedule, and the latency of request 0 counts from its due time
	// (0 ms) to its reply, which cannot come before request 49 is due.
	o := benchLoadOptions(gatedEcho(t, 50))
	o.conns, o.rate, o.expect = 1, 1000, "echo" // one request per ms, 200 in the window
	res, err := runLoad(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, res, "echo")
	if !res.OpenLoop || res.Sent != 200 || res.Latency.N != 200 {
		t.Errorf("open loop %v, sent %d, latencies %d; want 200 requests, every one due in the window", res.OpenLoop, res.Sent, res.Latency.N)
	}
	if res.MaxOutstanding < 50 {
		t.Errorf("at most %d unanswered: the writer waited for replies", res.MaxOutstanding)
	}
	if res.Latency.Max < 49*time.Millisecond {
		t.Errorf("max latency %v: not counted from the schedule", res.Latency.Max)
	}
}

func TestBenchLoadFresh(t *testing.T) {
	n := benchNode(t, "Goloman")
	o := benchLoadOptions(n.Addr().String())
	o.clients = 0
	res, err := runLoad(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, res, "AT")
	if st := n.Stats(); st.Clients != int64(res.Sent) || res.Distinct != res.Sent {
		t.Errorf("%d clients at the node, %d distinct reported, after %d requests: want one client per request", st.Clients, res.Distinct, res.Sent)
	}
}

func TestBenchLoadPrefill(t *testing.T) {
	n := benchNode(t, "Goloman")
	o := benchLoadOptions(n.Addr().String())
	o.conns, o.clients, o.prefill = 2, 50, true
	res, err := runLoad(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, res, "AT")
	st := n.Stats()
	if res.Filled != 100 || res.Distinct != 100 || st.Clients != 100 {
		t.Errorf("prefill %d, distinct %d, node clients %d; want 100", res.Filled, res.Distinct, st.Clients)
	}
	// Every report, prefill or not, is newer than the last of its client.
	if st.IAMAT != res.Filled+res.Sent || st.RecordsLocal != st.IAMAT {
		t.Errorf("node: %d IAMATs, %d changes; load: prefill %d, then %d", st.IAMAT, st.RecordsLocal, res.Filled, res.Sent)
	}
}

func TestBenchLoadFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var o loadOptions
	loadFlagSet(fs, &o, "load-")
	if err := fs.Parse([]string{"-load-clients", "0", "-load-rate", "5000", "-load-conns", "8"}); err != nil {
		t.Fatal(err)
	}
	o.duration = time.Second
	if o.clients != 0 || o.rate != 5000 || o.conns != 8 || o.inflight != 16 || o.prefill {
		t.Errorf("parsed %+v", o)
	}
	if msg := o.check("load-"); msg != "" {
		t.Errorf("check: %s", msg)
	}
	o.prefill = true
	if msg := o.check("load-"); !strings.Contains(msg, "-load-prefill") {
		t.Errorf("prefill of unbounded clients: %q", msg)
	}

	for _, args := range [][]string{
		{"load", "-clients", "0", "-prefill"}, {"load", "-clients", "-1"}, {"load", "-rate", "-5"},
		{"prop", "-to", "x", "-load-addr", "y"}, {"prop", "-to", "x", "-load-rate", "10", "-load-conns", "0"},
		{"table", "-clients", "0"}, {"table", "-steady", "0s"}, {"table", "-clients", "3", "-conns", "4"},
		{"resync", "-changed", "0.5,2"}, {"resync", "-changed", ""}, {"resync", "-clients", "0"},
	} {
		e, _, errOut := testEnv()
		if code := run(context.Background(), e, args); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
	}
}

func TestBenchParseFractions(t *testing.T) {
	got, err := parseFractions("0.001, 0.01,1.0")
	if err != nil || len(got) != 3 || got[0] != 0.001 || got[1] != 0.01 || got[2] != 1 {
		t.Errorf("parseFractions = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "1.5", "-0.1", "x", "0.1,", "NaN"} {
		if _, err := parseFractions(bad); err == nil {
			t.Errorf("parseFractions(%q) succeeded", bad)
		}
	}
}

func TestBenchClassifyConn(t *testing.T) {
	for _, tc := range []struct {
		head string
		want int32
	}{{"", connUnknown}, {"HE", connUnknown}, {"HERD 1 a b n", connPeer}, {"HERD", connPeer}, {"IAMAT", connClient}, {"H", connUnknown}, {"HX", connClient}} {
		if got := classifyConn([]byte(tc.head)); got != tc.want {
			t.Errorf("classifyConn(%q) = %d, want %d", tc.head, got, tc.want)
		}
	}
	// Bytes in small pieces: the kind is known once four have come.
	c := &countedConn{}
	for _, b := range []string{"H", "ER", "D 1\n"} {
		c.sniff([]byte(b))
	}
	if c.kind.Load() != connPeer {
		t.Errorf("kind %d after \"HERD 1\" in pieces", c.kind.Load())
	}
}

func TestBenchPropUnderLoad(t *testing.T) {
	b := benchNode(t, "Ball", herd.Peer{Name: "Alford"})
	a := benchNode(t, "Alford", herd.Peer{Name: "Ball", Addr: b.Addr().String()})
	benchWaitLinks(t, a, 1)
	e, out, errOut := testEnv()
	args := []string{"prop", "-from", a.Addr().String(), "-to", b.Addr().String(), "-n", "20", "-warmup", "2", "-timeout", "10s",
		"-load-rate", "2000", "-load-conns", "2", "-load-warmup", "0", "-load-clients", "5", "-load-prefill", "-json"}
	if code := run(context.Background(), e, args); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var rep propReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if rep.Samples != 20 || rep.Lost != 0 || rep.Latency.N != 20 {
		t.Errorf("samples: %+v", rep.propResult)
	}
	l := rep.Load
	if l == nil || !l.OpenLoop || l.Offered != 2000 || l.Errors != 0 || l.Filled != 10 || l.Sent == 0 || l.Answered != l.Sent || l.Addr != a.Addr().String() {
		t.Errorf("background load: %+v", l)
	}
}

func TestBenchTableSmoke(t *testing.T) {
	e, out, errOut := testEnv()
	if code := run(context.Background(), e, []string{"table", "-clients", "2000", "-conns", "2", "-steady", "100ms", "-json"}); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var res tableResult
	if err := json.Unmarshal([]byte(out.String()), &res); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if res.Records != 2000 || res.Load == nil || res.Load.Filled != 2000 || res.Load.Answered == 0 || res.Load.Errors != 0 {
		t.Errorf("records %d, load %+v", res.Records, res.Load)
	}
	if res.LineBytes < 60 || res.Fill.Wall <= 0 || res.Steady.Wall <= 0 || res.Fill.AvailableClosed <= 0 || res.HeapFilled <= res.HeapBase {
		t.Errorf("result %+v", res)
	}
	if res.RSSBase > 0 && res.RSSFilled <= 0 {
		t.Errorf("RSS %d, then %d", res.RSSBase, res.RSSFilled)
	}
}

func TestBenchResyncSmoke(t *testing.T) {
	o := resyncOptions{clients: 2000, changed: []float64{0.01, 1}, quiet: 50 * time.Millisecond, timeout: 30 * time.Second,
		verify: true, dir: t.TempDir(), poll: 2 * time.Millisecond,
		load: loadOptions{conns: 2, inflight: 32, drain: 10 * time.Second}}
	res, err := runResync(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 3 || res.FirstErr != "" || res.Fill.Filled != 2000 {
		t.Fatalf("result %+v", res)
	}
	for i, want := range []uint64{2000, 20, 2000} {
		row := res.Rows[i]
		if row.Changed != want || !row.Verified || row.Mismatch != 0 || row.Links != 1 || row.BytesAB <= 0 || row.Identical <= 0 {
			t.Errorf("row %d: %+v", i, row)
		}
	}
	// The full push: every record (an AT line is over 60 bytes) goes from
	// A to B; B, empty, sends only its half of the handshake.
	full := res.Rows[0]
	if full.BytesAB < 2000*60 || full.BytesBA > 200 || full.OfFull != 1 || full.StateBytes != 0 {
		t.Errorf("full push %+v", full)
	}
	if res.Rows[1].StateBytes < 2000*60 {
		t.Errorf("B restarted from a state file of %d bytes", res.Rows[1].StateBytes)
	}
}
