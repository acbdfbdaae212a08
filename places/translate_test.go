package places

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/proxyherd/herd/client"
)

// translateGolden compares got with the golden file
// testdata/translate/out/name.
func translateGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	checkGolden(t, filepath.Join("testdata", "translate", "out", name), got)
}

// checkGolden compares got with the golden file at path, rewriting the
// file first with -update-places.
func checkGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *updatePlaces {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", golden, diff)
	}
}

// translateInputs returns the Places API (New) answers the golden tests
// translate: testdata/translate/in/*.json and the shared fixture
// testdata/nearby_new_ok.json.
func translateInputs(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "translate", "in", "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no inputs under testdata/translate/in: %v", err)
	}
	in := map[string][]byte{"nearby_new_ok.json": placesFixture(t, "nearby_new_ok.json")}
	for _, n := range names {
		in[filepath.Base(n)] = placesFixture(t, filepath.Join("translate", "in", filepath.Base(n)))
	}
	return in
}

// TestTranslateNewGolden translates recorded-shape Places API (New)
// answers (every field present, every field absent in turn, Unicode, {},
// an empty places) and compares the bytes with golden files (rewrite them
// with -update-places, then review the diff).
func TestTranslateNewGolden(t *testing.T) {
	for name, raw := range translateInputs(t) {
		t.Run(name, func(t *testing.T) {
			got, err := translateNew(raw)
			if err != nil {
				t.Fatal(err)
			}
			translateGolden(t, name, got)
			checkTranslation(t, raw, got)
		})
	}
}

