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
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/proxyherd/herd"
)

// --- GoogleLegacy -------------------------------------------------------------

// placesServer starts a loopback fake of the Google API that records every
// request and answers with handle.
func placesServer(t *testing.T, handle http.HandlerFunc) (*httptest.Server, func() []*http.Request) {
	t.Helper()
	var mu sync.Mutex
	var reqs []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.Clone(context.Background()))
		mu.Unlock()
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []*http.Request {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(reqs)
	}
}

func TestGoogleLegacyRequest(t *testing.T) {
	const key = "AIza+/&= x%"
	cases := []struct {
		lat, lon, meters float64 // as parsed from the wire: +0.0-0.0 has a longitude of -0
		wantLocation     string
		wantRadius       string
	}{
		{34.06893, -118.445127, 10000, "34.06893,-118.445127", "10000"},
		{34.06893, -118.445127, 10587.1263, "34.06893,-118.445127", "10587.1263"},
		{-33.8670522, 151.1957362, 50000, "-33.8670522,151.1957362", "50000"},
		{0, math.Copysign(0, -1), 1, "0,0", "1"},
		{90, -180, 0.1, "90,-180", "0.1"},
		{1.5, 2.25, 12345.6789012, "1.5,2.25", "12345.6789012"},
	}
	raw := placesFixture(t, "nearby_legacy_ok.json")
	srv, requests := placesServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.Write(raw)
	})
	g := GoogleLegacy{BaseURL: srv.URL, Key: key}
	for _, c := range cases {
		got, err := g.Nearby(t.Context(), herd.NearbyQuery{Lat: c.lat, Lon: c.lon, RadiusMeters: c.meters, MaxResults: 3})
		if err != nil {
			t.Fatalf("%v %v %v: %v", c.lat, c.lon, c.meters, err)
		}
		if !bytes.Equal(got, raw) {
			t.Errorf("%v %v %v: body differs from the served fixture", c.lat, c.lon, c.meters)
		}
		reqs := requests()
		r := reqs[len(reqs)-1]
		wantRaw := "location=" + c.wantLocation + "&radius=" + c.wantRadius + "&key=" + url.QueryEscape(key)
		if r.Method != http.MethodGet || r.URL.Path != "/maps/api/place/nearbysearch/json" || r.URL.RawQuery != wantRaw {
			t.Errorf("request = %s %s?%s, want GET /maps/api/place/nearbysearch/json?%s", r.Method, r.URL.Path, r.URL.RawQuery, wantRaw)
		}
		wantQ := url.Values{"location": {c.wantLocation}, "radius": {c.wantRadius}, "key": {key}}
		if diff := cmp.Diff(wantQ, r.URL.Query()); diff != "" {
			t.Errorf("%v %v %v: query parameters (-want +got):\n%s", c.lat, c.lon, c.meters, diff)
		}
		if r.ContentLength != 0 {
			t.Errorf("GET with a body of %d bytes", r.ContentLength)
		}
	}
	if n := len(requests()); n != len(cases) {
		t.Errorf("%d requests, want %d", n, len(cases))
	}
}

