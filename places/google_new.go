package places

// google_new.go: the client for Google's Places API (New) Nearby Search,
// the only Nearby Search that Google keys created for new projects can use.
// Its answers are translated into the legacy shape by
// translate.go.

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/gdoc"
)

// DefaultGoogleNewBaseURL is where [GoogleNew] sends requests when its
// BaseURL is empty.
const DefaultGoogleNewBaseURL = "https://places.googleapis.com"

// DefaultFieldMask is the X-Goog-FieldMask [GoogleNew] sends when its
// FieldMask is empty: every field the translation into the legacy shape
// reads that Google bills at the Nearby Search Pro rate, the lowest a
// Nearby Search (New) request has (business_status, geometry, the icon
// fields, name, place_id, types and vicinity of the legacy results).
//
// The translation also reads four fields that Google bills at the Nearby
// Search Enterprise rate: places.rating, places.userRatingCount,
// places.priceLevel and places.currentOpeningHours (or
// places.regularOpeningHours). Add them to a FieldMask to get rating,
// user_ratings_total, price_level and opening_hours.open_now in the
// results; every request is then billed at the Enterprise rate.
const DefaultFieldMask = "places.businessStatus,places.displayName,places.formattedAddress,places.iconBackgroundColor,places.iconMaskBaseUri,places.id,places.location,places.shortFormattedAddress,places.types"

// maxNewResults is the largest maxResultCount the Places API (New)
// accepts, and its default.
const maxNewResults = 20

// GoogleNew is a [herd.PlacesClient] for the Places API (New) Nearby Search
// (POST /v1/places:searchNearby). Set it as [herd.Config.Places], or let
// [New] build it (Kind "new"); the zero value of every field but Key
// works. It is safe for concurrent use when HTTP is.
//
// Its answer is Google's document translated into the legacy Nearby
// Search shape (html_attributions, results, status), laid out as Google
// laid out the legacy documents, so that WHATSAT replies have the shape
// the protocol promises; the translation happens here, so a [Frugal] in
// front of it caches translated documents. With Raw set, its answer is
// Google's document as is instead.
type GoogleNew struct {
	// BaseURL is the scheme and host (and optional path prefix) of the
	// API; empty means DefaultGoogleNewBaseURL. Tests point it at a fake.
	BaseURL string
	// Key is the Google API key, sent in the X-Goog-Api-Key header. It
	// never appears in returned errors.
	Key string
	// FieldMask is the X-Goog-FieldMask header, a comma-separated list of
	// response fields; empty means DefaultFieldMask. Google rejects
	// requests without one.
	FieldMask string
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Raw, when set, returns Google's document untouched (an object
	// whose "places" array WHATSAT cuts to its bound, or {} when nothing
	// is near) instead of its legacy translation. WHATSAT replies then
	// leave the shape the protocol promises: clients written for it will
	// not understand them.
	Raw bool
}

// Nearby sends POST {BaseURL}/v1/places:searchNearby with the headers
// X-Goog-Api-Key, X-Goog-FieldMask and Content-Type: application/json and
// the body
//
//	{"locationRestriction":{"circle":{"center":{"latitude":LAT,"longitude":LNG},"radius":METRES}},"maxResultCount":N}
//
// with numbers in plain decimal (a radius of 10.5871263 km is
// 10587.1263), N being q.MaxResults capped at 20 (a MaxResults of 0 or
// less leaves maxResultCount out, which Google reads as 20). It returns
// the response body translated into the legacy Nearby Search shape (see
// [GoogleNew]), or as is when g.Raw is set.
//
// The node calls it from a client connection's goroutine, possibly from
// several at once. It blocks until the response has been read or ctx is
// done. Any HTTP 2xx response whose body is JSON is answered. Errors are
// prefixed "herd: google places (new): " and name the request, never the
// key; a status outside 2xx wraps an [*herd.HTTPError] whose text keeps
// Google's status and message ("HTTP 403 PERMISSION_DENIED: Places API
// (New) has not been used in project ..."), and which the WHATSAT reply
// turns into the matching legacy status (REQUEST_DENIED here). A body
// that does not translate (not an object, or a member of the wrong type)
// is an error that Frugal does not retry. A location or radius that is
// not a finite number is an error, and no request is sent.
func (g GoogleNew) Nearby(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
	const prefix = "herd: google places (new): "
	u, err := endpointURL(g.BaseURL, DefaultGoogleNewBaseURL, "/v1/places:searchNearby")
	if err != nil {
		return nil, fmt.Errorf(prefix+"%w", err)
	}
	for _, f := range [...]float64{q.Lat, q.Lon, q.RadiusMeters} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, permanentError{fmt.Errorf(prefix+"query %+v is not finite", q)}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(newNearbyBody(q)))
	if err != nil {
		return nil, fmt.Errorf(prefix+"cannot build request for %s", redactURL(u))
	}
	mask := g.FieldMask
	if mask == "" {
		mask = DefaultFieldMask
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Goog-Api-Key", g.Key)
	req.Header.Set("X-Goog-FieldMask", mask)
	body, err := fetchJSON(g.HTTP, req)
	if err != nil {
		return nil, hideKey(fmt.Errorf(prefix+"%w", err), g.Key)
	}
	if g.Raw {
		return body, nil
	}
	doc, err := translateNew(body)
	if err != nil {
		return nil, fmt.Errorf(prefix+"%s %s: %w", req.Method, redactURL(u), permanentError{err})
	}
	return doc, nil
}

// newNearbyBody returns the searchNearby request body for q; it is
// written by hand so that its bytes are fixed and numbers are never in
// exponent form.
func newNearbyBody(q herd.NearbyQuery) []byte {
	b := make([]byte, 0, 160)
	b = append(b, `{"locationRestriction":{"circle":{"center":{"latitude":`...)
	b = append(b, gdoc.FormatFloat(q.Lat)...)
	b = append(b, `,"longitude":`...)
	b = append(b, gdoc.FormatFloat(q.Lon)...)
	b = append(b, `},"radius":`...)
	b = append(b, gdoc.FormatFloat(q.RadiusMeters)...)
	b = append(b, `}}`...)
	if q.MaxResults > 0 {
		b = append(b, `,"maxResultCount":`...)
		b = strconv.AppendInt(b, int64(min(q.MaxResults, maxNewResults)), 10)
	}
	return append(b, '}')
}

// String describes the provider for logs and demos, never with its key:
// "Google Places API (New)" ("Google Places API (New), raw documents"
// with Raw), followed by " at BaseURL" when BaseURL is set. Having it
// also keeps fmt's %v and %+v from printing the key. It does not block.
func (g GoogleNew) String() string {
	name := "Google Places API (New)"
	if g.Raw {
		name += ", raw documents"
	}
	return describeGoogle(name, g.BaseURL)
}
