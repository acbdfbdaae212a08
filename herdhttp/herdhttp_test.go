package herdhttp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/client"
)

// testClock has a settable Now and real timers: it moves a node's idea of
// time past a redial without waiting.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *testClock) AfterFunc(d time.Duration, f func()) herd.Timer { return time.AfterFunc(d, f) }

// startNode starts a node on a free loopback port and closes it at the end
// of the test.
func startNode(t *testing.T, cfg herd.Config) *herd.Node {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	n, err := herd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// waitNode waits, without sleeping, until cond holds for n.
func waitNode(t *testing.T, n *herd.Node, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		ch := n.Changed()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: never saw %s; links %v", n.Name(), what, n.Links())
		}
	}
}

// pair is Hands, with its handler, and the neighbour Goloman, which dials
// it (Goloman sorts first) once started.
type pair struct {
	hands, goloman *herd.Node
	clock          *testClock
	obs            *Observer
	srv            *httptest.Server
}

// startHands starts Hands, whose only neighbour is Goloman (not started),
// and serves its handler.
func startHands(t *testing.T, opts Options) *pair {
	t.Helper()
	p := &pair{clock: &testClock{now: time.Now()}, obs: NewObserver()}
	p.hands = startNode(t, herd.Config{
		Name:     "Hands",
		Peers:    []herd.Peer{{Name: "Goloman"}},
		Clock:    p.clock,
		Observer: p.obs,
		Places: herd.PlacesFunc(func(context.Context, herd.NearbyQuery) ([]byte, error) {
			return []byte(`{"results":[],"status":"ZERO_RESULTS"}`), nil
		}),
	})
	opts.Observer = p.obs
	p.srv = httptest.NewServer(New(p.hands, opts))
	t.Cleanup(p.srv.Close)
	return p
}

// startGoloman starts Goloman, which dials Hands, and waits for the link.
func (p *pair) startGoloman(t *testing.T) {
	t.Helper()
	p.goloman = startNode(t, herd.Config{
		Name:  "Goloman",
		Peers: []herd.Peer{{Name: "Hands", Addr: p.hands.Addr().String()}},
	})
	waitNode(t, p.hands, "the link to Goloman", func() bool { return len(p.hands.Links()) == 1 })
}

// get fetches path from the pair's handler.
func (p *pair) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(p.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHealthzAndReadyz(t *testing.T) {
	p := startHands(t, Options{})
	if code, body := p.get(t, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	// Goloman is down but within a redial: still ready.
	if code, body := p.get(t, "/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("readyz with Goloman just missing: %d %q", code, body)
	}
	// Past RedialMax + HandshakeTimeout (5s + 10s by default) without it:
	// not ready, and the answer says why.
	p.clock.Advance(16 * time.Second)
	code, body := p.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || body != "herd: neighbours down longer than a redial (15s): Goloman down for 16s\n" {
		t.Fatalf("readyz with Goloman down: %d %q", code, body)
	}
	if code, _ := p.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz with Goloman down: %d", code)
	}
	// Goloman comes up: ready again.
	p.startGoloman(t)
	if code, body := p.get(t, "/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("readyz with Goloman up: %d %q", code, body)
	}
	// A closed node is not ready, though the process still serves.
	p.hands.Close()
	if code, body := p.get(t, "/readyz"); code != http.StatusServiceUnavailable || body != "herd: node closed\n" {
		t.Fatalf("readyz after Close: %d %q", code, body)
	}
	if code, _ := p.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz after Close: %d", code)
	}
}

