package places

// frugal.go: a herd.PlacesClient wrapper that spends the provider's
// quota carefully: identical lookups in flight are merged, answers are
// cached for a while, provider calls are capped, and transient failures are
// retried with jittered backoff. All time comes from the herd.Clock.

import (
	"cmp"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/gdoc"
	"github.com/proxyherd/herd/internal/realtime"
)

// Defaults for the zero values of [FrugalOptions] (and of the matching
// [Config] fields).
const (
	// DefaultCacheTTL is how long an answer is reused. Check your
	// provider's terms before raising it: Google's allow only
	// short-lived caching of most Places content.
	DefaultCacheTTL = 5 * time.Minute
	// DefaultCacheEntries bounds the number of cached answers.
	DefaultCacheEntries = 1024
	// DefaultMaxInFlight caps the provider calls outstanding at
	// once.
	DefaultMaxInFlight = 8
	// DefaultSlotWait bounds the wait for a provider slot.
	DefaultSlotWait = 2 * time.Second
	// DefaultRetries is how many times a transient failure is
	// retried.
	DefaultRetries = 2
	// DefaultRetryMin and DefaultRetryMax bound the backoff
	// between attempts.
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 2 * time.Second
)

// Errors from [Frugal]; use errors.Is.
var (
	// ErrBusy is wrapped by the error of a lookup that found every
	// provider slot taken for longer than [FrugalOptions.SlotWait].
	ErrBusy = errors.New("herd: places: provider busy")
	// ErrClosed is returned by [Frugal.Nearby] after [Frugal.Close].
	ErrClosed = errors.New("herd: places: provider closed")
)

// FrugalOptions tunes a [Frugal]. The zero value of every field means the
// default documented on it.
type FrugalOptions struct {
	// TTL is how long a successful answer (status OK or ZERO_RESULTS, or
	// an untranslated Places API (New) document) is reused for the same
	// query, on the herd.Clock. Zero means DefaultCacheTTL (5m);
	// negative turns the cache off.
	TTL time.Duration
	// MaxEntries bounds the cache; the least recently used answer is
	// dropped first. Zero means DefaultCacheEntries (1024);
	// negative turns the cache off.
	MaxEntries int
	// MaxInFlight caps the provider calls outstanding at once, over all
	// queries. Zero means DefaultMaxInFlight (8); negative means no
	// cap.
	MaxInFlight int
	// SlotWait bounds how long a lookup waits for a provider slot when
	// MaxInFlight calls are outstanding; it then fails with
	// ErrBusy. Zero means DefaultSlotWait (2s); negative means
	// not waiting at all.
	SlotWait time.Duration
	// Retries is how many times a lookup is tried again after a transient
	// failure: a transport error, an HTTP 5xx status, or a document with
	// status UNKNOWN_ERROR. HTTP 4xx statuses and the statuses
	// OVER_QUERY_LIMIT, REQUEST_DENIED and INVALID_REQUEST are never
	// retried. Zero means DefaultRetries (2); negative means none.
	Retries int
	// RetryMin and RetryMax bound the backoff before each retry: it
	// doubles from RetryMin up to RetryMax, and each wait is drawn
	// between half of that and all of it. Zeros mean DefaultRetryMin
	// (100ms) and DefaultRetryMax (2s).
	RetryMin, RetryMax time.Duration
	// Timeout bounds one merged lookup, retries and slot wait included.
	// The lookup runs apart from the callers that asked for it, so that
	// the first caller giving up does not fail the others; each caller
	// still returns as soon as its own ctx is done. Zero means
	// herd.DefaultPlacesTimeout (10s).
	Timeout time.Duration
	// Seed keys the backoff jitter. The jitter of a lookup depends only
	// on Seed, the query and the attempt, never on scheduling or a global
	// source, so a seeded simulation retries at the same times in every
	// run. Give each server its own seed to spread their retries.
	Seed uint64
}

// withDefaults returns o with its zero fields set to their defaults.
func (o FrugalOptions) withDefaults() FrugalOptions {
	o.TTL = cmp.Or(o.TTL, DefaultCacheTTL)
	o.MaxEntries = cmp.Or(o.MaxEntries, DefaultCacheEntries)
	o.MaxInFlight = cmp.Or(o.MaxInFlight, DefaultMaxInFlight)
	o.SlotWait = cmp.Or(o.SlotWait, DefaultSlotWait)
	o.Retries = cmp.Or(o.Retries, DefaultRetries)
	if o.RetryMin <= 0 {
		o.RetryMin = DefaultRetryMin
	}
	if o.RetryMax <= 0 {
		o.RetryMax = max(DefaultRetryMax, o.RetryMin)
	}
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.Timeout <= 0 {
		o.Timeout = herd.DefaultPlacesTimeout
	}
	return o
}

