package places

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/gdoc"
)

// provNewRequest is what a fake of the Places API (New) saw.
type provNewRequest struct {
	Method, Path, RawQuery      string
	Key, FieldMask, ContentType string
	Body                        string
}

// provNewServer starts a loopback fake of the Places API (New) that
// records every request (body included) and answers with handle.
func provNewServer(t *testing.T, handle http.HandlerFunc) (*httptest.Server, func() []provNewRequest) {
	t.Helper()
	var reqs []provNewRequest
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, provNewRequest{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Key: r.Header.Get("X-Goog-Api-Key"), FieldMask: r.Header.Get("X-Goog-FieldMask"),
			ContentType: r.Header.Get("Content-Type"), Body: string(body),
		})
		mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []provNewRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]provNewRequest(nil), reqs...)
	}
}

// provServe answers with status and a fixture from testdata.
func provServe(t testing.TB, status int, fixture string) http.HandlerFunc {
	body := placesFixture(t, fixture)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.WriteHeader(status)
		w.Write(body)
	}
}

func TestGoogleNewRequest(t *testing.T) {
	const key = "AIza+/&= x%"
	cases := []struct {
		lat, lon, meters float64 // as parsed from the wire: +0.0-0.0 has a longitude of -0
		bound            int
		mask             string
		wantBody         string
	}{
		{34.06893, -118.445127, 10000, 5, "",
			`{"locationRestriction":{"circle":{"center":{"latitude":34.06893,"longitude":-118.445127},"radius":10000}},"maxResultCount":5}`},
		{34.06893, -118.445127, 10587.1263, 20, "places.displayName",
			`{"locationRestriction":{"circle":{"center":{"latitude":34.06893,"longitude":-118.445127},"radius":10587.1263}},"maxResultCount":20}`},
		{-33.8670522, 151.1957362, 50000, 1, "*",
			`{"locationRestriction":{"circle":{"center":{"latitude":-33.8670522,"longitude":151.1957362},"radius":50000}},"maxResultCount":1}`},
		{0, math.Copysign(0, -1), 1, 25, "",
			`{"locationRestriction":{"circle":{"center":{"latitude":0,"longitude":0},"radius":1}},"maxResultCount":20}`},
		{90, -180, 0.1, 0, "",
			`{"locationRestriction":{"circle":{"center":{"latitude":90,"longitude":-180},"radius":0.1}}}`},
		{1.5, 2.25, 12345.6789012, 3, "",
			`{"locationRestriction":{"circle":{"center":{"latitude":1.5,"longitude":2.25},"radius":12345.6789012}},"maxResultCount":3}`},
	}
	translated := placesFixture(t, "translate/out/nearby_new_ok.json")
	srv, requests := provNewServer(t, provServe(t, 200, "nearby_new_ok.json"))
	for i, c := range cases {
		// Every other request asks for Google's document untouched.
		raw, wantDoc := i%2 == 1, translated
		if raw {
			wantDoc = placesFixture(t, "nearby_new_ok.json")
		}
		g := GoogleNew{BaseURL: srv.URL, Key: key, FieldMask: c.mask, Raw: raw}
		got, err := g.Nearby(t.Context(), herd.NearbyQuery{Lat: c.lat, Lon: c.lon, RadiusMeters: c.meters, MaxResults: c.bound})
		if err != nil {
			t.Fatalf("%v %v %v: %v", c.lat, c.lon, c.meters, err)
		}
		if !bytes.Equal(got, wantDoc) {
			t.Errorf("%v %v %v (Raw %v): body differs from the expected document:\n%s", c.lat, c.lon, c.meters, raw, got)
		}
		mask := c.mask
		if mask == "" {
			mask = "places.businessStatus,places.displayName,places.formattedAddress,places.iconBackgroundColor,places.iconMaskBaseUri,places.id,places.location,places.shortFormattedAddress,places.types"
		}
		want := provNewRequest{
			Method: "POST", Path: "/v1/places:searchNearby", Key: key, FieldMask: mask,
			ContentType: "application/json", Body: c.wantBody,
		}
		if reqs := requests(); len(reqs) != i+1 {
			t.Fatalf("%d requests after %d lookups", len(reqs), i+1)
		} else if diff := cmp.Diff(want, reqs[i]); diff != "" {
			t.Errorf("%v %v %v: request (-want +got):\n%s", c.lat, c.lon, c.meters, diff)
		}
	}
}

