package herd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/proxyherd/herd/internal/testfile"
)

var updatePlaces = flag.Bool("update-places", false, "rewrite the golden files under testdata/whatsat")

// placesFixture returns the bytes of testdata/name.
func placesFixture(t testing.TB, name string) []byte { return testfile.Read(t, name) }

// placesFixtureNames lists the provider documents in testdata.
func placesFixtureNames(t testing.TB) []string { return testfile.Names(t, "nearby_*.json") }

// --- whatsatJSON ------------------------------------------------------------

// TestWhatsatJSONFixtures cuts the provider fixtures to every interesting
// bound and compares with golden files (rewrite them with -update-places,
// then review the diff).
func TestWhatsatJSONFixtures(t *testing.T) {
	cases := []struct {
		fixture string
		bounds  []int
	}{
		{"nearby_legacy_google_layout.json", []int{0, 1, 2, 3, 4, 20}},
		{"nearby_legacy_ok.json", []int{0, 1, 2, 3, 4}},
		{"nearby_new_ok.json", []int{0, 1, 2}},
		{"nearby_legacy_zero_results.json", []int{1}},
		{"nearby_legacy_over_query_limit.json", []int{1}},
		{"nearby_new_error_403.json", []int{1}},
	}
	for _, c := range cases {
		raw := placesFixture(t, c.fixture)
		for _, n := range c.bounds {
			golden := filepath.Join("testdata", "whatsat", fmt.Sprintf("%s.bound%d.json", strings.TrimSuffix(c.fixture, ".json"), n))
			t.Run(filepath.Base(golden), func(t *testing.T) {
				got := whatsatJSON(raw, n)
				if got == nil {
					t.Fatal("whatsatJSON returned nil")
				}
				if *updatePlaces {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want := placesFixture(t, filepath.Join("whatsat", filepath.Base(golden)))
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("whatsatJSON(%s, %d) mismatch (-want +got):\n%s", c.fixture, n, diff)
				}
				checkWhatsatBody(t, raw, got, n)
			})
		}
	}
}

// TestWhatsatJSONGoogleLayoutByHand spells out the cut of the Google-layout
// fixture (blank lines inside, three trailing newlines) independently of
// the golden files.
func TestWhatsatJSONGoogleLayoutByHand(t *testing.T) {
	raw := string(placesFixture(t, "nearby_legacy_google_layout.json"))
	if !strings.HasSuffix(raw, "}\n\n\n") || !strings.Contains(raw, "[],\n\n\n   \"results\"") {
		t.Fatal("fixture changed: expected blank lines after html_attributions and three trailing newlines")
	}
	head := "{\n   \"html_attributions\" : [],\n   \"results\" : ["
	tail := "\n   ],\n   \"status\" : \"OK\"\n}"
	body := raw[strings.Index(raw, "\"results\" : [")+len("\"results\" : [") : strings.LastIndex(raw, "\n   ],")]
	elems := strings.Split(body, ",\n      {")
	if len(elems) != 3 {
		t.Fatalf("fixture has %d results, want 3", len(elems))
	}
	for i := 1; i < len(elems); i++ {
		elems[i] = "\n      {" + elems[i]
	}
	want := map[int]string{
		0: "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OK\"\n}",
		1: head + elems[0] + tail,
		2: head + elems[0] + "," + elems[1] + tail,
		3: head + elems[0] + "," + elems[1] + "," + elems[2] + tail,
		4: head + elems[0] + "," + elems[1] + "," + elems[2] + tail,
	}
	for n := 0; n <= 4; n++ {
		got := string(whatsatJSON([]byte(raw), n))
		if diff := cmp.Diff(want[n], got); diff != "" {
			t.Errorf("bound %d (-want +got):\n%s", n, diff)
		}
	}
	if got := whatsatJSON([]byte(raw), 0); !bytes.Equal(got, emptyJSON) {
		t.Errorf("bound 0 of an OK document should equal emptyJSON, got %q", got)
	}
}