// FrugalStats counts what a [Frugal] did since it was built.
type FrugalStats struct {
	// Lookups counts Nearby calls.
	Lookups uint64
	// CacheHits counts lookups answered from the cache.
	CacheHits uint64
	// Merged counts lookups answered by another lookup's provider call
	// for the same query.
	Merged uint64
	// ProviderCalls counts calls to the wrapped provider, retries
	// included.
	ProviderCalls uint64
	// Retries counts provider calls that were retries.
	Retries uint64
	// ProviderErrors counts provider calls that returned an error.
	ProviderErrors uint64
	// Busy counts merged lookups that found no provider slot in time.
	Busy uint64
	// Errors counts lookups that returned an error (the caller's ctx
	// ending included).
	Errors uint64
	// Waiting is the number of lookups now waiting for a provider call.
	Waiting int64
	// CacheEntries is the number of answers now cached.
	CacheEntries int
}

// frugalCounters are the atomic counters behind FrugalStats.
type frugalCounters struct {
	lookups, cacheHits, merged, providerCalls, retries, providerErrors, busy, errors atomic.Uint64
	waiting                                                                          atomic.Int64
}

// Frugal is a [herd.PlacesClient] that wraps another and spends its quota
// carefully:
//
//   - identical lookups in flight (same location rounded to 5 decimal
//     places, about a metre, same radius, same bound) are merged into one
//     provider call (golang.org/x/sync/singleflight);
//   - successful answers are cached for [FrugalOptions.TTL] on the
//     herd.Clock, at most [FrugalOptions.MaxEntries] of them, least recently
//     used dropped first; errors and documents with other statuses are
//     never cached;
//   - at most [FrugalOptions.MaxInFlight] provider calls are outstanding
//     (golang.org/x/sync/semaphore); a lookup that cannot get a slot
//     within [FrugalOptions.SlotWait] fails with [ErrBusy] rather
//     than wait;
//   - transient failures are retried with capped, jittered exponential
//     backoff, within the lookup's timeout.
//
// The provider is asked with the exact query of the lookup that started
// the call; the lookups merged with it, or answered from the cache, may
// differ from it below the fifth decimal place of the location.
//
// Build one with [NewFrugal] or [New]; the zero value is not usable.
// It is safe for concurrent use. Package herd's rules hold: all time comes
// from the herd.Clock, and the jitter from [FrugalOptions.Seed].
type Frugal struct {
	next  herd.PlacesClient
	clock herd.Clock
	opts  FrugalOptions
	group singleflight.Group
	sem   *semaphore.Weighted // nil: no cap
	root  context.Context     // parent of every provider call; done on Close
	stop  context.CancelFunc

	shut atomic.Bool // set by Close

	mu     sync.Mutex // guards the fields below
	cache  map[string]*list.Element
	lru    list.List // of *frugalEntry, most recently used first
	closed bool
	wg     sync.WaitGroup // merged lookups running; Add only under mu while !closed

	c frugalCounters
}

// frugalEntry is one cached answer.
type frugalEntry struct {
	key     string
	doc     []byte
	expires time.Time
}

// frugalResult is what a merged lookup hands to its callers.
type frugalResult struct {
	doc       []byte
	fromCache bool
}

// systemClock is the clock of a Frugal made without one: the system's.
type systemClock struct{}

func (systemClock) Now() time.Time { return realtime.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) herd.Timer {
	return realtime.AfterFunc(d, f)
}

// NewFrugal returns a [Frugal] in front of next, reading time from clock
// (nil means the system clock), tuned by opts. It starts no goroutine and
// does no I/O. Call [Frugal.Close] when done with it to cancel provider
// calls still running.
func NewFrugal(next herd.PlacesClient, clock herd.Clock, opts FrugalOptions) *Frugal {
	if clock == nil {
		clock = systemClock{}
	}
	f := &Frugal{
		next:  next,
		clock: clock,
		opts:  opts.withDefaults(),
		cache: make(map[string]*list.Element),
	}
	if f.opts.MaxInFlight > 0 {
		f.sem = semaphore.NewWeighted(int64(f.opts.MaxInFlight))
	}
	f.root, f.stop = context.WithCancel(context.Background())
	return f
}

