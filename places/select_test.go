package places

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-multierror"

	"github.com/proxyherd/herd"
)

func TestPlacesSelectKinds(t *testing.T) {
	small := filepath.Join("testdata", "places", "small.json")
	cases := []struct {
		name string
		cfg  Config
		want string // String()
		next herd.PlacesClient
	}{
		{"zero value: built-in catalogue", Config{}, "offline catalogue (39 places)", DefaultCatalogue()},
		{"auto with a key: new", Config{Key: "k"}, "Google Places API (New)", GoogleNew{Key: "k"}},
		{"new with options", Config{Kind: "new", Key: "k", BaseURL: "http://127.0.0.1:9", FieldMask: "places.id"},
			"Google Places API (New) at http://127.0.0.1:9", GoogleNew{Key: "k", BaseURL: "http://127.0.0.1:9", FieldMask: "places.id"}},
		{"new-raw", Config{Kind: "new-raw", Key: "k", FieldMask: "places.id"},
			"Google Places API (New), raw documents", GoogleNew{Key: "k", FieldMask: "places.id", Raw: true}},
		{"legacy", Config{Kind: "legacy", Key: "k"}, "Google Places Nearby Search (legacy)", GoogleLegacy{Key: "k"}},
		{"offline ignores a key", Config{Kind: "offline", Key: "k"}, "offline catalogue (39 places)", DefaultCatalogue()},
		{"offline from a file", Config{Catalogue: small}, "offline catalogue " + small + " (6 places)", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := New(c.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := f.String(); got != c.want {
				t.Errorf("String() = %q, want %q", got, c.want)
			}
			if c.next != nil && f.next != c.next {
				t.Errorf("provider %#v, want %#v", f.next, c.next)
			}
			if _, ok := f.clock.(systemClock); !ok {
				t.Errorf("nil clock became %T, want the system clock", f.clock)
			}
		})
	}
}

