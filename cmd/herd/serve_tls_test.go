package main

// serve_tls_test.go: serve's metrics server, the config file's tls
// section and the client subcommands' TLS flags, run in-process through
// run() as a user would run them.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-multierror"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/testcert"
	"github.com/proxyherd/herd/places"
)

// logWatch is an output that lets a test wait for text to appear in it.
type logWatch struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogWatch() *logWatch { return &logWatch{changed: make(chan struct{})} }

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

func (w *logWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until every one of res matches one line of the output.
func (w *logWatch) waitFor(t *testing.T, what string, res ...*regexp.Regexp) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		text, ch := w.buf.String(), w.changed
		w.mu.Unlock()
		var missing *regexp.Regexp
		for _, re := range res {
			if !re.MatchString(text) {
				missing = re
				break
			}
		}
		if missing == nil {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: output never matched %s:\n%s", what, missing, text)
		}
	}
}

// served is a "herd serve" running in-process.
type served struct {
	stdout *lineWriter
	stderr *logWatch
	cancel context.CancelFunc
	done   chan int
	addr   string
	vars   string // the expvar URL (/debug/vars), if it printed its HTTP endpoint
	base   string // the HTTP endpoint's base URL, ending in "/"
}

// serveInProcess runs "herd serve" with args and waits for it to listen
// (and, with wantMetrics, to print its metrics URL).
func serveInProcess(t *testing.T, wantMetrics bool, args ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{stdout: newLineWriter(), stderr: newLogWatch(), cancel: cancel, done: make(chan int, 1)}
	e := &env{stdout: s.stdout, stderr: s.stderr, getenv: func(string) string { return "" }, now: time.Now}
	go func() { s.done <- run(ctx, e, append([]string{"serve"}, args...)) }()
	t.Cleanup(func() { s.stop(t) })
	statusLine := regexp.MustCompile(`^\S+ status page at (http://\S+/)$`)
	metricsLine := regexp.MustCompile(`^\S+ metrics at (http://\S+/)metrics$`)
	metrics := ""
	for s.addr == "" || (wantMetrics && (s.vars == "" || metrics == "")) {
		select {
		case line := <-s.stdout.Lines:
			if m := listening.FindStringSubmatch(line); m != nil {
				s.addr = m[2]
			} else if m := statusLine.FindStringSubmatch(line); m != nil {
				s.base, s.vars = m[1], m[1]+"debug/vars"
			} else if m := metricsLine.FindStringSubmatch(line); m != nil && m[1] == s.base {
				metrics = m[1]
			} else {
				t.Fatalf("serve printed %q", line)
			}
		case code := <-s.done:
			s.done <- code
			t.Fatalf("serve %q exited %d:\n%s", args, code, s.stderr)
		case <-time.After(20 * time.Second):
			t.Fatalf("serve %q did not start within 20s:\n%s", args, s.stderr)
		}
	}
	return s
}

// stop cancels the server and checks that it shut down cleanly. It is
// idempotent.
func (s *served) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		if code != exitOK {
			t.Errorf("serve exited %d:\n%s", code, s.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not shut down within 20s")
	}
}

// getVars fetches and decodes a metrics document.
func getVars(t *testing.T, url string) (map[string]json.RawMessage, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("GET %s: %s, %s:\n%s", url, resp.Status, resp.Header.Get("Content-Type"), body)
	}
	var vars map[string]json.RawMessage
	if err := json.Unmarshal(body, &vars); err != nil {
		t.Fatalf("GET %s: not JSON: %v\n%s", url, err, body)
	}
	return vars, string(body)
}

func herdStats(t *testing.T, vars map[string]json.RawMessage) herd.Stats {
	t.Helper()
	var s herd.Stats
	if err := json.Unmarshal(vars["herd"], &s); err != nil {
		t.Fatalf("herd: %v in %s", err, vars["herd"])
	}
	return s
}

