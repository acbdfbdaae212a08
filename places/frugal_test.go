package places

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/proxyherd/herd"
)

// provSysClock reads the time package. Inside a testing/synctest bubble
// that time is the bubble's fake time, which advances only when every
// goroutine in the bubble is blocked; outside, it is real time.
type provSysClock struct{}

func (provSysClock) Now() time.Time                                 { return time.Now() }
func (provSysClock) AfterFunc(d time.Duration, f func()) herd.Timer { return time.AfterFunc(d, f) }

// provClock is a manual fake herd.Clock: time moves only by Advance, which
// runs the functions of the timers it makes due, each in its own
// goroutine, as the real clock would.
type provClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*provTimer
}

type provTimer struct {
	c    *provClock
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func newProvClock() *provClock { return &provClock{now: time.Unix(1520023934, 918963997)} }

func (c *provClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *provClock) AfterFunc(d time.Duration, f func()) herd.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &provTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *provTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	return true
}

// Advance moves the clock on by d and fires the timers now due.
func (c *provClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		go f()
	}
}

// provCounting is a fake provider that counts its calls and answers each
// with the next of its replies (the last one repeats).
type provCounting struct {
	mu      sync.Mutex
	calls   []herd.NearbyQuery
	replies []provReply
}

type provReply struct {
	doc string
	err error
}

func (p *provCounting) Nearby(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, q)
	r := p.replies[min(len(p.calls), len(p.replies))-1]
	if r.err != nil {
		return nil, r.err
	}
	return []byte(r.doc), nil
}

func (p *provCounting) n() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

const (
	provOK      = `{"html_attributions":[],"results":[{"name":"a"},{"name":"b"}],"status":"OK"}`
	provZero    = `{"html_attributions":[],"results":[],"status":"ZERO_RESULTS"}`
	provUnknown = `{"html_attributions":[],"results":[],"status":"UNKNOWN_ERROR"}`
)

func provStatusDoc(status string) string {
	return `{"error_message":"x","html_attributions":[],"results":[],"status":"` + status + `"}`
}

// provStats compares the counters that matter to a test.
func provStats(t *testing.T, f *Frugal, want FrugalStats) {
	t.Helper()
	if diff := cmp.Diff(want, f.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestFrugalThousandIdenticalLookupsOneCall starts 1,000 WHATSAT lookups
// of one query while the provider is blocked, checks that all of them are
// waiting on a single provider call, releases it, and checks every reply.
func TestFrugalThousandIdenticalLookupsOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		raw := placesFixture(t, "nearby_legacy_google_layout.json")
		want := placesFixture(t, "whatsat/nearby_legacy_google_layout.bound2.json")
		var calls atomic.Int32
		release := make(chan struct{})
		var providerCtxErr atomic.Value
		p := herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
			calls.Add(1)
			select {
			case <-release:
				providerCtxErr.Store(fmt.Sprint(ctx.Err()))
				return raw, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
		f := NewFrugal(p, provSysClock{}, FrugalOptions{})
		defer f.Close()

		const n = 1000
		bodies := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			// The locations differ below the 5th decimal: one key.
			q := herd.NearbyQuery{Lat: -33.8670522 + float64(i%3)*1e-7, Lon: 151.1957362, RadiusMeters: 1500, MaxResults: 2}
			wg.Go(func() { bodies[i] = nearby(t.Context(), provSysClock{}, f, 10*time.Second, q) })
		}
		synctest.Wait() // every goroutine is blocked: all 1,000 wait
		if got := calls.Load(); got != 1 {
			t.Fatalf("%d provider calls while all lookups wait, want 1", got)
		}
		provStats(t, f, FrugalStats{Lookups: n, ProviderCalls: 1, Waiting: n})
		close(release)
		wg.Wait()
		for i, b := range bodies {
			if !bytes.Equal(b, want) {
				t.Fatalf("lookup %d got %q", i, b)
			}
		}
		if got := providerCtxErr.Load(); got != "<nil>" {
			t.Errorf("the merged call's ctx was done when it answered: %v", got)
		}
		provStats(t, f, FrugalStats{Lookups: n, ProviderCalls: 1, Merged: n - 1, CacheEntries: 1})
		// And now from the cache.
		if b := nearby(t.Context(), provSysClock{}, f, 10*time.Second, herd.NearbyQuery{Lat: -33.8670522, Lon: 151.1957362, RadiusMeters: 1500, MaxResults: 2}); !bytes.Equal(b, want) {
			t.Errorf("cached answer %q", b)
		}
		provStats(t, f, FrugalStats{Lookups: n + 1, ProviderCalls: 1, Merged: n - 1, CacheHits: 1, CacheEntries: 1})
	})
}

