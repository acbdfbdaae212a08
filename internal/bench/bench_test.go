package bench

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/leakcheck"
	"github.com/proxyherd/herd/internal/testio"
)

func TestBenchHistIndex(t *testing.T) {
	// Buckets are contiguous and ordered: every value lies in its bucket,
	// above the previous bucket's upper bound.
	check := func(v int64) {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, out of range", v, i)
		}
		if up := histUpper(i); up < v {
			t.Fatalf("histUpper(histIndex(%d)) = %d, below the value", v, up)
		}
		if i > 0 && histUpper(i-1) >= v {
			t.Fatalf("value %d: previous bucket reaches %d", v, histUpper(i-1))
		}
		// Bucket width is at most 1/histSub of its values.
		if lo := histUpper(i-1) + 1; i > 0 && float64(histUpper(i)-lo+1) > float64(lo)/histSub+1 {
			t.Fatalf("bucket %d [%d, %d] is too wide", i, lo, histUpper(i))
		}
	}
	for v := int64(0); v < 5000; v++ {
		check(v)
	}
	for s := 12; s < 63; s++ {
		for _, d := range []int64{-1, 0, 1} {
			check(int64(1)<<s + d)
		}
	}
	check(math.MaxInt64)
	if histIndex(-5) != 0 {
		t.Errorf("negative values must count as 0")
	}
}

// exactQuantile is the nearest-rank percentile of sorted xs.
func exactQuantile(sorted []int64, p float64) int64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func TestBenchHistQuantile(t *testing.T) {
	if q := newLatHist().quantile(50); q != 0 {
		t.Errorf("empty histogram: p50 %d, want 0", q)
	}

	// Small values are exact.
	h := newLatHist()
	for v := int64(1); v <= 100; v++ {
		h.record(v)
	}
	for _, tc := range []struct {
		p    float64
		want int64
	}{{50, 50}, {90, 90}, {99, 99}, {99.9, 100}, {100, 100}, {0.001, 1}, {1, 1}} {
		if got := h.quantile(tc.p); got != tc.want {
			t.Errorf("1..100: p%v = %d, want %d", tc.p, got, tc.want)
		}
	}
	if s := h.summary(); s.N != 100 || s.Min != 1 || s.Max != 100 || s.Mean != 50 {
		t.Errorf("summary %+v", s)
	}

	// Large values are within 1/histSub above the exact percentile, and
	// never beyond the largest value.
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 20; trial++ {
		h := newLatHist()
		n := 1 + rng.IntN(5000)
		xs := make([]int64, n)
		for i := range xs {
			xs[i] = int64(math.Exp(rng.Float64() * 25)) // 1ns to ~70ms, log-uniform
			h.record(xs[i])
		}
		slices.Sort(xs)
		for _, p := range []float64{1, 50, 90, 99, 99.9, 100} {
			want, got := exactQuantile(xs, p), h.quantile(p)
			if got < want || float64(got-want) > float64(want)/histSub {
				t.Errorf("trial %d (n %d): p%v = %d, exact %d", trial, n, p, got, want)
			}
		}
		if got := h.quantile(100); got != xs[n-1] {
			t.Errorf("p100 = %d, want the max %d", got, xs[n-1])
		}
	}
}

func TestBenchHistMerge(t *testing.T) {
	a, b, all := newLatHist(), newLatHist(), newLatHist()
	for v := int64(0); v < 3000; v += 7 {
		a.record(v * 1000)
		all.record(v * 1000)
	}
	for v := int64(5); v < 900; v += 3 {
		b.record(v * 999)
		all.record(v * 999)
	}
	a.merge(b)
	if a.summary() != all.summary() {
		t.Errorf("merged %v\nwant   %v", a.summary(), all.summary())
	}
	empty := newLatHist()
	empty.merge(newLatHist())
	if s := empty.summary(); s != (latencySummary{}) {
		t.Errorf("merge of empties: %+v", s)
	}
}

func TestBenchMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1}, 2}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		in := slices.Clone(tc.xs)
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		if !slices.Equal(in, tc.xs) {
			t.Errorf("median modified its input")
		}
	}
}

func TestBenchFormat(t *testing.T) {
	for _, tc := range []struct {
		t    int64
		want string
	}{{1520023934918963997, "1520023934.918963997"}, {5, "0.000000005"}, {1e9, "1.000000000"}} {
		if got := string(appendClientTime(nil, tc.t)); got != tc.want {
			t.Errorf("appendClientTime(%d) = %q, want %q", tc.t, got, tc.want)
		}
	}
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{850, "850ns"}, {41200, "41.2µs"}, {1372000, "1.37ms"}, {123456789, "123ms"}, {2050 * time.Millisecond, "2.05s"}} {
		if got := fmtDur(tc.d); got != tc.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// benchEcho starts an in-process echo server for the test.
func benchEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveEcho(ln)
	t.Cleanup(srv.close)
	return ln.Addr().String()
}

// benchNode starts a herd node on loopback with the system clock.
func benchNode(t *testing.T, name string, peers ...herd.Peer) *herd.Node {
	t.Helper()
	n, err := herd.New(herd.Config{Name: name, Addr: "127.0.0.1:0", Peers: peers})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func benchLoadOptions(addr string) loadOptions {
	return loadOptions{addr: addr, conns: 4, inflight: 8, duration: 200 * time.Millisecond, clients: 1,
		expect: "auto", dialTimeout: 5 * time.Second, drain: 10 * time.Second}
}

func checkLoad(t *testing.T, res *loadResult, replies string) {
	t.Helper()
	if res.Errors != 0 || res.FirstErr != "" {
		t.Errorf("%d errors, first %q", res.Errors, res.FirstErr)
	}
	if res.Replies != replies {
		t.Errorf("replies %q, want %q", res.Replies, replies)
	}
	// Closed loop records the replies that arrive in the window, open loop
	// those of the requests due in it (every request, without warm-up).
	wantN := res.Count
	if res.OpenLoop {
		wantN = res.Sent
	}
	if res.Count == 0 || res.Rate <= 0 || res.Latency.N != wantN {
		t.Errorf("count %d, rate %v, latency samples %d", res.Count, res.Rate, res.Latency.N)
	}
	if res.Sent == 0 || res.Answered != res.Sent || res.Count > res.Answered {
		t.Errorf("sent %d, answered %d, counted %d", res.Sent, res.Answered, res.Count)
	}
	if res.Window <= 0 || res.Window > 200*time.Millisecond {
		t.Errorf("window %v", res.Window)
	}
	if l := res.Latency; l.Min <= 0 || l.P50 < l.Min || l.P99 < l.P50 || l.Max < l.P999 {
		t.Errorf("latency %v", l)
	}
}

func TestBenchLoadEcho(t *testing.T) {
	res, err := runLoad(context.Background(), benchLoadOptions(benchEcho(t)))
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, res, "echo")
}

func TestBenchLoadHerd(t *testing.T) {
	n := benchNode(t, "Goloman")
	o := benchLoadOptions(n.Addr().String())
	o.expect = "at"
	o.warmup = 50 * time.Millisecond
	res, err := runLoad(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, res, "AT")
	// Every request was a new report of one client per connection.
	st := n.Stats()
	if st.IAMAT != res.Sent || st.RecordsLocal != res.Sent || st.Clients != int64(o.conns) || st.Invalid != 0 {
		t.Errorf("node stats %+v after %d requests on %d connections", st, res.Sent, o.conns)
	}
}

func TestBenchLoadClients(t *testing.T) {
	n := benchNode(t, "Goloman")
	o := benchLoadOptions(n.Addr().String())
	o.clients = 3
	res, err := runLoad(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, res, "AT")
	if st := n.Stats(); st.Clients != int64(o.conns*o.clients) || st.RecordsLocal != res.Sent {
		t.Errorf("node stats %+v after %d requests from %d clients", st, res.Sent, o.conns*o.clients)
	}
}

