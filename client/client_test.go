package client_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/client"
	"github.com/proxyherd/herd/internal/leakcheck"
)

const (
	kiwiAT = "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"
	// emptyJSON is the body of a WHATSAT with a bound of 0.
	emptyJSON = "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OK\"\n}"
	kiwiLoc   = "+34.068930-118.445127"
	kiwiTime  = "1520023934.918963997"
	kiwiID    = "kiwi.cs.ucla.edu"
)

// TestMain fails the run if a connection's reader goroutine outlives the
// tests: every Close must have waited for it.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "client.(*Conn).readLoop", "herd.(*Node)")
}

// fixedClock is a herd.Clock whose Now never moves, so AT lines are exact;
// its timers are real.
type fixedClock struct{ now time.Time }

func (c fixedClock) Now() time.Time { return c.now }
func (c fixedClock) AfterFunc(d time.Duration, f func()) herd.Timer {
	return time.AfterFunc(d, f)
}

// kiwiClock is the receive time of the protocol's example IAMAT.
var kiwiClock = fixedClock{time.Unix(1520023935, 182837383)}

// startNode starts a node named Goloman on a free loopback port.
func startNode(t *testing.T, places herd.PlacesClient) *herd.Node {
	t.Helper()
	n, err := herd.New(herd.Config{Name: "Goloman", Addr: "127.0.0.1:0", Clock: kiwiClock, Places: places})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func dial(t *testing.T, addr string) *client.Conn {
	t.Helper()
	c, err := client.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestIAMATAndWHATSATExactBytes(t *testing.T) {
	doc := "{\n   \"html_attributions\" : [],\n   \"results\" : [\n      {\"name\" : \"A\"},\n      {\"name\" : \"B\"},\n      {\"name\" : \"C\"}\n   ],\n   \"status\" : \"OK\"\n}\n\n\n"
	var got herd.NearbyQuery
	n := startNode(t, herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
		got = q
		return []byte(doc), nil
	}))
	c := dial(t, n.Addr().String())
	ctx := context.Background()

	at, err := c.IAMAT(ctx, kiwiID, kiwiLoc, time.Unix(1520023934, 918963997))
	if err != nil {
		t.Fatal(err)
	}
	want := client.AT{Line: kiwiAT, Server: "Goloman", Skew: "+0.263873386", Client: kiwiID, Location: kiwiLoc, Time: kiwiTime}
	if diff := cmp.Diff(want, at); diff != "" {
		t.Fatalf("IAMAT reply (-want +got):\n%s", diff)
	}
	if d, err := at.SkewDuration(); err != nil || d != 263873386*time.Nanosecond {
		t.Errorf("SkewDuration = %v, %v", d, err)
	}
	if ct, err := at.ClientTime(); err != nil || !ct.Equal(time.Unix(1520023934, 918963997)) {
		t.Errorf("ClientTime = %v, %v", ct, err)
	}

	// A repeated report gets the stored line.
	at, err = c.IAMATText(ctx, kiwiID, "+00.0+000.0", kiwiTime)
	if err != nil || at.Line != kiwiAT {
		t.Fatalf("repeated IAMAT = %q, %v; want the stored line", at.Line, err)
	}

	nb, err := c.WHATSAT(ctx, kiwiID, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(nb.Bytes()), kiwiAT+"\n"+emptyJSON+"\n\n"; got != want {
		t.Fatalf("WHATSAT 10 0 reply:\n%s", cmp.Diff(want, got))
	}

	nb, err = c.WHATSAT(ctx, kiwiID, 10.5871263, 2)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := "{\n   \"html_attributions\" : [],\n   \"results\" : [\n      {\"name\" : \"A\"},\n      {\"name\" : \"B\"}\n   ],\n   \"status\" : \"OK\"\n}"
	if diff := cmp.Diff(wantJSON, string(nb.JSON)); diff != "" {
		t.Fatalf("WHATSAT JSON (-want +got):\n%s", diff)
	}
	if nb.AT.Line != kiwiAT {
		t.Errorf("WHATSAT AT = %q", nb.AT.Line)
	}
	if got, want := string(nb.Bytes()), kiwiAT+"\n"+wantJSON+"\n\n"; got != want {
		t.Errorf("Bytes:\n%s", cmp.Diff(want, got))
	}
	if want := (herd.NearbyQuery{Lat: 34.06893, Lon: -118.445127, RadiusMeters: 10587.1263, MaxResults: 2}); got != want {
		t.Errorf("provider query = %+v, want %+v", got, want)
	}
}

func TestFormatTime(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Unix(1520023934, 918963997), "1520023934.918963997"},
		{time.Unix(0, 0), "0.000000000"},
		{time.Unix(5, 1), "5.000000001"},
		{time.Unix(-1, 0), ""},
	} {
		if got := client.FormatTime(tc.t); got != tc.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tc.t, got, tc.want)
		}
	}
}

