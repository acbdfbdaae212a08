package herd

// hardening_test.go: a node over real loopback TCP under many connections
// and under garbage. Helpers are prefixed with "hard".
//
// Two waits here poll Stats with short pauses: Node.Changed fires on
// changes to the table and the links only, and a node notices that a
// client closed its connection asynchronously (its session goroutine reads
// EOF), so "every connection is gone" has no event to wait on. Those polls
// are bounded (hardWaitStats) and fail with the last Stats seen.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// hardManyConns is how many client connections TestHardManyConns holds
// open at once. The race detector has had no cap on live goroutines since
// Go 1.19 (it used to stop at 8,128), and 10,000 connections take about 3s
// under -race on 2 cores, so the count is the same with and without it.
const hardManyConns = 10000

// hardBound bounds every wait in this file; a healthy node needs a small
// fraction of it.
const hardBound = 60 * time.Second

// hardRaiseNOFILE raises the soft RLIMIT_NOFILE of this process to its
// hard limit (Go already does so at start-up since 1.19; this makes the
// requirement explicit) and skips the test if the hard limit is below
// need.
func hardRaiseNOFILE(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("cannot read RLIMIT_NOFILE: %v", err)
	}
	if lim.Max < need {
		t.Skipf("RLIMIT_NOFILE hard limit is %d, below the %d file descriptors this test needs (raise it with ulimit -Hn, as root)", lim.Max, need)
	}
	if lim.Cur < need {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", lim.Max, err)
		}
	}
}

// hardWaitStats polls n's Stats until cond holds (see the file comment
// for why this polls).
func hardWaitStats(t *testing.T, n *Node, what string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(hardBound)
	for {
		s := n.Stats()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never saw %s within %v; stats %+v", n.Name(), what, hardBound, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hardClientLine is the IAMAT that client connection i sends, and
// hardClientAT the reply of a node named Hard whose clock says 1001.
func hardClientLine(i int) string { return fmt.Sprintf("IAMAT hard%d +1.0+1.0 1\n", i) }
func hardClientAT(i int) string {
	return fmt.Sprintf("AT Hard +1000.000000000 hard%d +1.0+1.0 1\n", i)
}

// hardOpenClients opens n client connections to addr, workers at a time;
// on each it sends hardClientLine and checks the reply, then leaves the
// connection open. Only the workers are goroutines: an open connection
// costs the client side one file descriptor and no goroutine.
func hardOpenClients(addr string, n, workers int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 128)
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				err := func() error {
					c, err := net.DialTimeout("tcp", addr, hardBound)
					if err != nil {
						return err
					}
					conns[i] = c
					c.SetDeadline(time.Now().Add(hardBound))
					if _, err := io.WriteString(c, hardClientLine(i)); err != nil {
						return err
					}
					got := buf[:0]
					for !bytes.HasSuffix(got, []byte("\n")) {
						k, err := c.Read(buf[len(got):cap(buf)])
						got = buf[:len(got)+k]
						if err != nil {
							return fmt.Errorf("read after %q: %w", got, err)
						}
						if len(got) == cap(buf) {
							return fmt.Errorf("reply too long: %q", got)
						}
					}
					if want := hardClientAT(i); string(got) != want {
						return fmt.Errorf("reply %q, want %q", got, want)
					}
					return c.SetDeadline(time.Time{})
				}()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the other workers
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
		return nil, firstErr
	}
	return conns, nil
}

// TestHardHelperClients is not a test: TestHardManyConns runs the test
// binary again with this test selected and HERD_HARD_ADDR set, so that
// the client ends of its connections live in another process with its
// own file descriptor limit (10,000 connections in one process take
// 20,000 descriptors, more than many machines allow). It opens
// HERD_HARD_N connections, prints "hard: ready N", holds them until its
// standard input closes, then closes them all.
func TestHardHelperClients(t *testing.T) {
	addr := os.Getenv("HERD_HARD_ADDR")
	if addr == "" {
		t.Skip("helper process of TestHardManyConns")
	}
	n, err := strconv.Atoi(os.Getenv("HERD_HARD_N"))
	if err != nil {
		t.Fatalf("HERD_HARD_N: %v", err)
	}
	hardRaiseNOFILE(t, uint64(n)+64)
	conns, err := hardOpenClients(addr, n, 64)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("hard: ready %d\n", len(conns))
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	for i, c := range conns {
		hardClose(c, i%100 != 0)
	}
}

// hardClose closes a client connection: abortively (a reset, with
// SO_LINGER 0) when abort is set, else with the usual FIN. A connection
// closed with a FIN by the client keeps the client's port in TIME_WAIT for
// a minute, and 10,000 of them would take a third of the machine's
// ephemeral ports from every other test that binds a loopback port;
// TestHardManyConns closes 1% of its connections the usual way and the
// rest with a reset (as a phone that loses its network does), and the node
// handles both.
func hardClose(c net.Conn, abort bool) {
	if tc, ok := c.(*net.TCPConn); ok && abort {
		tc.SetLinger(0)
	}
	c.Close()
}

