package places

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/gdoc"
)

// kiwi is where the protocol's example client reports from.
var provKiwi = herd.NearbyQuery{Lat: 34.068930, Lon: -118.445127}

// provSmallCatalogue loads testdata/places/small.json: two twins 92 m
// from kiwi (listed B before A), Boelter Hall at 193 m, a café with
// characters to escape, no types and no vicinity at 214 m, the Hammer
// Museum at 1068 m and the Sydney Opera House.
func provSmallCatalogue(t testing.TB) *Catalogue {
	t.Helper()
	c, err := LoadCatalogue(filepath.Join("testdata", "places", "small.json"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// provQuery returns kiwi's query with a radius and a bound.
func provQuery(radiusMeters float64, bound int) herd.NearbyQuery {
	q := provKiwi
	q.RadiusMeters, q.MaxResults = radiusMeters, bound
	return q
}

// provCatalogueNames returns the names of the results of a catalogue
// answer, in order, and its status.
func provCatalogueNames(t testing.TB, doc []byte) (names []string, status string) {
	t.Helper()
	var d struct {
		HTML    []string `json:"html_attributions"`
		Results []struct {
			Name string `json:"name"`
		} `json:"results"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, doc)
	}
	if d.HTML == nil || d.Results == nil {
		t.Fatalf("answer lacks html_attributions or results: %s", doc)
	}
	for _, r := range d.Results {
		names = append(names, r.Name)
	}
	return names, d.Status
}

// TestCatalogueExactBytes spells out a whole answer: Google's layout,
// order by distance with ties by name, escaping, optional members.
func TestCatalogueExactBytes(t *testing.T) {
	c := provSmallCatalogue(t)
	got, err := c.Nearby(t.Context(), provQuery(250, 20))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
   "html_attributions" : [],
   "results" : [
      {
         "geometry" : {
            "location" : {
               "lat" : 34.06893,
               "lng" : -118.44613
            }
         },
         "name" : "Twin A",
         "place_id" : "offline-3a3df845e25243b3",
         "types" : [ "cafe" ],
         "vicinity" : "Westwood"
      },
      {
         "geometry" : {
            "location" : {
               "lat" : 34.06893,
               "lng" : -118.44613
            }
         },
         "name" : "Twin B",
         "place_id" : "offline-a2fff30bdcd5f109",
         "types" : [ "cafe" ],
         "vicinity" : "Westwood"
      },
      {
         "geometry" : {
            "location" : {
               "lat" : 34.06929,
               "lng" : -118.44308
            }
         },
         "name" : "Boelter Hall",
         "place_id" : "boelter",
         "types" : [ "university", "point_of_interest", "establishment" ],
         "vicinity" : "580 Portola Plaza, Los Angeles"
      },
      {
         "geometry" : {
            "location" : {
               "lat" : 34.07085,
               "lng" : -118.4451
            }
         },
         "name" : "Café <Bruin> & \"Co\"",
         "place_id" : "cafe",
         "types" : []
      }
   ],
   "status" : "OK"
}
`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	// Through WHATSAT's cut: the same document, its final newline gone.
	body := nearby(t.Context(), newProvClock(), c, time.Second, provQuery(250, 2))
	names, status := provCatalogueNames(t, body)
	if diff := cmp.Diff([]string{"Twin A", "Twin B"}, names); diff != "" || status != "OK" {
		t.Errorf("WHATSAT body: status %q, names (-want +got):\n%s", status, diff)
	}
	// ... and the catalogue's own answer for a bound of 2, uncut.
	two, err := c.Nearby(t.Context(), provQuery(250, 2))
	if err != nil {
		t.Fatal(err)
	}
	checkWhatsatUncut(t, two, body)
}

func TestCatalogueZeroResultsExactBytes(t *testing.T) {
	c := provSmallCatalogue(t)
	for _, q := range []herd.NearbyQuery{
		provQuery(50, 5), // nothing that close to kiwi
		{Lat: 0, Lon: 0, RadiusMeters: 50000, MaxResults: 20}, // nothing at all
	} {
		got, err := c.Nearby(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		want := "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}\n"
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("%+v (-want +got):\n%s", q, diff)
		}
	}
	var empty *Catalogue
	got, err := empty.Nearby(t.Context(), provQuery(50000, 5))
	if names, status := provCatalogueNames(t, got); err != nil || status != "ZERO_RESULTS" || len(names) != 0 {
		t.Errorf("nil catalogue: %v %q %v", err, status, names)
	}
}

func TestCatalogueRadiusOrderAndBound(t *testing.T) {
	c := provSmallCatalogue(t)
	all := []string{"Twin A", "Twin B", "Boelter Hall", `Café <Bruin> & "Co"`, "Hammer Museum"}
	cases := []struct {
		radius float64
		bound  int
		want   []string
	}{
		{92, 20, nil}, // the twins are 92.39 m away
		{92.4, 20, all[:2]},
		{193, 20, all[:3]},
		{250, 20, all[:4]},
		{1068, 20, all[:4]},
		{1068.04, 20, all},
		{50000, 20, all},
		{50000, 3, all[:3]},
		{50000, 1, all[:1]},
		{50000, 0, all},  // no bound: Google's page of 20
		{50000, -1, all}, // likewise
	}
	for _, cs := range cases {
		got, err := c.Nearby(t.Context(), provQuery(cs.radius, cs.bound))
		if err != nil {
			t.Fatal(err)
		}
		names, status := provCatalogueNames(t, got)
		wantStatus := "OK"
		if len(cs.want) == 0 {
			wantStatus = "ZERO_RESULTS"
		}
		if diff := cmp.Diff(cs.want, names); diff != "" || status != wantStatus {
			t.Errorf("radius %v bound %d: status %q (want %q), names (-want +got):\n%s", cs.radius, cs.bound, status, wantStatus, diff)
		}
	}
}

// TestCatalogueBoundCapsAtTwenty uses a generated catalogue of 30 places
// on a meridian, 100 m apart, and one exactly on the edge of the radius.
func TestCatalogueBoundCapsAtTwenty(t *testing.T) {
	const metresPerDegree = earthRadiusMeters * math.Pi / 180
	var places []Place
	for i := 29; i >= 0; i-- { // listed farthest first
		places = append(places, Place{Name: fmt.Sprintf("p%02d", i), Lat: float64(i) * 100 / metresPerDegree, Lng: 0})
	}
	c, err := NewCatalogue(places)
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 30 || c.String() != "offline catalogue (30 places)" {
		t.Errorf("Len %d, String %q", c.Len(), c)
	}
	for _, bound := range []int{21, 25, 20, 0} {
		got, _ := c.Nearby(t.Context(), herd.NearbyQuery{RadiusMeters: 50000, MaxResults: bound})
		names, _ := provCatalogueNames(t, got)
		if len(names) != 20 || names[0] != "p00" || names[19] != "p19" {
			t.Errorf("bound %d: %d results %v, want the nearest 20", bound, len(names), names)
		}
	}
	for _, bound := range []int{19, 1} {
		got, _ := c.Nearby(t.Context(), herd.NearbyQuery{RadiusMeters: 50000, MaxResults: bound})
		if names, _ := provCatalogueNames(t, got); len(names) != bound || names[0] != "p00" {
			t.Errorf("bound %d: %v", bound, names)
		}
	}
	got, _ := c.Nearby(t.Context(), herd.NearbyQuery{RadiusMeters: 500, MaxResults: 20})
	names, _ := provCatalogueNames(t, got)
	if diff := cmp.Diff([]string{"p00", "p01", "p02", "p03", "p04", "p05"}, names); diff != "" {
		t.Errorf("radius 500 m includes the place 500 m away (-want +got):\n%s", diff)
	}
}

func TestCatalogueTiesByNameThenID(t *testing.T) {
	c, err := NewCatalogue([]Place{
		{Name: "b", PlaceID: "1", Lat: 1, Lng: 1},
		{Name: "a", PlaceID: "3", Lat: 1, Lng: 1},
		{Name: "a", PlaceID: "2", Lat: 1, Lng: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := c.Nearby(t.Context(), herd.NearbyQuery{Lat: 1, Lon: 1, RadiusMeters: 1, MaxResults: 5})
	var d struct {
		Results []struct {
			ID string `json:"place_id"`
		} `json:"results"`
	}
	json.Unmarshal(got, &d)
	var ids []string
	for _, r := range d.Results {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{"2", "3", "1"}, ids); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestCatalogueHaversine(t *testing.T) {
	cases := []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		want, tol              float64
	}{
		{"same point", 34, -118, 34, -118, 0, 0},
		{"one degree of latitude", 0, 0, 1, 0, 111195.08, 0.01},
		{"kiwi to LAX", 34.068930, -118.445127, 33.94160, -118.40853, 14554.81, 0.01},
		{"across the antimeridian", 0, 179.5, 0, -179.5, 111195.08, 0.01},
		{"antipodes", 0, 0, 0, 180, math.Pi * earthRadiusMeters, 0.01},
	}
	for _, c := range cases {
		got := haversineMeters(c.lat1, c.lon1, c.lat2, c.lon2)
		if math.Abs(got-c.want) > c.tol {
			t.Errorf("%s: %v m, want %v", c.name, got, c.want)
		}
	}
}

func TestCatalogueCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := provSmallCatalogue(t).Nearby(ctx, provQuery(1000, 1))
	if !errors.Is(err, context.Canceled) || err.Error() != "herd: offline catalogue: context canceled" {
		t.Errorf("err = %v", err)
	}
}

func TestCatalogueParseErrors(t *testing.T) {
	entry := func(s string) string { return `{"places": [` + s + `]}` }
	const ok = `"name": "A", "location": {"lat": 1, "lng": 2}`
	cases := []struct{ name, in, want string }{
		{"empty", ``, "empty or truncated JSON"},
		{"truncated", `{"places": [`, "empty or truncated JSON"},
		{"syntax error", "{\n  \"places\": [}\n", "line 2, column 14: invalid character '}' looking for beginning of value"},
		{"trailing data", `{"places": []} []`, "unexpected data after the top-level value"},
		{"not an object", `[]`, "value: want an object, got a JSON array"},
		{"no places", `{}`, `want an object with a "places" array`},
		{"null places", `{"places": null}`, `want an object with a "places" array`},
		{"places not an array", `{"places": {}}`, "places: want an array, got a JSON object"},
		{"unknown top-level member", `{"places": [], "place": []}`, `unknown field "place"`},
		{"entry not an object", entry(`{` + ok + `}, 7`), "places[1]: want an object, got 7"},
		{"entry null", entry(`null`), "places[0]: want an object, got null"},
		{"name missing", entry(`{"location": {"lat": 1, "lng": 2}}`), "places[0]: name: missing"},
		{"name empty", entry(`{"name": " ", "location": {"lat": 1, "lng": 2}}`), `places[0] (" "): name: must be a non-empty string`},
		{"name not a string", entry(`{"name": 5, "location": {"lat": 1, "lng": 2}}`), "places[0]: name: want a string, got a JSON number"},
		{"location missing", entry(`{"name": "A"}`), `places[0] ("A"): location: missing`},
		{"lat missing", entry(`{"name": "A", "location": {"lng": 2}}`), `places[0] ("A"): location.lat: missing`},
		{"lng missing", entry(`{"name": "A", "location": {"lat": 1}}`), `places[0] ("A"): location.lng: missing`},
		{"lat out of range", entry(`{"name": "A", "location": {"lat": 91, "lng": 2}}`), `places[0] ("A"): location.lat: 91 is outside [-90, 90]`},
		{"lng out of range", entry(`{` + ok + `}, {"name": "B", "location": {"lat": 1, "lng": -180.5}}`), `places[1] ("B"): location.lng: -180.5 is outside [-180, 180]`},
		{"lat a string", entry(`{"name": "A", "location": {"lat": "34", "lng": 2}}`), `places[0] ("A"): location.lat: want a number, got a JSON string`},
		{"typo in a member", entry(`{` + ok + `, "vicinty": "x"}`), `places[0] ("A"): unknown field "vicinty"`},
		{"typo inside location", entry(`{"name": "A", "location": {"lat": 1, "lon": 2}}`), `places[0] ("A"): unknown field "lon"`},
		{"types not an array", entry(`{` + ok + `, "types": "cafe"}`), `places[0] ("A"): types: want an array of strings, got a JSON string`},
		{"empty type", entry(`{` + ok + `, "types": ["cafe", ""]}`), `places[0] ("A"): types[1]: "" is not a place type (non-empty, no white space)`},
		{"type with space", entry(`{` + ok + `, "types": ["ice cream"]}`), `places[0] ("A"): types[0]: "ice cream" is not a place type (non-empty, no white space)`},
		{"duplicate place_id", entry(`{` + ok + `, "place_id": "x"}, {"name": "B", "location": {"lat": 1, "lng": 2}, "place_id": "x"}`), `places[1] ("B"): place_id "x" is also the ID of places[0] ("A")`},
		{"duplicate derived place_id", entry(`{` + ok + `}, {` + ok + `}`), `places[1] ("A"): place_id "offline-` + provDerivedID("A", 1, 2) + `" is also the ID of places[0] ("A")`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cat, err := ParseCatalogue([]byte(c.in))
			if err == nil {
				t.Fatalf("no error; catalogue %v", cat.Places())
			}
			if diff := cmp.Diff("herd: catalogue: "+c.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// provDerivedID returns the hex part of the place ID derived for a place
// without one.
func provDerivedID(name string, lat, lng float64) string {
	p := Place{Name: name, Lat: lat, Lng: lng}
	checkPlace(&p)
	return strings.TrimPrefix(p.PlaceID, "offline-")
}

func TestCatalogueParseAcceptsMinimalAndEmpty(t *testing.T) {
	c, err := ParseCatalogue([]byte(`{"places": []}`))
	if err != nil || c.Len() != 0 {
		t.Fatalf("empty catalogue: %v, %d places", err, c.Len())
	}
	c, err = ParseCatalogue([]byte(`{"places": [{"name": "A", "location": {"lat": -90, "lng": 180}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Place{{Name: "A", PlaceID: "offline-" + provDerivedID("A", -90, 180), Lat: -90, Lng: 180}}
	if diff := cmp.Diff(want, c.Places()); diff != "" {
		t.Errorf("places (-want +got):\n%s", diff)
	}
	if got := c.String(); got != "offline catalogue (1 place)" {
		t.Errorf("String() = %q", got)
	}
}

func TestCatalogueNewValidatesAndCopies(t *testing.T) {
	in := []Place{{Name: "A", Lat: 1, Lng: 2, Types: []string{"cafe"}}}
	c, err := NewCatalogue(in)
	if err != nil {
		t.Fatal(err)
	}
	in[0].Types[0] = "changed"
	in[0].Name = "changed"
	out := c.Places()
	out[0].Types[0] = "changed too"
	if got := c.Places()[0]; got.Name != "A" || got.Types[0] != "cafe" {
		t.Errorf("catalogue shares memory with its caller: %+v", got)
	}
	for _, bad := range []struct {
		p    Place
		want string
	}{
		{Place{Name: "", Lat: 1}, "herd: catalogue: places[0]: name: must be a non-empty string"},
		{Place{Name: "N", Lat: math.NaN()}, `herd: catalogue: places[0] ("N"): location.lat: NaN is outside [-90, 90]`},
		{Place{Name: "N", Lng: math.Inf(1)}, `herd: catalogue: places[0] ("N"): location.lng: +Inf is outside [-180, 180]`},
	} {
		if _, err := NewCatalogue([]Place{bad.p}); err == nil || err.Error() != bad.want {
			t.Errorf("%+v: err = %v, want %s", bad.p, err, bad.want)
		}
	}
}

func TestCatalogueLoadErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	_, err := LoadCatalogue(missing)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"places": [{"name": "A"}]}`), 0o644)
	_, err = LoadCatalogue(bad)
	if want := bad + `: herd: catalogue: places[0] ("A"): location: missing`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	c := provSmallCatalogue(t)
	if want := "offline catalogue " + filepath.Join("testdata", "places", "small.json") + " (6 places)"; c.String() != want {
		t.Errorf("String() = %q, want %q", c, want)
	}
}

// TestCatalogueDefault checks the built-in catalogue: it parses, has
// around 30 places near UCLA and a few elsewhere, and answers kiwi.
func TestCatalogueDefault(t *testing.T) {
	c := DefaultCatalogue()
	if c != DefaultCatalogue() {
		t.Error("DefaultCatalogue is parsed more than once")
	}
	if got := c.String(); got != fmt.Sprintf("offline catalogue (%d places)", c.Len()) {
		t.Errorf("String() = %q", got)
	}
	near, far := 0, 0
	ids := map[string]bool{}
	for _, p := range c.Places() {
		if ids[p.PlaceID] {
			t.Errorf("duplicate place ID %s", p.PlaceID)
		}
		ids[p.PlaceID] = true
		if p.Vicinity == "" || len(p.Types) == 0 {
			t.Errorf("%s lacks a vicinity or types", p.Name)
		}
		switch d := haversineMeters(provKiwi.Lat, provKiwi.Lon, p.Lat, p.Lng); {
		case d <= 2000:
			near++
		case d > 100000:
			far++
		}
	}
	if near < 25 || far < 3 {
		t.Errorf("%d places within 2 km of kiwi, %d beyond 100 km; want about 30 and a few", near, far)
	}
	// WHATSAT kiwi.cs.ucla.edu 10 5
	body := nearby(t.Context(), newProvClock(), c, time.Second, provQuery(10000, 5))
	names, status := provCatalogueNames(t, body)
	if status != "OK" || len(names) != 5 {
		t.Errorf("kiwi 10 km, 5 results: status %q, %v", status, names)
	}
	if !strings.HasPrefix(string(body), "{\n   \"html_attributions\" : [],\n   \"results\" : [\n      {\n         \"geometry\" : {") {
		t.Errorf("not Google's layout:\n%s", body)
	}
	// The file is the catalogue's own source.
	raw, err := os.ReadFile("catalogue.json")
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := ParseCatalogue(raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fromFile.Places(), c.Places()); diff != "" {
		t.Errorf("embedded catalogue differs from catalogue.json (-file +embedded):\n%s", diff)
	}
}

// TestCatalogueGolden compares answers for the small catalogue with files
// under testdata/places (rewrite them with -update-places).
func TestCatalogueGolden(t *testing.T) {
	c := provSmallCatalogue(t)
	cases := []struct {
		name string
		q    herd.NearbyQuery
	}{
		{"kiwi_r200_n5", provQuery(200, 5)},
		{"kiwi_r2000_n20", provQuery(2000, 20)},
		{"kiwi_r2000_n1", provQuery(2000, 1)},
		{"sydney_r1000_n5", herd.NearbyQuery{Lat: -33.8587323, Lon: 151.2100055, RadiusMeters: 1000, MaxResults: 5}},
		{"nowhere_r50000_n20", herd.NearbyQuery{Lat: 10, Lon: 10, RadiusMeters: 50000, MaxResults: 20}},
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			got, err := c.Nearby(t.Context(), cs.q)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "places", "small_"+cs.name+".json"), got)
			body := whatsatJSON(got, cs.q.MaxResults)
			checkWhatsatUncut(t, got, body)
		})
	}
}

func TestCatalogueConcurrent(t *testing.T) {
	c := DefaultCatalogue()
	want, _ := c.Nearby(t.Context(), provQuery(3000, 20))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				got, err := c.Nearby(context.Background(), provQuery(3000, 20))
				if err != nil || string(got) != string(want) {
					t.Errorf("concurrent answer differs: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// FuzzCatalogueJSONString checks the catalogue's string writer against
// encoding/json without HTML escaping.
func FuzzCatalogueJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"b\s`, "\x00\x01\x1f\x7f", "\b\f\n\r\t", "<>&", "\u2028\u2029", "é☕😀", "bad \xff\xfe utf8 \xe2\x82", "\ufffd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		enc.Encode(s)
		if got := gdoc.AppendString(nil, s); string(got) != strings.TrimSuffix(want.String(), "\n") {
			t.Errorf("gdoc.AppendString(%q) = %s, want %s", s, got, want.String())
		}
	})
}

func BenchmarkCatalogueNearby(b *testing.B) {
	c := DefaultCatalogue()
	q := provQuery(10000, 5)
	for b.Loop() {
		c.Nearby(context.Background(), q)
	}
}

// checkWhatsatUncut checks that body, the WHATSAT body of the catalogue's
// answer doc, is doc without its final newline: the catalogue never
// answers more results than the bound, so WHATSAT has nothing to cut.
func checkWhatsatUncut(t testing.TB, doc, body []byte) {
	t.Helper()
	if want := bytes.TrimSuffix(doc, []byte("\n")); !bytes.Equal(body, want) {
		t.Fatalf("WHATSAT body differs from the answer:\n got %q\nwant %q", body, want)
	}
}