// Nearby answers q from the cache, or by joining an identical lookup in
// flight, or by calling the wrapped provider (with retries). It returns a
// fresh copy of the document that the caller may keep and modify.
//
// The node calls it from a client connection's goroutine, possibly from
// many at once. It blocks until the answer is there or ctx is done,
// whichever comes first: when ctx ends first it returns ctx's error at
// once, and the merged provider call carries on (bounded by
// [FrugalOptions.Timeout]) for the other callers and for the cache.
// Errors are the provider's own, or wrap [ErrBusy],
// [ErrClosed] or ctx's error.
func (f *Frugal) Nearby(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
	f.c.lookups.Add(1)
	if f.shut.Load() {
		f.c.errors.Add(1)
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		f.c.errors.Add(1)
		return nil, fmt.Errorf("herd: places: %w", err)
	}
	key := frugalKey(q)
	if doc, ok := f.cacheGet(key); ok {
		f.c.cacheHits.Add(1)
		return slices.Clone(doc), nil
	}
	f.c.waiting.Add(1)
	var led atomic.Bool // set by the caller whose function the group runs
	ch := f.group.DoChan(key, func() (any, error) {
		led.Store(true)
		return f.lookup(key, q)
	})
	select {
	case r := <-ch:
		f.c.waiting.Add(-1)
		var res frugalResult
		if r.Err == nil {
			res = r.Val.(frugalResult)
		}
		switch {
		case !led.Load():
			f.c.merged.Add(1)
		case res.fromCache:
			f.c.cacheHits.Add(1)
		}
		if r.Err != nil {
			f.c.errors.Add(1)
			return nil, r.Err
		}
		return slices.Clone(res.doc), nil
	case <-ctx.Done():
		f.c.waiting.Add(-1)
		f.c.errors.Add(1)
		return nil, fmt.Errorf("herd: places: %w", ctx.Err())
	}
}

// Cached returns a copy of the cached answer to q, if the cache holds a
// live one, without calling the provider or waiting; it makes Frugal a
// [herd.PlacesCache], so that a node answers a rate-limited WHATSAT from the
// cache when it can. It does not count as a lookup in [FrugalStats].
func (f *Frugal) Cached(q herd.NearbyQuery) ([]byte, bool) {
	if f.shut.Load() {
		return nil, false
	}
	doc, ok := f.cacheGet(frugalKey(q))
	if !ok {
		return nil, false
	}
	return slices.Clone(doc), true
}

var _ herd.PlacesCache = (*Frugal)(nil)

// lookup is the merged lookup for key: it runs once for all the callers
// that ask for key while it runs, on a goroutine of its own, under a
// context of its own bounded by the Timeout.
func (f *Frugal) lookup(key string, q herd.NearbyQuery) (frugalResult, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return frugalResult{}, ErrClosed
	}
	f.wg.Add(1)
	f.mu.Unlock()
	defer f.wg.Done()

	// An identical lookup may have finished between this caller's cache
	// miss and the start of this one.
	if doc, ok := f.cacheGet(key); ok {
		return frugalResult{doc: doc, fromCache: true}, nil
	}
	ctx, cancel := context.WithCancel(f.root)
	defer cancel()
	var timedOut atomic.Bool
	t := f.clock.AfterFunc(f.opts.Timeout, func() {
		timedOut.Store(true)
		cancel()
	})
	defer t.Stop()

	doc, cacheable, err := f.attempts(ctx, key, q)
	if err != nil {
		if timedOut.Load() {
			return frugalResult{}, fmt.Errorf("herd: places: lookup timed out after %v: %w", f.opts.Timeout, err)
		}
		return frugalResult{}, err
	}
	if cacheable {
		f.cachePut(key, doc)
	}
	return frugalResult{doc: doc}, nil
}

