package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/proxyherd/herd/client"
	"github.com/proxyherd/herd/internal/leakcheck"
)

// TestMain fails the run if a node or client goroutine outlives the tests.
func TestMain(m *testing.M) {
	leakcheck.Main(m, "client.(*Conn).readLoop", "herd.(*Node)", "herd.(*Frugal)", "logging.(*Writer)")
}

// output is a concurrency-safe buffer that hands out complete lines.
type output struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
	part  []byte
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	o.part = append(o.part, p...)
	for {
		i := bytes.IndexByte(o.part, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case o.lines <- string(o.part[:i]):
		default: // nobody reads this output's lines (stderr, usually)
		}
		o.part = o.part[i+1:]
	}
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func noEnv(string) string { return "" }

func TestRunServesAndShutsDown(t *testing.T) {
	stdout, stderr := &output{lines: make(chan string, 100)}, &output{lines: make(chan string, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-port", "0"}, stdout, stderr, noEnv, nil) }()

	re := regexp.MustCompile(`^(\S+) listening on (\S+) `)
	addrs := map[string]string{}
	for line := range stdout.lines {
		if m := re.FindStringSubmatch(line); m != nil {
			addrs[m[1]] = m[2]
		}
		if strings.HasPrefix(line, "Stop with") {
			break
		}
	}
	if len(addrs) != 5 {
		t.Fatalf("addresses %v; stdout:\n%s", addrs, stdout)
	}
	forgedPeerRefused(t, addrs["Hands"])
	c, err := client.Dial(ctx, addrs["Wilkes"])
	if err != nil {
		t.Fatal(err)
	}
	at, err := c.IAMATText(ctx, "kiwi", "+34.068930-118.445127", "1520023934.918963997")
	c.Close()
	if err != nil || !strings.HasPrefix(at.Line, "AT Wilkes +") {
		t.Fatalf("IAMAT = %q, %v", at.Line, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if !strings.HasSuffix(stdout.String(), "Shut down.\n") || !strings.Contains(stdout.String(), "Places: offline catalogue") {
		t.Errorf("stdout:\n%s", stdout)
	}
	// Links still coming up when the herd shuts down may log warnings;
	// nothing worse.
	if strings.Contains(stderr.String(), " ERROR ") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-port", "65533"}, "fivenode: -port 65533: want 0, or 1 to 65531\n"},
		{[]string{"extra"}, "fivenode: unexpected arguments [\"extra\"]\n"},
		{[]string{"-places", "bogus"}, "fivenode: -places: \"bogus\" is not one of \"legacy\", \"new\", \"new-raw\", \"offline\" or empty (auto)\n"},
		{[]string{"-places-url", "http://127.0.0.1:1"}, "fivenode: -places-url: only Google kinds use it, and kind is \"offline\" because Key is empty\n"},
		{[]string{"-log-level", "loud"}, "fivenode: -log-level: \"loud\" is not a log level (want debug, info, warn or error)\n"},
		{[]string{"-log-format", "xml"}, "fivenode: -log-format: \"xml\" is not a log format (want text or json)\n"},
		{[]string{"-log-keep", "-1"}, "fivenode: -log-keep: -1: want 0 (the default, 10) or more\n"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, &stderr, noEnv, nil)
		if !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want errUsage", tc.args, err)
		}
		if got, _, _ := strings.Cut(stderr.String(), "usage:"); got != tc.want {
			t.Errorf("%q: stderr %q, want %q", tc.args, got, tc.want)
		}
	}
}

// forgedPeerRefused plays the script of issue 17 against the demo: it
// claims to be Goloman and answers Hands' challenge with HMAC-SHA256
// under the empty key. The demo's servers share a random secret, so
// Hands refuses it with "? " and the line, and closes.
func forgedPeerRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	nonceD := "00112233445566778899aabbccddeeff"
	fmt.Fprintf(c, "HERD 2 Goloman Hands %s\n", nonceD)
	ok, err := r.ReadString('\n')
	f := strings.Fields(ok)
	if err != nil || len(f) != 4 || f[0] != "HERD-OK" {
		t.Fatalf("hello answered %q, %v", ok, err)
	}
	h := hmac.New(sha256.New, nil)
	fmt.Fprintf(h, "herd/2 dial\nGoloman\nHands\n%s\n%s", nonceD, f[2])
	auth := "HERD-AUTH " + hex.EncodeToString(h.Sum(nil))
	fmt.Fprintf(c, "%s\nAT Goloman +0.000000000 victim.example +1.0+1.0 1520023934.5\n", auth)
	if got, _ := io.ReadAll(r); string(got) != "? "+auth+"\n" {
		t.Fatalf("forged HERD-AUTH answered %q", got)
	}
}

// TestRunLogsAndReopens runs the demo with a log file per server and the
// full I/O log, moves Goloman's file as logrotate would, signals, and
// checks that the lines after the signal go to a new file.
func TestRunLogsAndReopens(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr := &output{lines: make(chan string, 100)}, &output{lines: make(chan string, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal) // unbuffered: see below
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-port", "0", "-log-dir", dir, "-log-lines"}, stdout, stderr, noEnv, hup)
	}()
	re := regexp.MustCompile(`^Goloman listening on (\S+) `)
	var addr string
	for line := range stdout.lines {
		if m := re.FindStringSubmatch(line); m != nil {
			addr = m[1]
		}
		if strings.HasPrefix(line, "Stop with") {
			break
		}
	}
	path := filepath.Join(dir, "Goloman.log")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	// The second send is taken only once the first has reopened every
	// log, so the IAMAT below is logged after the reopening.
	hup <- syscall.SIGHUP
	hup <- syscall.SIGHUP
	c, err := client.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	at, err := c.IAMATText(ctx, "kiwi", "+34.068930-118.445127", "1520023934.918963997")
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run = %v", err)
	}
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	for _, want := range []string{" INFO Goloman listening addr="} {
		if !strings.Contains(string(old), want) {
			t.Errorf("moved log lacks %q:\n%s", want, old)
		}
	}
	for _, want := range []string{" INFO log file reopened (SIGHUP)\n", ` DEBUG Goloman out conn=c`, ` line="` + at.Line + `"`, " INFO Goloman closed\n"} {
		if !strings.Contains(string(cur), want) {
			t.Errorf("new log lacks %q:\n%s", want, cur)
		}
	}
	if strings.Contains(string(old), "kiwi") {
		t.Errorf("moved log has the IAMAT:\n%s", old)
	}
}