func TestMetrics(t *testing.T) {
	p := startHands(t, Options{})
	p.startGoloman(t)
	ctx := context.Background()
	// A report to Goloman floods to Hands (flood lag); one to Hands is an
	// IAMAT handled there; a WHATSAT at Hands calls its provider.
	for _, tc := range []struct {
		node   *herd.Node
		client string
	}{{p.goloman, "kiwi.cs.ucla.edu"}, {p.hands, "lemon.cs.ucla.edu"}} {
		c, err := client.Dial(ctx, tc.node.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.IAMAT(ctx, tc.client, "+34.068930-118.445127", time.Now()); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	waitNode(t, p.hands, "kiwi", func() bool { _, ok := p.hands.Lookup("kiwi.cs.ucla.edu"); return ok })
	waitNode(t, p.goloman, "lemon", func() bool { _, ok := p.goloman.Lookup("lemon.cs.ucla.edu"); return ok })
	c, err := client.Dial(ctx, p.hands.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WHATSAT(ctx, "kiwi.cs.ucla.edu", 10, 5); err != nil {
		t.Fatal(err)
	}

	code, body := p.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	for _, want := range []string{
		`herd_info{server="Hands"} 1`,
		`herd_ready 1`,
		`herd_clients 2`,
		`herd_iamat_total 1`,
		`herd_whatsat_total 1`,
		`herd_records_local_total 1`,
		`herd_records_peer_total 1`,
		`herd_places_calls_total 1`,
		`herd_links_up 1`,
		`herd_link_up{peer="Goloman"} 1`,
		`herd_link_ups_total{peer="Goloman"} 1`,
		`herd_link_records_received_total{peer="Goloman"} 1`,
		`herd_link_backlog{peer="Goloman"} 0`,
		`herd_flood_lag_seconds_count{peer="Goloman"} 1`,
		`herd_iamat_seconds_count 1`,
		`herd_places_call_seconds_count{outcome="ok"} 1`,
		`# TYPE herd_flood_lag_seconds histogram`,
		`# TYPE herd_iamat_total counter`,
		`# TYPE herd_connections gauge`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want+"") {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Hands sent lemon at least once: more if the record went out on a
	// link that a newer one replaced (Hands knocks at start) and again in
	// the newer link's reconciliation.
	if !regexp.MustCompile(`herd_link_records_sent_total\{peer="Goloman"\} [1-9]`).MatchString(body) {
		t.Errorf("metrics lack herd_link_records_sent_total{peer=\"Goloman\"} of at least 1")
	}
	// When the link came up, as a Unix time in seconds.
	if !regexp.MustCompile(`(?m)^herd_link_last_up_timestamp_seconds\{peer="Goloman"\} 1\.\d+e\+09$`).MatchString(body) {
		t.Errorf("no plausible herd_link_last_up_timestamp_seconds")
	}
	// Every metric is herd's (herd_*), the Go runtime's and process's, or
	// the handler's own error count (promhttp_*);
	// and none went to Prometheus's global registry: a second handler on
	// the same node and Observer registers without clashing.
	for _, line := range strings.Split(strings.TrimSpace(body), "\n") {
		if name, _, _ := strings.Cut(line, " "); !strings.HasPrefix(line, "#") &&
			!strings.HasPrefix(name, "herd_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("metric %q is not herd_*, go_*, process_* or promhttp_*", name)
		}
	}
	global, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range global {
		if strings.HasPrefix(mf.GetName(), "herd_") {
			t.Errorf("%s is in the global registry", mf.GetName())
		}
	}
	New(p.hands, Options{Observer: p.obs})
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

func TestPprofOffByDefault(t *testing.T) {
	off := startHands(t, Options{})
	if code, _ := off.get(t, "/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("pprof without Options.Pprof: %d, want 404", code)
	}
	on := startHands(t, Options{Pprof: true})
	if code, body := on.get(t, "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("pprof with Options.Pprof: %d", code)
	}
	if code, body := on.get(t, "/debug/pprof/cmdline"); code != 200 || body == "" {
		t.Errorf("pprof cmdline: %d %q", code, body)
	}
}

func TestStatusJSONAndPage(t *testing.T) {
	p := startHands(t, Options{PlotClients: 2})
	p.startGoloman(t)
	ctx := context.Background()
	c, err := client.Dial(ctx, p.hands.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range []string{"a", "b", "c", "d"} {
		if _, err := c.IAMATText(ctx, id, "+34.068930-118.445127", "1520023934.918963997"); err != nil {
			t.Fatal(err)
		}
	}
	code, body := p.get(t, "/status.json")
	if code != 200 {
		t.Fatalf("status.json: %d %s", code, body)
	}
	var doc statusDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Server != "Hands" || !doc.Ready || len(doc.Links) != 1 || doc.Links[0].Peer != "Goloman" || doc.Links[0].State != "up" {
		t.Errorf("status: %+v", doc)
	}
	// Four clients, two plotted; the newest update first.
	if doc.Clients.Total != 4 || doc.Clients.Shown != 2 || len(doc.Clients.Plot) != 2 {
		t.Errorf("clients: %+v", doc.Clients)
	}
	if pt := doc.Clients.Plot[0]; pt.Lat != 34.06893 || pt.Lon != -118.445127 || pt.Server != "Hands" {
		t.Errorf("plotted %+v", pt)
	}
	if len(doc.Recent) != 4 || doc.Recent[0].Client != "d" || doc.Recent[0].From != "" || doc.Recent[3].Client != "a" {
		t.Errorf("recent: %+v", doc.Recent)
	}
	// The page and its assets come from the binary.
	for path, want := range map[string]string{"/": `<script src="static/app.js">`, "/static/app.js": `fetch("status.json"`, "/static/style.css": "#graph"} {
		if code, body := p.get(t, path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want %q in it", path, code, want)
		}
	}
	if code, _ := p.get(t, "/nothing-here"); code != http.StatusNotFound {
		t.Errorf("/nothing-here: %d", code)
	}
}
