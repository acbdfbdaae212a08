// Package e2e tests herd as users run it: the herd command and the
// five-server demo, built with go build and run as separate processes on
// loopback, talked to with package client. Nothing here contacts an
// address other than 127.0.0.1 (the Places provider is a local fake),
// except the real-network test (netns_test.go), which uses addresses of
// its own inside network namespaces it makes and deletes.
//
// Across processes the only way to wait for flooding is to ask: the tests
// poll with "WHATSAT client 1 0" and a short real-time pause, and bound
// every wait (waitFor) so that a broken herd fails with a clear message
// instead of hanging.
package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxyherd/herd/client"
)

// Bounds on waiting. They are far above what a healthy herd needs (tens of
// milliseconds), so only a broken herd meets them.
const (
	waitBound = 20 * time.Second
	pollPause = 20 * time.Millisecond
)

// bins holds the binaries TestMain builds: "herd" and "fivenode".
var bins = map[string]string{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		for name, pkg := range map[string]string{
			"herd":     "github.com/proxyherd/herd/cmd/herd",
			"fivenode": "github.com/proxyherd/herd/examples/fivenode",
		} {
			bin := filepath.Join(dir, name)
			args := []string{"build", "-o", bin}
			if raceEnabled {
				args = append(args, "-race") // the processes are checked too
			}
			cmd := exec.Command(goTool(), append(args, pkg)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
				return 1
			}
			bins[name] = bin
		}
		return m.Run()
	}()
	os.Exit(code)
}

// goTool finds the go command that runs the tests.
func goTool() string {
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		if p := filepath.Join(goroot, "bin", "go"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// childEnv is the environment of every process the tests start: theirs,
// without anything that could make a server reach a real provider.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k == "GOOGLE_MAPS_API_KEY" || strings.HasPrefix(k, "HERD_") {
			continue
		}
		env = append(env, kv)
	}
	if raceEnabled {
		// A race-built process sleeps 1s at exit by default; a race it
		// finds still makes it exit with status 66.
		env = append(env, "GORACE=atexit_sleep_ms=0")
	}
	return append(env, extra...)
}

// fakePlaces is a local stand-in for Google's legacy Nearby Search.
type fakePlaces struct {
	*httptest.Server
	mu      sync.Mutex
	queries []url.Values
}

// placesDoc is what the fake answers: three results, laid out as Google
// lays them out, with trailing newlines the server must drop.
const placesDoc = `{
   "html_attributions" : [],
   "results" : [
      {
         "name" : "Boelter Hall",
         "vicinity" : "580 Portola Plaza, Los Angeles"
      },
      {
         "name" : "Engineering VI",
         "vicinity" : "404 Westwood Plaza, Los Angeles"
      },
      {
         "name" : "Ackerman Union",
         "vicinity" : "308 Westwood Plaza, Los Angeles"
      }
   ],
   "status" : "OK"
}


`

// placesDocFirstTwo is placesDoc as a WHATSAT with a bound of 2 sends it.
const placesDocFirstTwo = `{
   "html_attributions" : [],
   "results" : [
      {
         "name" : "Boelter Hall",
         "vicinity" : "580 Portola Plaza, Los Angeles"
      },
      {
         "name" : "Engineering VI",
         "vicinity" : "404 Westwood Plaza, Los Angeles"
      }
   ],
   "status" : "OK"
}`

func newFakePlaces(t *testing.T) *fakePlaces {
	f := &fakePlaces{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/maps/api/place/nearbysearch/json" {
			http.NotFound(w, r)
			return
		}
		f.mu.Lock()
		f.queries = append(f.queries, r.URL.Query())
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, placesDoc)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakePlaces) lastQuery() url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queries) == 0 {
		return nil
	}
	return f.queries[len(f.queries)-1]
}

// proc is one running process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *lines
	stderr *lines
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, once done is closed
}

// lines collects a process's output and hands out its complete lines.
type lines struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	part []byte
	ch   chan string
}

func newLines() *lines { return &lines{ch: make(chan string, 1000)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			break
		}
		select {
		case l.ch <- string(l.part[:i]):
		default:
		}
		l.part = l.part[i+1:]
	}
	return len(p), nil
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start runs bin with args; the process is killed at the end of the test
// if it is still running.
func start(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, stdout: newLines(), stderr: newLines(), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// expectLine waits for the process to print a line matching re on stdout.
func (p *proc) expectLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.NewTimer(waitBound)
	defer timeout.Stop()
	for {
		select {
		case line := <-p.stdout.ch:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing a line matching %s\nstdout:\n%s\nstderr:\n%s", p.name, p.err, re, p.stdout, p.stderr)
		case <-timeout.C:
			t.Fatalf("%s printed no line matching %s within %v\nstdout:\n%s\nstderr:\n%s", p.name, re, waitBound, p.stdout, p.stderr)
		}
	}
}

// stop sends sig and waits for the process to exit with status 0.
func (p *proc) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(waitBound):
		t.Fatalf("%s did not exit within %v of %v\nstderr:\n%s", p.name, waitBound, sig, p.stderr)
	}
	if p.err != nil {
		t.Fatalf("%s exited with %v after %v, want status 0\nstderr:\n%s", p.name, p.err, sig, p.stderr)
	}
}

// freePorts reserves n distinct loopback ports by listening on port 0,
// and releases them for the servers. Another process could take one in
// between (a small race the tests accept: the server would fail to listen
// and the test would say so).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs
}

// ask sends one command on a fresh connection, with a short bound.
func ask[T any](addr string, do func(ctx context.Context, c *client.Conn) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var zero T
	c, err := client.Dial(ctx, addr)
	if err != nil {
		return zero, err
	}
	defer c.Close()
	return do(ctx, c)
}

func iamat(t *testing.T, addr, id, location, when string) string {
	t.Helper()
	at, err := ask(addr, func(ctx context.Context, c *client.Conn) (client.AT, error) {
		return c.IAMATText(ctx, id, location, when)
	})
	if err != nil {
		t.Fatalf("IAMAT %s at %s: %v", id, addr, err)
	}
	return at.Line
}

// record reads a server's AT line for id with "WHATSAT id 1 0".
func record(addr, id string) (string, error) {
	nb, err := ask(addr, func(ctx context.Context, c *client.Conn) (*client.Nearby, error) {
		return c.WHATSATText(ctx, id, "1", "0")
	})
	if err != nil {
		return "", err
	}
	return nb.AT.Line, nil
}

// waitRecord polls server (at addr) until its record of id is want.
func waitRecord(t *testing.T, server, addr, id, want string) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for {
		got, err := record(addr, id)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			last := fmt.Sprintf("%q", got)
			if err != nil {
				last = err.Error()
			}
			t.Fatalf("%s never held %q within %v; last answer: %s", server, want, waitBound, last)
		}
		time.Sleep(pollPause)
	}
}

// whatsat returns an ask function for "WHATSAT id radius bound".
func whatsat(id, radius, bound string) func(ctx context.Context, c *client.Conn) (*client.Nearby, error) {
	return func(ctx context.Context, c *client.Conn) (*client.Nearby, error) {
		return c.WHATSATText(ctx, id, radius, bound)
	}
}

func listenOn(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func itoa(n int) string { return strconv.Itoa(n) }
