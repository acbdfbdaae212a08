package herd

// places.go: the WHATSAT side of a node. nearby performs one provider
// lookup under the node's Clock; whatsatJSON turns the provider's document
// into the reply body (results cut to the bound, newline rules) by editing
// its bytes, never re-marshalling, and providerErrorJSON turns a failure
// into a legacy error document; GoogleLegacy is the client for the
// legacy Google Nearby Search. The unexported HTTP helpers at the end
// (endpointURL, fetchJSON, readBounded, snippet) and HTTPError are shared
// with the other HTTP providers.
//
// The other providers live beside it: places_new.go (GoogleNew, the Places
// API (New)) and places_new_translate.go (its answers in the legacy
// shape), places_offline.go (Catalogue, offline), places_frugal.go
// (Frugal: merging, cache, limits, retries) and places_select.go
// (PlacesConfig and NewPlaces, which choose and wrap them);
// places_legacy.go writes the legacy documents for all of them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
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
	return legacyErrorJSON("UNKNOWN_ERROR", msg)
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
	return legacyErrorJSON(status, he.Message())
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
	i := skipSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return nil
	}
	start := i
	var drops [][2]int // ranges of raw left out of the result, in order
	i = skipSpace(raw, i+1)
	for i < len(raw) && raw[i] == '"' {
		keyEnd := skipString(raw, i)
		key := raw[i:keyEnd]
		i = skipSpace(raw, keyEnd) // at ':'
		i = skipSpace(raw, i+1)    // at the value
		if i < len(raw) && raw[i] == '[' && isListKey(key) {
			if d, ok := cutArray(raw, i, bound); ok {
				drops = append(drops, d)
			}
		}
		i = skipSpace(raw, skipValue(raw, i))
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
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
	name := memberName(key)
	return name == "results" || name == "places"
}

// memberName returns the quoted member name key (a valid JSON string)
// unquoted, or "" if it cannot be.
func memberName(key []byte) string {
	if bytes.IndexByte(key, '\\') < 0 {
		if len(key) < 2 {
			return ""
		}
		return string(key[1 : len(key)-1])
	}
	var name string
	if json.Unmarshal(key, &name) != nil {
		return ""
	}
	return name
}

// cutArray finds, in the array that starts at raw[open], the bytes to drop
// so that only its first bound elements remain: from the end of element
// number bound to the end of the last element (the white space before
// "]" is kept), or everything between the brackets for a bound of 0.
// It reports false when the array has at most bound elements.
func cutArray(raw []byte, open, bound int) (drop [2]int, ok bool) {
	j := skipSpace(raw, open+1)
	if j >= len(raw) || raw[j] == ']' {
		return drop, false
	}
	n, keepEnd := 0, 0
	for {
		end := skipValue(raw, j)
		n++
		if n == bound {
			keepEnd = end
		}
		k := skipSpace(raw, end)
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
		j = skipSpace(raw, k+1) // past the ','
	}
}

// The JSON scanners below assume valid JSON (json.Valid) and only find
// where things end; out of range they return len(b) instead of panicking.

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// skipString returns the index just past the string that starts with the
// quote at b[i], honouring backslash escapes.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) && !strings.ContainsRune(",]} \n\r\t", rune(b[i])) {
			i++
		}
		return i
	}
}

// DefaultGoogleBaseURL is where [GoogleLegacy] sends requests when its
// BaseURL is empty.
const DefaultGoogleBaseURL = "https://maps.googleapis.com"

// maxPlacesBody bounds a provider response body; a larger one is an error.
const maxPlacesBody = 4 << 20

// GoogleLegacy is a [PlacesClient] for the legacy Google Places Nearby
// Search (GET /maps/api/place/nearbysearch/json). Set it as
// [Config.Places]; the zero value of every field but Key works. It is safe
// for concurrent use when HTTP is.
type GoogleLegacy struct {
	// BaseURL is the scheme and host (and optional path prefix) of the
	// API; empty means DefaultGoogleBaseURL. Tests point it at a fake.
	BaseURL string
	// Key is the Google API key, sent as the key query parameter. It
	// never appears in returned errors.
	Key string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
}

// Nearby sends GET {BaseURL}/maps/api/place/nearbysearch/json with the
// query's location, its radius in metres and the key, and returns the
// response body as is.
//
// The node calls it from a client connection's goroutine, possibly from
// several at once. It blocks until the response has been read or ctx is
// done (the node cancels ctx when its Places timeout passes). Any HTTP 2xx
// response whose body is JSON is returned, whatever its status member
// (OK, ZERO_RESULTS, OVER_QUERY_LIMIT, REQUEST_DENIED, ...). Transport
// failures, non-2xx statuses, bodies over 4 MiB and bodies that are not
// JSON are errors, prefixed "herd: google places: ".
// q.MaxResults is not sent: the legacy API has no such parameter.
func (g GoogleLegacy) Nearby(ctx context.Context, q NearbyQuery) ([]byte, error) {
	u, err := endpointURL(g.BaseURL, DefaultGoogleBaseURL, "/maps/api/place/nearbysearch/json")
	if err != nil {
		return nil, fmt.Errorf("herd: google places: %w", err)
	}
	u.RawQuery = "location=" + formatFloat(q.Lat) + "," + formatFloat(q.Lon) +
		"&radius=" + formatFloat(q.RadiusMeters) +
		"&key=" + url.QueryEscape(g.Key)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("herd: google places: cannot build request for %s", redactURL(u))
	}
	body, err := fetchJSON(g.HTTP, req)
	if err != nil {
		return nil, hideKey(fmt.Errorf("herd: google places: %w", err), g.Key)
	}
	return body, nil
}