// TestFrugalFirstCallerLeavingDoesNotCancel: the caller whose lookup
// started the provider call gives up; the call carries on for the others
// and for the cache.
func TestFrugalFirstCallerLeavingDoesNotCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		p := herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
			select {
			case <-release:
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return []byte(provOK), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
		f := NewFrugal(p, provSysClock{}, FrugalOptions{})
		defer f.Close()
		q := provQuery(1000, 5)

		ctx1, cancel1 := context.WithCancel(t.Context())
		var err1 error
		var wg sync.WaitGroup
		wg.Go(func() { _, err1 = f.Nearby(ctx1, q) })
		synctest.Wait()
		var doc2 []byte
		var err2 error
		wg.Go(func() { doc2, err2 = f.Nearby(t.Context(), q) })
		synctest.Wait()
		start := time.Now()
		cancel1()
		synctest.Wait()
		if err1 == nil || !errors.Is(err1, context.Canceled) || err1.Error() != "herd: places: context canceled" || time.Since(start) != 0 {
			t.Errorf("first caller: err = %v after %v", err1, time.Since(start))
		}
		close(release)
		wg.Wait()
		if err2 != nil || string(doc2) != provOK {
			t.Errorf("second caller: %q, %v", doc2, err2)
		}
		provStats(t, f, FrugalStats{Lookups: 2, ProviderCalls: 1, Merged: 1, Errors: 1, CacheEntries: 1})
	})
}

// TestFrugalSlotsCapped fills the provider slots with slow lookups: a
// further lookup fails after SlotWait with an error document, never hangs;
// one that gets a slot in time succeeds.
func TestFrugalSlotsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := make(chan struct{})
		p := herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
			if q.RadiusMeters < 100 { // the slow ones
				select {
				case <-slow:
					return []byte(provZero), nil
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return []byte(provOK), nil
		})
		f := NewFrugal(p, provSysClock{}, FrugalOptions{MaxInFlight: 2, SlotWait: 2 * time.Second, Timeout: 10 * time.Second})
		defer f.Close()
		var wg sync.WaitGroup
		slowBodies := make([][]byte, 2)
		for i := range 2 {
			wg.Go(func() {
				slowBodies[i] = nearby(t.Context(), provSysClock{}, f, 30*time.Second, provQuery(float64(10+i), 1))
			})
		}
		synctest.Wait()
		provStats(t, f, FrugalStats{Lookups: 2, ProviderCalls: 2, Waiting: 2})

		start := time.Now()
		body := nearby(t.Context(), provSysClock{}, f, 30*time.Second, provQuery(1000, 1))
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("busy lookup returned after %v, want 2s", d)
		}
		want := errorJSON("herd: places: provider busy: no free slot within 2s (2 provider calls in flight)")
		if diff := cmp.Diff(string(want), string(body)); diff != "" {
			t.Errorf("busy body (-want +got):\n%s", diff)
		}

		// A slot frees after 1s: the waiting lookup gets it.
		var got []byte
		wg.Go(func() { got = nearby(t.Context(), provSysClock{}, f, 30*time.Second, provQuery(2000, 1)) })
		time.Sleep(time.Second)
		close(slow)
		wg.Wait()
		if want := whatsatJSON([]byte(provOK), 1); !bytes.Equal(got, want) {
			t.Errorf("lookup that waited for a slot: %s", got)
		}
		for i, b := range slowBodies {
			if string(b) != provZero {
				t.Errorf("slow lookup %d: %s", i, b)
			}
		}
		provStats(t, f, FrugalStats{Lookups: 4, ProviderCalls: 3, Busy: 1, Errors: 1, CacheEntries: 3})
	})
}

