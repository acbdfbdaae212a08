package herdtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/proxyherd/herd"
)

// DefaultPlacesLatency is the fake provider's response time unless
// [PlacesOptions.Latency] says otherwise.
var DefaultPlacesLatency = Latency{Min: 20 * time.Millisecond, Max: 80 * time.Millisecond}

// ErrPlacesFailure is the error of a call the fake provider fails on
// purpose ([PlacesOptions.FailureRate]).
var ErrPlacesFailure = errors.New("herdtest: simulated Places failure")

// PlacesOptions configures a fake Places provider. The zero value answers
// every query with [PlacesDocument] after [DefaultPlacesLatency].
type PlacesOptions struct {
	// Latency is how long a call takes, drawn per call from the server's
	// stream. Make it longer than the node's PlacesTimeout to see
	// timeouts.
	Latency Latency
	// FailureRate is the probability, in [0, 1], that a call fails with
	// ErrPlacesFailure after its latency.
	FailureRate float64
	// Respond, when set, replaces PlacesDocument: it returns the document
	// (or error) for a query that did not fail.
	Respond func(server string, q herd.NearbyQuery) ([]byte, error)
}

// PlacesCall is one query the fake provider received.
type PlacesCall struct {
	// Server is the node that asked.
	Server string
	// At is the virtual time of the call.
	At time.Time
	// Query is what it asked.
	Query herd.NearbyQuery
	// Err is how the call failed, if it did (ErrPlacesFailure, or the
	// context's error when the node gave up first); nil while in progress
	// and for answered calls.
	Err error
	// Done reports whether the call has returned.
	Done bool
}

// Places is a fake, deterministic Places provider on a [Sim]: latency and
// failures come from each server's random stream ("places <server>"), and
// every query is recorded.
type Places struct {
	s    *Sim
	opts PlacesOptions

	mu    sync.Mutex
	calls []*PlacesCall
}

// NewPlaces returns a fake provider on s.
func NewPlaces(s *Sim, opts PlacesOptions) *Places {
	if opts.Latency == (Latency{}) {
		opts.Latency = DefaultPlacesLatency
	}
	return &Places{s: s, opts: opts}
}

// For returns the herd.PlacesClient that server uses.
func (p *Places) For(server string) herd.PlacesClient {
	return herd.PlacesFunc(func(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
		return p.nearby(ctx, server, q)
	})
}

func (p *Places) nearby(ctx context.Context, server string, q herd.NearbyQuery) ([]byte, error) {
	s := p.s
	key := "places " + server
	s.mu.Lock()
	r := s.rng(key)
	lat := p.opts.Latency.draw(r)
	fail := p.opts.FailureRate > 0 && r.Float64() < p.opts.FailureRate
	call := &PlacesCall{Server: server, At: s.epoch.Add(s.now), Query: q}
	s.mu.Unlock()

	p.mu.Lock()
	p.calls = append(p.calls, call)
	p.mu.Unlock()

	var body []byte
	err := s.sleep(ctx, key, lat)
	switch {
	case err != nil:
	case fail:
		err = ErrPlacesFailure
	case p.opts.Respond != nil:
		body, err = p.opts.Respond(server, q)
	default:
		body = PlacesDocument(q)
	}
	p.mu.Lock()
	call.Err, call.Done = err, true
	p.mu.Unlock()
	return body, err
}

// Calls returns every query so far, ordered by time, server and query.
func (p *Places) Calls() []PlacesCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PlacesCall, len(p.calls))
	for i, c := range p.calls {
		out[i] = *c
	}
	slices.SortStableFunc(out, func(a, b PlacesCall) int {
		return cmp.Or(a.At.Compare(b.At), strings.Compare(a.Server, b.Server),
			cmp.Compare(a.Query.Lat, b.Query.Lat), cmp.Compare(a.Query.Lon, b.Query.Lon),
			cmp.Compare(a.Query.RadiusMeters, b.Query.RadiusMeters), cmp.Compare(a.Query.MaxResults, b.Query.MaxResults))
	})
	return out
}

// PlacesDocument is the fake provider's answer to q: a legacy Nearby
// Search document laid out like Google's, with exactly q.MaxResults
// results (at least one), so herd passes it through unchanged and a test
// can predict a WHATSAT reply byte for byte.
func PlacesDocument(q herd.NearbyQuery) []byte {
	n := max(q.MaxResults, 1)
	var b strings.Builder
	b.WriteString("{\n   \"html_attributions\" : [],\n   \"results\" : [\n")
	for i := range n {
		lat := q.Lat + float64(i+1)*0.0001
		lng := q.Lon - float64(i+1)*0.0001
		fmt.Fprintf(&b, "      {\n"+
			"         \"geometry\" : {\n"+
			"            \"location\" : {\n"+
			"               \"lat\" : %s,\n"+
			"               \"lng\" : %s\n"+
			"            }\n"+
			"         },\n"+
			"         \"name\" : \"Place %d within %sm\",\n"+
			"         \"place_id\" : \"sim-%d\",\n"+
			"         \"vicinity\" : \"Simulated Street %d\"\n"+
			"      }",
			strconv.FormatFloat(lat, 'f', 7, 64), strconv.FormatFloat(lng, 'f', 7, 64),
			i+1, strconv.FormatFloat(q.RadiusMeters, 'f', -1, 64), i+1, i+1)
		if i < n-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("   ],\n   \"status\" : \"OK\"\n}")
	return []byte(b.String())
}
