package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/leakcheck"
	"github.com/proxyherd/herd/internal/testio"
)

// TestMain fails the run if a node or client goroutine outlives the tests.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "client.(*Conn).readLoop", "herd.(*Node)", "logging.(*Writer)")
}

// lineWriter is a concurrency-safe output that hands out complete lines.
type lineWriter = testio.LineWriter

func newLineWriter() *lineWriter { return testio.NewLineWriter() }

// testEnv returns an env with captured output, the given environment
// variables and a fixed "now".
func testEnv(vars map[string]string) (*env, *lineWriter, *lineWriter) {
	out, errOut := newLineWriter(), newLineWriter()
	return &env{
		stdout: out,
		stderr: errOut,
		getenv: func(k string) string { return vars[k] },
		now:    func() time.Time { return time.Unix(1520023934, 918963997) },
	}, out, errOut
}

// fixedClock is a herd.Clock that never moves, so AT lines are exact.
type fixedClock struct{ now time.Time }

func (c fixedClock) Now() time.Time                                 { return c.now }
func (c fixedClock) AfterFunc(d time.Duration, f func()) herd.Timer { return time.AfterFunc(d, f) }

func startNode(t *testing.T) string {
	t.Helper()
	n, err := herd.New(herd.Config{Name: "Goloman", Addr: "127.0.0.1:0", Clock: fixedClock{time.Unix(1520023935, 182837383)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n.Addr().String()
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		e, out, _ := testEnv(nil)
		if code := run(context.Background(), e, args); code != exitOK {
			t.Errorf("%q: exit %d", args, code)
		}
		for _, want := range []string{"\n  iamat ", "\n  serve ", "\n  version ", "\n  whatsat ", "\n  help "} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%q: output lacks %q:\n%s", args, want, out)
			}
		}
	}
	e, out, _ := testEnv(nil)
	if code := run(context.Background(), e, []string{"help", "serve"}); code != exitOK || !strings.Contains(out.String(), "-config file") {
		t.Errorf("help serve: exit %d\n%s", code, out)
	}
	e, out, _ = testEnv(nil)
	if code := run(context.Background(), e, []string{"help", "bench"}); code != exitOK || !strings.Contains(out.String(), "herd bench prop -from A -to B") {
		t.Errorf("help bench: exit %d\n%s", code, out)
	}
	e, _, errOut := testEnv(nil)
	if code := run(context.Background(), e, []string{"bench", "load", "-h"}); code != exitOK || !strings.Contains(errOut.String(), "-inflight") {
		t.Errorf("bench load -h: exit %d\n%s", code, errOut)
	}
	e, _, errOut = testEnv(nil)
	if code := run(context.Background(), e, []string{"bench", "nope"}); code != exitUsage || !strings.Contains(errOut.String(), `unknown mode "nope"`) {
		t.Errorf("bench nope: exit %d\n%s", code, errOut)
	}
	e, _, errOut = testEnv(nil)
	if code := run(context.Background(), e, []string{"whatsat", "-h"}); code != exitOK || !strings.Contains(errOut.String(), "usage: herd whatsat") {
		t.Errorf("whatsat -h: exit %d\n%s", code, errOut)
	}
	for _, args := range [][]string{nil, {"bench2"}, {"help", "nope"}, {"iamat", "-nope"}} {
		e, _, errOut := testEnv(nil)
		if code := run(context.Background(), e, args); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
	}
}

const (
	kiwiAT    = "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"
	emptyJSON = "{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OK\"\n}"
)