// attempts calls the provider, and again after transient failures, until
// an answer is final, the retries are spent or ctx is done. It returns the
// last outcome, and whether its document may be cached.
func (f *Frugal) attempts(ctx context.Context, key string, q herd.NearbyQuery) (doc []byte, cacheable bool, err error) {
	h := fnv.New64a()
	h.Write([]byte(key))
	rng := rand.New(rand.NewPCG(f.opts.Seed, h.Sum64()))
	for attempt := 0; ; attempt++ {
		if err := f.acquire(ctx); err != nil {
			return nil, false, err
		}
		f.c.providerCalls.Add(1)
		doc, err = f.call(ctx, q)
		if f.sem != nil {
			f.sem.Release(1)
		}
		retry := false
		if err != nil {
			f.c.providerErrors.Add(1)
			retry = retryable(err) && ctx.Err() == nil
		} else {
			var status string
			status, cacheable = classifyDoc(doc)
			retry = status == "UNKNOWN_ERROR"
		}
		if !retry || attempt >= max(f.opts.Retries, 0) {
			return doc, cacheable, err
		}
		if !f.sleep(ctx, f.backoff(attempt, rng)) {
			return doc, cacheable, err
		}
		f.c.retries.Add(1)
	}
}

// call calls the wrapped provider, turning a panic into an error so that
// one bad answer cannot take the server down.
func (f *Frugal) call(ctx context.Context, q herd.NearbyQuery) (doc []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, err = nil, permanentError{fmt.Errorf("herd: places: provider panicked: %v", r)}
		}
	}()
	if f.next == nil {
		return nil, permanentError{errors.New("herd: places: no provider configured")}
	}
	return f.next.Nearby(ctx, q)
}

// acquire takes a provider slot, waiting at most SlotWait on the herd.Clock.
func (f *Frugal) acquire(ctx context.Context) error {
	if f.sem == nil || f.sem.TryAcquire(1) {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("herd: places: %w", err)
	}
	busy := func() error {
		f.c.busy.Add(1)
		return fmt.Errorf("%w: no free slot within %v (%d provider calls in flight)", ErrBusy, max(f.opts.SlotWait, 0), f.opts.MaxInFlight)
	}
	if f.opts.SlotWait < 0 {
		return busy()
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var expired atomic.Bool
	t := f.clock.AfterFunc(f.opts.SlotWait, func() {
		expired.Store(true)
		cancel()
	})
	err := f.sem.Acquire(wctx, 1)
	t.Stop()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("herd: places: %w", ctx.Err())
	case expired.Load():
		return busy()
	}
	return fmt.Errorf("herd: places: %w", err)
}

// backoff returns the wait before retry number attempt+1: RetryMin
// doubled attempt times, capped at RetryMax, then drawn uniformly between
// half of that and all of it.
func (f *Frugal) backoff(attempt int, rng *rand.Rand) time.Duration {
	d := f.opts.RetryMin
	for range attempt {
		if d >= f.opts.RetryMax/2 {
			d = f.opts.RetryMax
			break
		}
		d *= 2
	}
	d = min(d, f.opts.RetryMax)
	half := d / 2
	return half + time.Duration(rng.Int64N(int64(d-half)+1))
}

// sleep waits d on the herd.Clock; it reports false if ctx ended first.
func (f *Frugal) sleep(ctx context.Context, d time.Duration) bool {
	done := make(chan struct{})
	t := f.clock.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return true
	case <-ctx.Done():
		t.Stop()
		return false
	}
}

// retryable reports whether a provider error may be cured by trying
// again: transport errors and HTTP 5xx are; HTTP statuses below 500,
// bodies that are not JSON, busy and closed errors and cancellation are
// not.
func retryable(err error) bool {
	var he *herd.HTTPError
	if errors.As(err, &he) {
		return he.StatusCode >= 500
	}
	var pe permanentError
	switch {
	case errors.As(err, &pe),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrBusy),
		errors.Is(err, ErrClosed):
		return false
	}
	return true
}