// TestFrugalSlowProviderTimesOut: a provider that never answers ties up
// its slot only until the lookup's Timeout.
func TestFrugalSlowProviderTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
			<-ctx.Done()
			return nil, fmt.Errorf("herd: google places: GET x: %w", ctx.Err())
		})
		f := NewFrugal(p, provSysClock{}, FrugalOptions{MaxInFlight: 1, SlotWait: -1, Timeout: 3 * time.Second})
		defer f.Close()
		start := time.Now()
		body := nearby(t.Context(), provSysClock{}, f, 10*time.Second, provQuery(1000, 1))
		want := errorJSON("herd: places: lookup timed out after 3s: herd: google places: GET x: context canceled")
		if diff := cmp.Diff(string(want), string(body)); diff != "" || time.Since(start) != 3*time.Second {
			t.Errorf("after %v (-want +got):\n%s", time.Since(start), diff)
		}
		// The caller's own, shorter timeout wins for the caller.
		start = time.Now()
		body = nearby(t.Context(), provSysClock{}, f, time.Second, provQuery(1000, 1))
		if want := errorJSON("places provider: timeout after 1s"); !bytes.Equal(body, want) || time.Since(start) != time.Second {
			t.Errorf("after %v: %s", time.Since(start), body)
		}
		// Its slot stays taken until the merged call's timeout: with
		// SlotWait < 0 another query fails at once.
		start = time.Now()
		body = nearby(t.Context(), provSysClock{}, f, 10*time.Second, provQuery(2000, 1))
		if want := errorJSON("herd: places: provider busy: no free slot within 0s (1 provider calls in flight)"); !bytes.Equal(body, want) || time.Since(start) != 0 {
			t.Errorf("after %v: %s", time.Since(start), body)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if s := f.Stats(); s.Waiting != 0 || s.ProviderCalls != 2 {
			t.Errorf("stats after the timeouts: %+v", s)
		}
	})
}

// TestFrugalCacheTTLOnInjectedClock moves a manual clock around the TTL.
func TestFrugalCacheTTLOnInjectedClock(t *testing.T) {
	clock := newProvClock()
	p := &provCounting{replies: []provReply{{doc: provOK}}}
	f := NewFrugal(p, clock, FrugalOptions{TTL: time.Minute})
	defer f.Close()
	q := provQuery(1000, 5)
	lookup := func() {
		t.Helper()
		doc, err := f.Nearby(t.Context(), q)
		if err != nil || string(doc) != provOK {
			t.Fatalf("lookup: %q, %v", doc, err)
		}
	}
	lookup()
	lookup()
	clock.Advance(time.Minute - time.Nanosecond)
	lookup()
	if p.n() != 1 {
		t.Fatalf("%d provider calls within the TTL, want 1", p.n())
	}
	clock.Advance(time.Nanosecond)
	lookup()
	if p.n() != 2 {
		t.Fatalf("%d provider calls after the TTL, want 2", p.n())
	}
	lookup()
	provStats(t, f, FrugalStats{Lookups: 5, ProviderCalls: 2, CacheHits: 3, CacheEntries: 1})
}

func TestFrugalCacheKey(t *testing.T) {
	q := func(lat, lon, m float64, n int) herd.NearbyQuery {
		return herd.NearbyQuery{Lat: lat, Lon: lon, RadiusMeters: m, MaxResults: n}
	}
	cases := []struct {
		a, b herd.NearbyQuery
		same bool
	}{
		{q(34.068930, -118.445127, 10000, 5), q(34.0689304, -118.4451274, 10000, 5), true},
		{q(34.068930, -118.445127, 10000, 5), q(34.068940, -118.445127, 10000, 5), false},
		{q(34.068930, -118.445127, 10000, 5), q(34.068930, -118.445127, 10000.5, 5), false},
		{q(34.068930, -118.445127, 10000, 5), q(34.068930, -118.445127, 10000, 6), false},
		{q(-0.000001, 0, 1, 1), q(0.000001, 0, 1, 1), true},
	}
	for _, c := range cases {
		if got := frugalKey(c.a) == frugalKey(c.b); got != c.same {
			t.Errorf("%+v %+v: same key %v (%q, %q), want %v", c.a, c.b, got, frugalKey(c.a), frugalKey(c.b), c.same)
		}
	}
	if got := frugalKey(q(34.068930, -118.445127, 10587.1263, 5)); got != "3406893,-11844513,10587.1263,5" {
		t.Errorf("key %q", got)
	}
}

