package places

// google.go: the client for the legacy Google Nearby Search, and the HTTP
// plumbing every Google provider shares (endpointURL, fetchJSON,
// readBounded, hideKey); the errors they return wrap a [*herd.HTTPError]
// for answers outside 2xx.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/gdoc"
)

// DefaultGoogleBaseURL is where [GoogleLegacy] sends requests when its
// BaseURL is empty.
const DefaultGoogleBaseURL = "https://maps.googleapis.com"

// maxPlacesBody bounds a provider response body; a larger one is an error.
const maxPlacesBody = 4 << 20

// GoogleLegacy is a [herd.PlacesClient] for the legacy Google Places Nearby
// Search (GET /maps/api/place/nearbysearch/json). Set it as
// [herd.Config.Places]; the zero value of every field but Key works. It is safe
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
func (g GoogleLegacy) Nearby(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
	u, err := endpointURL(g.BaseURL, DefaultGoogleBaseURL, "/maps/api/place/nearbysearch/json")
	if err != nil {
		return nil, fmt.Errorf("herd: google places: %w", err)
	}
	u.RawQuery = "location=" + gdoc.FormatFloat(q.Lat) + "," + gdoc.FormatFloat(q.Lon) +
		"&radius=" + gdoc.FormatFloat(q.RadiusMeters) +
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
// an *herd.HTTPError for a status outside 2xx, or a permanentError for a body
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
		return nil, fmt.Errorf("%s: %w", what, &herd.HTTPError{StatusCode: resp.StatusCode, Status: resp.Status, Body: string(piece)})
	}
	body, err := readBounded(resp.Body, maxPlacesBody)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("%s: %w", what, permanentError{fmt.Errorf("response is not JSON (%d bytes: %s)", len(body), gdoc.Snippet(body, 64))})
	}
	return body, nil
}

// permanentError marks a provider failure that trying again will not
// cure (a body that is too large or not JSON), so that [Frugal] does not
// retry it. Its text is its cause's.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// maxErrorBody bounds how much of a non-2xx response body [herd.HTTPError]
// keeps.
const maxErrorBody = 8 << 10

// minHiddenKey is the shortest key hideKey hides. Google's keys are 39
// bytes; hiding a key of a few bytes (tests and fakes use "k") would
// mangle ordinary words instead of protecting anything.
const minHiddenKey = 8

// hideKey keeps key out of a provider's error err: out of the Body of an
// [*herd.HTTPError] it wraps (which a proxy or a fake could echo, and which
// WHATSAT replies quote) and out of its text. It returns err itself when
// there is nothing to hide.
func hideKey(err error, key string) error {
	if err == nil || len(key) < minHiddenKey {
		return err
	}
	const mark = "[key hidden]"
	var he *herd.HTTPError
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
