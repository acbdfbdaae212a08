package herd

// ratelimit.go: limits on the provider calls WHATSAT makes, so that no
// client can spend the operator's Places budget: token buckets
// (golang.org/x/time/rate, always given the node's Clock time) per client
// connection, per source address and per server, and a daily budget per
// server. A WHATSAT over a limit still gets a complete reply, with no
// provider call: the stored AT line and the cached answer to exactly that
// query if the provider holds one, else an OVER_QUERY_LIMIT document.

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/proxyherd/herd/internal/gdoc"

	"golang.org/x/time/rate"
)

// Defaults for the zero values of [PlacesLimits]. With them one connection
// gets at most 20 + 5t provider calls in t seconds (30 in two), while a
// client asking a few times a second never meets a limit.
const (
	DefaultPlacesConnRate    = 5
	DefaultPlacesConnBurst   = 20
	DefaultPlacesAddrRate    = 10
	DefaultPlacesAddrBurst   = 40
	DefaultPlacesServerRate  = 25
	DefaultPlacesServerBurst = 100
	DefaultPlacesDailyBudget = 2000
)

// PlacesLimits bounds the provider calls WHATSAT makes ([Config.PlacesLimits]).
// Rates are calls a second on average and bursts the calls allowed at once
// (token buckets); the zero value of every field means its default, a
// negative rate or budget turns that limit off, and bursts may not be
// negative. WHATSATs with a bound of 0 call no provider and are never
// limited; nor is a WHATSAT that a limit turns away counted against the
// others.
//
// Its JSON form (the tags below) is the config file's.
type PlacesLimits struct {
	// ConnRate and ConnBurst limit one client connection (defaults 5/s
	// and 20).
	ConnRate  float64 `json:"places_conn_rate,omitempty"`
	ConnBurst int     `json:"places_conn_burst,omitempty"`
	// AddrRate and AddrBurst limit all the connections from one source
	// address together: one IPv4 address, or one IPv6 /64 prefix
	// (defaults 10/s and 40).
	AddrRate  float64 `json:"places_addr_rate,omitempty"`
	AddrBurst int     `json:"places_addr_burst,omitempty"`
	// ServerRate and ServerBurst limit the whole server (defaults 25/s
	// and 100).
	ServerRate  float64 `json:"places_server_rate,omitempty"`
	ServerBurst int     `json:"places_server_burst,omitempty"`
	// DailyBudget bounds the provider calls the server makes in one day
	// of its Clock, from 00:00 UTC to the next (default 2000).
	DailyBudget int `json:"places_daily_budget,omitempty"`
}

// PlacesCache is implemented by a [PlacesClient] that can answer a query
// from what it already holds, without a provider call, as places.Frugal can.
// When a limit turns a WHATSAT away, the node asks the Config.Places
// provider's Cached method, if it has one, for the document to send.
type PlacesCache interface {
	// Cached returns the document Nearby would return for q without
	// calling anyone, if there is one. The caller does not modify it.
	// It must not block.
	Cached(q NearbyQuery) ([]byte, bool)
}

// limitError is one problem PlacesLimits.check found.
type limitError struct{ field, msg string }

// check returns every invalid field.
func (l PlacesLimits) check() []limitError {
	var errs []limitError
	for _, r := range []struct {
		field string
		v     float64
	}{{"ConnRate", l.ConnRate}, {"AddrRate", l.AddrRate}, {"ServerRate", l.ServerRate}} {
		if math.IsNaN(r.v) || math.IsInf(r.v, 0) {
			errs = append(errs, limitError{r.field, fmt.Sprintf("must be a finite number, got %v", r.v)})
		}
	}
	for _, b := range []struct {
		field string
		v     int
	}{{"ConnBurst", l.ConnBurst}, {"AddrBurst", l.AddrBurst}, {"ServerBurst", l.ServerBurst}} {
		if b.v < 0 {
			errs = append(errs, limitError{b.field, fmt.Sprintf("must not be negative, got %d", b.v)})
		}
	}
	return errs
}

// withDefaults returns l with its zero fields set to their defaults.
func (l PlacesLimits) withDefaults() PlacesLimits {
	l.ConnRate = cmp.Or(l.ConnRate, DefaultPlacesConnRate)
	l.AddrRate = cmp.Or(l.AddrRate, DefaultPlacesAddrRate)
	l.ServerRate = cmp.Or(l.ServerRate, DefaultPlacesServerRate)
	l.ConnBurst = cmp.Or(l.ConnBurst, DefaultPlacesConnBurst)
	l.AddrBurst = cmp.Or(l.AddrBurst, DefaultPlacesAddrBurst)
	l.ServerBurst = cmp.Or(l.ServerBurst, DefaultPlacesServerBurst)
	l.DailyBudget = cmp.Or(l.DailyBudget, DefaultPlacesDailyBudget)
	return l
}

// limitKind names the limit that turned a provider call away.
type limitKind int

const (
	limitNone limitKind = iota
	limitConn
	limitAddr
	limitServer
	limitDaily
	limitKinds
)

// limitNames are the names of the limits in logs.
var limitNames = [limitKinds]string{"", "connection", "address", "server", "daily"}

// placesGate holds a node's limits. Its limiters are nil when off.
type placesGate struct {
	lim    PlacesLimits // with defaults
	addrs  *addrLimiters
	server *rate.Limiter
	daily  dailyBudget
	// docs are the OVER_QUERY_LIMIT bodies, one per limit.
	docs [limitKinds][]byte
}