func TestPlacesSelectOptions(t *testing.T) {
	clock := newProvClock()
	f, err := New(Config{
		CacheTTL: Duration(time.Minute), CacheEntries: -1, MaxInFlight: 3, SlotWait: -1,
		Retries: 4, RetryMin: Duration(time.Second), RetryMax: Duration(3 * time.Second),
		Timeout: Duration(7 * time.Second), Seed: 42,
	}, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := FrugalOptions{TTL: time.Minute, MaxEntries: -1, MaxInFlight: 3, SlotWait: -1, Retries: 4,
		RetryMin: time.Second, RetryMax: 3 * time.Second, Timeout: 7 * time.Second, Seed: 42}
	if f.opts != want || f.clock != herd.Clock(clock) {
		t.Errorf("options %+v, want %+v", f.opts, want)
	}
}

func TestPlacesSelectErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"places": [{"name": "A", "location": {"lat": 100, "lng": 0}}]}`), 0o644)
	cases := []struct {
		name string
		cfg  Config
		want []string // after "herd: invalid config: "
	}{
		{"unknown kind", Config{Kind: "google", FieldMask: "x", Catalogue: "y"},
			[]string{`Kind: "google" is not one of "legacy", "new", "new-raw", "offline" or empty (auto)`}},
		{"Google kinds need a key", Config{Kind: "new"}, []string{`Key: must be set for kind "new"`}},
		{"legacy needs a key", Config{Kind: "legacy"}, []string{`Key: must be set for kind "legacy"`}},
		{"key with white space", Config{Key: "AIza abc\n"}, []string{"Key: must not contain white space or control characters"}},
		{"bad base URL", Config{Kind: "legacy", Key: "SECRETKEY", BaseURL: "places.googleapis.com"},
			[]string{`BaseURL: "places.googleapis.com": want http(s)://host[/prefix]`}},
		{"base URL offline", Config{BaseURL: "http://x"},
			[]string{`BaseURL: only Google kinds use it, and kind is "offline" because Key is empty`}},
		{"field mask for legacy", Config{Kind: "legacy", Key: "SECRETKEY", FieldMask: "places.id"},
			[]string{`FieldMask: only kinds "new" and "new-raw" use it, and kind is "legacy"`}},
		{"bad field mask", Config{Key: "SECRETKEY", FieldMask: "places.id,,places.name"},
			[]string{`FieldMask: "places.id,,places.name": path 2 is empty`}},
		{"field mask with a space", Config{Key: "SECRETKEY", FieldMask: "places.id, places.name"},
			[]string{`FieldMask: "places.id, places.name": path " places.name" holds ' ' (want letters, digits, '_' and '.', or *)`}},
		{"catalogue with a key", Config{Key: "SECRETKEY", Catalogue: "x.json"},
			[]string{`Catalogue: only kind "offline" reads a catalogue, and kind is "new" because Key is set`}},
		{"missing catalogue", Config{Catalogue: filepath.Join(dir, "none.json")},
			[]string{"Catalogue: herd: catalogue: open " + filepath.Join(dir, "none.json") + ": no such file or directory"}},
		{"bad catalogue", Config{Catalogue: bad},
			[]string{"Catalogue: " + bad + `: herd: catalogue: places[0] ("A"): location.lat: 100 is outside [-90, 90]`}},
		{"negative durations", Config{RetryMin: -1, RetryMax: -2, Timeout: -3},
			[]string{"RetryMin: must not be negative, got -1ns", "RetryMax: must not be negative, got -2ns", "Timeout: must not be negative, got -3ns"}},
		{"retry max below min", Config{RetryMin: Duration(time.Second), RetryMax: Duration(time.Millisecond)},
			[]string{"RetryMax: 1ms is below RetryMin 1s"}},
		{"everything at once", Config{Kind: "new", FieldMask: " ", Catalogue: "c", Timeout: -1},
			[]string{`Key: must be set for kind "new"`, `FieldMask: " ": path " " holds ' ' (want letters, digits, '_' and '.', or *)`,
				`Catalogue: only kind "offline" reads a catalogue, and kind is "new"`, "Timeout: must not be negative, got -1ns"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := New(c.cfg, nil)
			if err == nil {
				f.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, herd.ErrInvalidConfig) {
				t.Errorf("%v does not wrap herd.ErrInvalidConfig", err)
			}
			if f != nil {
				t.Errorf("provider %v returned with an error", f)
			}
			var me *multierror.Error
			if !errors.As(err, &me) {
				t.Fatalf("not a multierror: %v", err)
			}
			var got []string
			for _, e := range me.Errors {
				got = append(got, strings.TrimPrefix(e.Error(), "herd: invalid config: "))
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			// One line, ErrInvalidConfig's text said once, then each problem.
			if want := "herd: invalid config: " + strings.Join(c.want, "; "); err.Error() != want {
				t.Errorf("error text:\n got %s\nwant %s", err, want)
			}
			if c.cfg.Key != "" && strings.Contains(err.Error(), c.cfg.Key) {
				t.Errorf("error shows the key: %v", err)
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	in := `{"kind": "new", "key": "AIza", "base_url": "http://127.0.0.1:8080", "field_mask": "places.id",
	        "catalogue": "", "cache_ttl": "1m30s", "cache_entries": 10, "max_in_flight": 4, "slot_wait": "500ms",
	        "retries": -1, "retry_min": "10ms", "retry_max": "1s", "timeout": "8s", "seed": 7}`
	var got Config
	if err := json.Unmarshal([]byte(in), &got); err != nil {
		t.Fatal(err)
	}
	want := Config{Kind: "new", Key: "AIza", BaseURL: "http://127.0.0.1:8080", FieldMask: "places.id",
		CacheTTL: Duration(90 * time.Second), CacheEntries: 10, MaxInFlight: 4, SlotWait: Duration(500 * time.Millisecond),
		Retries: -1, RetryMin: Duration(10 * time.Millisecond), RetryMax: Duration(time.Second),
		Timeout: Duration(8 * time.Second), Seed: 7}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	out, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	wantOut := `{"kind":"new","key":"AIza","base_url":"http://127.0.0.1:8080","field_mask":"places.id","cache_ttl":"1m30s","cache_entries":10,"max_in_flight":4,"slot_wait":"500ms","retries":-1,"retry_min":"10ms","retry_max":"1s","timeout":"8s","seed":7}`
	if string(out) != wantOut {
		t.Errorf("encoded %s\nwant    %s", out, wantOut)
	}
	if out, _ := json.Marshal(Config{HTTP: http.DefaultClient}); string(out) != "{}" {
		t.Errorf("zero value encodes as %s", out)
	}
	err = json.Unmarshal([]byte(`{"cache_ttl": "5 minutes"}`), &got)
	if err == nil || !strings.Contains(err.Error(), `time: unknown unit " minutes" in duration "5 minutes"`) {
		t.Errorf("bad duration: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"cache_ttl": 300}`), &got); err == nil {
		t.Error("a number of nanoseconds was accepted as a duration")
	}
}

func TestDurationFlag(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("herd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Kind, "places", "", "provider")
	fs.Var(&cfg.CacheTTL, "places-cache-ttl", "cache TTL")
	fs.Var(&cfg.Timeout, "places-timeout", "timeout")
	if err := fs.Parse([]string{"-places", "offline", "-places-cache-ttl", "2m", "-places-timeout=3s"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Kind != "offline" || cfg.CacheTTL != Duration(2*time.Minute) || cfg.Timeout.String() != "3s" {
		t.Errorf("parsed %+v", cfg)
	}
	if err := fs.Parse([]string{"-places-timeout", "soon"}); err == nil {
		t.Error("bad duration accepted")
	}
}

// TestPlacesSelectEndToEnd builds each kind and answers WHATSAT lookups,
// the second from the cache.
func TestPlacesSelectEndToEnd(t *testing.T) {
	newSrv, newReqs := provNewServer(t, provServe(t, 200, "nearby_new_ok.json"))
	rawSrv, rawReqs := provNewServer(t, provServe(t, 200, "nearby_new_ok.json"))
	legacySrv, legacyReqs := placesServer(t, provServe(t, 200, "nearby_legacy_ok.json"))
	cases := []struct {
		cfg      Config
		requests func() int
		want     []byte
	}{
		{Config{Key: "k", BaseURL: newSrv.URL}, func() int { return len(newReqs()) },
			whatsatJSON(placesFixture(t, "translate/out/nearby_new_ok.json"), 1)},
		{Config{Kind: "new-raw", Key: "k", BaseURL: rawSrv.URL}, func() int { return len(rawReqs()) },
			placesFixture(t, "whatsat/nearby_new_ok.bound1.json")},
		{Config{Kind: "legacy", Key: "k", BaseURL: legacySrv.URL}, func() int { return len(legacyReqs()) },
			placesFixture(t, "whatsat/nearby_legacy_ok.bound1.json")},
		{Config{}, func() int { return 1 }, nil},
	}
	for _, c := range cases {
		f, err := New(c.cfg, newProvClock())
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			body := nearby(t.Context(), newProvClock(), f, time.Second, provQuery(10000, 1))
			if c.want != nil && !bytes.Equal(body, c.want) {
				t.Errorf("%s: body %s", f, body)
			}
			if c.want == nil {
				if names, status := provCatalogueNames(t, body); status != "OK" || len(names) != 1 {
					t.Errorf("%s: %q %v", f, status, names)
				}
			}
		}
		if n := c.requests(); n != 1 {
			t.Errorf("%s: %d requests for two identical lookups", f, n)
		}
		if s := f.Stats(); s.Lookups != 2 || s.CacheHits != 1 || s.ProviderCalls != 1 {
			t.Errorf("%s: stats %+v", f, s)
		}
		f.Close()
	}
}

// TestPlacesNodeWhatsatOffline serves WHATSAT from a real node over
// loopback TCP with the default provider of a user without a key.
func TestPlacesNodeWhatsatOffline(t *testing.T) {
	places, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer places.Close()
	n := startNode(t, places)
	c, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997\n"+
		"WHATSAT kiwi.cs.ucla.edu 10 3\nWHATSAT kiwi.cs.ucla.edu 10 3\n")
	c.(*net.TCPConn).CloseWrite()
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	at, rest, _ := strings.Cut(string(all), "\n")
	if !strings.HasPrefix(at, "AT Goloman ") {
		t.Fatalf("IAMAT reply %q", at)
	}
	doc, _ := DefaultCatalogue().Nearby(t.Context(), provQuery(10000, 3))
	reply := at + "\n" + string(whatsatJSON(doc, 3)) + "\n\n"
	if diff := cmp.Diff(reply+reply, rest); diff != "" {
		t.Errorf("WHATSAT replies (-want +got):\n%s", diff)
	}
	if s := places.Stats(); s.Lookups != 2 || s.CacheHits != 1 {
		t.Errorf("stats %+v", s)
	}
}