func TestBenchLoadRate(t *testing.T) {
	o := benchLoadOptions(benchEcho(t))
	o.rate = 2000 // 400 requests in the 200ms window, 100 per connection
	res, err := runLoad(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, res, "echo")
	// Open loop: request g over all connections is due at g/2000 s, and
	// every request due in the window is sent, late or not.
	if res.Sent != 400 || !res.OpenLoop {
		t.Errorf("sent %d at -rate %v for %v (open loop %v), want 400", res.Sent, o.rate, o.duration, res.OpenLoop)
	}
}

func TestBenchLoadCountsBadReplies(t *testing.T) {
	o := benchLoadOptions(benchEcho(t))
	o.expect = "at" // the echo server's replies are not AT lines
	res, err := runLoad(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != res.Answered || res.Answered == 0 || !strings.HasPrefix(res.FirstErr, `unexpected reply "IAMAT bench-`) {
		t.Errorf("errors %d of %d replies, first %q", res.Errors, res.Answered, res.FirstErr)
	}
}

func TestBenchLoadUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := runLoad(context.Background(), benchLoadOptions(addr)); err == nil {
		t.Error("load against a closed port succeeded")
	}
}

func TestBenchLoadCommand(t *testing.T) {
	n := benchNode(t, "Goloman")
	e, out, errOut := testEnv()
	args := []string{"load", "-addr", n.Addr().String(), "-conns", "2", "-inflight", "4",
		"-duration", "100ms", "-warmup", "0", "-echo", "inproc", "-rounds", "2", "-json"}
	if code := run(context.Background(), e, args); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var rep loadReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(rep.Rounds) != 2 || rep.MedianRate <= 0 || rep.MedianEchoRate <= 0 || rep.MedianRatio <= 0 {
		t.Errorf("report %+v", rep)
	}
	for _, r := range rep.Rounds {
		if r.Server.Replies != "AT" || r.Echo.Replies != "echo" || r.Server.Errors+r.Echo.Errors != 0 {
			t.Errorf("round %+v %+v", r.Server, r.Echo)
		}
	}
}

// TestBenchLoadVs compares two herd servers, as the logging figures do:
// both answer AT lines.
func TestBenchLoadVs(t *testing.T) {
	a, b := benchNode(t, "Goloman"), benchNode(t, "Hands")
	e, out, errOut := testEnv()
	args := []string{"load", "-addr", a.Addr().String(), "-vs", b.Addr().String(), "-conns", "2", "-inflight", "4",
		"-duration", "100ms", "-warmup", "0", "-rounds", "2"}
	if code := run(context.Background(), e, args); code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"\nvs     " + b.Addr().String() + ": ", "\nserver/vs ", "\nmedian of 2 rounds: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	e, _, errOut = testEnv()
	if code := run(context.Background(), e, []string{"load", "-vs", "x", "-echo", "inproc"}); code != exitUsage || !strings.Contains(errOut.String(), "-vs and -echo: want one of them") {
		t.Errorf("-vs with -echo: exit %d: %s", code, errOut)
	}
}