func TestClientCommands(t *testing.T) {
	addr := startNode(t)
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		stdout  string
		stderr  string // a substring
		noCheck bool
	}{
		{"iamat with time", []string{"iamat", "-addr", addr, "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997"}, exitOK, kiwiAT + "\n", "", false},
		{"iamat at now", []string{"iamat", "-addr", addr, "lemon", "-33.86+151.20"}, exitOK, "AT Goloman +0.263873386 lemon -33.86+151.20 1520023934.918963997\n", "", false},
		{"whatsat", []string{"whatsat", "-addr", addr, "kiwi.cs.ucla.edu", "10", "0"}, exitOK, kiwiAT + "\n" + emptyJSON + "\n\n", "", false},
		{"whatsat no provider", []string{"whatsat", "-addr", addr, "kiwi.cs.ucla.edu", "10", "1"}, exitOK,
			kiwiAT + "\n{\n   \"error_message\" : \"no Places provider configured\",\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"UNKNOWN_ERROR\"\n}\n\n", "", false},
		{"whatsat unknown", []string{"whatsat", "-addr", addr, "nobody", "10", "5"}, exitFailure, "? WHATSAT nobody 10 5\n", "", false},
		{"iamat invalid", []string{"iamat", "-addr", addr, "kiwi", "+34-118", "1e9"}, exitFailure, "? IAMAT kiwi +34-118 1e9\n", "", false},
		{"whatsat radius as typed", []string{"whatsat", "-addr", addr, "kiwi.cs.ucla.edu", "1e1", "5"}, exitFailure, "? WHATSAT kiwi.cs.ucla.edu 1e1 5\n", "", false},
		{"iamat too few", []string{"iamat", "-addr", addr, "kiwi"}, exitUsage, "", "want CLIENT LOCATION [TIME], got 1 arguments", false},
		{"whatsat too many", []string{"whatsat", "-addr", addr, "a", "1", "2", "3"}, exitUsage, "", "want CLIENT RADIUS BOUND, got 4 arguments", false},
		{"white space", []string{"iamat", "-addr", addr, "kiwi fruit", "+1.0+1.0"}, exitUsage, "", "contains white space", false},
		{"client after --", []string{"iamat", "-addr", addr, "--", "-dash", "+1.0+1.0", "1520023934.918963997"}, exitOK, "AT Goloman +0.263873386 -dash +1.0+1.0 1520023934.918963997\n", "", false},
		{"flags after the arguments", []string{"iamat", "lemon", "-33.86+151.20", "-addr", addr}, exitOK, "AT Goloman +0.263873386 lemon -33.86+151.20 1520023934.918963997\n", "", false},
		{"flags between and after", []string{"whatsat", "kiwi.cs.ucla.edu", "-timeout", "5s", "10", "0", "-addr=" + addr}, exitOK, kiwiAT + "\n" + emptyJSON + "\n\n", "", false},
		{"a flag's name after --", []string{"iamat", "-addr", addr, "--", "-addr", "+1.0+1.0", "1520023934.918963997"}, exitOK, "AT Goloman +0.263873386 -addr +1.0+1.0 1520023934.918963997\n", "", false},
		{"flag after the arguments without its value", []string{"iamat", "kiwi", "+1.0+1.0", "-addr"}, exitUsage, "", "flag needs an argument: -addr", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, out, errOut := testEnv(nil)
			code := run(context.Background(), e, tc.args)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			if out.String() != tc.stdout {
				t.Errorf("stdout:\n%s", cmp.Diff(tc.stdout, out.String()))
			}
			if !strings.Contains(errOut.String(), tc.stderr) {
				t.Errorf("stderr %q lacks %q", errOut, tc.stderr)
			}
		})
	}
}

func TestClientCommandUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e, out, errOut := testEnv(nil)
	if code := run(context.Background(), e, []string{"iamat", "-addr", addr, "kiwi", "+1.0+1.0"}); code != exitFailure {
		t.Errorf("exit %d", code)
	}
	if out.String() != "" || !strings.Contains(errOut.String(), "herd iamat: client: dial "+addr) {
		t.Errorf("stdout %q, stderr %q", out, errOut)
	}
}

// listening matches the line serve prints once it listens.
var listening = regexp.MustCompile(`^(\S+) listening on (\S+) \(neighbours: (.*)\)$`)

func TestServeConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "herd.json")
	logTmpl := filepath.Join(dir, "logs", "{name}.log")
	writeFile(t, cfgPath, `{
  "servers": [
    {"name": "Goloman", "addr": "127.0.0.1:1", "listen": "127.0.0.1:0"},
    {"name": "Hands", "addr": "127.0.0.1:2"}
  ],
  "links": [["Goloman", "Hands"]],
  "provider": {"kind": "offline"},
  "secret_env": "HERD_SECRET",
  "redial_min": "10ms",
  "redial_max": "20ms",
  "log": `+jsonString(logTmpl)+`,
  "log_lines": true
}`)
	e, out, errOut := testEnv(map[string]string{"HERD_SECRET": "s3cret"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, e, []string{"serve", "-config", cfgPath, "-name", "Goloman", "-close-after-reply"})
	}()
	var addr string
	select {
	case line := <-out.Lines:
		m := listening.FindStringSubmatch(line)
		if m == nil || m[1] != "Goloman" || m[3] != "Hands 127.0.0.1:2" {
			t.Fatalf("first line %q", line)
		}
		addr = m[2]
	case code := <-done:
		t.Fatalf("serve exited %d:\n%s", code, errOut)
	}
	e2, out2, _ := testEnv(nil)
	if code := run(ctx, e2, []string{"iamat", "-addr", addr, "kiwi", "+1.0+1.0", "1520023934.5"}); code != exitOK {
		t.Fatalf("iamat exit %d", code)
	}
	if !strings.HasPrefix(out2.String(), "AT Goloman +") {
		t.Fatalf("iamat printed %q", out2)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("serve exit %d:\n%s", code, errOut)
	}
	if want := "herd serve: Goloman: Places: offline catalogue (39 places)\nherd serve: Goloman: shut down\n"; errOut.String() != want {
		t.Errorf("stderr:\n%s", cmp.Diff(want, errOut.String()))
	}
	log, err := os.ReadFile(filepath.Join(dir, "logs", "Goloman.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{" INFO Goloman listening addr=", ` DEBUG Goloman in conn=c1 line="IAMAT kiwi +1.0+1.0 1520023934.5"`, `why="closed after reply"`} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestServeUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "herd.json")
	writeFile(t, cfgPath, `{"servers": [{"name": "A", "addr": "127.0.0.1:1"}], "secret_env": "UNSET"}`)
	openPath := filepath.Join(dir, "open.json")
	writeFile(t, openPath, `{"servers": [{"name": "A", "addr": "192.0.2.1:12000", "listen": ":12000"}]}`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "-name", "A"}, "herd serve: want -config or -preset (one of them)\n"},
		{[]string{"serve", "-config", cfgPath, "-preset", "2018", "-name", "A"}, "herd serve: want -config or -preset (one of them)\n"},
		{[]string{"serve", "-config", cfgPath, "-port", "1", "-name", "A"}, "herd serve: -port goes with -preset; with -config, set it in the file\n"},
		{[]string{"serve", "-config", cfgPath}, "herd serve: -name is required (one of A)\n"},
		{[]string{"serve", "-config", cfgPath, "-name", "B"}, "herd serve: -name: \"B\" is not in servers (have A)\n"},
		{[]string{"serve", "-config", cfgPath, "-name", "A"}, "herd serve: " + cfgPath + ": secret_env: environment variable UNSET is empty or unset\n"},
		{[]string{"serve", "-config", filepath.Join(dir, "missing.json"), "-name", "A"}, "herd serve: open " + filepath.Join(dir, "missing.json") + ": no such file or directory\n"},
		{[]string{"serve", "-preset", "1999", "-name", "A"}, "herd serve: -preset: \"1999\" is not a preset (have 2016, 2017, 2018, 2020, 2021, 2022, 2023)\n"},
		{[]string{"serve", "-preset", "2018", "-port", "65534", "-name", "Goloman"}, "herd serve: -port: 65534: want 1 to 65531, so that the 5 servers get ports\n"},
		{[]string{"serve", "-preset", "2018", "-name", "Goloman", "-places", "legacy"}, "herd serve: key: must be set for kind \"legacy\" (the key comes from $GOOGLE_MAPS_API_KEY, which is empty or unset)\n"},
		{[]string{"serve", "-preset", "2018", "-name", "Goloman", "-places-url", "http://127.0.0.1:1"}, "herd serve: -places-url: only Google kinds use it, and kind is \"offline\" because Key is empty\n"},
		{[]string{"serve", "-preset", "2018", "-host", "0.0.0.0", "-name", "Hands"}, "herd serve: Hands: listen address 0.0.0.0:12001 is not loopback and no peer secret is set: anyone who reaches it could pose as a neighbour (protected mode); set one with -secret-env VAR, or -insecure-peers to accept unauthenticated peers anyway\n"},
		{[]string{"serve", "-config", openPath, "-name", "A"}, "herd serve: A: listen address :12000 is not loopback and no peer secret is set: anyone who reaches it could pose as a neighbour (protected mode); set secret_env in the config file, or insecure_peers to accept unauthenticated peers anyway\n"},
		{[]string{"serve", "-preset", "2018", "-name", "Goloman", "-log-level", "loud"}, "herd serve: -log-level: \"loud\" is not a log level (want debug, info, warn or error)\n"},
		{[]string{"serve", "-preset", "2018", "-name", "Goloman", "-ack", "durable"}, "herd serve: ack: \"durable\" needs state_file (or -state-file): the log it waits for\n"},
		{[]string{"serve", "-config", cfgPath, "-name", "A", "-ack", "often"}, "herd serve: " + cfgPath + " with -ack or -state-file: ack: \"often\" is not an ack mode (want table or durable)\n"},
	} {
		e, out, errOut := testEnv(nil)
		code := run(context.Background(), e, tc.args)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d", tc.args, code, exitUsage)
		}
		got := errOut.String()
		if i := strings.Index(got, "\nusage:"); i >= 0 {
			got = got[:i+1] // usageError adds the usage line
		}
		if got != tc.want {
			t.Errorf("%q: stderr:\n%s", tc.args, cmp.Diff(tc.want, got))
		}
		if out.String() != "" {
			t.Errorf("%q: stdout %q", tc.args, out)
		}
	}
}

