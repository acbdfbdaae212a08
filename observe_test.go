package herd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseSkewInvertsAppendSkew(t *testing.T) {
	recv := time.Unix(1520023935, 182837383)
	for _, c := range []struct {
		sec  int64
		nsec int32
	}{{1520023934, 918963997}, {1520023935, 182837383}, {1520023936, 0}, {0, 1}, {1520023935, 999999999}, {1e12, 5}} {
		line := string(appendSkew(nil, recv, c.sec, c.nsec)) + " rest"
		got, ok := parseSkew(line)
		want := recv.Sub(time.Unix(c.sec, int64(c.nsec)))
		if !ok || got != want {
			t.Errorf("parseSkew(%q) = %v, %v; want %v", line, got, ok, want)
		}
	}
	for _, bad := range []string{"", "+0.5", "0.000000001", "+1.00000000", "+1.0000000001", "+1.00000000x", "+.000000000", "+1.000000000.0"} {
		if d, ok := parseSkew(bad); ok {
			t.Errorf("parseSkew(%q) = %v, ok", bad, d)
		}
	}
	// Centuries saturate rather than wrap.
	if d, ok := parseSkew("+99999999999999999999.000000000"); !ok || d != 1<<63-1 {
		t.Errorf("huge skew: %v %v", d, ok)
	}
}

// recorder is an Observer that hands every call to the test.
type recorder struct {
	calls chan string
}

func newRecorder() *recorder { return &recorder{calls: make(chan string, 100)} }

func (r *recorder) FloodLag(peer string, d time.Duration) {
	r.calls <- fmt.Sprintf("FloodLag %s %v", peer, d)
}
func (r *recorder) IAMAT(d time.Duration) { r.calls <- fmt.Sprintf("IAMAT %v", d) }
func (r *recorder) Places(d time.Duration, err error) {
	r.calls <- fmt.Sprintf("Places %v %v", d, err)
}