func TestFrugalCacheLRU(t *testing.T) {
	clock := newProvClock()
	p := &provCounting{replies: []provReply{{doc: provOK}}}
	f := NewFrugal(p, clock, FrugalOptions{MaxEntries: 2})
	defer f.Close()
	look := func(r float64) {
		if _, err := f.Nearby(t.Context(), provQuery(r, 1)); err != nil {
			t.Fatal(err)
		}
	}
	look(1)
	look(2)
	look(1) // hit; 2 is now the least recently used
	look(3) // evicts 2
	look(1) // hit
	look(3) // hit
	look(2) // miss, evicts 1
	look(1) // miss
	var radii []float64
	for _, q := range p.calls {
		radii = append(radii, q.RadiusMeters)
	}
	if diff := cmp.Diff([]float64{1, 2, 3, 2, 1}, radii); diff != "" {
		t.Errorf("provider calls (-want +got):\n%s", diff)
	}
	provStats(t, f, FrugalStats{Lookups: 8, ProviderCalls: 5, CacheHits: 3, CacheEntries: 2})
}

// TestFrugalCachesOnlySuccess: errors and documents with failing statuses
// are answered but never cached.
func TestFrugalCachesOnlySuccess(t *testing.T) {
	newDoc := string(placesFixture(t, "nearby_new_ok.json"))
	cases := []struct {
		name   string
		reply  provReply
		cached bool
	}{
		{"OK", provReply{doc: provOK}, true},
		{"ZERO_RESULTS", provReply{doc: provZero}, true},
		{"Places API (New)", provReply{doc: newDoc}, true},
		{"Places API (New), nothing near", provReply{doc: `{}`}, true},
		{"OVER_QUERY_LIMIT", provReply{doc: provStatusDoc("OVER_QUERY_LIMIT")}, false},
		{"REQUEST_DENIED", provReply{doc: provStatusDoc("REQUEST_DENIED")}, false},
		{"INVALID_REQUEST", provReply{doc: provStatusDoc("INVALID_REQUEST")}, false},
		{"error document with 200", provReply{doc: string(placesFixture(t, "nearby_new_error_403.json"))}, false},
		{"not JSON", provReply{doc: `<html>`}, false},
		{"HTTP 403", provReply{err: &herd.HTTPError{StatusCode: 403}}, false},
	}
	for _, c := range cases {
		// In a bubble with a clock that never moves: a lookup that waits
		// for a retry's backoff (none of these replies is to be retried)
		// would wait for ever, so it is failed once every goroutine is
		// blocked, instead of hanging the test.
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &provCounting{replies: []provReply{c.reply}}
				f := NewFrugal(p, newProvClock(), FrugalOptions{})
				defer f.Close()
				for i := range 3 {
					ctx, cancel := context.WithCancel(t.Context())
					type answer struct {
						doc []byte
						err error
					}
					done := make(chan answer, 1)
					go func() {
						doc, err := f.Nearby(ctx, provQuery(1000, 1))
						done <- answer{doc, err}
					}()
					synctest.Wait()
					var a answer
					select {
					case a = <-done:
					default:
						cancel()
						<-done
						t.Fatalf("lookup %d still waiting with every goroutine blocked, after %d provider calls: a retry of a reply that is final?", i+1, p.n())
					}
					cancel()
					if string(a.doc) != c.reply.doc || !errors.Is(a.err, c.reply.err) {
						t.Fatalf("got %q, %v", a.doc, a.err)
					}
				}
				want := 3
				if c.cached {
					want = 1
				}
				if p.n() != want {
					t.Errorf("%d provider calls, want %d", p.n(), want)
				}
			})
		})
	}
}

func TestFrugalCacheOff(t *testing.T) {
	for _, opts := range []FrugalOptions{{TTL: -1}, {MaxEntries: -1}} {
		p := &provCounting{replies: []provReply{{doc: provOK}}}
		f := NewFrugal(p, newProvClock(), opts)
		for range 3 {
			f.Nearby(t.Context(), provQuery(1000, 1))
		}
		if p.n() != 3 || f.Stats().CacheEntries != 0 {
			t.Errorf("%+v: %d calls, stats %+v", opts, p.n(), f.Stats())
		}
		f.Close()
	}
}

func TestFrugalAnswersAreCopies(t *testing.T) {
	p := &provCounting{replies: []provReply{{doc: provOK}}}
	f := NewFrugal(p, newProvClock(), FrugalOptions{})
	defer f.Close()
	for range 3 {
		doc, err := f.Nearby(t.Context(), provQuery(1000, 1))
		if err != nil || string(doc) != provOK {
			t.Fatalf("got %q, %v", doc, err)
		}
		for i := range doc {
			doc[i] = 'X'
		}
	}
}