func TestServeMetrics(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "herd.json")
	writeFile(t, cfgPath, `{
  "servers": [{"name": "Goloman", "addr": "127.0.0.1:1", "listen": "127.0.0.1:0", "metrics": "127.0.0.1:0"}],
  "provider": {"kind": "offline"},
  "log_level": "warn",
  "log_lines": true
}`)
	s := serveInProcess(t, true, "-config", cfgPath, "-name", "Goloman")
	if !strings.HasSuffix(s.vars, "/debug/vars") {
		t.Fatalf("metrics URL %q", s.vars)
	}
	vars, body := getVars(t, s.vars)
	// expvar's format: an object, one variable per line, keys sorted, the
	// process's own expvar variables included.
	var keys []string
	for _, line := range strings.Split(body, "\n") {
		if m := regexp.MustCompile(`^"([^"]+)": `).FindStringSubmatch(line); m != nil {
			keys = append(keys, m[1])
		}
	}
	if want := []string{"cmdline", "herd", "herd_log", "herd_places", "memstats"}; !cmp.Equal(keys, want) {
		t.Errorf("variables %q, want %q\n%s", keys, want, body)
	}
	if !strings.HasPrefix(body, "{\n") || !strings.HasSuffix(body, "\n}\n") {
		t.Errorf("not laid out like expvar's /debug/vars:\n%s", body)
	}
	if st := herdStats(t, vars); st.IAMAT != 0 || st.Clients != 0 {
		t.Fatalf("fresh server: %+v", st)
	}

	// An IAMAT and a WHATSAT move the counters.
	e, out, errOut := testEnv(nil)
	if code := run(context.Background(), e, []string{"iamat", "-addr", s.addr, "kiwi", "+34.068930-118.445127", "1520023934.5"}); code != exitOK {
		t.Fatalf("iamat exit %d: %s", code, errOut)
	}
	if code := run(context.Background(), e, []string{"whatsat", "-addr", s.addr, "kiwi", "1", "2"}); code != exitOK {
		t.Fatalf("whatsat exit %d: %s %s", code, out, errOut)
	}
	vars, _ = getVars(t, s.vars)
	st := herdStats(t, vars)
	if st.IAMAT != 1 || st.WHATSAT != 1 || st.Clients != 1 || st.RecordsLocal != 1 || st.ConnsAccepted != 2 || st.PlacesCalls != 1 {
		t.Fatalf("after IAMAT and WHATSAT: %+v", st)
	}
	var places places.FrugalStats
	if err := json.Unmarshal(vars["herd_places"], &places); err != nil || places.Lookups != 1 {
		t.Fatalf("herd_places %s (%v), want one lookup", vars["herd_places"], err)
	}
	// The same in Prometheus's format, with the latency histograms, and
	// the rest of package herdhttp's endpoints; no profiles without -pprof.
	code, prom := httpGet(t, s.base+"metrics")
	for _, want := range []string{"herd_iamat_total 1\n", "herd_whatsat_total 1\n", "herd_frugal_lookups_total 1\n", "herd_iamat_seconds_count 1\n", `herd_places_call_seconds_count{outcome="ok"} 1` + "\n"} {
		if code != http.StatusOK || !strings.Contains(prom, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	for path, want := range map[string]int{"healthz": 200, "readyz": 200, "": 200, "status.json": 200, "debug/pprof/": 404} {
		if code, _ := httpGet(t, s.base+path); code != want {
			t.Errorf("GET /%s: %d, want %d", path, code, want)
		}
	}
	// Each line in and out was logged (before its reply was written).
	var logCounts struct{ Lines, Dropped uint64 }
	if err := json.Unmarshal(vars["herd_log"], &logCounts); err != nil || logCounts.Lines < 4 || logCounts.Dropped != 0 {
		t.Fatalf("herd_log %s (%v), want at least 4 lines and none dropped", vars["herd_log"], err)
	}

	// The metrics server shuts down with the node.
	s.stop(t)
	if resp, err := http.Get(s.vars); err == nil {
		resp.Body.Close()
		t.Fatalf("metrics still served after shutdown: %s", resp.Status)
	}
}

func TestServeMetricsFlag(t *testing.T) {
	// -metrics in -preset mode; two servers in one process each serve
	// their own (nothing is published in expvar's global registry).
	port := strconv.Itoa(reservePorts(t, 2))
	a := serveInProcess(t, true, "-preset", "2018", "-port", port, "-name", "Goloman", "-metrics", "127.0.0.1:0", "-log-level", "error")
	b := serveInProcess(t, true, "-preset", "2018", "-port", port, "-name", "Hands", "-http", "localhost:0", "-pprof", "-log-level", "error")
	if a.vars == b.vars {
		t.Fatalf("both at %s", a.vars)
	}
	for _, s := range []*served{a, b} {
		vars, _ := getVars(t, s.vars)
		herdStats(t, vars)
	}
	// Profiles only where -pprof asked for them.
	if code, _ := httpGet(t, a.base+"debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("Goloman's pprof without -pprof: %d", code)
	}
	if code, _ := httpGet(t, b.base+"debug/pprof/"); code != http.StatusOK {
		t.Errorf("Hands' pprof with -pprof: %d", code)
	}
}

// httpGet fetches url and returns the status code and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
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

// reservePorts returns the first of n consecutive free loopback ports
// (presets give consecutive ports). It is racy: another process could take
// one before the server listens, and a test that loses fails saying so.
func reservePorts(t *testing.T, n int) int {
	t.Helper()
	for range 500 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		first := ln.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{ln}
		ok := true
		for i := 1; i < n && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first+i))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			l.Close()
		}
		if ok {
			return first
		}
	}
	t.Fatal("no run of free ports")
	return 0
}