func TestWhatsatJSONTable(t *testing.T) {
	cases := []struct {
		name  string
		raw   string
		bound int
		want  string // "<nil>" for a nil result
	}{
		{"compact cut", `{"results":[1,2,3]}`, 2, `{"results":[1,2]}`},
		{"compact cut to one", `{"results":[1,2,3]}`, 1, `{"results":[1]}`},
		{"compact cut to zero", `{"results":[1,2,3]}`, 0, `{"results":[]}`},
		{"bound equals length", `{"results":[1,2,3]}`, 3, `{"results":[1,2,3]}`},
		{"bound above length", `{"results":[1,2,3]}`, 20, `{"results":[1,2,3]}`},
		{"negative bound is zero", `{"results":[1,2]}`, -1, `{"results":[]}`},
		{"empty array kept", `{"results" : [ ]}`, 1, `{"results" : [ ]}`},
		{"empty array bound zero", `{"results" : [ ]}`, 0, `{"results" : [ ]}`},
		{"results not first",
			`{"status":"OK","results":[{"a":1},{"a":2},{"a":3}],"html_attributions":[]}`, 2,
			`{"status":"OK","results":[{"a":1},{"a":2}],"html_attributions":[]}`},
		{"results last with spaces",
			`{ "status" : "OK" , "results" : [ 1 , 2 , 3 ] }`, 1,
			`{ "status" : "OK" , "results" : [ 1 ] }`},
		{"strings with brackets braces keys and escaped quotes",
			`{"a":"]}{\"results\":[","results":[{"n":"x]\"}"},{"n":"{[\\"},{"n":"3"}],"z":"\"results\" : []"}`, 1,
			`{"a":"]}{\"results\":[","results":[{"n":"x]\"}"}],"z":"\"results\" : []"}`},
		{"escaped backslash before quote",
			`{"results":["a\\",["]"],"b\\\"]"],"k":"v"}`, 2,
			`{"results":["a\\",["]"]],"k":"v"}`},
		{"nested results inside elements untouched",
			`{"results":[{"results":[1,2,3]},{"results":[4]},{"places":[5,6]}]}`, 1,
			`{"results":[{"results":[1,2,3]}]}`},
		{"nested results in another member untouched",
			`{"x":{"results":[1,2,3],"places":[1,2]},"y":[{"results":[1,2]}],"results":[1,2,3]}`, 1,
			`{"x":{"results":[1,2,3],"places":[1,2]},"y":[{"results":[1,2]}],"results":[1]}`},
		{"results not an array untouched", `{"results":{"a":[1,2,3]},"status":"OK"}`, 1, `{"results":{"a":[1,2,3]},"status":"OK"}`},
		{"results null untouched", `{"results":null}`, 1, `{"results":null}`},
		{"escaped key", `{"re\u0073ults":[1,2]}`, 1, `{"re\u0073ults":[1]}`},
		{"similar keys untouched", `{"result":[1,2],"results2":[1,2],"Results":[1,2]}`, 1, `{"result":[1,2],"results2":[1,2],"Results":[1,2]}`},
		{"places (Places API New)", `{"places":[{"id":"a"},{"id":"b"}],"nextPageToken":"t"}`, 1, `{"places":[{"id":"a"}],"nextPageToken":"t"}`},
		{"duplicate results both cut", `{"results":[1,2],"results":[3,4]}`, 1, `{"results":[1],"results":[3]}`},
		{"scalars of every kind", `{"results":[true,false,null,-1.5e+3,"s",[],{}],"n":0}`, 4, `{"results":[true,false,null,-1.5e+3],"n":0}`},
		{"pretty cut keeps the bracket's indent",
			"{\n  \"results\": [\n    1,\n    2,\n    3\n  ],\n  \"status\": \"OK\"\n}", 2,
			"{\n  \"results\": [\n    1,\n    2\n  ],\n  \"status\": \"OK\"\n}"},
		{"pretty cut to zero",
			"{\n  \"results\": [\n    1\n  ],\n  \"status\": \"OK\"\n}", 0,
			"{\n  \"results\": [],\n  \"status\": \"OK\"\n}"},
		{"newline runs collapse, outer newlines go",
			"\n\n{\n\n\"results\":[1,\n\n\n2,3]\n\n}\n\n\n", 2,
			"{\n\"results\":[1,\n2]\n}"},
		{"newline run across the cut",
			"{\"results\":[\n1,\n\n2\n\n]}", 1,
			"{\"results\":[\n1\n]}"},
		{"outer white space dropped", " \t\r\n{} \r\n\t ", 3, "{}"},
		{"crlf layout", "{\r\n  \"results\": [\r\n    1,\r\n    2\r\n  ]\r\n}\r\n", 1, "{\r\n  \"results\": [\r\n    1\r\n  ]\r\n}"},
		{"empty object", `{}`, 5, `{}`},
		{"unicode kept", `{"name":"Café ☕ \u00e9","results":["ü","ö"]}`, 1, `{"name":"Café ☕ \u00e9","results":["ü"]}`},
		{"not JSON", `<html>oops</html>`, 1, "<nil>"},
		{"empty", ``, 1, "<nil>"},
		{"only white space", " \n ", 1, "<nil>"},
		{"truncated", `{"results":[1,2`, 1, "<nil>"},
		{"trailing comma", `{"results":[1,2,]}`, 1, "<nil>"},
		{"two objects", `{} {}`, 1, "<nil>"},
		{"array", `[{"results":[1,2]}]`, 1, "<nil>"},
		{"string", `"results"`, 1, "<nil>"},
		{"number", `42`, 1, "<nil>"},
		{"null", `null`, 1, "<nil>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := whatsatJSON([]byte(c.raw), c.bound)
			gotS := "<nil>"
			if got != nil {
				gotS = string(got)
			}
			if diff := cmp.Diff(c.want, gotS); diff != "" {
				t.Errorf("whatsatJSON(%q, %d) mismatch (-want +got):\n%s", c.raw, c.bound, diff)
			}
			if got != nil {
				checkWhatsatBody(t, []byte(c.raw), got, c.bound)
			}
		})
	}
}