func TestInvalidAnswers(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n.Addr().String())
	ctx := context.Background()
	if _, err := c.IAMATText(ctx, kiwiID, kiwiLoc, kiwiTime); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"unknown client", func() error { _, err := c.WHATSAT(ctx, "nobody", 10, 5); return err }, "? WHATSAT nobody 10 5"},
		{"bad location", func() error { _, err := c.IAMATText(ctx, "kiwi", "+34-118", "1520023934.9"); return err }, "? IAMAT kiwi +34-118 1520023934.9"},
		{"exponent radius", func() error { _, err := c.WHATSATText(ctx, kiwiID, "1e1", "5"); return err }, "? WHATSAT kiwi.cs.ucla.edu 1e1 5"},
		{"radius too big", func() error { _, err := c.WHATSAT(ctx, kiwiID, 50.5, 5); return err }, "? WHATSAT kiwi.cs.ucla.edu 50.5 5"},
		{"bound too big", func() error { _, err := c.WHATSAT(ctx, kiwiID, 10, 21); return err }, "? WHATSAT kiwi.cs.ucla.edu 10 21"},
		{"NaN radius", func() error { _, err := c.WHATSAT(ctx, kiwiID, nan(), 1); return err }, "? WHATSAT kiwi.cs.ucla.edu NaN 1"},
	} {
		err := tc.do()
		var inv *client.InvalidError
		if !errors.As(err, &inv) {
			t.Errorf("%s: err = %v, want *InvalidError", tc.name, err)
			continue
		}
		if inv.Line != tc.want {
			t.Errorf("%s: Line = %q, want %q", tc.name, inv.Line, tc.want)
		}
	}
	// The connection is still in step.
	nb, err := c.WHATSATText(ctx, kiwiID, "1", "0")
	if err != nil || nb.AT.Line != kiwiAT {
		t.Fatalf("WHATSAT after invalid answers = %v, %v", nb, err)
	}
}

func nan() float64 { var z float64; return z / z }

func TestBadRequestsSendNothing(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n.Addr().String())
	ctx := context.Background()
	for _, err := range []error{
		func() error { _, err := c.IAMATText(ctx, "kiwi x", kiwiLoc, kiwiTime); return err }(),
		func() error { _, err := c.IAMATText(ctx, "kiwi", kiwiLoc+"\nWHATSAT", kiwiTime); return err }(),
		func() error { _, err := c.IAMATText(ctx, "kiwi", kiwiLoc, ""); return err }(),
		func() error { _, err := c.IAMAT(ctx, "kiwi", kiwiLoc, time.Unix(-1, 0)); return err }(),
		func() error { _, err := c.WHATSATText(ctx, "", "1", "0"); return err }(),
		func() error { _, err := c.WHATSATText(ctx, "kiwi", "1\r", "0"); return err }(),
	} {
		if !errors.Is(err, client.ErrBadRequest) {
			t.Errorf("err = %v, want ErrBadRequest", err)
		}
	}
	// Had any of them reached the server, its reply would come first.
	at, err := c.IAMATText(ctx, kiwiID, kiwiLoc, kiwiTime)
	if err != nil || at.Line != kiwiAT {
		t.Fatalf("IAMAT = %q, %v", at.Line, err)
	}
}