// TestTranslateNewByHand spells out two translations independently of the
// golden files: the layout of a full result and of ZERO_RESULTS.
func TestTranslateNewByHand(t *testing.T) {
	raw := `{"places":[{"id":"p1","displayName":{"text":"Royce Hall"},"location":{"latitude":34.0729,"longitude":-118.4422},` +
		`"types":["university"],"rating":4.8,"userRatingCount":1250,"businessStatus":"OPERATIONAL",` +
		`"currentOpeningHours":{"openNow":true},"priceLevel":"PRICE_LEVEL_INEXPENSIVE",` +
		`"iconMaskBaseUri":"https://maps.gstatic.com/mapfiles/place_api/icons/v2/school_pinlet","iconBackgroundColor":"#7B9EB0",` +
		`"shortFormattedAddress":"340 Royce Dr, Los Angeles","formattedAddress":"340 Royce Dr, Los Angeles, CA 90095, USA"}]}`
	want := `{
   "html_attributions" : [],
   "results" : [
      {
         "business_status" : "OPERATIONAL",
         "geometry" : {
            "location" : {
               "lat" : 34.0729,
               "lng" : -118.4422
            }
         },
         "icon" : "https://maps.gstatic.com/mapfiles/place_api/icons/v2/school_pinlet.png",
         "icon_background_color" : "#7B9EB0",
         "icon_mask_base_uri" : "https://maps.gstatic.com/mapfiles/place_api/icons/v2/school_pinlet",
         "name" : "Royce Hall",
         "opening_hours" : {
            "open_now" : true
         },
         "place_id" : "p1",
         "price_level" : 1,
         "rating" : 4.8,
         "types" : [ "university" ],
         "user_ratings_total" : 1250,
         "vicinity" : "340 Royce Dr, Los Angeles"
      }
   ],
   "status" : "OK"
}
`
	got, err := translateNew([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	zero := "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"ZERO_RESULTS\"\n}\n"
	for _, raw := range []string{`{}`, ` {"places":[]} `, `{"places":null}`, "{\"other\":1}\n"} {
		got, err := translateNew([]byte(raw))
		if err != nil || string(got) != zero {
			t.Errorf("translateNew(%s) = %q, %v; want ZERO_RESULTS", raw, got, err)
		}
	}
}

func TestTranslateNewRejects(t *testing.T) {
	cases := []struct{ raw, want string }{
		{`[]`, "response is not a JSON object"},
		{`null`, "response is not a JSON object"},
		{``, "response is not a JSON object"},
		{`{"places":{}}`, "response is not a Places API (New) document: places: want an array, got a JSON object"},
		{`{"places":[{"rating":"4.5"}]}`, "response is not a Places API (New) document: places.rating: want a number, got a JSON string"},
		{`{"places":[{"currentOpeningHours":{"openNow":"yes"}}]}`, "response is not a Places API (New) document: places.currentOpeningHours.openNow: want true or false, got a JSON string"},
		{`{"places":[{"types":[1]}]}`, "response is not a Places API (New) document: places.types: want a string, got a JSON number"},
	}
	for _, c := range cases {
		got, err := translateNew([]byte(c.raw))
		if err == nil || err.Error() != c.want {
			t.Errorf("translateNew(%s) = %q, %v; want error %q", c.raw, got, err, c.want)
		}
	}
}

// TestGoogleNewErrorGolden answers WHATSAT through GoogleNew from a fake
// that fails with each status Google uses (and with what a proxy might
// send): the body keeps the legacy shape, with the matching legacy status
// and Google's message, never the key or the request URL.
func TestGoogleNewErrorGolden(t *testing.T) {
	const key = "AIzaSyD-SECRET-KEY-0123456789abcdefghi"
	cases := []struct {
		name   string
		handle http.HandlerFunc
		status string // of the legacy document
		tries  int    // provider calls through a Frugal
	}{
		{"error_400.json", provServe(t, 400, "nearby_new_error_400.json"), "INVALID_REQUEST", 1},
		{"error_403.json", provServe(t, 403, "nearby_new_error_403.json"), "REQUEST_DENIED", 1},
		{"error_429.json", provServe(t, 429, "nearby_new_error_429.json"), "OVER_QUERY_LIMIT", 1},
		{"error_500.json", provServe(t, 500, "nearby_new_error_500.json"), "UNKNOWN_ERROR", 3},
		{"error_503.json", provServe(t, 503, "nearby_new_error_503.json"), "UNKNOWN_ERROR", 3},
		{"error_403_echoing_key.json", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"error":{"code":403,"message":"API key %s is not valid.","status":"PERMISSION_DENIED"}}`, r.Header.Get("X-Goog-Api-Key"))
		}, "REQUEST_DENIED", 1},
		{"error_502_proxy.json", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "<html>bad\n gateway</html>", http.StatusBadGateway)
		}, "UNKNOWN_ERROR", 3},
		{"error_404.json", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
		}, "UNKNOWN_ERROR", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv, reqs := provNewServer(t, c.handle)
			g := GoogleNew{BaseURL: srv.URL, Key: key}
			got := nearby(t.Context(), newProvClock(), g, time.Second, provQuery(1000, 3))
			translateGolden(t, c.name, got)
			var doc struct {
				ErrorMessage string   `json:"error_message"`
				HTML         []string `json:"html_attributions"`
				Results      []any    `json:"results"`
				Status       string   `json:"status"`
			}
			if err := json.Unmarshal(got, &doc); err != nil || doc.Status != c.status || doc.ErrorMessage == "" || doc.HTML == nil || doc.Results == nil || len(doc.Results) != 0 {
				t.Errorf("decoded %+v, %v; want status %s with a message", doc, err, c.status)
			}
			for _, secret := range []string{key, srv.URL, "searchNearby"} {
				if strings.Contains(string(got), secret) {
					t.Errorf("body shows %q: %s", secret, got)
				}
			}

			// Through a Frugal: never cached, 5xx retried, the rest final.
			f := NewFrugal(g, provSysClock{}, FrugalOptions{RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond})
			defer f.Close()
			before := len(reqs())
			for range 2 {
				if body := nearby(t.Context(), provSysClock{}, f, 10*time.Second, provQuery(1000, 3)); !bytes.Equal(body, got) {
					t.Errorf("through Frugal: %s", body)
				}
			}
			if n := len(reqs()) - before; n != 2*c.tries {
				t.Errorf("%d provider calls for two lookups, want %d", n, 2*c.tries)
			}
			if s := f.Stats(); s.CacheEntries != 0 || s.CacheHits != 0 {
				t.Errorf("an error was cached: %+v", s)
			}
		})
	}
}

// Test-side reading of the two shapes, declared apart from the
// translator's so that the reference does not share its mistakes.
type (
	refNewDoc struct {
		Places []refNewPlace `json:"places"`
	}
	refNewPlace struct {
		ID          string `json:"id"`
		DisplayName *struct {
			Text string `json:"text"`
		} `json:"displayName"`
		Location *struct {
			Latitude  float64 `json:"latitude"`
			Longitude float64 `json:"longitude"`
		} `json:"location"`
		ShortFormattedAddress string       `json:"shortFormattedAddress"`
		FormattedAddress      string       `json:"formattedAddress"`
		Types                 []string     `json:"types"`
		Rating                *float64     `json:"rating"`
		UserRatingCount       *float64     `json:"userRatingCount"`
		BusinessStatus        string       `json:"businessStatus"`
		CurrentOpeningHours   *refNewHours `json:"currentOpeningHours"`
		RegularOpeningHours   *refNewHours `json:"regularOpeningHours"`
		PriceLevel            string       `json:"priceLevel"`
		IconMaskBaseURI       string       `json:"iconMaskBaseUri"`
		IconBackgroundColor   string       `json:"iconBackgroundColor"`
	}
	refNewHours struct {
		OpenNow *bool `json:"openNow"`
	}
	refLegacyDoc struct {
		HTMLAttributions []string          `json:"html_attributions"`
		Results          []refLegacyResult `json:"results"`
		Status           string            `json:"status"`
	}
	refLegacyResult struct {
		BusinessStatus string `json:"business_status,omitempty"`
		Geometry       *struct {
			Location struct {
				Lat *float64 `json:"lat"`
				Lng *float64 `json:"lng"`
			} `json:"location"`
		} `json:"geometry,omitempty"`
		Icon                string `json:"icon,omitempty"`
		IconBackgroundColor string `json:"icon_background_color,omitempty"`
		IconMaskBaseURI     string `json:"icon_mask_base_uri,omitempty"`
		Name                string `json:"name,omitempty"`
		OpeningHours        *struct {
			OpenNow *bool `json:"open_now"`
		} `json:"opening_hours,omitempty"`
		PlaceID          string   `json:"place_id,omitempty"`
		PriceLevel       *int     `json:"price_level,omitempty"`
		Rating           *float64 `json:"rating,omitempty"`
		Types            []string `json:"types,omitempty"`
		UserRatingsTotal *float64 `json:"user_ratings_total,omitempty"`
		Vicinity         string   `json:"vicinity,omitempty"`
	}
)

// refLegacy is the reference translation of one place, as the legacy
// result a client decodes.
func refLegacy(p refNewPlace) refLegacyResult {
	r := refLegacyResult{
		BusinessStatus:      p.BusinessStatus,
		IconBackgroundColor: p.IconBackgroundColor,
		IconMaskBaseURI:     p.IconMaskBaseURI,
		PlaceID:             p.ID,
		Rating:              p.Rating,
		Types:               p.Types,
		UserRatingsTotal:    p.UserRatingCount,
		Vicinity:            p.ShortFormattedAddress,
	}
	if p.Location != nil {
		lat, lng := p.Location.Latitude, p.Location.Longitude
		r.Geometry = &struct {
			Location struct {
				Lat *float64 `json:"lat"`
				Lng *float64 `json:"lng"`
			} `json:"location"`
		}{}
		r.Geometry.Location.Lat, r.Geometry.Location.Lng = &lat, &lng
	}
	if p.IconMaskBaseURI != "" {
		r.Icon = p.IconMaskBaseURI + ".png"
	}
	if p.DisplayName != nil {
		r.Name = p.DisplayName.Text
	}
	var open *bool
	if p.RegularOpeningHours != nil {
		open = p.RegularOpeningHours.OpenNow
	}
	if p.CurrentOpeningHours != nil && p.CurrentOpeningHours.OpenNow != nil {
		open = p.CurrentOpeningHours.OpenNow
	}
	if open != nil {
		r.OpeningHours = &struct {
			OpenNow *bool `json:"open_now"`
		}{open}
	}
	for i, name := range []string{"FREE", "INEXPENSIVE", "MODERATE", "EXPENSIVE", "VERY_EXPENSIVE"} {
		if p.PriceLevel == "PRICE_LEVEL_"+name {
			r.PriceLevel = &i
		}
	}
	if r.Vicinity == "" {
		r.Vicinity = p.FormattedAddress
	}
	return r
}

// decodeLegacy decodes a legacy document strictly: no member the legacy
// shape does not have, nothing after it.
func decodeLegacy(t testing.TB, doc []byte) refLegacyDoc {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(doc))
	d.DisallowUnknownFields()
	var out refLegacyDoc
	if err := d.Decode(&out); err != nil {
		t.Fatalf("not a legacy document: %v\n%s", err, doc)
	}
	if d.More() {
		t.Fatalf("data after the legacy document: %s", doc)
	}
	if out.HTMLAttributions == nil || len(out.HTMLAttributions) != 0 || out.Results == nil {
		t.Fatalf("html_attributions or results missing or wrong: %s", doc)
	}
	return out
}

// checkTranslation checks got, the translation of raw, against the
// reference: encoding/json's reading of raw, translated field by field.
func checkTranslation(t testing.TB, raw, got []byte) {
	t.Helper()
	var in refNewDoc
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatalf("reference cannot decode the input: %v", err)
	}
	want := refLegacyDoc{HTMLAttributions: []string{}, Results: []refLegacyResult{}, Status: "ZERO_RESULTS"}
	for i, p := range in.Places {
		if i == 20 {
			break
		}
		want.Results = append(want.Results, refLegacy(p))
		want.Status = "OK"
	}
	if diff := cmp.Diff(want, decodeLegacy(t, got)); diff != "" {
		t.Fatalf("translation differs from the reference (-want +got):\n%s\ninput: %s\noutput: %s", diff, raw, got)
	}
	if !bytes.HasSuffix(got, []byte("}\n")) || bytes.Contains(got, []byte("\n\n")) {
		t.Fatalf("layout: %q", got)
	}
}

// FuzzTranslateNew checks the translator against encoding/json: it fails
// exactly when encoding/json cannot read the input as a Places API (New)
// object, and otherwise writes a legacy document whose every field is the
// reference's.
func FuzzTranslateNew(f *testing.F) {
	for _, raw := range translateInputs(f) {
		f.Add(raw)
	}
	f.Add([]byte(`{"places":[{"displayName":{"text":"\ud800\"\\<>&\u2028"},"location":{"latitude":-0,"longitude":1e-7},"rating":1e21}]}`))
	f.Add([]byte(`{"Places":[{"ID":"case","RATING":2,"types":null,"location":{}}],"places":[{"id":"dup"}]}`))
	f.Add([]byte(`{"places":[null,{},{"priceLevel":"PRICE_LEVEL_FREE","regularOpeningHours":{"openNow":false}}]}`))
	f.Add([]byte(`[{"places":[]}]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := translateNew(raw)
		var obj map[string]json.RawMessage
		var in refNewDoc
		readable := json.Unmarshal(raw, &obj) == nil && obj != nil && json.Unmarshal(raw, &in) == nil
		if !readable {
			if err == nil {
				t.Fatalf("translateNew(%q) = %q, want an error", raw, got)
			}
			return
		}
		if err != nil {
			t.Fatalf("translateNew(%q): %v", raw, err)
		}
		checkTranslation(t, raw, got)
	})
}

// TestTranslateNewProperty translates random Places API (New) answers (0
// to 30 places, each field present or not) and cuts them to random
// bounds: every WHATSAT body parses as a legacy document with at most
// min(bound, 20) results, status OK exactly when there are places.
func TestTranslateNewProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 2026))
	texts := []string{"Boelter Hall", "東京タワー", "Café \"Zèbre\" \\ <b>&", "مقهى", "line\nbreak\u2028", "\x01\x7f", "🦓"}
	pick := func() string { return texts[rng.IntN(len(texts))] }
	maybe := func() bool { return rng.IntN(2) == 0 }
	for iter := range 300 {
		n := rng.IntN(31)
		places := make([]map[string]any, n)
		for i := range places {
			p := map[string]any{}
			if maybe() {
				p["id"] = "id-" + strconv.Itoa(i)
			}
			if maybe() {
				p["displayName"] = map[string]any{"text": pick(), "languageCode": "en"}
			}
			if maybe() {
				p["location"] = map[string]any{"latitude": rng.Float64()*180 - 90, "longitude": rng.Float64()*360 - 180}
			}
			if maybe() {
				p["shortFormattedAddress"] = pick()
			}
			if maybe() {
				p["formattedAddress"] = pick()
			}
			if maybe() {
				p["types"] = []string{pick(), "establishment"}
			}
			if maybe() {
				p["rating"] = float64(rng.IntN(41)+10) / 10
				p["userRatingCount"] = rng.IntN(100000)
			}
			if maybe() {
				p["businessStatus"] = "OPERATIONAL"
			}
			if maybe() {
				p["currentOpeningHours"] = map[string]any{"openNow": maybe()}
			}
			if maybe() {
				p["regularOpeningHours"] = map[string]any{"openNow": maybe()}
			}
			if maybe() {
				p["priceLevel"] = []string{"PRICE_LEVEL_UNSPECIFIED", "PRICE_LEVEL_FREE", "PRICE_LEVEL_MODERATE", "PRICE_LEVEL_VERY_EXPENSIVE"}[rng.IntN(4)]
			}
			if maybe() {
				p["iconMaskBaseUri"] = "https://maps.gstatic.com/mapfiles/place_api/icons/v2/generic_pinlet"
				p["iconBackgroundColor"] = "#7B9EB0"
			}
			places[i] = p
		}
		doc := map[string]any{}
		if n > 0 || maybe() {
			doc["places"] = places
		}
		raw, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		translated, err := translateNew(raw)
		if err != nil {
			t.Fatalf("iteration %d: %v\n%s", iter, err, raw)
		}
		checkTranslation(t, raw, translated)
		bound := 1 + rng.IntN(20) // a bound of 0 never asks the provider
		body := whatsatJSON(translated, bound)
		got := decodeLegacy(t, body)
		if len(got.Results) > min(bound, 20) || len(got.Results) != min(n, bound) {
			t.Fatalf("iteration %d: %d results for %d places and bound %d", iter, len(got.Results), n, bound)
		}
		if wantOK := n > 0; (got.Status == "OK") != wantOK || (!wantOK && got.Status != "ZERO_RESULTS") {
			t.Fatalf("iteration %d: status %q with %d places", iter, got.Status, n)
		}
	}
}

