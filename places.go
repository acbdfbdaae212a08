package herd

// places.go: the WHATSAT side of a node, the seam between the herd and
// its Places provider. nearby performs one provider lookup under the
// node's Clock; whatsatJSON turns the provider's document into the reply
// body (results cut to the bound, newline rules) by editing its bytes,
// never re-marshalling, and providerErrorJSON turns a failure into a
// legacy error document, reading an [HTTPError] as Google's legacy API
// would. bodymemo.go remembers recent bodies.
//
// The providers themselves (Google's two APIs, the offline catalogue, the
// caching and limiting wrapper, and the choice between them) live in
// package places; internal/gdoc holds the JSON scanners and the legacy
// document writer both sides use.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/proxyherd/herd/internal/gdoc"
)

// emptyJSON is the WHATSAT body for a bound of 0, laid out like the
// provider's own documents. Its capacity equals its length, so a caller
// that appends to it gets a fresh array and never writes into this one.
var emptyJSON = slices.Clip([]byte("{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OK\"\n}"))

// errorJSON returns the UNKNOWN_ERROR document that replaces the provider's
// when the provider could not be used at all, with msg as its
// error_message ("places provider: unknown error" when msg is empty). It
// has no trailing newline.
func errorJSON(msg string) []byte {
	if msg == "" {
		msg = "places provider: unknown error"
	}
	return gdoc.ErrorDoc("UNKNOWN_ERROR", msg)
}

// providerErrorJSON returns the WHATSAT body for a provider that failed
// with err. When err wraps an [*HTTPError] (the API answered outside 2xx),
// the body has the legacy status Google's legacy API gives for the same
// trouble, and the API's own message as its error_message (see
// [HTTPError.Message]): 400 is INVALID_REQUEST, 403 REQUEST_DENIED, 429
// OVER_QUERY_LIMIT, any other status UNKNOWN_ERROR. Other errors
// (transport failures, bodies that are not JSON, timeouts) become
// UNKNOWN_ERROR with err's text, as errorJSON writes it.
func providerErrorJSON(err error) []byte {
	var he *HTTPError
	if !errors.As(err, &he) {
		return errorJSON(err.Error())
	}
	status := "UNKNOWN_ERROR"
	switch he.StatusCode {
	case http.StatusBadRequest:
		status = "INVALID_REQUEST"
	case http.StatusForbidden:
		status = "REQUEST_DENIED"
	case http.StatusTooManyRequests:
		status = "OVER_QUERY_LIMIT"
	}
	return gdoc.ErrorDoc(status, he.Message())
}

// nearby performs the provider lookup for one WHATSAT and returns the reply
// body, without the final "\n\n" (the caller appends it). It always returns
// a document: provider failures become providerErrorJSON documents.
//
// The caller is a client connection's goroutine; nearby blocks until p
// answers, ctx is done, or timeout has passed on clock (clock must not be
// nil). A timeout of zero or less means DefaultPlacesTimeout. With
// q.MaxResults of 0 or less, p is not called.
func nearby(ctx context.Context, clock Clock, p PlacesClient, timeout time.Duration, q NearbyQuery) []byte {
	return nearbyBody(ctx, clock, p, timeout, q, whatsatJSON)
}

// WhatsatBody returns the body a node answers a WHATSAT with when it asks
// p for q: what p answers, its results cut to q.MaxResults and the
// newline rules applied, or the legacy error document that stands for
// p's failure (a timeout on clock after timeout, zero or less meaning
// [DefaultPlacesTimeout]; an [*HTTPError]; any other error). The reply
// adds the AT line before it and "\n\n" after it. Authors of a
// [PlacesClient] use it to test what clients will see; it blocks as
// p.Nearby does, and clock must not be nil.
func WhatsatBody(ctx context.Context, clock Clock, p PlacesClient, timeout time.Duration, q NearbyQuery) []byte {
	return slices.Clone(nearby(ctx, clock, p, timeout, q))
}