// TestFrugalRetries checks which failures are retried, how many times,
// and the final answer. Time is the bubble's: backoffs pass at once.
func TestFrugalRetries(t *testing.T) {
	http5xx := &herd.HTTPError{StatusCode: 503, Status: "503 Service Unavailable"}
	transport := errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: connection reset by peer")
	cases := []struct {
		name      string
		replies   []provReply
		retries   int
		wantCalls int
		wantDoc   string
		wantErr   error
	}{
		{"HTTP 500", []provReply{{err: &herd.HTTPError{StatusCode: 500}}}, 0, 3, "", nil},
		{"HTTP 503", []provReply{{err: http5xx}}, 0, 3, "", http5xx},
		{"transport error", []provReply{{err: transport}}, 0, 3, "", transport},
		{"UNKNOWN_ERROR document", []provReply{{doc: provUnknown}}, 0, 3, provUnknown, nil},
		{"503 then OK", []provReply{{err: http5xx}, {doc: provOK}}, 0, 2, provOK, nil},
		{"UNKNOWN_ERROR then ZERO_RESULTS", []provReply{{doc: provUnknown}, {doc: provUnknown}, {doc: provZero}}, 0, 3, provZero, nil},
		{"five retries", []provReply{{err: transport}}, 5, 6, "", transport},
		{"no retries", []provReply{{err: transport}}, -1, 1, "", transport},
		{"HTTP 400", []provReply{{err: &herd.HTTPError{StatusCode: 400}}}, 0, 1, "", nil},
		{"HTTP 403", []provReply{{err: &herd.HTTPError{StatusCode: 403}}}, 0, 1, "", nil},
		{"HTTP 404", []provReply{{err: &herd.HTTPError{StatusCode: 404}}}, 0, 1, "", nil},
		{"HTTP 429", []provReply{{err: &herd.HTTPError{StatusCode: 429}}}, 0, 1, "", nil},
		{"wrapped HTTP 429", []provReply{{err: fmt.Errorf("herd: google places (new): POST x: %w", &herd.HTTPError{StatusCode: 429})}}, 0, 1, "", nil},
		{"not JSON", []provReply{{err: permanentError{errors.New("response is not JSON")}}}, 0, 1, "", nil},
		{"OVER_QUERY_LIMIT", []provReply{{doc: provStatusDoc("OVER_QUERY_LIMIT")}}, 0, 1, provStatusDoc("OVER_QUERY_LIMIT"), nil},
		{"REQUEST_DENIED", []provReply{{doc: provStatusDoc("REQUEST_DENIED")}}, 0, 1, provStatusDoc("REQUEST_DENIED"), nil},
		{"INVALID_REQUEST", []provReply{{doc: provStatusDoc("INVALID_REQUEST")}}, 0, 1, provStatusDoc("INVALID_REQUEST"), nil},
		{"OK", []provReply{{doc: provOK}}, 0, 1, provOK, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &provCounting{replies: c.replies}
				f := NewFrugal(p, provSysClock{}, FrugalOptions{Retries: c.retries})
				defer f.Close()
				doc, err := f.Nearby(t.Context(), provQuery(1000, 1))
				if p.n() != c.wantCalls {
					t.Errorf("%d provider calls, want %d", p.n(), c.wantCalls)
				}
				if string(doc) != c.wantDoc {
					t.Errorf("doc %q, want %q", doc, c.wantDoc)
				}
				last := c.replies[min(c.wantCalls, len(c.replies))-1]
				if err != last.err {
					t.Errorf("err = %v, want the last provider error %v", err, last.err)
				}
				s := f.Stats()
				if s.Retries != uint64(c.wantCalls-1) || s.ProviderCalls != uint64(c.wantCalls) {
					t.Errorf("stats %+v", s)
				}
			})
		})
	}
}