// blockingPlaces is a provider that blocks every call until released.
type blockingPlaces struct {
	entered chan struct{} // receives once per call
	release chan struct{} // closed to let calls finish
}

func newBlockingPlaces() *blockingPlaces {
	return &blockingPlaces{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (p *blockingPlaces) Nearby(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
	p.entered <- struct{}{}
	select {
	case <-p.release:
		return []byte(`{"results" : [], "status" : "ZERO_RESULTS"}`), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestCancelWhileWaitingDiscardsTheReply(t *testing.T) {
	places := newBlockingPlaces()
	n := startNode(t, places)
	c := dial(t, n.Addr().String())
	bg := context.Background()
	if _, err := c.IAMATText(bg, kiwiID, kiwiLoc, kiwiTime); err != nil {
		t.Fatal(err)
	}

	// A call whose ctx is already done sends nothing.
	done, cancelDone := context.WithCancel(bg)
	cancelDone()
	if _, err := c.WHATSAT(done, kiwiID, 10, 5); !errors.Is(err, context.Canceled) {
		t.Fatalf("WHATSAT with a done ctx: err = %v", err)
	}

	ctx, cancel := context.WithCancel(bg)
	errc := make(chan error, 1)
	go func() {
		_, err := c.WHATSAT(ctx, kiwiID, 10, 5)
		errc <- err
	}()
	<-places.entered // the server is waiting for the provider
	// A call pipelined behind the blocked one.
	type result struct {
		at  client.AT
		err error
	}
	next := make(chan result, 1)
	go func() {
		at, err := c.IAMATText(bg, "lemon", "+1.0-2.0", "1520023934.5")
		next <- result{at, err}
	}()
	cancel()
	// The provider is still blocked: returning now is returning promptly.
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled WHATSAT: err = %v, want context.Canceled", err)
	}
	close(places.release)
	// The WHATSAT reply arrives and is discarded; the IAMAT gets its own.
	r := <-next
	if want := "AT Goloman +0.682837383 lemon +1.0-2.0 1520023934.5"; r.err != nil || r.at.Line != want {
		t.Fatalf("pipelined IAMAT = %q, %v; want %q", r.at.Line, r.err, want)
	}
	nb, err := c.WHATSAT(bg, "lemon", 1, 0)
	if err != nil || nb.AT.Client != "lemon" {
		t.Fatalf("WHATSAT after the discarded reply = %+v, %v", nb, err)
	}
}

func TestPipelinedFromManyGoroutines(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n.Addr().String())
	ctx := context.Background()
	const goroutines, calls = 32, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*calls)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				id := fmt.Sprintf("client-%d-%d", g, i)
				ts := fmt.Sprintf("1520023935.%09d", g*1000+i)
				want := fmt.Sprintf("AT Goloman +0.%09d %s +34.0-118.0 %s", 182837383-(g*1000+i), id, ts)
				at, err := c.IAMATText(ctx, id, "+34.0-118.0", ts)
				if err != nil || at.Line != want {
					errs <- fmt.Errorf("IAMAT %s = %q, %v; want %q", id, at.Line, err, want)
					return
				}
				nb, err := c.WHATSAT(ctx, id, 1, 0)
				if err != nil || nb.AT.Line != want || string(nb.JSON) != emptyJSON {
					errs <- fmt.Errorf("WHATSAT %s = %+v, %v", id, nb, err)
					return
				}
				if _, err := c.WHATSAT(ctx, id+"-unknown", 1, 0); !isInvalid(err, "? WHATSAT "+id+"-unknown 1 0") {
					errs <- fmt.Errorf("WHATSAT unknown: err = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(n.Records()); got != goroutines*calls {
		t.Errorf("node holds %d records, want %d", got, goroutines*calls)
	}
}

func isInvalid(err error, line string) bool {
	var inv *client.InvalidError
	return errors.As(err, &inv) && inv.Line == line
}

// fakeServer accepts one connection, reads want request lines, writes
// reply and closes the connection.
func fakeServer(t *testing.T, want int, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for range want {
			if _, err := br.ReadString('\n'); err != nil {
				t.Errorf("fake server: reading request: %v", err)
				return
			}
		}
		io.WriteString(c, reply)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestServerClosesMidReply(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		reply string
		call  func(c *client.Conn) error
	}{
		{"IAMAT half a line", "AT Goloman +0.263873386 kiwi", func(c *client.Conn) error {
			_, err := c.IAMATText(ctx, kiwiID, kiwiLoc, kiwiTime)
			return err
		}},
		{"IAMAT nothing", "", func(c *client.Conn) error {
			_, err := c.IAMATText(ctx, kiwiID, kiwiLoc, kiwiTime)
			return err
		}},
		{"WHATSAT AT line only", kiwiAT + "\n", func(c *client.Conn) error {
			_, err := c.WHATSAT(ctx, kiwiID, 10, 5)
			return err
		}},
		{"WHATSAT half the JSON", kiwiAT + "\n{\n   \"results\" : [", func(c *client.Conn) error {
			_, err := c.WHATSAT(ctx, kiwiID, 10, 5)
			return err
		}},
		{"WHATSAT no empty line", kiwiAT + "\n" + emptyJSON + "\n", func(c *client.Conn) error {
			_, err := c.WHATSAT(ctx, kiwiID, 10, 5)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, fakeServer(t, 1, tc.reply))
			if err := tc.call(c); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
			}
			// The connection is broken for good.
			if _, err := c.WHATSAT(ctx, kiwiID, 1, 0); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("later call: err = %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
}

// notifyWrites is a net.Conn that reports each finished Write.
type notifyWrites struct {
	net.Conn
	wrote chan struct{}
}

func (n *notifyWrites) Write(b []byte) (int, error) {
	k, err := n.Conn.Write(b)
	n.wrote <- struct{}{}
	return k, err
}

func TestServerClosesWithPipelinedCalls(t *testing.T) {
	ctx := context.Background()
	addr := fakeServer(t, 3, kiwiAT+"\n"+"? WHATSAT x 1 0\n"+kiwiAT)
	wrote := make(chan struct{}, 3)
	d := client.Dialer{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nd net.Dialer
		nc, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &notifyWrites{Conn: nc, wrote: wrote}, nil
	}}
	c, err := d.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The fake answers only after reading all three requests; each call
	// starts once the previous request is on the wire, so the order of
	// the requests is known.
	errs := make([]chan error, 3)
	for i, do := range []func() error{
		func() error { _, err := c.IAMATText(ctx, kiwiID, kiwiLoc, kiwiTime); return err },
		func() error { _, err := c.WHATSATText(ctx, "x", "1", "0"); return err },
		func() error { _, err := c.IAMATText(ctx, kiwiID, kiwiLoc, kiwiTime); return err },
	} {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- do() }()
		<-wrote
	}
	if err := <-errs[0]; err != nil {
		t.Errorf("first call: %v", err)
	}
	if err := <-errs[1]; !isInvalid(err, "? WHATSAT x 1 0") {
		t.Errorf("second call: err = %v, want *InvalidError", err)
	}
	if err := <-errs[2]; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("third call: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestUnsolicitedData(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		io.WriteString(c, "HELLO\n")
		accepted <- c
	}()
	c := dial(t, ln.Addr().String())
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	defer sc.Close()
	// Whether the line arrives before or after the request, it is not a
	// reply.
	if _, err := c.IAMATText(context.Background(), kiwiID, kiwiLoc, kiwiTime); !errors.Is(err, client.ErrProtocol) {
		t.Fatalf("err = %v, want ErrProtocol", err)
	}
}

func TestCloseFailsPendingCalls(t *testing.T) {
	places := newBlockingPlaces()
	n := startNode(t, places)
	defer close(places.release)
	c, err := client.Dial(context.Background(), n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.IAMATText(ctx, kiwiID, kiwiLoc, kiwiTime); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.WHATSAT(ctx, kiwiID, 10, 5)
		errc <- err
	}()
	<-places.entered
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("pending call: err = %v, want ErrClosed", err)
	}
	if _, err := c.WHATSAT(ctx, kiwiID, 1, 0); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("call after Close: err = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// signalWrites is a net.Conn that reports when a Write starts.
type signalWrites struct {
	net.Conn
	writing chan struct{}
}

func (s *signalWrites) Write(b []byte) (int, error) {
	select {
	case s.writing <- struct{}{}:
	default:
	}
	return s.Conn.Write(b)
}

func TestCancelDuringWrite(t *testing.T) {
	ctx := context.Background()
	t.Run("nothing written", func(t *testing.T) {
		cp, sp := net.Pipe()
		defer sp.Close()
		sw := &signalWrites{Conn: cp, writing: make(chan struct{}, 1)}
		c := client.NewConn(sw)
		defer c.Close()
		wctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := c.IAMATText(wctx, "first", kiwiLoc, kiwiTime)
			errc <- err
		}()
		<-sw.writing // blocked: nobody reads the pipe
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		// The connection is still good: the next request is the first
		// the server sees.
		served := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(sp).ReadString('\n')
			served <- line
			io.WriteString(sp, "AT Goloman +0.000000000 second +1.0+1.0 1\n")
		}()
		at, err := c.IAMATText(ctx, "second", "+1.0+1.0", "1")
		if err != nil || at.Client != "second" {
			t.Fatalf("IAMAT after cancelled write = %+v, %v", at, err)
		}
		if got := <-served; got != "IAMAT second +1.0+1.0 1\n" {
			t.Fatalf("server read %q", got)
		}
	})
	t.Run("half written", func(t *testing.T) {
		cp, sp := net.Pipe()
		defer sp.Close()
		sw := &signalWrites{Conn: cp, writing: make(chan struct{}, 1)}
		c := client.NewConn(sw)
		defer c.Close()
		read := make(chan struct{})
		go func() {
			defer close(read)
			var b [6]byte
			io.ReadFull(sp, b[:]) // "IAMAT " and no more
		}()
		wctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := c.IAMATText(wctx, "first", kiwiLoc, kiwiTime)
			errc <- err
		}()
		<-sw.writing
		<-read
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if _, err := c.IAMATText(ctx, "second", "+1.0+1.0", "1"); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("call after a cut request: err = %v, want ErrClosed", err)
		}
	})
}

func TestReplyLimit(t *testing.T) {
	ctx := context.Background()
	addr := fakeServer(t, 1, kiwiAT+"\n{"+strings.Repeat(" ", 200)+"}\n\n")
	d := client.Dialer{MaxReplyBytes: 150}
	c, err := d.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WHATSAT(ctx, kiwiID, 1, 0); !errors.Is(err, client.ErrProtocol) {
		t.Fatalf("err = %v, want ErrProtocol", err)
	}
}

func TestDialerDialContext(t *testing.T) {
	n := startNode(t, nil)
	var dialed string
	d := client.Dialer{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = network + " " + addr
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	}}
	c, err := d.Dial(context.Background(), n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if want := "tcp " + n.Addr().String(); dialed != want {
		t.Errorf("dialed %q, want %q", dialed, want)
	}
	if _, err := c.IAMATText(context.Background(), kiwiID, kiwiLoc, kiwiTime); err != nil {
		t.Fatal(err)
	}
}