// nearbyBody is nearby with body, which must answer as whatsatJSON does,
// turning the provider's document into the reply body.
func nearbyBody(ctx context.Context, clock Clock, p PlacesClient, timeout time.Duration, q NearbyQuery, body func(doc []byte, bound int) []byte) []byte {
	if q.MaxResults <= 0 {
		return emptyJSON
	}
	if p == nil {
		return errorJSON("no Places provider configured")
	}
	if timeout <= 0 {
		timeout = DefaultPlacesTimeout
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut atomic.Bool
	t := clock.AfterFunc(timeout, func() {
		timedOut.Store(true)
		cancel()
	})
	raw, err := p.Nearby(ctx, q)
	t.Stop()
	if err != nil {
		if timedOut.Load() {
			return errorJSON(fmt.Sprintf("places provider: timeout after %v", timeout))
		}
		return providerErrorJSON(err)
	}
	b := body(raw, q.MaxResults)
	if b == nil {
		return errorJSON("places provider: response is not a JSON object")
	}
	return b
}

// whatsatJSON returns the WHATSAT body for the provider document raw: raw
// with its top-level "results" array (legacy Nearby Search) and its
// top-level "places" array (Places API (New)) cut to their first bound
// entries. Everything else keeps its bytes, so members keep their values,
// order and layout; when an array is cut, the white space that preceded its
// closing bracket is kept, and an array cut to nothing becomes "[]".
//
// Then the newline rules apply: every run of two or more newlines becomes
// one, and the white space around the object (trailing newlines included)
// is dropped: the body starts with '{' and ends with '}', so the reply,
// which the caller ends with "\n\n", never holds an empty line before its
// end.
//
// The result is a fresh slice with room for two more bytes. It is nil when
// raw is not valid JSON or not a JSON object.
func whatsatJSON(raw []byte, bound int) []byte {
	if !json.Valid(raw) {
		return nil
	}
	i := gdoc.SkipSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return nil
	}
	start := i
	var drops [][2]int // ranges of raw left out of the result, in order
	i = gdoc.SkipSpace(raw, i+1)
	for i < len(raw) && raw[i] == '"' {
		keyEnd := gdoc.SkipString(raw, i)
		key := raw[i:keyEnd]
		i = gdoc.SkipSpace(raw, keyEnd) // at ':'
		i = gdoc.SkipSpace(raw, i+1)    // at the value
		if i < len(raw) && raw[i] == '[' && isListKey(key) {
			if d, ok := cutArray(raw, i, bound); ok {
				drops = append(drops, d)
			}
		}
		i = gdoc.SkipSpace(raw, gdoc.SkipValue(raw, i))
		if i < len(raw) && raw[i] == ',' {
			i = gdoc.SkipSpace(raw, i+1)
		}
	}
	end := min(i+1, len(raw)) // just past the object's '}'

	out := make([]byte, 0, end-start+2)
	prev := start
	for _, d := range append(drops, [2]int{end, end}) {
		for _, c := range raw[prev:d[0]] {
			if c == '\n' && len(out) > 0 && out[len(out)-1] == '\n' {
				continue
			}
			out = append(out, c)
		}
		prev = d[1]
	}
	return out
}

// isListKey reports whether the quoted member name key is "results" or
// "places", the arrays WHATSAT cuts to its bound.
func isListKey(key []byte) bool {
	name := gdoc.MemberName(key)
	return name == "results" || name == "places"
}

// cutArray finds, in the array that starts at raw[open], the bytes to drop
// so that only its first bound elements remain: from the end of element
// number bound to the end of the last element (the white space before
// "]" is kept), or everything between the brackets for a bound of 0.
// It reports false when the array has at most bound elements.
func cutArray(raw []byte, open, bound int) (drop [2]int, ok bool) {
	j := gdoc.SkipSpace(raw, open+1)
	if j >= len(raw) || raw[j] == ']' {
		return drop, false
	}
	n, keepEnd := 0, 0
	for {
		end := gdoc.SkipValue(raw, j)
		n++
		if n == bound {
			keepEnd = end
		}
		k := gdoc.SkipSpace(raw, end)
		if k >= len(raw) {
			return drop, false
		}
		if raw[k] == ']' {
			switch {
			case n <= bound:
				return drop, false
			case bound <= 0:
				return [2]int{open + 1, k}, true
			default:
				return [2]int{keepEnd, end}, true
			}
		}
		j = gdoc.SkipSpace(raw, k+1) // past the ','
	}
}

// HTTPError is the error a Google provider (places.GoogleLegacy, places.GoogleNew)
// wraps when the API answers with a status outside 2xx. Use errors.As to
// get it: places.Frugal retries 5xx statuses and never retries the others, and
// the WHATSAT reply keeps the legacy shape with the legacy status that
// matches (400 INVALID_REQUEST, 403 REQUEST_DENIED, 429 OVER_QUERY_LIMIT,
// others UNKNOWN_ERROR) and [HTTPError.Message] as its error_message.
// A custom [PlacesClient] may wrap an HTTPError too, to get the same
// treatment.
type HTTPError struct {
	// StatusCode is the HTTP status code, such as 403.
	StatusCode int
	// Status is the status line's text, such as "403 Forbidden"; empty
	// means the standard text for StatusCode.
	Status string
	// Body is the start of the response body (at most 8 KiB), as
	// received.
	Body string
}

// Error describes the response in one line for logs and errors: "HTTP
// 403 PERMISSION_DENIED: <message>" when Body is Google's error document
// ({"error":{"code","message","status"}}), otherwise "HTTP 403 Forbidden"
// followed by the start of the body with its white space folded.
func (e *HTTPError) Error() string {
	if status, msg, ok := e.googleError(); ok {
		s := fmt.Sprintf("HTTP %d %s", e.StatusCode, status)
		if msg != "" {
			s += ": " + msg
		}
		return s
	}
	status := e.Status
	if status == "" {
		status = strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
	}
	s := "HTTP " + strings.TrimSpace(status)
	if b := gdoc.Snippet([]byte(e.Body), 200); b != "" {
		s += ": " + b
	}
	return s
}

// Message is what a WHATSAT reply's error_message says about the
// response: Google's own message when Body is Google's error document and
// has one ("Quota exceeded for quota metric 'SearchNearby requests'."),
// otherwise the Error text ("HTTP 502 Bad Gateway: ..."). Neither names
// the request's URL.
func (e *HTTPError) Message() string {
	if _, msg, ok := e.googleError(); ok && msg != "" {
		return msg
	}
	return e.Error()
}

// googleError returns the status and message (its white space folded, at
// most 400 bytes) of Google's error document in Body; ok is false when
// Body is not one, or has no status.
func (e *HTTPError) googleError() (status, msg string, ok bool) {
	var doc struct {
		Error *struct {
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	if json.Unmarshal([]byte(e.Body), &doc) != nil || doc.Error == nil || doc.Error.Status == "" {
		return "", "", false
	}
	return doc.Error.Status, gdoc.Snippet([]byte(doc.Error.Message), 400), true
}