func (r *recorder) want(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-r.calls:
		if got != want {
			t.Errorf("observer got %q, want %q", got, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("observer never got %q", want)
	}
}

// TestObserverAndLinkStatus: two linked nodes with fixed clocks report
// exact timings, and their link's counters and times.
func TestObserverAndLinkStatus(t *testing.T) {
	recv := time.Unix(1520023935, 182837383)
	gClock, hClock := newTestClock(recv.Unix(), int64(recv.Nanosecond())), newTestClock(recv.Unix(), int64(recv.Nanosecond()))
	gObs, hObs := newRecorder(), newRecorder()
	calls := 0
	hands := startNode(t, Config{Name: "Hands", Peers: []Peer{{Name: "Goloman"}}, Clock: hClock, Observer: hObs,
		Places: PlacesFunc(func(context.Context, NearbyQuery) ([]byte, error) {
			if calls++; calls == 2 {
				return nil, errors.New("provider down")
			}
			return []byte(`{"results":[],"status":"ZERO_RESULTS"}`), nil
		})})
	if st := hands.LinkStatus(); len(st) != 1 || st[0] != (LinkStatus{Peer: "Goloman", Since: recv}) {
		t.Fatalf("before any link: %+v", st)
	}
	goloman := startNode(t, Config{Name: "Goloman", Peers: []Peer{{Name: "Hands", Addr: hands.Addr().String()}}, Clock: gClock, Observer: gObs})
	waitNode(t, hands, "the link", func(n *Node) bool { return len(n.Links()) == 1 })

	// An IAMAT at Goloman: handled in no time on its frozen clock, and
	// arriving at Hands, whose clock is 250 ms later, 250 ms after.
	hClock.Set(recv.Add(250 * time.Millisecond))
	c := dialNode(t, goloman)
	c.send("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997\n")
	at := "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997\n"
	if got := c.line(); got != at {
		t.Fatalf("reply %q", got)
	}
	gObs.want(t, "IAMAT 0s")
	hObs.want(t, "FloodLag Goloman 250ms")

	// Writes are sampled: the connection's first, then every 16th. The
	// observer is called before the write, so once a reply is read, its
	// observation (if any) has been made.
	for i := 2; i <= 17; i++ {
		c.send("IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997\n")
		c.line()
		if i < 17 {
			select {
			case got := <-gObs.calls:
				t.Fatalf("write %d observed: %q", i, got)
			default:
			}
		}
	}
	gObs.want(t, "IAMAT 0s")

	// WHATSAT calls the provider: one call that works, one that fails.
	h := dialNode(t, hands)
	h.send("WHATSAT kiwi.cs.ucla.edu 10 1\nWHATSAT kiwi.cs.ucla.edu 10 1\n")
	h.whatsat()
	h.whatsat()
	hObs.want(t, "Places 0s <nil>")
	hObs.want(t, "Places 0s provider down")

	r, _ := hands.Lookup("kiwi.cs.ucla.edu")
	if got, ok := r.ReceivedAt(); !ok || !got.Equal(recv) {
		t.Errorf("ReceivedAt %v %v, want %v", got, ok, recv)
	}
	if lat, lon, ok := r.LatLon(); !ok || lat != 34.06893 || lon != -118.445127 {
		t.Errorf("LatLon %v %v %v", lat, lon, ok)
	}

	// Hands' view of the link: it received the record and sent nothing
	// (a record never goes back to the neighbour it came from).
	want := LinkStatus{Peer: "Goloman", Up: true, Since: recv, LastUp: recv, Ups: 1, Received: 1}
	if st := hands.LinkStatus(); len(st) != 1 || st[0] != want {
		t.Errorf("Hands' link: %+v, want %+v", st, want)
	}
	wantG := LinkStatus{Peer: "Hands", Addr: hands.Addr().String(), Dials: true, Up: true, Since: recv, LastUp: recv, Ups: 1, Sent: 1}
	if st := goloman.LinkStatus(); len(st) != 1 || st[0] != wantG {
		t.Errorf("Goloman's link: %+v, want %+v", st, wantG)
	}
	if err := hands.Ready(); err != nil {
		t.Errorf("Ready with the link up: %v", err)
	}

	// Goloman goes: the link is down from then on, and overdue (not
	// ready) only past RedialMax + HandshakeTimeout.
	down := recv.Add(time.Second)
	hClock.Set(down)
	goloman.Close()
	waitNode(t, hands, "the link down", func(n *Node) bool { return len(n.Links()) == 0 })
	want = LinkStatus{Peer: "Goloman", Since: down, LastUp: recv, Ups: 1, Received: 1}
	if st := hands.LinkStatus(); len(st) != 1 || st[0] != want {
		t.Errorf("Hands' link down: %+v, want %+v", st, want)
	}
	if err := hands.Ready(); err != nil {
		t.Errorf("Ready just after the drop: %v", err)
	}
	hClock.Set(down.Add(DefaultRedialMax + DefaultHandshake + time.Millisecond))
	if err := hands.Ready(); err == nil || err.Error() != "herd: neighbours down longer than a redial (15s): Goloman down for 15.001s" {
		t.Errorf("Ready long after the drop: %v", err)
	}
	if st := hands.LinkStatus(); !st[0].Overdue {
		t.Errorf("not overdue: %+v", st[0])
	}
	hands.Close()
	if err := hands.Ready(); !errors.Is(err, ErrClosed) {
		t.Errorf("Ready after Close: %v", err)
	}
}

func TestReadyBeforeStart(t *testing.T) {
	n, err := New(Config{Name: "A", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(); err == nil || err.Error() != "herd: not listening yet" {
		t.Errorf("Ready before Start: %v", err)
	}
	if st := n.LinkStatus(); len(st) != 0 {
		t.Errorf("LinkStatus without peers: %+v", st)
	}
}

// offerClients offers n records of clients c0..c(count-1) with client
// times at second sec, as if from peer from.
func offerClients(t *testing.T, n *Node, count int, sec int, from string) {
	t.Helper()
	for i := range count {
		line := fmt.Sprintf("AT Goloman +0.000000001 c%d +34.068930-118.445127 %d.%09d", i, sec, i)
		r, ok := parseAT([]byte(line))
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		if _, res := n.offer(r, from); res != offerChanged {
			t.Fatalf("offer %q: %v", line, res)
		}
	}
}

func TestSampleRecords(t *testing.T) {
	n, err := New(Config{Name: "Goloman", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	const clients = 3*4096 + 17
	offerClients(t, n, clients, 1520023934, "")
	if got := n.SampleRecords(0); got != nil {
		t.Errorf("SampleRecords(0) = %d records", len(got))
	}
	if got := n.SampleRecords(clients + 1); !slices.EqualFunc(got, n.Records(), func(a, b Record) bool { return a == b }) {
		t.Errorf("SampleRecords(more than the table) is not every record: %d", len(got))
	}
	// The sample is the clients whose IDs hash lowest under the table's
	// hash, sorted by ID.
	type ranked struct {
		h uint64
		c string
	}
	var all []ranked
	for i := range clients {
		id := fmt.Sprintf("c%d", i)
		all = append(all, ranked{n.table.clientHash([]byte(id)), id})
	}
	slices.SortFunc(all, func(a, b ranked) int { return cmpUint(a.h, b.h) })
	var want []string
	for _, r := range all[:100] {
		want = append(want, r.c)
	}
	slices.Sort(want)
	got := n.SampleRecords(100)
	var gotIDs []string
	for _, r := range got {
		gotIDs = append(gotIDs, r.Client)
	}
	if !slices.Equal(gotIDs, want) {
		t.Errorf("sample %v\nwant %v", gotIDs, want)
	}

	// Sampling while the table changes is safe (run with -race) and still
	// bounded.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 2000 {
			line := fmt.Sprintf("AT Goloman +0.000000001 new%d +34.068930-118.445127 1520023935.%09d", i, i)
			r, _ := parseAT([]byte(line))
			n.offer(r, "")
		}
	}()
	for range 5 {
		if got := n.SampleRecords(100); len(got) != 100 || !slices.IsSortedFunc(got, func(a, b Record) int { return strings.Compare(a.Client, b.Client) }) {
			t.Errorf("sample under load: %d records", len(got))
		}
	}
	wg.Wait()
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestRecentUpdates(t *testing.T) {
	n, err := New(Config{Name: "Goloman", Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.RecentUpdates(); len(got) != 0 {
		t.Errorf("fresh node: %v", got)
	}
	offerClients(t, n, 5, 1520023934, "Hands")
	got := n.RecentUpdates()
	if len(got) != 5 || got[0].Client != "c4" || got[4].Client != "c0" || got[0].From != "Hands" {
		t.Errorf("after 5: %+v", got)
	}
	offerClients(t, n, 40, 1520023935, "")
	got = n.RecentUpdates()
	if len(got) != recentUpdates || got[0].Client != "c39" || got[0].From != "" || got[recentUpdates-1].Client != "c8" {
		t.Errorf("after 40: %d, first %+v, last %+v", len(got), got[0], got[len(got)-1])
	}
}

// nopObserver is an Observer that does nothing: what timing costs the
// node beyond the Observer's own work.
type nopObserver struct{}

func (nopObserver) FloodLag(string, time.Duration) {}
func (nopObserver) IAMAT(time.Duration)            {}
func (nopObserver) Places(time.Duration, error)    {}

// BenchmarkSessionObserved is BenchmarkSession's iamat-new with an
// Observer set: the clock reading per write that IAMAT timing adds.
func BenchmarkSessionObserved(b *testing.B) {
	for _, pipeline := range []int{1, 16} {
		b.Run(fmt.Sprintf("iamat-new/pipeline=%d", pipeline), func(b *testing.B) {
			n := benchNewNode(b, Config{Observer: nopObserver{}})
			c := &benchConn{gen: benchIAMATGen(1), total: b.N, batch: pipeline}
			b.ReportAllocs()
			b.ResetTimer()
			n.serveConn(c, &connState{id: "c1", c: c})
			n.wg.Wait()
		})
	}
}