func TestWhatsatJSONFreshSlice(t *testing.T) {
	raw := []byte(`{"results":[1,2,3]}`)
	keep := slices.Clone(raw)
	for _, n := range []int{0, 1, 3} {
		got := whatsatJSON(raw, n)
		if cap(got)-len(got) < 2 {
			t.Errorf("bound %d: no room for the caller's \\n\\n: len %d cap %d", n, len(got), cap(got))
		}
		got = append(got, "\n\n"...)
		for i := range got {
			got[i] = 'X'
		}
		if !bytes.Equal(raw, keep) {
			t.Fatalf("bound %d: result aliases the input: %q", n, raw)
		}
	}
}

// checkWhatsatBody checks, against encoding/json as an oracle, that body is
// raw with its top-level results/places arrays cut to bound, and that the
// newline rules hold.
func checkWhatsatBody(t testing.TB, raw, body []byte, bound int) {
	t.Helper()
	if !json.Valid(body) {
		t.Fatalf("body is not valid JSON: %q", body)
	}
	if bytes.Contains(body, []byte("\n\n")) || bytes.HasPrefix(body, []byte("\n")) || bytes.HasSuffix(body, []byte("\n")) {
		t.Fatalf("body breaks the newline rules: %q", body)
	}
	decode := func(b []byte) map[string]any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("decode %q: %v", b, err)
		}
		return m
	}
	want := decode(raw)
	for _, k := range []string{"results", "places"} {
		if a, ok := want[k].([]any); ok && len(a) > max(bound, 0) {
			want[k] = a[:max(bound, 0)]
		}
	}
	if diff := cmp.Diff(want, decode(body)); diff != "" {
		t.Fatalf("decoded body differs from the cut document (-want +got):\n%s", diff)
	}
}

// FuzzWhatsatJSON checks whatsatJSON against encoding/json on arbitrary
// input: nil exactly for non-objects, otherwise the cut document.
func FuzzWhatsatJSON(f *testing.F) {
	for _, name := range placesFixtureNames(f) {
		f.Add(placesFixture(f, name), 1)
	}
	f.Add([]byte(`{"a":"]}{\"results\":[","results":[{"n":"x]\"}"},{"n":"{[\\"}]}`), 1)
	f.Add([]byte("\n\n{\"results\":[1,\n\n2]}\n\n"), 0)
	f.Add([]byte(`[1,2]`), 1)
	f.Fuzz(func(t *testing.T, raw []byte, bound int) {
		bound = bound % 22
		got := whatsatJSON(raw, bound)
		var obj map[string]json.RawMessage
		isObject := json.Valid(raw) && json.Unmarshal(raw, &obj) == nil && obj != nil
		if !isObject {
			if got != nil {
				t.Fatalf("whatsatJSON(%q) = %q, want nil", raw, got)
			}
			return
		}
		if got == nil {
			t.Fatalf("whatsatJSON(%q) = nil for a JSON object", raw)
		}
		checkWhatsatBody(t, raw, got, bound)
	})
}

// --- errorJSON and emptyJSON ------------------------------------------------