// TestGoogleNewWhatsatEndToEnd is what a course-style client sees from a
// node whose provider is the Places API (New), as New builds it for
// a key: a loopback fake of the new API answers 20 places whatever
// maxResultCount says, and every WHATSAT reply is the AT line, then a
// legacy document with status OK and at most the bound's results, then an
// empty line.
func TestGoogleNewWhatsatEndToEnd(t *testing.T) {
	var places []string
	for i := range 20 {
		places = append(places, fmt.Sprintf(`{"id":"place-%02d","displayName":{"text":"Place %02d","languageCode":"en"},`+
			`"location":{"latitude":34.0689%02d,"longitude":-118.4451},"types":["point_of_interest"],`+
			`"shortFormattedAddress":"%d Westwood Plaza, Los Angeles","businessStatus":"OPERATIONAL"}`, i, i, i, 400+i))
	}
	srv, reqs := provNewServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\n  \"places\": [%s]\n}\n", strings.Join(places, ","))
	})
	f, err := New(Config{Key: "test-key-for-the-fake", BaseURL: srv.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := startNode(t, f)
	c, err := client.Dial(t.Context(), n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	at, err := c.IAMATText(t.Context(), "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997")
	if err != nil {
		t.Fatal(err)
	}
	for _, bound := range []int{3, 20, 3, 1} {
		nb, err := c.WHATSAT(t.Context(), "kiwi.cs.ucla.edu", 10, bound)
		if err != nil {
			t.Fatalf("bound %d: %v", bound, err)
		}
		reply := string(nb.Bytes())
		// What a grading script does: the first line is the AT line,
		// the rest up to the empty line is JSON.
		first, rest, _ := strings.Cut(reply, "\n")
		if first != at.Line {
			t.Fatalf("bound %d: first line %q, want %q", bound, first, at.Line)
		}
		var doc struct {
			HTMLAttributions []any `json:"html_attributions"`
			Results          []struct {
				Name     string `json:"name"`
				PlaceID  string `json:"place_id"`
				Vicinity string `json:"vicinity"`
				Geometry struct {
					Location struct{ Lat, Lng float64 } `json:"location"`
				} `json:"geometry"`
			} `json:"results"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSuffix(rest, "\n\n")), &doc); err != nil {
			t.Fatalf("bound %d: reply is not JSON: %v\n%s", bound, err, reply)
		}
		if doc.Status != "OK" || len(doc.Results) != bound || doc.HTMLAttributions == nil {
			t.Fatalf("bound %d: status %q, %d results:\n%s", bound, doc.Status, len(doc.Results), reply)
		}
		for i, r := range doc.Results {
			if want := fmt.Sprintf("Place %02d", i); r.Name != want || r.PlaceID == "" || r.Vicinity == "" || r.Geometry.Location.Lat == 0 {
				t.Errorf("bound %d: result %d = %+v, want %s with its place_id, vicinity and location", bound, i, r, want)
			}
		}
	}
	got := reqs()
	if len(got) != 3 { // bounds 3, 20 and 1; the second 3 is a cache hit
		t.Fatalf("%d provider requests, want 3", len(got))
	}
	if got[0].FieldMask != DefaultFieldMask || !strings.HasSuffix(got[0].Body, `"maxResultCount":3}`) {
		t.Errorf("first request: %+v", got[0])
	}
	if s := f.Stats(); s.CacheHits != 1 {
		t.Errorf("stats %+v, want one cache hit", s)
	}
}

// BenchmarkTranslateNew translates a 20-place answer with every field the
// translation reads, the most a searchNearby answer holds; a Frugal pays
// it once per provider call, never on a cache hit.
func BenchmarkTranslateNew(b *testing.B) {
	var in refNewDoc
	var full map[string][]json.RawMessage
	if err := json.Unmarshal(placesFixture(b, "translate/in/full.json"), &full); err != nil {
		b.Fatal(err)
	}
	places := make([]json.RawMessage, 20)
	for i := range places {
		places[i] = full["places"][i%len(full["places"])]
	}
	raw, err := json.Marshal(map[string]any{"places": places})
	if err != nil || json.Unmarshal(raw, &in) != nil || len(in.Places) != 20 {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := translateNew(raw); err != nil {
			b.Fatal(err)
		}
	}
}
