package e2e_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/proxyherd/herd"
)

// demoListening matches the demo's line for one server.
var demoListening = regexp.MustCompile(`^(\S+) listening on (\S+) \(talks with (.*)\)$`)

// startDemo runs examples/fivenode with args and returns it with each
// server's address, in preset order, once all five listen.
func startDemo(t *testing.T, env []string, args ...string) (*proc, map[string]string) {
	t.Helper()
	p := start(t, "fivenode", env, bins["fivenode"], args...)
	topo := herd.Presets["2018"]
	addrs := map[string]string{}
	for _, name := range topo.Servers {
		m := p.expectLine(t, demoListening)
		if m[1] != name || m[3] != strings.Join(topo.Neighbours(name), ", ") {
			t.Fatalf("demo printed %q for %s", m[0], name)
		}
		addrs[name] = m[2]
	}
	return p, addrs
}

func TestFiveNodeWithFakePlaces(t *testing.T) {
	places := newFakePlaces(t)
	logDir := filepath.Join(t.TempDir(), "logs")
	p, addrs := startDemo(t, childEnv("GOOGLE_MAPS_API_KEY=test-key"),
		"-port", "0", "-places", "legacy", "-places-url", places.URL, "-log-dir", logDir)
	if m := p.expectLine(t, regexp.MustCompile(`^Places: (.*)$`)); m[1] != "Google Places Nearby Search (legacy) at "+places.URL {
		t.Errorf("demo printed %q", m[0])
	}

	kiwi := iamat(t, addrs["Goloman"], "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997")
	waitRecord(t, "Welsh", addrs["Welsh"], "kiwi.cs.ucla.edu", kiwi)
	nb, err := ask(addrs["Welsh"], whatsat("kiwi.cs.ucla.edu", "10", "2"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(nb.Bytes()), kiwi+"\n"+placesDocFirstTwo+"\n\n"; got != want {
		t.Fatalf("WHATSAT at Welsh:\n got %q\nwant %q", got, want)
	}
	if q := places.lastQuery(); q.Get("key") != "test-key" || q.Get("radius") != "10000" {
		t.Errorf("provider query %v", q)
	}

	p.stop(t, syscall.SIGTERM)
	if out := p.stdout.String(); !strings.HasSuffix(out, "Stop with Ctrl-C (SIGINT) or SIGTERM.\nShut down.\n") {
		t.Errorf("stdout:\n%s", out)
	}
	for _, name := range herd.Presets["2018"].Servers {
		log, err := os.ReadFile(filepath.Join(logDir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), " INFO "+name+" listening addr=") || !strings.Contains(string(log), " INFO "+name+" peer link up ") {
			t.Errorf("%s.log:\n%s", name, log)
		}
	}
}

func TestFiveNodeWithoutKey(t *testing.T) {
	p, addrs := startDemo(t, childEnv(), "-port", "0")
	if m := p.expectLine(t, regexp.MustCompile(`^Places: (.*)$`)); !strings.HasPrefix(m[1], "offline catalogue (") || !strings.Contains(m[1], "set GOOGLE_MAPS_API_KEY") {
		t.Errorf("demo printed %q", m[0])
	}
	kiwi := iamat(t, addrs["Hands"], "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997")
	waitRecord(t, "Welsh", addrs["Welsh"], "kiwi.cs.ucla.edu", kiwi)
	// The offline catalogue answers without any network.
	nb, err := ask(addrs["Welsh"], whatsat("kiwi.cs.ucla.edu", "1", "3"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(nb.JSON), `"status" : "OK"`) || strings.Count(string(nb.JSON), `"name" :`) != 3 {
		t.Errorf("WHATSAT JSON:\n%s", nb.JSON)
	}
	p.stop(t, syscall.SIGINT)
	// Without -log-dir, warnings go to stderr (a link still coming up at
	// shutdown may log one); nothing worse.
	if got := p.stderr.String(); strings.Contains(got, " ERROR ") {
		t.Errorf("stderr: %q", got)
	}
}

func TestFiveNodePortInUse(t *testing.T) {
	busy := freePorts(t, 1)[0]
	ln := listenOn(t, busy)
	defer ln.Close()
	// Welsh's port is busy: the demo says so and exits 1 before starting.
	// (Should one of the three ports before it be busy too, that server
	// is named instead.)
	port := portOf(t, busy) - 3
	p := start(t, "fivenode", childEnv(), bins["fivenode"], "-port", itoa(port))
	<-p.done
	if code := p.cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	re := regexp.MustCompile(`^fivenode: (Goloman|Hands|Holiday|Welsh): listen tcp 127\.0\.0\.1:\d+: bind: address already in use\n$`)
	if got := p.stderr.String(); !re.MatchString(got) {
		t.Errorf("stderr: %q", got)
	}
	if got := p.stdout.String(); got != "" {
		t.Errorf("stdout: %q", got)
	}
}