func TestErrorJSON(t *testing.T) {
	cases := []struct{ msg, want string }{
		{"no Places provider configured",
			"{\n   \"error_message\" : \"no Places provider configured\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"},
		{"say \"hi\"\\ <b>&\n\tnow\x01",
			"{\n   \"error_message\" : \"say \\\"hi\\\"\\\\ <b>&\\n\\tnow\\u0001\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"},
		{"bad \xff utf8",
			"{\n   \"error_message\" : \"bad \\ufffd utf8\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"},
	}
	for _, c := range cases {
		got := errorJSON(c.msg)
		if diff := cmp.Diff(c.want, string(got)); diff != "" {
			t.Errorf("errorJSON(%q) (-want +got):\n%s", c.msg, diff)
		}
		var doc struct {
			ErrorMessage string `json:"error_message"`
			Status       string `json:"status"`
		}
		if err := json.Unmarshal(got, &doc); err != nil || doc.Status != "UNKNOWN_ERROR" {
			t.Errorf("errorJSON(%q) does not decode as an UNKNOWN_ERROR document: %v %+v", c.msg, err, doc)
		}
	}
}

func TestEmptyJSON(t *testing.T) {
	want := "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OK\"\n}"
	if diff := cmp.Diff(want, string(emptyJSON)); diff != "" {
		t.Errorf("emptyJSON (-want +got):\n%s", diff)
	}
	if cap(emptyJSON) != len(emptyJSON) {
		t.Errorf("emptyJSON has spare capacity (%d > %d): an append by one caller would race with another", cap(emptyJSON), len(emptyJSON))
	}
}

// --- nearby -------------------------------------------------------------------

// placesClock is a fake Clock: AfterFunc records the timer, and the test
// fires timers on demand (or at once, with fireNow). Nothing real elapses.
type placesClock struct {
	mu      sync.Mutex
	fireNow bool
	timers  []*placesTimer
}

type placesTimer struct {
	c                *placesClock
	d                time.Duration
	f                func()
	stopped, started bool
}

func (c *placesClock) Now() time.Time { return time.Unix(1520023934, 918963997) }

func (c *placesClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	t := &placesTimer{c: c, d: d, f: f}
	c.timers = append(c.timers, t)
	now := c.fireNow
	c.mu.Unlock()
	if now {
		t.fire()
	}
	return t
}

// fire starts the timer's function as the real clock would: in its own
// goroutine, unless the timer was stopped or already fired.
func (t *placesTimer) fire() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.stopped || t.started {
		return
	}
	t.started = true
	go t.f()
}

func (t *placesTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.stopped || t.started {
		return false
	}
	t.stopped = true
	return true
}

// fireAll fires every pending timer.
func (c *placesClock) fireAll() {
	c.mu.Lock()
	ts := slices.Clone(c.timers)
	c.mu.Unlock()
	for _, t := range ts {
		t.fire()
	}
}

// state reports, for each timer armed so far, its duration and whether it
// was stopped or fired.
func (c *placesClock) state() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, t := range c.timers {
		s := "pending"
		switch {
		case t.stopped:
			s = "stopped"
		case t.started:
			s = "fired"
		}
		out = append(out, fmt.Sprintf("%v %s", t.d, s))
	}
	return out
}

func TestNearbyBoundZeroCallsNothing(t *testing.T) {
	clock := &placesClock{}
	p := PlacesFunc(func(context.Context, NearbyQuery) ([]byte, error) {
		t.Error("provider called for a bound of 0")
		return nil, errors.New("called")
	})
	got := nearby(t.Context(), clock, p, 10*time.Second, NearbyQuery{Lat: 34, Lon: -118, RadiusMeters: 10000, MaxResults: 0})
	want := "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OK\"\n}"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if s := clock.state(); len(s) != 0 {
		t.Errorf("timers armed for a bound of 0: %v", s)
	}
	// Also without a provider at all.
	if got := nearby(t.Context(), clock, nil, 10*time.Second, NearbyQuery{}); !bytes.Equal(got, emptyJSON) {
		t.Errorf("nil provider, bound 0: got %q", got)
	}
}

func TestNearbyNilProvider(t *testing.T) {
	clock := &placesClock{}
	got := nearby(t.Context(), clock, nil, 10*time.Second, NearbyQuery{MaxResults: 5})
	want := "{\n   \"error_message\" : \"no Places provider configured\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if s := clock.state(); len(s) != 0 {
		t.Errorf("timers armed without a provider: %v", s)
	}
}

func TestNearbyCutsAndPassesQuery(t *testing.T) {
	clock := &placesClock{}
	raw := placesFixture(t, "nearby_legacy_google_layout.json")
	q := NearbyQuery{Lat: -33.8670522, Lon: 151.1957362, RadiusMeters: 10587.1263, MaxResults: 2}
	var gotQ NearbyQuery
	p := PlacesFunc(func(ctx context.Context, q NearbyQuery) ([]byte, error) {
		gotQ = q
		if ctx.Err() != nil {
			t.Errorf("ctx already done: %v", ctx.Err())
		}
		return raw, nil
	})
	got := nearby(t.Context(), clock, p, 7*time.Second, q)
	want := placesFixture(t, "whatsat/nearby_legacy_google_layout.bound2.json")
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if gotQ != q {
		t.Errorf("provider got %+v, want %+v", gotQ, q)
	}
	if diff := cmp.Diff([]string{"7s stopped"}, clock.state()); diff != "" {
		t.Errorf("timers (-want +got):\n%s", diff)
	}
}