// TestHardManyConns holds hardManyConns client connections open on one
// node at once, each after an IAMAT and its exact reply; with all of them
// open the node still answers a fresh client exactly, and once they close
// its connection gauge returns to zero.
func TestHardManyConns(t *testing.T) {
	n := hardManyConns
	hardRaiseNOFILE(t, uint64(n)+256)
	node := startNode(t, Config{Name: "Hard", Clock: newTestClock(1001, 0)})
	addr := node.Addr().String()
	start := time.Now()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHardHelperClients$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HERD_HARD_ADDR="+addr, "HERD_HARD_N="+strconv.Itoa(n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	ready := make(chan string, 1)
	var out bytes.Buffer // the helper's stdout, for failure messages
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "hard: ready ") {
				ready <- sc.Text()
			}
		}
		exited <- cmd.Wait() // after stdout is drained, as Wait requires
	}()
	defer func() { // on failure: stop the helper and wait for it
		if stdin != nil {
			stdin.Close()
			cmd.Process.Kill()
			<-exited
		}
	}()

	select {
	case line := <-ready:
		if line != fmt.Sprintf("hard: ready %d", n) {
			t.Fatalf("helper said %q", line)
		}
	case err := <-exited:
		stdin = nil
		t.Fatalf("helper exited (%v) before opening %d connections:\n%s%s", err, n, &out, &stderr)
	case <-time.After(hardBound):
		t.Fatalf("helper did not open %d connections within %v; node stats %+v", n, hardBound, node.Stats())
	}
	t.Logf("%d connections open and answered in %v", n, time.Since(start))
	s := node.Stats()
	if s.Conns != int64(n) || s.ConnsAccepted != uint64(n) || s.IAMAT != uint64(n) || s.Clients != int64(n) || s.Invalid != 0 || s.ConnsRefused != 0 {
		t.Fatalf("with %d clients connected: stats %+v", n, s)
	}

	// A fresh client is served exactly while all of them are open.
	fresh := dialNode(t, node)
	fresh.send("IAMAT fresh -33.868800+151.209300 1000.5\nWHATSAT fresh 10 0\nWHATSAT hard" + strconv.Itoa(n-1) + " 1 0\n")
	wantFresh := "AT Hard +0.500000000 fresh -33.868800+151.209300 1000.5\n" +
		"AT Hard +0.500000000 fresh -33.868800+151.209300 1000.5\n" + string(emptyJSON) + "\n\n" +
		hardClientAT(n-1) + string(emptyJSON) + "\n\n"
	if got := fresh.rest(); got != wantFresh {
		t.Fatalf("fresh client got\n%q\nwant\n%q", got, wantFresh)
	}

	// Close them all; the gauge returns to zero.
	stdin.Close()
	select {
	case err := <-exited:
		stdin = nil
		if err != nil {
			t.Fatalf("helper: %v\n%s%s", err, &out, &stderr)
		}
	case <-time.After(hardBound):
		t.Fatalf("helper did not exit within %v of its stdin closing", hardBound)
	}
	hardWaitStats(t, node, "every connection closed", func(s Stats) bool { return s.Conns == 0 })
	if s := node.Stats(); s.ConnsAccepted != uint64(n)+1 || s.IAMAT != uint64(n)+1 || s.WHATSAT != 2 || s.Clients != int64(n)+1 {
		t.Fatalf("after closing: stats %+v", s)
	}
	t.Logf("all closed after %v", time.Since(start))
}

// hardGarbage is one connection of the garbage burst: what it sends, how
// it ends, and the exact replies it must get.
type hardGarbage struct {
	kind    string
	send    []byte
	hangUp  bool   // close at once after sending, read nothing
	want    string // every reply, then EOF (unless hangUp)
	invalid int    // lines the node answers (or would answer) with "? "
}

// hardGarbageFor builds connection i of the burst.
func hardGarbageFor(i, maxLine int) hardGarbage {
	rng := rand.New(rand.NewPCG(7, uint64(i)))
	randomLine := func(max int, alphabet string) []byte {
		b := make([]byte, rng.IntN(max+1))
		for j := range b {
			if alphabet != "" {
				b[j] = alphabet[rng.IntN(len(alphabet))]
				continue
			}
			for b[j] = byte(rng.IntN(256)); b[j] == '\n'; b[j] = byte(rng.IntN(256)) {
			}
		}
		return b
	}
	var g hardGarbage
	lines := func(ls ...[]byte) {
		for k, l := range ls {
			if k == 0 && isPeerHello(l) {
				l = append([]byte("x"), l...) // a client, not a peer hello
			}
			g.send = append(append(g.send, l...), '\n')
			g.want += "? " + string(l) + "\n"
			g.invalid++
		}
	}
	switch i % 6 {
	case 0:
		g.kind = "random binary lines"
		for range 1 + rng.IntN(8) {
			lines(randomLine(3*maxLine/4, ""))
		}
	case 1:
		g.kind = "NULs"
		lines([]byte("\x00"), []byte("IAMAT\x00kiwi +1.0+1.0 1"), []byte("IAMAT kiwi +1.0+1.0 1\x00"),
			[]byte("WHATSAT\x00kiwi 10 5"), []byte{}, []byte("\x00\r"), randomLine(maxLine/2, "\x00 \t\r\v\fIAMAT"))
	case 2:
		g.kind = "overlong line"
		// A hash first: never a peer hello.
		long := append([]byte("#"), randomLine(3*maxLine, "abcdefghijklmnopqrstuvwxyz IAMAT+-.0123456789\x00\r\t")...)
		for len(long) <= maxLine {
			long = append(long, '#')
		}
		g.send = append(long, "\nIAMAT kiwi +1.0+1.0 1\n"...) // the node closes before the IAMAT
		g.want = "? " + string(long[:maxLine]) + "\n"
	case 3:
		g.kind = "half line, then half-close"
		lines(randomLine(maxLine/2, "IAMATWHSx +-.0123456789\t"))
		g.send = append(g.send, "IAMAT kiwi +1.0+1.0"...) // ends at EOF: still a command
		g.want += "? IAMAT kiwi +1.0+1.0\n"
		g.invalid++
	case 4:
		g.kind = "half line, then close"
		g.send = []byte("WHATSAT kiwi 10")
		g.hangUp = true
		g.invalid = 1
	case 5:
		g.kind = "connect and close"
		g.hangUp = true
	}
	return g
}