// TestFrugalBackoffJitter records when each attempt happens: the waits
// double from RetryMin up to RetryMax, each drawn between half and all of
// that, and the same seed gives the same waits.
func TestFrugalBackoffJitter(t *testing.T) {
	run := func(seed uint64, q herd.NearbyQuery) (waits []time.Duration) {
		synctest.Test(t, func(t *testing.T) {
			var at []time.Time
			p := herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
				at = append(at, time.Now())
				return nil, errors.New("connection refused")
			})
			f := NewFrugal(p, provSysClock{}, FrugalOptions{Retries: 6, RetryMin: 100 * time.Millisecond, RetryMax: time.Second, Timeout: time.Minute, Seed: seed})
			defer f.Close()
			f.Nearby(t.Context(), q)
			for i := 1; i < len(at); i++ {
				waits = append(waits, at[i].Sub(at[i-1]))
			}
		})
		return waits
	}
	q := provQuery(1000, 1)
	waits := run(1, q)
	caps := []time.Duration{100, 200, 400, 800, 1000, 1000}
	if len(waits) != len(caps) {
		t.Fatalf("waits %v", waits)
	}
	for i, w := range waits {
		hi := caps[i] * time.Millisecond
		if w < hi/2 || w > hi {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, w, hi/2, hi)
		}
	}
	if again := run(1, q); !slices.Equal(waits, again) {
		t.Errorf("same seed, different waits: %v then %v", waits, again)
	}
	if other := run(2, q); slices.Equal(waits, other) {
		t.Errorf("seeds 1 and 2 gave the same waits %v", waits)
	}
	if other := run(1, provQuery(2000, 1)); slices.Equal(waits, other) {
		t.Errorf("two queries gave the same waits %v", waits)
	}
}

// TestFrugalRetriesBoundedByTimeout: a provider that always fails is
// retried only until the lookup's timeout, whatever Retries says.
func TestFrugalRetriesBoundedByTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &provCounting{replies: []provReply{{err: &herd.HTTPError{StatusCode: 503}}}}
		f := NewFrugal(p, provSysClock{}, FrugalOptions{Retries: 1000, RetryMin: time.Second, RetryMax: time.Second, Timeout: 3500 * time.Millisecond})
		defer f.Close()
		start := time.Now()
		_, err := f.Nearby(t.Context(), provQuery(1000, 1))
		if d := time.Since(start); d != 3500*time.Millisecond {
			t.Errorf("returned after %v, want 3.5s", d)
		}
		if want := "herd: places: lookup timed out after 3.5s: HTTP 503 Service Unavailable"; err == nil || err.Error() != want {
			t.Errorf("err = %v, want %s", err, want)
		}
		if n := p.n(); n < 4 || n > 8 {
			t.Errorf("%d provider calls in 3.5s with waits of 0.5s to 1s", n)
		}
		// The caller's ctx bounds it too (nearby's timeout).
		start = time.Now()
		body := nearby(t.Context(), provSysClock{}, f, 1200*time.Millisecond, provQuery(2000, 1))
		if want := errorJSON("places provider: timeout after 1.2s"); !bytes.Equal(body, want) || time.Since(start) != 1200*time.Millisecond {
			t.Errorf("after %v: %s", time.Since(start), body)
		}
	})
}