func TestServeHTTPAddrErrors(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "herd.json")
	writeFile(t, cfgPath, `{"servers": [{"name": "A", "addr": "127.0.0.1:1", "http": "127.0.0.1:9100", "metrics": "127.0.0.1:9100"}], "metrics": "127.0.0.1"}`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "-preset", "2018", "-name", "Goloman", "-metrics", "127.0.0.1"},
			`herd serve: -metrics: "127.0.0.1": missing port in address` + "\n"},
		{[]string{"serve", "-preset", "2018", "-name", "Goloman", "-http", "127.0.0.1:http"},
			`herd serve: -http: "127.0.0.1:http": port "http" is not a number from 0 to 65535` + "\n"},
		{[]string{"serve", "-preset", "2018", "-name", "Goloman", "-http", "127.0.0.1:0", "-metrics", "127.0.0.1:0"},
			"herd serve: -metrics is another name for -http: give one of them\n"},
		{[]string{"serve", "-preset", "2018", "-name", "Goloman", "-pprof"},
			"herd serve: -pprof: profiles are served on the HTTP endpoint: set -http (or the config's http)\n"},
		{[]string{"serve", "-config", cfgPath, "-name", "A"},
			"herd serve: " + cfgPath + ": servers[0].metrics: is another name for servers[0].http: set one of them\n" +
				"herd serve: " + cfgPath + `: metrics: "127.0.0.1": missing port in address` + "\n"},
	} {
		e, _, errOut := testEnv(nil)
		if code := run(context.Background(), e, tc.args); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", tc.args, code, exitUsage)
		}
		got := errOut.String()
		if i := strings.Index(got, "\nusage:"); i >= 0 {
			got = got[:i+1]
		}
		if got != tc.want {
			t.Errorf("%q: stderr:\n%s", tc.args, cmp.Diff(tc.want, got))
		}
	}
}