func TestGoogleLegacyFixturesPassThrough(t *testing.T) {
	for _, name := range placesFixtureNames(t) {
		t.Run(name, func(t *testing.T) {
			raw := placesFixture(t, name)
			srv, _ := placesServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(raw) })
			got, err := GoogleLegacy{BaseURL: srv.URL, Key: "k"}.Nearby(t.Context(), herd.NearbyQuery{Lat: 1, Lon: 2, RadiusMeters: 3, MaxResults: 4})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(raw), string(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestGoogleLegacyBaseURL(t *testing.T) {
	var got []string
	hc := &http.Client{Transport: placesRoundTrip(func(r *http.Request) (*http.Response, error) {
		got = append(got, r.URL.String())
		return &http.Response{StatusCode: 200, Status: "200 OK", Body: io.NopCloser(strings.NewReader(`{"results":[]}`)), Request: r}, nil
	})}
	q := herd.NearbyQuery{Lat: 1, Lon: 2, RadiusMeters: 3, MaxResults: 1}
	for _, base := range []string{"", "http://proxy.example:8080/google/", "https://example.com/a/b"} {
		if _, err := (GoogleLegacy{BaseURL: base, Key: "k", HTTP: hc}).Nearby(t.Context(), q); err != nil {
			t.Fatalf("BaseURL %q: %v", base, err)
		}
	}
	want := []string{
		"https://maps.googleapis.com/maps/api/place/nearbysearch/json?location=1,2&radius=3&key=k",
		"http://proxy.example:8080/google/maps/api/place/nearbysearch/json?location=1,2&radius=3&key=k",
		"https://example.com/a/b/maps/api/place/nearbysearch/json?location=1,2&radius=3&key=k",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request URLs (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"maps.googleapis.com", "ftp://x", "http://", "http://x/?q=1", "http://x/#f", "http://%zz"} {
		_, err := GoogleLegacy{BaseURL: bad, Key: "k", HTTP: hc}.Nearby(t.Context(), q)
		if err == nil || !strings.HasPrefix(err.Error(), "herd: google places: invalid BaseURL") {
			t.Errorf("BaseURL %q: err = %v, want an invalid BaseURL error", bad, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("invalid BaseURLs sent requests: %v", got[len(want):])
	}
}

type placesRoundTrip func(*http.Request) (*http.Response, error)

func (f placesRoundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestGoogleLegacyErrors(t *testing.T) {
	const key = "SECRET-KEY-123"
	big := bytes.Repeat([]byte(" "), maxPlacesBody+1)
	big[0] = '{'
	cases := []struct {
		name   string
		handle http.HandlerFunc
		want   string // the error after "herd: google places: GET <base>/maps/api/place/nearbysearch/json: "
	}{
		{"500 with body", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "internal\n  oops", http.StatusInternalServerError)
		}, "HTTP 500 Internal Server Error: internal oops"},
		{"403 with Google error document", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			w.Write(placesFixture(t, "nearby_new_error_403.json"))
		}, `HTTP 403 PERMISSION_DENIED: Places API (New) has not been used in project 123 before or it is disabled.`},
		{"429 without body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTooManyRequests)
		}, "HTTP 429 Too Many Requests"},
		{"302 without location", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusFound)
		}, "HTTP 302 Found"},
		{"200 HTML", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("<html><body>Service\tUnavailable</body></html>"))
		}, "response is not JSON (45 bytes: <html><body>Service Unavailable</body></html>)"},
		{"200 empty", func(w http.ResponseWriter, r *http.Request) {}, "response is not JSON (0 bytes: )"},
		{"200 truncated JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"results":[`))
		}, `response is not JSON (12 bytes: {"results":[)`},
		{"200 too large", func(w http.ResponseWriter, r *http.Request) {
			w.Write(big)
		}, fmt.Sprintf("response body exceeds %d bytes", maxPlacesBody)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := placesServer(t, c.handle)
			body, err := GoogleLegacy{BaseURL: srv.URL, Key: key}.Nearby(t.Context(), herd.NearbyQuery{Lat: 1, Lon: 2, RadiusMeters: 3, MaxResults: 1})
			if err == nil {
				t.Fatalf("no error, body %q", body)
			}
			want := "herd: google places: GET " + srv.URL + "/maps/api/place/nearbysearch/json: " + c.want
			if diff := cmp.Diff(want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if body != nil {
				t.Errorf("body %q returned with an error", body)
			}
		})
	}
}

func TestGoogleLegacyTransportErrorHidesKey(t *testing.T) {
	const key = "SECRET-KEY-123"
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // nothing listens there any more
	_, err := GoogleLegacy{BaseURL: base, Key: key}.Nearby(t.Context(), herd.NearbyQuery{Lat: 1, Lon: 2, RadiusMeters: 3, MaxResults: 1})
	if err == nil {
		t.Fatal("no error from a closed server")
	}
	prefix := "herd: google places: GET " + base + "/maps/api/place/nearbysearch/json: "
	if !strings.HasPrefix(err.Error(), prefix) || strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "location=") {
		t.Errorf("error %q: want prefix %q and no query", err, prefix)
	}
}

func TestGoogleLegacyCancelledWhileHanging(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	srv, _ := placesServer(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-arrived
		cancel()
	}()
	_, err := GoogleLegacy{BaseURL: srv.URL, Key: "k"}.Nearby(ctx, herd.NearbyQuery{Lat: 1, Lon: 2, RadiusMeters: 3, MaxResults: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	want := "herd: google places: GET " + srv.URL + "/maps/api/place/nearbysearch/json: context canceled"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

// TestNearbyGoogleLegacy runs the whole WHATSAT lookup against a fake
// Google: cut, failure and timeout on the fake clock.
func TestNearbyGoogleLegacy(t *testing.T) {
	q := herd.NearbyQuery{Lat: -33.8670522, Lon: 151.1957362, RadiusMeters: 1500, MaxResults: 1}
	t.Run("ok", func(t *testing.T) {
		raw := placesFixture(t, "nearby_legacy_google_layout.json")
		srv, _ := placesServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write(raw) })
		got := nearby(t.Context(), newProvClock(), GoogleLegacy{BaseURL: srv.URL, Key: "k"}, 10*time.Second, q)
		want := placesFixture(t, "whatsat/nearby_legacy_google_layout.bound1.json")
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("500", func(t *testing.T) {
		srv, _ := placesServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "backend down", http.StatusInternalServerError)
		})
		got := nearby(t.Context(), newProvClock(), GoogleLegacy{BaseURL: srv.URL, Key: "k"}, 10*time.Second, q)
		want := "{\n   \"error_message\" : \"HTTP 500 Internal Server Error: backend down\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		arrived := make(chan struct{})
		release := make(chan struct{})
		srv, _ := placesServer(t, func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			select {
			case <-r.Context().Done():
			case <-release:
			}
		})
		t.Cleanup(func() { close(release) })
		clock := newProvClock()
		go func() {
			<-arrived
			clock.Advance(3 * time.Second)
		}()
		got := nearby(t.Context(), clock, GoogleLegacy{BaseURL: srv.URL, Key: "k"}, 3*time.Second, q)
		want := "{\n   \"error_message\" : \"places provider: timeout after 3s\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}