func TestGoogleNewErrors(t *testing.T) {
	const key = "SECRET-KEY-123"
	cases := []struct {
		name   string
		handle http.HandlerFunc
		status int    // of the *herd.HTTPError, 0 for none
		want   string // after "herd: google places (new): POST <base>/v1/places:searchNearby: "
		body   string // the WHATSAT body's status and error_message; "" for UNKNOWN_ERROR with the error's text
	}{
		{"400", provServe(t, 400, "nearby_new_error_400.json"), 400,
			`HTTP 400 INVALID_ARGUMENT: Invalid value at 'max_result_count' (TYPE_INT32), "50"`,
			`INVALID_REQUEST: Invalid value at 'max_result_count' (TYPE_INT32), "50"`},
		{"403", provServe(t, 403, "nearby_new_error_403.json"), 403,
			"HTTP 403 PERMISSION_DENIED: Places API (New) has not been used in project 123 before or it is disabled.",
			"REQUEST_DENIED: Places API (New) has not been used in project 123 before or it is disabled."},
		{"429", provServe(t, 429, "nearby_new_error_429.json"), 429,
			"HTTP 429 RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'SearchNearby requests'.",
			"OVER_QUERY_LIMIT: Quota exceeded for quota metric 'SearchNearby requests'."},
		{"500", provServe(t, 500, "nearby_new_error_500.json"), 500,
			"HTTP 500 INTERNAL: Internal error encountered.",
			"UNKNOWN_ERROR: Internal error encountered."},
		{"503", provServe(t, 503, "nearby_new_error_503.json"), 503,
			"HTTP 503 UNAVAILABLE: The service is currently unavailable.",
			"UNKNOWN_ERROR: The service is currently unavailable."},
		{"502 from a proxy, not Google's JSON", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>bad\n gateway</html>", http.StatusBadGateway)
		}, 502, "HTTP 502 Bad Gateway: <html>bad gateway</html>",
			"UNKNOWN_ERROR: HTTP 502 Bad Gateway: <html>bad gateway</html>"},
		{"404 without body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
		}, 404, "HTTP 404 Not Found", "UNKNOWN_ERROR: HTTP 404 Not Found"},
		{"200 not JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html>ok</html>"))
		}, 0, "response is not JSON (15 bytes: <html>ok</html>)", ""},
		{"200 not a Places document", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"places":[{"displayName":"flat"}]}`))
		}, 0, "response is not a Places API (New) document: places.displayName: want an object, got a JSON string", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := provNewServer(t, c.handle)
			body, err := GoogleNew{BaseURL: srv.URL, Key: key}.Nearby(t.Context(), provQuery(1000, 3))
			if err == nil {
				t.Fatalf("no error, body %q", body)
			}
			want := "herd: google places (new): POST " + srv.URL + "/v1/places:searchNearby: " + c.want
			if diff := cmp.Diff(want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			var he *herd.HTTPError
			switch {
			case c.status == 0 && errors.As(err, &he):
				t.Errorf("unexpected *herd.HTTPError %+v", he)
			case c.status != 0 && (!errors.As(err, &he) || he.StatusCode != c.status):
				t.Errorf("errors.As(*herd.HTTPError) = %+v, want status %d", he, c.status)
			}
			if strings.Contains(err.Error(), key) {
				t.Errorf("error shows the key: %v", err)
			}
			if c.status == 0 && retryable(err) {
				t.Errorf("a 200 that is not a Places document should not be retried: %v", err)
			}
			// WHATSAT keeps the shape, with the legacy status and Google's
			// message.
			doc := nearby(t.Context(), newProvClock(), GoogleNew{BaseURL: srv.URL, Key: key}, time.Second, provQuery(1000, 3))
			wantDoc := errorJSON(want)
			if status, msg, ok := strings.Cut(c.body, ": "); ok {
				wantDoc = gdoc.ErrorDoc(status, msg)
			}
			if diff := cmp.Diff(string(wantDoc), string(doc)); diff != "" {
				t.Errorf("WHATSAT body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGoogleNewTransportErrorAndCancel(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	_, err := GoogleNew{BaseURL: base, Key: "SECRET"}.Nearby(t.Context(), provQuery(1000, 1))
	prefix := "herd: google places (new): POST " + base + "/v1/places:searchNearby: "
	if err == nil || !strings.HasPrefix(err.Error(), prefix) || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("closed server: err = %v, want prefix %q", err, prefix)
	}
	if !retryable(err) {
		t.Errorf("a refused connection should be retryable: %v", err)
	}

	arrived := make(chan struct{})
	release := make(chan struct{})
	hang, _ := provNewServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	_, err = GoogleNew{BaseURL: hang.URL, Key: "k"}.Nearby(ctx, provQuery(1000, 1))
	if want := "herd: google places (new): POST " + hang.URL + "/v1/places:searchNearby: context canceled"; err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestGoogleNewNotFinite(t *testing.T) {
	hc := &http.Client{Transport: placesRoundTrip(func(r *http.Request) (*http.Response, error) {
		t.Errorf("request sent: %s", r.URL)
		return nil, errors.New("no")
	})}
	nan := 0.0
	nan = nan / nan
	for _, q := range []herd.NearbyQuery{{Lat: nan, RadiusMeters: 1}, {RadiusMeters: nan}} {
		_, err := GoogleNew{Key: "k", HTTP: hc}.Nearby(t.Context(), q)
		if err == nil || !strings.HasPrefix(err.Error(), "herd: google places (new): query ") || retryable(err) {
			t.Errorf("%+v: err = %v", q, err)
		}
	}
}

func TestGoogleNewBaseURLAndString(t *testing.T) {
	var got []string
	hc := &http.Client{Transport: placesRoundTrip(func(r *http.Request) (*http.Response, error) {
		got = append(got, r.Method+" "+r.URL.String())
		return &http.Response{StatusCode: 200, Status: "200 OK", Body: io.NopCloser(strings.NewReader(`{}`)), Request: r}, nil
	})}
	for _, base := range []string{"", "http://proxy.example:8080/google/"} {
		if _, err := (GoogleNew{BaseURL: base, Key: "k", HTTP: hc}).Nearby(t.Context(), provQuery(1, 1)); err != nil {
			t.Fatalf("BaseURL %q: %v", base, err)
		}
	}
	want := []string{
		"POST https://places.googleapis.com/v1/places:searchNearby",
		"POST http://proxy.example:8080/google/v1/places:searchNearby",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	_, err := GoogleNew{BaseURL: "ftp://x", Key: "k", HTTP: hc}.Nearby(t.Context(), provQuery(1, 1))
	if err == nil || err.Error() != `herd: google places (new): invalid BaseURL "ftp://x": want http(s)://host[/prefix]` || retryable(err) {
		t.Errorf("bad BaseURL: err = %v", err)
	}
	for _, c := range []struct {
		p    fmt.Stringer
		want string
	}{
		{GoogleNew{Key: "SECRET"}, "Google Places API (New)"},
		{GoogleNew{Key: "SECRET", BaseURL: "http://user:pw@127.0.0.1:9/x?key=SECRET"}, "Google Places API (New) at http://127.0.0.1:9/x"},
		{GoogleNew{Key: "SECRET", Raw: true}, "Google Places API (New), raw documents"},
		{GoogleLegacy{Key: "SECRET"}, "Google Places Nearby Search (legacy)"},
		{GoogleLegacy{Key: "SECRET", BaseURL: "http://127.0.0.1:9"}, "Google Places Nearby Search (legacy) at http://127.0.0.1:9"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("String() = %q, want %q", got, c.want)
		}
		if s := fmt.Sprintf("%v %+v", c.p, c.p); strings.Contains(s, "SECRET") {
			t.Errorf("formatting shows the key: %s", s)
		}
	}
}