func TestServeHTTPWarnsUnlessLoopback(t *testing.T) {
	// Any address is allowed, with a warning in the log. 192.0.2.1
	// (TEST-NET-1) is not this machine's, so nothing is exposed: the
	// warning comes, then the listen fails.
	e, out, errOut := testEnv(nil)
	code := run(context.Background(), e, []string{"serve", "-preset", "2018", "-port", "1", "-name", "Goloman", "-http", "192.0.2.1:9100"})
	log := errOut.String()
	if code != exitFailure || !strings.Contains(log, ` WARN HTTP endpoint is not on loopback`) || !strings.Contains(log, "addr=192.0.2.1:9100") ||
		!strings.Contains(log, "herd serve: Goloman: http: listen tcp 192.0.2.1:9100: ") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, log)
	}
	// A loopback address gets no warning.
	e, out, errOut = testEnv(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code = run(context.Background(), e, []string{"serve", "-preset", "2018", "-port", "1", "-name", "Goloman", "-http", ln.Addr().String()})
	if code != exitFailure || strings.Contains(errOut.String(), "loopback") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

func TestServeMetricsPortBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e, out, errOut := testEnv(nil)
	code := run(context.Background(), e, []string{"serve", "-preset", "2018", "-port", "1", "-name", "Goloman", "-metrics", ln.Addr().String()})
	if code != exitFailure || !strings.Contains(errOut.String(), "herd serve: Goloman: http: listen tcp "+ln.Addr().String()+": bind: address already in use") {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

// tlsHerd writes a CA, certificates for Goloman and Hands, and a config
// file for the two on free loopback ports with mutual TLS. It returns the
// config file's path and the directory.
func tlsHerd(t *testing.T, tlsSection string) (cfgPath, dir string) {
	t.Helper()
	dir = t.TempDir()
	testcert.New(t, "herd test CA ca.pem").WriteFiles(t, filepath.Join(dir, "ca.pem"), filepath.Join(dir, "certs"), "Goloman", "Hands")
	port := reservePorts(t, 2)
	cfgPath = filepath.Join(dir, "herd.json")
	if tlsSection == "" {
		tlsSection = fmt.Sprintf(`{"cert": %q, "key": %q, "ca": %q, "require_peer_cert": true}`,
			filepath.Join(dir, "certs", "{name}.crt"), filepath.Join(dir, "certs", "{name}.key"), filepath.Join(dir, "ca.pem"))
	}
	writeFile(t, cfgPath, fmt.Sprintf(`{
  "servers": [{"name": "Goloman", "addr": "127.0.0.1:%d"}, {"name": "Hands", "addr": "127.0.0.1:%d"}],
  "links": [["Goloman", "Hands"]],
  "provider": {"kind": "offline"},
  "redial_min": "10ms",
  "redial_max": "50ms",
  "tls": %s
}`, port, port+1, tlsSection))
	return cfgPath, dir
}

func TestServeMutualTLS(t *testing.T) {
	cfgPath, dir := tlsHerd(t, "")
	caFile := filepath.Join(dir, "ca.pem")
	goloman := serveInProcess(t, false, "-config", cfgPath, "-name", "Goloman", "-log", "-")
	hands := serveInProcess(t, false, "-config", cfgPath, "-name", "Hands", "-log", "-", "-log-lines")
	// Goloman dials Hands; both verify the other's certificate.
	linkUp := regexp.MustCompile(` INFO \S+ peer link up conn=\S+ peer=`)
	goloman.stderr.waitFor(t, "Goloman", linkUp)
	hands.stderr.waitFor(t, "Hands", linkUp)

	// The client subcommands talk TLS with -tls-ca; a report at Goloman
	// floods to Hands over the TLS link.
	e, out, errOut := testEnv(nil)
	if code := run(context.Background(), e, []string{"iamat", "-addr", goloman.addr, "-tls-ca", caFile, "kiwi", "+34.068930-118.445127", "1520023934.5"}); code != exitOK {
		t.Fatalf("iamat over TLS: exit %d: %s", code, errOut)
	}
	at := strings.TrimSuffix(out.String(), "\n")
	if !regexp.MustCompile(`^AT Goloman [+-]\d+\.\d{9} kiwi \+34\.068930-118\.445127 1520023934\.5$`).MatchString(at) {
		t.Fatalf("iamat printed %q", out)
	}
	hands.stderr.waitFor(t, "Hands", regexp.MustCompile(` DEBUG Hands in conn=\S+ line="`+regexp.QuoteMeta(at)+`"`))
	e, out, errOut = testEnv(nil)
	if code := run(context.Background(), e, []string{"whatsat", "-addr", hands.addr, "-tls-ca", caFile, "kiwi", "1", "0"}); code != exitOK {
		t.Fatalf("whatsat over TLS: exit %d: %s", code, errOut)
	}
	if want := at + "\n{\n   \"html_attributions\" : [],\n   \"results\" : [],\n   \"status\" : \"OK\"\n}\n\n"; out.String() != want {
		t.Fatalf("whatsat at Hands:\n%s", cmp.Diff(want, out.String()))
	}
	// A client certificate is optional (client_auth verify_if_given).
	e, _, errOut = testEnv(nil)
	if code := run(context.Background(), e, []string{"whatsat", "-addr", hands.addr, "-tls-ca", caFile,
		"-tls-cert", filepath.Join(dir, "certs", "Goloman.crt"), "-tls-key", filepath.Join(dir, "certs", "Goloman.key"), "kiwi", "1", "0"}); code != exitOK {
		t.Fatalf("whatsat with a client certificate: exit %d: %s", code, errOut)
	}
	// Without TLS, or without the CA, the client gets nowhere.
	e, _, errOut = testEnv(nil)
	if code := run(context.Background(), e, []string{"whatsat", "-addr", hands.addr, "-tls", "-timeout", "5s", "kiwi", "1", "0"}); code != exitFailure ||
		!strings.Contains(errOut.String(), "certificate signed by unknown authority") {
		t.Fatalf("TLS client without -tls-ca: exit %d: %s", code, errOut)
	}

	// Hands comes back with a certificate from another CA: Goloman's
	// handshake refuses it and its log says why.
	hands.stop(t)
	rogueDir := t.TempDir()
	testcert.New(t, "herd test CA ca.pem").WriteFiles(t, filepath.Join(rogueDir, "ca.pem"), filepath.Join(rogueDir, "certs"), "Hands")
	rogueCfg := filepath.Join(rogueDir, "herd.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, rogueCfg, strings.ReplaceAll(string(data), dir, rogueDir))
	serveInProcess(t, false, "-config", rogueCfg, "-name", "Hands", "-log", "-")
	goloman.stderr.waitFor(t, "Goloman", regexp.MustCompile(` INFO Goloman peer dial failed peer=Hands .*certificate signed by unknown authority`))
}

func TestServeTLSConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, tls string
		want      []string
	}{
		{"empty", `{}`, []string{"tls.cert: must be set: the server's certificate (PEM file)", "tls.key: must be set: the server's private key (PEM file)"}},
		{"bad policy", `{"cert": "c", "key": "k", "client_auth": "always"}`, []string{`tls.client_auth: "always" is not a policy (want none, verify_if_given or require)`}},
		{"peer cert without client auth", `{"cert": "c", "key": "k", "client_auth": "none", "require_peer_cert": true}`,
			[]string{`tls.require_peer_cert: needs tls.client_auth "verify_if_given" or "require": with "none" no server ever sees the certificate of a neighbour that dials it`}},
		{"unknown field", `{"cert": "c", "key": "k", "certs": "x"}`, []string{`tls: unknown field "certs"`}},
		{"type", `{"cert": 5, "key": "k"}`, []string{`tls.cert: must be a string, not number`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(`{"servers": [{"name": "A", "addr": "127.0.0.1:1"}], "tls": ` + tc.tls + `}`))
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tc.want, errorLines(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// errorLines lists the problems in err, one per multierror entry.
func errorLines(err error) []string {
	var got []string
	var me *multierror.Error
	if errors.As(err, &me) {
		for _, e := range me.Errors {
			got = append(got, e.Error())
		}
		return got
	}
	return []string{err.Error()}
}

func TestServeTLSFileErrors(t *testing.T) {
	dir := t.TempDir()
	testcert.New(t, "herd test CA ca.pem").WriteFiles(t, filepath.Join(dir, "ca.pem"), dir, "A", "B")
	writeFile(t, filepath.Join(dir, "junk.pem"), "not PEM\n")
	for _, tc := range []struct {
		name, tls string
		want      []string
	}{
		{"missing files", `{"cert": "{dir}/nope/{name}.crt", "key": "{dir}/nope/{name}.key", "ca": "{dir}/nope/ca.pem"}`, []string{
			"tls.cert: open {dir}/nope/A.crt: no such file or directory",
			"tls.key: open {dir}/nope/A.key: no such file or directory",
			"tls.ca: open {dir}/nope/ca.pem: no such file or directory",
		}},
		{"mismatched key", `{"cert": "{dir}/A.crt", "key": "{dir}/B.key"}`, []string{
			"tls.cert, tls.key: {dir}/A.crt and {dir}/B.key: private key does not match public key",
		}},
		{"CA bundle without certificates", `{"cert": "{dir}/A.crt", "key": "{dir}/A.key", "ca": "{dir}/junk.pem"}`, []string{
			"tls.ca: {dir}/junk.pem: no PEM certificate in it",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc, err := parseConfig([]byte(`{"servers": [{"name": "A", "addr": "127.0.0.1:1"}], "provider": {"kind": "offline"}, "tls": ` + strings.ReplaceAll(tc.tls, "{dir}", dir) + `}`))
			if err != nil {
				t.Fatal(err)
			}
			_, places, err := fc.nodeConfig("A", func(string) string { return "" }, func(s string) string { return s })
			if err == nil {
				places.Close()
				t.Fatal("no error")
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, strings.ReplaceAll(w, "{dir}", dir))
			}
			if diff := cmp.Diff(want, errorLines(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServeTLSPresetFlags(t *testing.T) {
	e, out, errOut := testEnv(nil)
	code := run(context.Background(), e, []string{"serve", "-preset", "2018", "-tls-cert", "/etc/herd/{name}.crt", "-tls-key", "/etc/herd/{name}.key", "-tls-ca", "/etc/herd/ca.pem", "-tls-require-peer-cert", "-print-config"})
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `  "tls": {
    "cert": "/etc/herd/{name}.crt",
    "key": "/etc/herd/{name}.key",
    "ca": "/etc/herd/ca.pem",
    "require_peer_cert": true
  }
}
`
	if !strings.HasSuffix(out.String(), want) {
		t.Fatalf("config:\n%s\nwant it to end with:\n%s", out, want)
	}
	if _, err := parseConfig([]byte(out.String())); err != nil {
		t.Fatalf("printed config does not parse: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "-preset", "2018", "-name", "Goloman", "-tls-ca", "/x.pem"},
			"herd serve: -tls-cert: must be set: the server's certificate (PEM file)\nherd serve: -tls-key: must be set: the server's private key (PEM file)\n"},
		{[]string{"serve", "-config", "x.json", "-name", "Goloman", "-tls-cert", "c"},
			"herd serve: -tls-cert goes with -preset; with -config, set it in the file\n"},
	} {
		e, _, errOut := testEnv(nil)
		if code := run(context.Background(), e, tc.args); code != exitUsage {
			t.Errorf("%q: exit %d", tc.args, code)
		}
		got := errOut.String()
		if i := strings.Index(got, "\nusage:"); i >= 0 {
			got = got[:i+1]
		}
		if got != tc.want {
			t.Errorf("%q: stderr:\n%s", tc.args, cmp.Diff(tc.want, got))
		}
	}
}

func TestClientTLSFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"iamat", "-tls-cert", "c.pem", "kiwi", "+1.0+1.0"}, "herd iamat: -tls-cert and -tls-key go together\n"},
		{[]string{"whatsat", "-tls-ca", filepath.Join(dir, "none.pem"), "kiwi", "1", "0"}, "herd whatsat: -tls-ca: open " + filepath.Join(dir, "none.pem") + ": no such file or directory\n"},
	} {
		e, _, errOut := testEnv(nil)
		if code := run(context.Background(), e, tc.args); code != exitUsage {
			t.Errorf("%q: exit %d", tc.args, code)
		}
		got := errOut.String()
		if i := strings.Index(got, "\nusage:"); i >= 0 {
			got = got[:i+1]
		}
		if got != tc.want {
			t.Errorf("%q: stderr:\n%s", tc.args, cmp.Diff(tc.want, got))
		}
	}
}