func TestBenchProp(t *testing.T) {
	// Of two neighbours the one whose name sorts first dials: Alford
	// dials Ball. Zed is linked to no one.
	b := benchNode(t, "Ball", herd.Peer{Name: "Alford"})
	a := benchNode(t, "Alford", herd.Peer{Name: "Ball", Addr: b.Addr().String()})
	z := benchNode(t, "Zed")
	benchWaitLinks(t, a, 1)
	res, err := runProp(context.Background(), propOptions{from: a.Addr().String(), to: b.Addr().String(),
		n: 20, warmup: 2, timeout: 10 * time.Second, dialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples != 20 || res.Lost != 0 || res.Mismatches != 0 || res.Latency.N != 20 || res.Polls < 1 || res.FirstErr != "" {
		t.Errorf("result %+v", res)
	}

	// A server that never gets the record: every sample is lost.
	res, err = runProp(context.Background(), propOptions{from: a.Addr().String(), to: z.Addr().String(),
		n: 2, timeout: 50 * time.Millisecond, dialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples != 0 || res.Lost != 2 || !strings.Contains(res.FirstErr, "timeout") {
		t.Errorf("unlinked: result %+v", res)
	}
}

// benchWaitLinks waits, without sleeping, until n has want links up.
func benchWaitLinks(t *testing.T, n *herd.Node, want int) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		ch := n.Changed()
		if len(n.Links()) >= want {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: links %v, want %d", n.Name(), n.Links(), want)
		}
	}
}

func TestBenchIdle(t *testing.T) {
	n := benchNode(t, "Goloman")
	addr := n.Addr().String()
	if pid := listenerPid(addr); pid != os.Getpid() {
		t.Logf("listenerPid(%s) = %d, want %d (is /proc readable?)", addr, pid, os.Getpid())
	}
	res, err := runIdle(context.Background(), idleOptions{addr: addr, n: 50, pid: os.Getpid(), touch: true, dialTimeout: 5 * time.Second}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if res.Opened != 50 || res.Open != 50 {
		t.Errorf("opened %d, open %d", res.Opened, res.Open)
	}
	if st := n.Stats(); st.Invalid != 50 || st.ConnsAccepted != 50 {
		t.Errorf("node saw %d invalid lines on %d connections, want 50 on 50", st.Invalid, st.ConnsAccepted)
	}
	if _, err := os.Stat("/proc/self/status"); err == nil && (res.Before == nil || res.After == nil || res.After.VmRSS == 0) {
		t.Errorf("no memory figures: %+v %+v", res.Before, res.After)
	}
}

func TestBenchStillOpen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if !stillOpen(c) {
		t.Error("an open idle connection looks closed")
	}
	s.Close()
	// The FIN may take a moment to arrive; wait for it with a blocking
	// read, then peek.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); err == nil {
		t.Fatal("read data from a closed connection")
	}
	if stillOpen(c) {
		t.Error("a connection the server closed looks open")
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{}, {"nope"}, {"load", "-conns", "0"}, {"load", "-expect", "x"},
		{"load", "extra"}, {"prop"}, {"prop", "-to", "x", "-n", "0"},
		{"idle", "-n", "0"}, {"echo", "-for", "0s"},
	} {
		e, _, errOut := testEnv()
		if code := run(context.Background(), e, args); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
	}
	e, _, errOut := testEnv()
	if code := run(context.Background(), e, []string{"load", "-h"}); code != exitOK || !strings.Contains(errOut.String(), "-inflight") {
		t.Errorf("bench load -h: exit %d\n%s", code, errOut)
	}
}

func TestBenchEchoCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, out, errOut := testEnv()
	done := make(chan int, 1)
	go func() { done <- run(ctx, e, []string{"echo", "-addr", "127.0.0.1:0"}) }()
	var line string
	select {
	case line = <-out.Lines:
	case code := <-done:
		t.Fatalf("echo exited %d\n%s", code, errOut)
	}
	addr, ok := strings.CutPrefix(line, "echo listening on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	res, err := runLoad(ctx, benchLoadOptions(addr))
	if err != nil {
		t.Fatal(err)
	}
	checkLoad(t, res, "echo")
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("echo exited %d", code)
	}
}

// testEnv returns an env with captured output.
func testEnv() (*env, *testio.LineWriter, *testio.LineWriter) {
	out, errOut := testio.NewLineWriter(), testio.NewLineWriter()
	return &env{stdout: out, stderr: errOut}, out, errOut
}

// TestMain fails the run if a node or client goroutine outlives the tests.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "client.(*Conn).readLoop", "herd.(*Node)", "logging.(*Writer)")
}