// newPlacesGate builds the limiters of l (with defaults applied).
func newPlacesGate(l PlacesLimits) *placesGate {
	g := &placesGate{lim: l, daily: dailyBudget{limit: l.DailyBudget}}
	if l.AddrRate >= 0 {
		g.addrs = &addrLimiters{limit: rate.Limit(l.AddrRate), burst: l.AddrBurst, m: make(map[string]*rate.Limiter)}
		g.addrs.other = rate.NewLimiter(g.addrs.limit, g.addrs.burst)
	}
	if l.ServerRate >= 0 {
		g.server = rate.NewLimiter(rate.Limit(l.ServerRate), l.ServerBurst)
	}
	per := func(what string, r float64, burst int) []byte {
		return gdoc.ErrorDoc("OVER_QUERY_LIMIT", fmt.Sprintf("herd: over the %s limit of %s Places calls a second (burst %d); try again shortly",
			what, strconv.FormatFloat(r, 'f', -1, 64), burst))
	}
	g.docs[limitConn] = per("per-connection", l.ConnRate, l.ConnBurst)
	g.docs[limitAddr] = per("per-address", l.AddrRate, l.AddrBurst)
	g.docs[limitServer] = per("per-server", l.ServerRate, l.ServerBurst)
	g.docs[limitDaily] = gdoc.ErrorDoc("OVER_QUERY_LIMIT", fmt.Sprintf("herd: over this server's daily budget of %d Places calls; it renews at 00:00 UTC", l.DailyBudget))
	return g
}

// admit takes one provider call from every limit that applies to s's
// next WHATSAT, at now. It returns limitNone if the call may go ahead,
// or the first limit that refused it, in which case it takes nothing.
func (g *placesGate) admit(s *session, now time.Time) limitKind {
	var held [3]*rate.Reservation
	k := 0
	release := func() {
		for _, h := range held[:k] {
			h.CancelAt(now)
		}
	}
	take := func(l *rate.Limiter) bool {
		r := l.ReserveN(now, 1)
		if r.OK() && r.DelayFrom(now) == 0 {
			held[k] = r
			k++
			return true
		}
		r.CancelAt(now)
		release()
		return false
	}
	if g.lim.ConnRate >= 0 {
		if s.placesLim == nil {
			// Made at the first provider call: most connections never
			// make one.
			s.placesLim = rate.NewLimiter(rate.Limit(g.lim.ConnRate), g.lim.ConnBurst)
		}
		if !take(s.placesLim) {
			return limitConn
		}
	}
	if g.addrs != nil && !take(g.addrs.get(s.source(), now)) {
		return limitAddr
	}
	if g.server != nil && !take(g.server) {
		return limitServer
	}
	if g.lim.DailyBudget >= 0 && !g.daily.take(now) {
		release()
		return limitDaily
	}
	return limitNone
}

// addrLimiters holds one limiter per source address.
type addrLimiters struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	m         map[string]*rate.Limiter
	other     *rate.Limiter // shared by new sources while m is full
	nextPrune time.Time
}

// maxAddrLimiters bounds the sources tracked at once.
const maxAddrLimiters = 1 << 16

// get returns source's limiter. A limiter whose bucket is full again is
// the same as a new one, so such limiters are forgotten when the map is
// full (at most once a second); sources that find it full of busy ones
// share one limiter until then.
func (a *addrLimiters) get(source string, now time.Time) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	if l := a.m[source]; l != nil {
		return l
	}
	if len(a.m) >= maxAddrLimiters {
		if now.Before(a.nextPrune) {
			return a.other
		}
		a.nextPrune = now.Add(time.Second)
		for src, l := range a.m {
			if l.TokensAt(now) >= float64(a.burst) {
				delete(a.m, src)
			}
		}
		if len(a.m) >= maxAddrLimiters {
			return a.other
		}
	}
	l := rate.NewLimiter(a.limit, a.burst)
	a.m[source] = l
	return l
}

// dailyBudget counts a server's provider calls in the current UTC day of
// its Clock. A negative limit means no budget.
type dailyBudget struct {
	limit int
	mu    sync.Mutex
	day   int64 // days since the Unix epoch
	used  int
}

// take counts one call at now and reports whether the budget allowed it.
func (b *dailyBudget) take(now time.Time) bool {
	day := now.Unix() / 86400
	if now.Unix() < 0 && now.Unix()%86400 != 0 {
		day-- // floor, for clocks before 1970
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if day != b.day {
		b.day, b.used = day, 0
	}
	if b.used >= b.limit {
		return false
	}
	b.used++
	return true
}

// source returns where s's connection comes from (see sourceOf),
// computed once.
func (s *session) source() string {
	if !s.sourceSet {
		s.src, s.sourceSet = sourceOf(s.c.RemoteAddr()), true
	}
	return s.src
}

// limitedBody is the WHATSAT body for q when limit k turned its provider
// call away: the cached answer to exactly q if the provider holds one,
// else the OVER_QUERY_LIMIT document naming the limit. It counts and logs
// the event.
func (n *Node) limitedBody(s *session, k limitKind, q NearbyQuery) []byte {
	n.stats.placesLimited[k].Add(1)
	n.offence("places calls limited", s.source(), slog.String("conn", s.id), slog.String("limit", limitNames[k]))
	if pc, ok := n.cfg.Places.(PlacesCache); ok {
		if doc, ok := pc.Cached(q); ok {
			if b := n.bodies.whatsat(doc, q.MaxResults); b != nil {
				return b
			}
		}
	}
	return n.gate.docs[k]
}