// run sends g's bytes on a fresh connection to addr and checks what comes
// back.
func (g hardGarbage) run(addr string) error {
	c, err := net.DialTimeout("tcp", addr, hardBound)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hardBound))
	if len(g.send) > 0 {
		if _, err := c.Write(g.send); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if g.hangUp {
		return nil
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("read after %d bytes: %w", len(got), err)
	}
	// Everything is read and both sides have sent their FIN: drop the
	// socket without leaving this side's port in TIME_WAIT.
	hardClose(c, true)
	if string(got) != g.want {
		return fmt.Errorf("got\n%q\nwant\n%q", got, g.want)
	}
	return nil
}

// TestHardGarbageBurst opens 1,000 connections at once that send garbage:
// random binary, NULs, lines longer than MaxLineBytes, half lines, and
// nothing at all. Every complete line (and every last line ended by EOF)
// gets "? " and its exact bytes; an overlong line gets "? " and its first
// MaxLineBytes bytes, then the connection closes. Afterwards a
// well-behaved client gets exact replies, and Stats counts what happened.
func TestHardGarbageBurst(t *testing.T) {
	const conns, maxLine = 1000, 256
	hardRaiseNOFILE(t, 2*conns+256)
	node := startNode(t, Config{Name: "Goloman", Clock: kiwiClock(), MaxLineBytes: maxLine})
	addr := node.Addr().String()
	var wantInvalid, overlong int
	var wg sync.WaitGroup
	errs := make([]error, conns)
	gs := make([]hardGarbage, conns)
	for i := range conns {
		gs[i] = hardGarbageFor(i, maxLine)
		wantInvalid += gs[i].invalid
		if gs[i].kind == "overlong line" {
			overlong++
		}
		wg.Go(func() { errs[i] = gs[i].run(addr) })
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if err != nil {
			if failed++; failed <= 5 {
				t.Errorf("connection %d (%s): %v", i, gs[i].kind, err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d garbage connections failed", failed, conns)
	}

	// The node is still fine, and exact, for a well-behaved client.
	good := dialNode(t, node)
	good.send(kiwiIAMAT + "\nWHATSAT kiwi.cs.ucla.edu 10 0\n")
	want := kiwiAT + "\n" + kiwiAT + "\n" + string(emptyJSON) + "\n\n"
	if got := good.rest(); got != want {
		t.Fatalf("well-behaved client got\n%q\nwant\n%q", got, want)
	}

	s := hardWaitStats(t, node, "every connection closed", func(s Stats) bool { return s.Conns == 0 })
	if s.ConnsAccepted != conns+1 || s.IAMAT != 1 || s.WHATSAT != 1 || s.Clients != 1 || s.HandshakeFails != 0 {
		t.Errorf("stats %+v", s)
	}
	// Stats.Invalid counts "lines answered with "? "": every garbage
	// line, overlong ones included.
	if want := uint64(wantInvalid + overlong); s.Invalid != want {
		t.Errorf("Stats.Invalid = %d, want %d (%d complete or EOF-ended lines, %d overlong lines)", s.Invalid, want, wantInvalid, overlong)
	}
}

// TestHardOverlongLineCountsInvalid: an overlong line is answered with
// "? ", so Stats.Invalid ("lines answered with "? "") counts it.
func TestHardOverlongLineCountsInvalid(t *testing.T) {
	n := startNode(t, Config{Name: "Goloman", MaxLineBytes: 64})
	c := dialNode(t, n)
	long := strings.Repeat("x", 100)
	c.send(long)
	if got, want := c.rest(), "? "+long[:64]+"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	s := hardWaitStats(t, n, "the connection closed", func(s Stats) bool { return s.Conns == 0 })
	if s.Invalid != 1 {
		t.Fatalf("Stats.Invalid = %d after one overlong line, want 1", s.Invalid)
	}
}