// classifyDoc returns a provider document's top-level status member ("" if
// it has none or it is not a string) and whether the document may be
// cached: a JSON object with status OK or ZERO_RESULTS, or with neither a
// status nor an error member (the Places API (New) answers so). It scans
// the top level only, with the scanners of whatsatJSON.
func classifyDoc(doc []byte) (status string, cacheable bool) {
	if !json.Valid(doc) {
		return "", false
	}
	i := gdoc.SkipSpace(doc, 0)
	if i == len(doc) || doc[i] != '{' {
		return "", false
	}
	hasStatus, hasError := false, false
	i = gdoc.SkipSpace(doc, i+1)
	for i < len(doc) && doc[i] == '"' {
		keyEnd := gdoc.SkipString(doc, i)
		name := gdoc.MemberName(doc[i:keyEnd])
		i = gdoc.SkipSpace(doc, keyEnd) // at ':'
		i = gdoc.SkipSpace(doc, i+1)    // at the value
		end := gdoc.SkipValue(doc, i)
		switch name {
		case "status":
			hasStatus, status = true, ""
			if doc[i] == '"' {
				_ = json.Unmarshal(doc[i:end], &status) // valid JSON string
			}
		case "error":
			hasError = true
		}
		i = gdoc.SkipSpace(doc, end)
		if i < len(doc) && doc[i] == ',' {
			i = gdoc.SkipSpace(doc, i+1)
		}
	}
	if !hasStatus {
		return "", !hasError
	}
	return status, status == "OK" || status == "ZERO_RESULTS"
}

// frugalKey is the cache and merge key of q: the location rounded to 5
// decimal places, the exact radius and the bound.
func frugalKey(q herd.NearbyQuery) string {
	round := func(x float64) string {
		v := math.Round(x * 1e5)
		if v == 0 {
			v = 0 // -0 and 0 are one key
		}
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return round(q.Lat) + "," + round(q.Lon) + "," + gdoc.FormatFloat(q.RadiusMeters) + "," + strconv.Itoa(q.MaxResults)
}

// cacheGet returns the live cached answer for key, if any, and marks it
// recently used. An expired answer is dropped.
func (f *Frugal) cacheGet(key string) ([]byte, bool) {
	if f.opts.TTL < 0 || f.opts.MaxEntries < 0 {
		return nil, false
	}
	now := f.clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	el, ok := f.cache[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*frugalEntry)
	if !now.Before(e.expires) {
		f.lru.Remove(el)
		delete(f.cache, key)
		return nil, false
	}
	f.lru.MoveToFront(el)
	return e.doc, true
}

// cachePut stores a copy of doc as key's answer, dropping the least
// recently used answers beyond MaxEntries.
func (f *Frugal) cachePut(key string, doc []byte) {
	if f.opts.TTL < 0 || f.opts.MaxEntries < 0 {
		return
	}
	e := &frugalEntry{key: key, doc: slices.Clone(doc), expires: f.clock.Now().Add(f.opts.TTL)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if el, ok := f.cache[key]; ok {
		el.Value = e
		f.lru.MoveToFront(el)
		return
	}
	f.cache[key] = f.lru.PushFront(e)
	for f.lru.Len() > f.opts.MaxEntries {
		last := f.lru.Back()
		f.lru.Remove(last)
		delete(f.cache, last.Value.(*frugalEntry).key)
	}
}

// Stats returns the counters, read atomically one by one (a snapshot
// taken while lookups run may be off by the lookups in progress). Demos,
// tests and metrics exporters call it from any goroutine; it does not
// block on lookups.
func (f *Frugal) Stats() FrugalStats {
	f.mu.Lock()
	n := f.lru.Len()
	f.mu.Unlock()
	return FrugalStats{
		Lookups:        f.c.lookups.Load(),
		CacheHits:      f.c.cacheHits.Load(),
		Merged:         f.c.merged.Load(),
		ProviderCalls:  f.c.providerCalls.Load(),
		Retries:        f.c.retries.Load(),
		ProviderErrors: f.c.providerErrors.Load(),
		Busy:           f.c.busy.Load(),
		Errors:         f.c.errors.Load(),
		Waiting:        f.c.waiting.Load(),
		CacheEntries:   n,
	}
}

// Close cancels the provider calls still running, waits for the lookups
// that made them to finish, and makes later lookups fail with
// [ErrClosed]. It is idempotent and returns nil; callers waiting on a
// lookup get its error. A service calls it when it shuts down, after
// closing its nodes.
func (f *Frugal) Close() error {
	f.shut.Store(true)
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.stop()
	f.wg.Wait()
	return nil
}

// String describes the wrapped provider for logs and demos ("offline
// catalogue (39 places)", "Google Places API (New)"), using its String
// method when it has one, and never shows a key. It does not block.
func (f *Frugal) String() string {
	if s, ok := f.next.(fmt.Stringer); ok {
		return s.String()
	}
	if f.next == nil {
		return "no Places provider"
	}
	return fmt.Sprintf("Places provider %T", f.next)
}