// TestFrugalRetriesOverHTTP runs the retry rules against loopback fakes
// of both Google APIs, on real time with millisecond backoffs.
func TestFrugalRetriesOverHTTP(t *testing.T) {
	opts := FrugalOptions{RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond}
	t.Run("new: 503, 500, then OK", func(t *testing.T) {
		var n atomic.Int32
		srv, reqs := provNewServer(t, func(w http.ResponseWriter, r *http.Request) {
			switch n.Add(1) {
			case 1:
				provServe(t, 503, "nearby_new_error_503.json")(w, r)
			case 2:
				provServe(t, 500, "nearby_new_error_500.json")(w, r)
			default:
				provServe(t, 200, "nearby_new_ok.json")(w, r)
			}
		})
		f := NewFrugal(GoogleNew{BaseURL: srv.URL, Key: "k"}, provSysClock{}, opts)
		defer f.Close()
		body := nearby(t.Context(), provSysClock{}, f, 10*time.Second, provQuery(1000, 1))
		if want := whatsatJSON(placesFixture(t, "translate/out/nearby_new_ok.json"), 1); !bytes.Equal(body, want) {
			t.Errorf("body %s", body)
		}
		if got := reqs(); len(got) != 3 || got[0] != got[2] {
			t.Errorf("%d requests, want 3 identical", len(got))
		}
	})
	for _, c := range []struct {
		status  int
		fixture string
		legacy  string
	}{{400, "nearby_new_error_400.json", "INVALID_REQUEST"}, {403, "nearby_new_error_403.json", "REQUEST_DENIED"}, {429, "nearby_new_error_429.json", "OVER_QUERY_LIMIT"}} {
		t.Run(fmt.Sprintf("new: %d is final", c.status), func(t *testing.T) {
			srv, reqs := provNewServer(t, provServe(t, c.status, c.fixture))
			f := NewFrugal(GoogleNew{BaseURL: srv.URL, Key: "k"}, provSysClock{}, opts)
			defer f.Close()
			body := nearby(t.Context(), provSysClock{}, f, 10*time.Second, provQuery(1000, 1))
			if !strings.Contains(string(body), `"status" : "`+c.legacy+`"`) || strings.Contains(string(body), srv.URL) {
				t.Errorf("body %s", body)
			}
			if n := len(reqs()); n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
		})
	}
	t.Run("new: dropped connection, then OK", func(t *testing.T) {
		var n atomic.Int32
		srv, reqs := provNewServer(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				c, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					c.Close()
				}
				return
			}
			provServe(t, 200, "nearby_new_ok.json")(w, r)
		})
		f := NewFrugal(GoogleNew{BaseURL: srv.URL, Key: "k"}, provSysClock{}, opts)
		defer f.Close()
		body := nearby(t.Context(), provSysClock{}, f, 10*time.Second, provQuery(1000, 1))
		if want := whatsatJSON(placesFixture(t, "translate/out/nearby_new_ok.json"), 1); !bytes.Equal(body, want) {
			t.Errorf("body %s", body)
		}
		if got := len(reqs()); got != 2 {
			t.Errorf("%d requests, want 2", got)
		}
	})
	for _, c := range []struct {
		fixture string
		tries   int
	}{
		{"nearby_legacy_unknown_error.json", 3},
		{"nearby_legacy_over_query_limit.json", 1},
		{"nearby_legacy_request_denied.json", 1},
		{"nearby_legacy_invalid_request.json", 1},
	} {
		t.Run("legacy: "+c.fixture, func(t *testing.T) {
			srv, reqs := placesServer(t, provServe(t, 200, c.fixture))
			f := NewFrugal(GoogleLegacy{BaseURL: srv.URL, Key: "k"}, provSysClock{}, opts)
			defer f.Close()
			body := nearby(t.Context(), provSysClock{}, f, 10*time.Second, provQuery(1000, 1))
			if want := bytes.TrimRight(placesFixture(t, c.fixture), "\n"); !bytes.Equal(body, want) {
				t.Errorf("body %s", body)
			}
			if n := len(reqs()); n != c.tries {
				t.Errorf("%d requests, want %d", n, c.tries)
			}
		})
	}
}

func TestFrugalProviderPanicIsAnError(t *testing.T) {
	p := herd.PlacesFunc(func(context.Context, herd.NearbyQuery) ([]byte, error) { panic("boom") })
	f := NewFrugal(p, newProvClock(), FrugalOptions{})
	defer f.Close()
	_, err := f.Nearby(t.Context(), provQuery(1000, 1))
	if err == nil || err.Error() != "herd: places: provider panicked: boom" {
		t.Errorf("err = %v", err)
	}
	if s := f.Stats(); s.ProviderCalls != 1 || s.Errors != 1 {
		t.Errorf("stats %+v", s)
	}
	f2 := NewFrugal(nil, nil, FrugalOptions{})
	defer f2.Close()
	if _, err := f2.Nearby(t.Context(), provQuery(1, 1)); err == nil || err.Error() != "herd: places: no provider configured" {
		t.Errorf("nil provider: %v", err)
	}
}

func TestFrugalClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sawCancel atomic.Bool
		p := herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
			<-ctx.Done()
			sawCancel.Store(true)
			return nil, ctx.Err()
		})
		f := NewFrugal(p, provSysClock{}, FrugalOptions{})
		var err error
		var wg sync.WaitGroup
		wg.Go(func() { _, err = f.Nearby(t.Context(), provQuery(1000, 1)) })
		synctest.Wait()
		start := time.Now()
		f.Close()
		wg.Wait()
		if !sawCancel.Load() || time.Since(start) != 0 || !errors.Is(err, context.Canceled) {
			t.Errorf("in-flight lookup after Close: %v, provider cancelled %v, after %v", err, sawCancel.Load(), time.Since(start))
		}
		f.Close() // idempotent
		if _, err := f.Nearby(t.Context(), provQuery(1000, 1)); !errors.Is(err, ErrClosed) {
			t.Errorf("after Close: %v", err)
		}
	})
}