// String describes the provider for logs and demos, never with its key:
// "Google Places Nearby Search (legacy)", followed by " at BaseURL" when
// BaseURL is set. Having it also keeps fmt's %v and %+v from printing
// the key. It does not block.
func (g GoogleLegacy) String() string {
	return describeGoogle("Google Places Nearby Search (legacy)", g.BaseURL)
}

// describeGoogle names a Google provider and, when set, the base URL it
// uses instead of Google's.
func describeGoogle(name, base string) string {
	if base == "" {
		return name
	}
	if u, err := url.Parse(base); err == nil {
		base = redactURL(u)
	}
	return name + " at " + base
}

// formatFloat writes f in plain decimal with as many digits as it needs
// (10587.1263 stays 10587.1263, never 1.05871263e+04).
func formatFloat(f float64) string {
	if f == 0 {
		f = 0 // -0 (a location of "-0.0") is written as 0
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// endpointURL joins base (def when empty) with path. base must be an
// absolute http or https URL without query or fragment; other bases are a
// permanentError.
func endpointURL(base, def, path string) (*url.URL, error) {
	if base == "" {
		base = def
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, permanentError{fmt.Errorf("invalid BaseURL %q: %v", base, err)}
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, permanentError{fmt.Errorf("invalid BaseURL %q: want http(s)://host[/prefix]", base)}
	}
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	return u, nil
}

// redactURL describes u without its query, user info or fragment, so that
// API keys in the query never reach errors, logs or clients.
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}

// fetchJSON sends req with hc (nil means http.DefaultClient) and returns
// the body of a 2xx response that is JSON, read up to maxPlacesBody bytes.
// Errors name the request by method and redacted URL, never its query, and
// wrap the transport's error (so errors.Is(err, context.Canceled) works),
// an *HTTPError for a status outside 2xx, or a permanentError for a body
// that is too large or not JSON; the caller adds its provider prefix.
func fetchJSON(hc *http.Client, req *http.Request) ([]byte, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	what := req.Method + " " + redactURL(req.URL)
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error carries the full URL, key included: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		piece, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, fmt.Errorf("%s: %w", what, &HTTPError{StatusCode: resp.StatusCode, Status: resp.Status, Body: string(piece)})
	}
	body, err := readBounded(resp.Body, maxPlacesBody)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("%s: %w", what, permanentError{fmt.Errorf("response is not JSON (%d bytes: %s)", len(body), snippet(body, 64))})
	}
	return body, nil
}

// permanentError marks a provider failure that trying again will not
// cure (a body that is too large or not JSON), so that [Frugal] does not
// retry it. Its text is its cause's.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// maxErrorBody bounds how much of a non-2xx response body [HTTPError]
// keeps.
const maxErrorBody = 8 << 10

// HTTPError is the error a Google provider ([GoogleLegacy], [GoogleNew])
// wraps when the API answers with a status outside 2xx. Use errors.As to
// get it: [Frugal] retries 5xx statuses and never retries the others, and
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
	if b := snippet([]byte(e.Body), 200); b != "" {
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
	return doc.Error.Status, snippet([]byte(doc.Error.Message), 400), true
}

// minHiddenKey is the shortest key hideKey hides. Google's keys are 39
// bytes; hiding a key of a few bytes (tests and fakes use "k") would
// mangle ordinary words instead of protecting anything.
const minHiddenKey = 8

// hideKey keeps key out of a provider's error err: out of the Body of an
// [*HTTPError] it wraps (which a proxy or a fake could echo, and which
// WHATSAT replies quote) and out of its text. It returns err itself when
// there is nothing to hide.
func hideKey(err error, key string) error {
	if err == nil || len(key) < minHiddenKey {
		return err
	}
	const mark = "[key hidden]"
	var he *HTTPError
	if errors.As(err, &he) {
		he.Body = strings.ReplaceAll(he.Body, key, mark)
	}
	if s := err.Error(); strings.Contains(s, key) {
		return keyHidden{err, strings.ReplaceAll(s, key, mark)}
	}
	return err
}

// keyHidden is a provider error whose text showed the key: text is that
// text with the key replaced. It unwraps to the original, so errors.Is,
// errors.As and Frugal's retry rules see through it.
type keyHidden struct {
	error
	text string
}

func (e keyHidden) Error() string { return e.text }
func (e keyHidden) Unwrap() error { return e.error }

// readBounded reads r to its end, failing if it holds more than limit
// bytes (a permanentError).
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading response body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, permanentError{fmt.Errorf("response body exceeds %d bytes", limit)}
	}
	return b, nil
}

// snippet renders the start of a response body for an error message: valid
// UTF-8, white space runs folded to one space, at most limit bytes and
// "..." when cut.
func snippet(b []byte, limit int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
