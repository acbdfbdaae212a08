package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/proxyherd/herd"
)

// listening matches the line "herd serve" prints once it listens.
var listening = regexp.MustCompile(`^(\S+) listening on (\S+) \(neighbours: .*\)$`)

// TestHerdProcesses runs the 2018 herd as five "herd serve" processes
// sharing one config file: a report at one server reaches all the others;
// with two servers stopped the other three keep flooding among themselves;
// restarted, the two catch up with what happened while they were down.
// herd2018Layout gives the 2018 herd free loopback ports and returns the
// config file's "servers" entries and "links" pairs for it.
func herd2018Layout(t *testing.T) (topo herd.Topology, addrs map[string]string, servers, links []string) {
	topo = herd.Presets["2018"]
	addrs = map[string]string{}
	for i, a := range freePorts(t, len(topo.Servers)) {
		name := topo.Servers[i]
		addrs[name] = a
		servers = append(servers, fmt.Sprintf(`{"name": %q, "addr": %q}`, name, a))
	}
	for _, l := range topo.Links {
		links = append(links, fmt.Sprintf(`[%q, %q]`, l[0], l[1]))
	}
	return topo, addrs, servers, links
}

func TestHerdProcesses(t *testing.T) {
	places := newFakePlaces(t)
	dir := t.TempDir()
	topo, addrs, servers, links := herd2018Layout(t)
	cfgPath := filepath.Join(dir, "herd.json")
	cfg := fmt.Sprintf(`{
  "servers": [
    %s
  ],
  "links": [%s],
  "provider": {"kind": "legacy", "key": "test-key", "base_url": %q},
  "secret_env": "HERD_SECRET",
  "redial_min": "10ms",
  "redial_max": "100ms",
  "places_timeout": "5s",
  "log": %q,
  "log_lines": true
}`, strings.Join(servers, ",\n    "), strings.Join(links, ", "), places.URL, filepath.Join(dir, "logs", "{name}.log"))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := childEnv("HERD_SECRET=e2e-secret")
	procs := map[string]*proc{}
	serve := func(name string) {
		p := start(t, name, env, bins["herd"], "serve", "-config", cfgPath, "-name", name)
		if m := p.expectLine(t, listening); m[1] != name || m[2] != addrs[name] {
			t.Fatalf("%s printed %q", name, m[0])
		}
		procs[name] = p
	}
	t0 := time.Now()
	for _, name := range topo.Servers {
		serve(name)
		t.Logf("%v %s started", time.Since(t0), name)
	}

	// A report at Goloman reaches every server, Welsh two hops away.
	kiwi1 := iamat(t, addrs["Goloman"], "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997")
	if !regexp.MustCompile(`^AT Goloman [+-]\d+\.\d{9} kiwi\.cs\.ucla\.edu \+34\.068930-118\.445127 1520023934\.918963997$`).MatchString(kiwi1) {
		t.Fatalf("IAMAT reply %q", kiwi1)
	}
	for _, name := range topo.Servers[1:] {
		waitRecord(t, name, addrs[name], "kiwi.cs.ucla.edu", kiwi1)
	}

	t.Logf("%v flooded", time.Since(t0))
	// WHATSAT at Welsh asks the provider from Welsh, with the record that
	// Goloman wrote.
	nb, err := ask(addrs["Welsh"], whatsat("kiwi.cs.ucla.edu", "10", "2"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(nb.Bytes()), kiwi1+"\n"+placesDocFirstTwo+"\n\n"; got != want {
		t.Fatalf("WHATSAT at Welsh:\n got %q\nwant %q", got, want)
	}
	q := places.lastQuery()
	if q.Get("location") != "34.06893,-118.445127" || q.Get("radius") != "10000" || q.Get("key") != "test-key" {
		t.Errorf("provider query %v", q)
	}

	// Stop Hands and Welsh. Goloman, Holiday and Wilkes are all linked to
	// one another, so they still flood.
	procs["Hands"].stop(t, syscall.SIGTERM)
	procs["Welsh"].stop(t, syscall.SIGTERM)
	kiwi2 := iamat(t, addrs["Wilkes"], "kiwi.cs.ucla.edu", "+34.070000-118.440000", "1520023999.5")
	lemon := iamat(t, addrs["Holiday"], "lemon", "-33.8688+151.2093", "1520024000")
	for _, name := range []string{"Goloman", "Holiday"} {
		waitRecord(t, name, addrs[name], "kiwi.cs.ucla.edu", kiwi2)
	}
	for _, name := range []string{"Goloman", "Wilkes"} {
		waitRecord(t, name, addrs[name], "lemon", lemon)
	}

	t.Logf("%v stopped two", time.Since(t0))
	// Restarted with empty tables, they catch up from their neighbours.
	serve("Hands")
	serve("Welsh")
	for _, name := range []string{"Hands", "Welsh"} {
		waitRecord(t, name, addrs[name], "kiwi.cs.ucla.edu", kiwi2)
		waitRecord(t, name, addrs[name], "lemon", lemon)
	}

	t.Logf("%v caught up", time.Since(t0))
	for _, name := range topo.Servers {
		procs[name].stop(t, syscall.SIGTERM)
		if got := procs[name].stderr.String(); !strings.HasSuffix(got, "herd serve: "+name+": shut down\n") {
			t.Errorf("%s stderr:\n%s", name, got)
		}
	}
	log, err := os.ReadFile(filepath.Join(dir, "logs", "Welsh.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" INFO Welsh peer link up conn=", "peer=Holiday", ` DEBUG Welsh in conn=c`, `line="WHATSAT kiwi.cs.ucla.edu 10 2"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("Welsh's log lacks %q", want)
		}
	}
}