func TestFrugalOptionsDefaults(t *testing.T) {
	got := FrugalOptions{}.withDefaults()
	want := FrugalOptions{TTL: 5 * time.Minute, MaxEntries: 1024, MaxInFlight: 8, SlotWait: 2 * time.Second, Retries: 2,
		RetryMin: 100 * time.Millisecond, RetryMax: 2 * time.Second, Timeout: 10 * time.Second}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	got = FrugalOptions{RetryMin: 5 * time.Second}.withDefaults()
	if got.RetryMax != 5*time.Second {
		t.Errorf("RetryMax below RetryMin: %+v", got)
	}
}

// TestFrugalConcurrentMixed runs many lookups of a few queries at once
// with a tiny cache, for the race detector.
func TestFrugalConcurrentMixed(t *testing.T) {
	p := herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
		if int(q.RadiusMeters)%3 == 0 {
			return nil, &herd.HTTPError{StatusCode: 403}
		}
		return []byte(provOK), nil
	})
	f := NewFrugal(p, provSysClock{}, FrugalOptions{MaxEntries: 3, MaxInFlight: 2, RetryMin: time.Microsecond, RetryMax: time.Microsecond})
	defer f.Close()
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 100 {
				r := float64((g + i) % 8)
				doc, err := f.Nearby(context.Background(), provQuery(r, 1))
				if (int(r)%3 == 0) != (err != nil) || (err == nil && string(doc) != provOK) {
					t.Errorf("radius %v: %q, %v", r, doc, err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := f.Stats()
	if s.Lookups != 3200 || s.CacheEntries > 3 || s.Waiting != 0 || s.CacheHits+s.Merged+s.ProviderCalls < s.Lookups {
		t.Errorf("stats %+v", s)
	}
	t.Logf("stats %+v", s)
}

func BenchmarkFrugalCacheHit(b *testing.B) {
	raw := placesFixture(b, "nearby_legacy_google_layout.json")
	f := NewFrugal(herd.PlacesFunc(func(context.Context, herd.NearbyQuery) ([]byte, error) { return raw, nil }), provSysClock{}, FrugalOptions{})
	defer f.Close()
	q := provQuery(10000, 5)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f.Nearby(context.Background(), q)
		}
	})
}

func BenchmarkFrugalNoCache(b *testing.B) {
	raw := placesFixture(b, "nearby_legacy_google_layout.json")
	f := NewFrugal(herd.PlacesFunc(func(context.Context, herd.NearbyQuery) ([]byte, error) { return raw, nil }), provSysClock{}, FrugalOptions{TTL: -1})
	defer f.Close()
	q := provQuery(10000, 5)
	for b.Loop() {
		f.Nearby(context.Background(), q)
	}
}

func TestFrugalClassifyDoc(t *testing.T) {
	cases := []struct {
		doc       string
		status    string
		cacheable bool
	}{
		{provOK, "OK", true},
		{provZero, "ZERO_RESULTS", true},
		{provUnknown, "UNKNOWN_ERROR", false},
		{provStatusDoc("OVER_QUERY_LIMIT"), "OVER_QUERY_LIMIT", false},
		{`{}`, "", true},
		{` {"places":[{"status":"x"}]} `, "", true},
		{`{"error":{"code":403,"status":"PERMISSION_DENIED"}}`, "", false},
		{`{"st\u0061tus" : "OK"}`, "OK", true},
		{`{"status":"OK","status":"UNKNOWN_ERROR"}`, "UNKNOWN_ERROR", false},
		{`{"status":null}`, "", false},
		{`{"status":1}`, "", false},
		{`{"status":"O\u004b"}`, "OK", true},
		{`{"a":{"status":"UNKNOWN_ERROR"},"status":"OK"}`, "OK", true},
		{`[{"status":"OK"}]`, "", false},
		{`{"status":"OK"`, "", false},
		{``, "", false},
	}
	for _, c := range cases {
		status, cacheable := classifyDoc([]byte(c.doc))
		if status != c.status || cacheable != c.cacheable {
			t.Errorf("classifyDoc(%s) = %q, %v; want %q, %v", c.doc, status, cacheable, c.status, c.cacheable)
		}
	}
}