func TestServePrintConfig(t *testing.T) {
	e, out, errOut := testEnv(nil)
	code := run(context.Background(), e, []string{"serve", "-preset", "2018", "-port", "13000", "-places", "legacy", "-places-url", "http://127.0.0.1:9999", "-secret-env", "HERD_SECRET",
		"-state-file", "/var/lib/herd/{name}.state", "-ack", "durable", "-print-config"})
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `{
  "servers": [
    {"name":"Goloman","addr":"127.0.0.1:13000"},
    {"name":"Hands","addr":"127.0.0.1:13001"},
    {"name":"Holiday","addr":"127.0.0.1:13002"},
    {"name":"Welsh","addr":"127.0.0.1:13003"},
    {"name":"Wilkes","addr":"127.0.0.1:13004"}
  ],
  "links": [
    ["Goloman","Hands"],
    ["Goloman","Holiday"],
    ["Goloman","Wilkes"],
    ["Hands","Wilkes"],
    ["Holiday","Welsh"],
    ["Holiday","Wilkes"]
  ],
  "provider": {
    "kind": "legacy",
    "base_url": "http://127.0.0.1:9999"
  },
  "secret_env": "HERD_SECRET",
  "state_file": "/var/lib/herd/{name}.state",
  "ack": "durable"
}
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Fatalf("config (-want +got):\n%s", diff)
	}
	// The printed config is a valid config file for the same herd.
	fc, err := parseConfig([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(herd.Presets["2018"], fc.topology()); diff != "" {
		t.Errorf("topology (-preset +file):\n%s", diff)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func jsonString(s string) string { return fmt.Sprintf("%q", s) }

func TestVersionLine(t *testing.T) {
	for _, tc := range []struct {
		info debug.BuildInfo
		want string
	}{
		{debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/proxyherd/herd", Version: "v1.2.0"}, Settings: []debug.BuildSetting{
			{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.time", Value: "2026-11-29T15:04:05Z"}, {Key: "vcs.modified", Value: "true"},
		}}, "herd v1.2.0 (revision 0123456789ab, 2026-11-29T15:04:05Z, modified) go1.26.8 linux/amd64"},
		{debug.BuildInfo{GoVersion: "go1.25.0", Main: debug.Module{Path: "github.com/proxyherd/herd", Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"},
		}}, "herd (devel) (revision abc) go1.25.0"},
		{debug.BuildInfo{GoVersion: "go1.25.0"}, "herd (devel) go1.25.0"},
	} {
		if got := versionLine(&tc.info); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
	e, out, errOut := testEnv(nil)
	if code := run(context.Background(), e, []string{"version"}); code != exitOK || !strings.HasPrefix(out.String(), "herd ") {
		t.Errorf("herd version: exit %d, %q %q", code, out, errOut)
	}
	e, _, errOut = testEnv(nil)
	if code := run(context.Background(), e, []string{"version", "extra"}); code != exitUsage || !strings.Contains(errOut.String(), "unexpected arguments") {
		t.Errorf("herd version extra: exit %d, %q", code, errOut)
	}
}

// TestServeBusyPort: a port already taken is reported once, in the
// listener's words, without the library's "herd: " after "herd serve: ".
func TestServeBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	e, _, errOut := testEnv(nil)
	if code := run(context.Background(), e, []string{"serve", "-preset", "2018", "-port", port, "-name", "Goloman"}); code != exitFailure {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailure, errOut)
	}
	if want := "herd serve: Goloman: listen tcp " + addr + ": bind: address already in use\n"; errOut.String() != want {
		t.Errorf("stderr:\n%s", cmp.Diff(want, errOut.String()))
	}
}