func TestNearbyProviderDocumentsPassThrough(t *testing.T) {
	for _, name := range []string{"nearby_legacy_over_query_limit.json", "nearby_legacy_request_denied.json", "nearby_legacy_zero_results.json", "nearby_legacy_invalid_request.json"} {
		raw := placesFixture(t, name)
		p := PlacesFunc(func(context.Context, NearbyQuery) ([]byte, error) { return raw, nil })
		got := nearby(t.Context(), &placesClock{}, p, time.Second, NearbyQuery{MaxResults: 3})
		if want := bytes.TrimRight(raw, "\n"); !bytes.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}
}

func TestNearbyProviderError(t *testing.T) {
	clock := &placesClock{}
	p := PlacesFunc(func(context.Context, NearbyQuery) ([]byte, error) {
		return []byte(`{"results":[]}`), errors.New(`herd: google places: GET https://maps.googleapis.com/maps/api/place/nearbysearch/json: HTTP 500 Internal Server Error: "oops"`)
	})
	got := nearby(t.Context(), clock, p, 10*time.Second, NearbyQuery{MaxResults: 1})
	want := "{\n   \"error_message\" : \"herd: google places: GET https://maps.googleapis.com/maps/api/place/nearbysearch/json: HTTP 500 Internal Server Error: \\\"oops\\\"\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"10s stopped"}, clock.state()); diff != "" {
		t.Errorf("timers (-want +got):\n%s", diff)
	}
}

func TestNearbyTimeout(t *testing.T) {
	want := "{\n   \"error_message\" : \"places provider: timeout after 10s\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"
	// The provider hangs until its ctx is done, as a real one would.
	hang := func(fire func()) PlacesClient {
		return PlacesFunc(func(ctx context.Context, q NearbyQuery) ([]byte, error) {
			if fire != nil {
				fire()
			}
			<-ctx.Done()
			return nil, fmt.Errorf("herd: google places: GET x: %w", ctx.Err())
		})
	}
	t.Run("fired while waiting", func(t *testing.T) {
		clock := &placesClock{}
		got := nearby(t.Context(), clock, hang(clock.fireAll), 10*time.Second, NearbyQuery{MaxResults: 1})
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"10s fired"}, clock.state()); diff != "" {
			t.Errorf("timers (-want +got):\n%s", diff)
		}
	})
	t.Run("fired at once", func(t *testing.T) {
		clock := &placesClock{fireNow: true}
		got := nearby(t.Context(), clock, hang(nil), 10*time.Second, NearbyQuery{MaxResults: 1})
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("zero timeout means the default", func(t *testing.T) {
		clock := &placesClock{}
		got := nearby(t.Context(), clock, hang(clock.fireAll), 0, NearbyQuery{MaxResults: 1})
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("late answer after the timer still counts", func(t *testing.T) {
		clock := &placesClock{}
		p := PlacesFunc(func(ctx context.Context, q NearbyQuery) ([]byte, error) {
			clock.fireAll()
			<-ctx.Done()
			return []byte(`{"results":[1,2],"status":"OK"}`), nil
		})
		got := nearby(t.Context(), clock, p, 10*time.Second, NearbyQuery{MaxResults: 1})
		if diff := cmp.Diff(`{"results":[1],"status":"OK"}`, string(got)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestNearbyParentCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	clock := &placesClock{}
	p := PlacesFunc(func(ctx context.Context, q NearbyQuery) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	got := nearby(ctx, clock, p, 10*time.Second, NearbyQuery{MaxResults: 1})
	want := "{\n   \"error_message\" : \"context canceled\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNearbyNotAnObject(t *testing.T) {
	want := "{\n   \"error_message\" : \"places provider: response is not a JSON object\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}"
	for _, body := range []string{"", "<html>500</html>", `[{"results":[]}]`, `"OK"`, `{"results":[1,}`} {
		p := PlacesFunc(func(context.Context, NearbyQuery) ([]byte, error) { return []byte(body), nil })
		got := nearby(t.Context(), &placesClock{}, p, time.Second, NearbyQuery{MaxResults: 1})
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("body %q (-want +got):\n%s", body, diff)
		}
	}
}