// TestNearbyGoogleNew runs WHATSAT's lookup against the fake: the
// translated results array is cut to the bound, and so is the places
// array of a raw document.
func TestNearbyGoogleNew(t *testing.T) {
	srv, _ := provNewServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"places":[{"id":"a"},{"id":"b"},{"id":"c"}]}` + "\n\n"))
	})
	got := nearby(t.Context(), newProvClock(), GoogleNew{BaseURL: srv.URL, Key: "k"}, time.Second, provQuery(1000, 2))
	want := "{\n   \"html_attributions\" : [],\n   \"results\" : [\n      {\n         \"place_id\" : \"a\"\n      },\n      {\n         \"place_id\" : \"b\"\n      }\n   ],\n   \"status\" : \"OK\"\n}"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got = nearby(t.Context(), newProvClock(), GoogleNew{BaseURL: srv.URL, Key: "k", Raw: true}, time.Second, provQuery(1000, 2))
	if want := `{"places":[{"id":"a"},{"id":"b"}]}`; string(got) != want {
		t.Errorf("raw: got %s, want %s", got, want)
	}
	ok, _ := provNewServer(t, provServe(t, 200, "nearby_new_ok.json"))
	got = nearby(t.Context(), newProvClock(), GoogleNew{BaseURL: ok.URL, Key: "k"}, time.Second, provQuery(1000, 1))
	if want := whatsatJSON(placesFixture(t, "translate/out/nearby_new_ok.json"), 1); !bytes.Equal(got, want) {
		t.Errorf("got %s, want %s", got, want)
	}
	got = nearby(t.Context(), newProvClock(), GoogleNew{BaseURL: ok.URL, Key: "k", Raw: true}, time.Second, provQuery(1000, 1))
	if want := placesFixture(t, "whatsat/nearby_new_ok.bound1.json"); !bytes.Equal(got, want) {
		t.Errorf("raw: got %s, want %s", got, want)
	}
}

func TestPlacesHTTPErrorText(t *testing.T) {
	cases := []struct {
		e    herd.HTTPError
		want string
	}{
		{herd.HTTPError{StatusCode: 503}, "HTTP 503 Service Unavailable"},
		{herd.HTTPError{StatusCode: 599}, "HTTP 599"},
		{herd.HTTPError{StatusCode: 418, Status: "418 I'm a teapot", Body: " short\n and stout "}, "HTTP 418 I'm a teapot: short and stout"},
		{herd.HTTPError{StatusCode: 403, Body: `{"error":{"code":403,"status":"PERMISSION_DENIED"}}`}, "HTTP 403 PERMISSION_DENIED"},
		{herd.HTTPError{StatusCode: 400, Body: `{"error":{"message":"no status"}}`}, `HTTP 400 Bad Request: {"error":{"message":"no status"}}`},
		{herd.HTTPError{StatusCode: 500, Body: `{"error":"flat"}`}, `HTTP 500 Internal Server Error: {"error":"flat"}`},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.e, got, c.want)
		}
	}
}
