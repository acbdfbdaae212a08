package herdtest

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// flowOf returns the flow whose key ends with suffix (">" for the
// dialer's direction, "<" for the other).
func flowOf(t *testing.T, s *Sim, suffix string) Flow {
	t.Helper()
	for _, f := range s.Flows() {
		if strings.HasSuffix(f.Key, suffix) {
			return f
		}
	}
	t.Fatalf("no flow %q in %+v", suffix, s.Flows())
	return Flow{}
}

// writer writes p on c in a goroutine of the bubble and reports the
// outcome on the returned channel.
type writeResult struct {
	n   int
	err error
}

func writeAsync(c net.Conn, p []byte) chan writeResult {
	done := make(chan writeResult, 1)
	go func() {
		n, err := c.Write(p)
		done <- writeResult{n, err}
	}()
	return done
}

func TestWindowBlocksWriterUntilRead(t *testing.T) {
	simTest(t, SimOptions{Seed: 1, Window: 100}, func(t *testing.T, s *Sim) {
		cli, srv := pipe(t, s, "client", "srv")
		done := writeAsync(cli, []byte(strings.Repeat("x", 250)))
		s.RunFor(time.Second)
		select {
		case r := <-done:
			t.Fatalf("Write of 250 bytes with a window of 100 returned %+v before any read", r)
		default:
		}
		f := flowOf(t, s, ">")
		if f.Held != 100 || f.Unread != 100 || f.Written != 100 || f.Blocked != 1 {
			t.Errorf("blocked flow: %+v", f)
		}
		if st := s.Stats(); st.MaxBuffered != 100 || s.Buffered() != 100 {
			t.Errorf("MaxBuffered %d, Buffered %d; want 100", st.MaxBuffered, s.Buffered())
		}
		// Each read frees room; the writer fills it within the step and
		// the bytes follow after a latency.
		var got []byte
		var buf [64]byte
		for len(got) < 250 {
			n, err := srv.Read(buf[:])
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
			if len(got) < 250 {
				s.RunUntil(func() bool { return flowOf(t, s, ">").Unread > 0 }, time.Second)
			}
		}
		s.RunFor(time.Second)
		if r := <-done; r.n != 250 || r.err != nil {
			t.Errorf("Write: %+v", r)
		}
		if string(got) != strings.Repeat("x", 250) {
			t.Errorf("read %q", got)
		}
		if st := s.Stats(); st.MaxBuffered != 100 {
			t.Errorf("MaxBuffered %d, want 100", st.MaxBuffered)
		}
		if f := flowOf(t, s, ">"); f.Held != 0 || f.Read != 250 || f.Blocked != 0 {
			t.Errorf("drained flow: %+v", f)
		}
	})
}

func TestWindowBlockedWriterEndsOnCloseAndReset(t *testing.T) {
	simTest(t, SimOptions{Seed: 2, Window: 10}, func(t *testing.T, s *Sim) {
		cli, srv1 := pipe(t, s, "client", "srv")
		done := writeAsync(cli, []byte("0123456789abcdef"))
		s.RunFor(time.Second)
		cli.Close() // from another goroutine than the blocked writer
		s.Wait()
		if r := <-done; r.n != 10 || !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("Write cut by Close: %+v; want 10 bytes taken and ErrClosed", r)
		}
		// The 10 bytes taken are still delivered, then EOF.
		s.RunFor(time.Second)
		if got, _ := io.ReadAll(srv1); string(got) != "0123456789" {
			t.Errorf("after the writer closed, the reader got %q", got)
		}
		srv1.Close()

		cli, srv := pipe(t, s, "a", "b")
		done = writeAsync(cli, []byte("0123456789abcdef"))
		s.RunFor(time.Second)
		srv.Close() // unread bytes: RST back to the writer
		s.RunFor(time.Second)
		if r := <-done; r.n != 10 || !errors.Is(r.err, syscall.ECONNRESET) {
			t.Errorf("Write to a peer that closed unread: %+v; want ECONNRESET", r)
		}
		if n := s.Buffered(); n != 0 {
			t.Errorf("Buffered %d after both connections ended", n)
		}
	})
}

func TestStopReading(t *testing.T) {
	simTest(t, SimOptions{Seed: 3}, func(t *testing.T, s *Sim) {
		s.Transport("node") // a registered host
		cli, srv := pipe(t, s, "client", "node")
		s.StopReading("node", "client")
		io.WriteString(cli, "hello\n")
		cli.(interface{ CloseWrite() error }).CloseWrite()
		read := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(srv)
			read <- string(b)
		}()
		s.RunFor(time.Second)
		if f := flowOf(t, s, ">"); f.Unread != 6 || !f.Stopped {
			t.Errorf("stopped flow: %+v", f)
		}
		select {
		case got := <-read:
			t.Fatalf("a host that stopped reading read %q", got)
		default:
		}
		// The other direction still reads.
		io.WriteString(srv, "back\n")
		s.RunFor(time.Second)
		if got, err := readNow(t, cli); got != "back\n" || err != nil {
			t.Errorf("client read %q, %v", got, err)
		}
		s.ResumeReading("node", "client")
		s.RunFor(time.Second)
		if got := <-read; got != "hello\n" {
			t.Errorf("after ResumeReading: %q", got)
		}

		// A reset still ends a read that waits.
		cli, srv = pipe(t, s, "client2", "node")
		s.StopReading("node")
		io.WriteString(cli, "x")
		errc := make(chan error, 1)
		go func() {
			_, err := srv.Read(make([]byte, 8))
			errc <- err
		}()
		s.RunFor(time.Second)
		cli.Close() // unread bytes at node: none were read, but the client's buffer is empty: FIN
		s.ResetConn("client2", "node")
		s.RunFor(time.Second)
		if err := <-errc; !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("stopped read after a reset: %v", err)
		}
	})
}

func TestClientWriteWaitsForWindow(t *testing.T) {
	topo := Options{Seed: 4, Window: 64}
	topo.Topology.Servers = []string{"A"}
	Run(t, topo, func(t *testing.T, c *Cluster) {
		cc, err := c.Connect("client", "A")
		if err != nil {
			t.Fatal(err)
		}
		// A command five times the window: the driver's Write runs the
		// simulation while the server reads it. (A client that wrote many
		// commands without reading would stall: the server's replies
		// would fill the other direction's window.)
		client := strings.Repeat("k", 300)
		a := cc.Watch(client)
		if err := cc.Write("IAMAT " + client + " +1.0+1.0 1520023934\n"); err != nil {
			t.Fatal(err)
		}
		cc.CloseWrite()
		got, err := cc.ReadAll()
		if want, _ := a.IAMAT("A", client, "+1.0+1.0", "1520023934"); got != want || err != nil {
			t.Errorf("reply %q, %v; want %q", got, err, want)
		}
		if st := c.Sim().Stats(); st.MaxBuffered > 64 {
			t.Errorf("MaxBuffered %d > window 64", st.MaxBuffered)
		}
	})
}

func TestBreakMidLine(t *testing.T) {
	for _, mode := range []BreakMode{BreakReset, BreakFIN} {
		t.Run(mode.String(), func(t *testing.T) {
			simTest(t, SimOptions{Seed: 5}, func(t *testing.T, s *Sim) {
				s.Transport("a")
				s.Transport("b")
				cli, srv := pipe(t, s, "a", "b")
				s.BreakMidLine("a", "b", mode, 1)
				io.WriteString(cli, "hello\n")
				s.RunFor(time.Second)
				if got, _ := readNow(t, srv); got != "hello\n" {
					t.Fatalf("a line that is not a record was cut: %q", got)
				}
				line := "AT a +0.000000000 kiwi +1.0+2.0 1520023934.918963997\n"
				// A reader that reads as a node does, until an error.
				type result struct {
					got []byte
					err error
				}
				res := make(chan result, 1)
				go func() {
					var r result
					var buf [256]byte
					for r.err == nil {
						var n int
						n, r.err = srv.Read(buf[:])
						r.got = append(r.got, buf[:n]...)
					}
					res <- r
				}()
				io.WriteString(cli, "x\n"+line+line)
				s.RunFor(time.Second)
				r := <-res
				got, rerr := r.got, r.err
				if !strings.HasPrefix(string(got), "x\n") || len(got) < 3 || len(got) >= 2+len(line) || !strings.HasPrefix(line, string(got[2:])) {
					t.Errorf("received %q: want x, then part of the AT line", got)
				}
				want := syscall.ECONNRESET
				if mode == BreakFIN {
					if rerr != io.EOF {
						t.Errorf("receiver's read after the partial line: %v, want EOF", rerr)
					}
				} else if !errors.Is(rerr, want) {
					t.Errorf("receiver's read after the partial line: %v, want ECONNRESET", rerr)
				}
				if _, err := io.WriteString(cli, "more\n"); !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("sender's write after the break: %v, want ECONNRESET", err)
				}
				if st := s.Stats(); st.Breaks != 1 {
					t.Errorf("Breaks = %d", st.Breaks)
				}
			})
		})
	}
}

// TestWindowWriteToClosedPeer: a receiver that closed with nothing unread
// sends FIN; the writer may still write (up to the window), and its bytes
// draw a reset, as over TCP. A writer blocked on a full window to a dead
// receiver waits for that reset.
func TestWindowWriteToClosedPeer(t *testing.T) {
	simTest(t, SimOptions{Seed: 6, Window: 8}, func(t *testing.T, s *Sim) {
		cli, srv := pipe(t, s, "client", "srv")
		srv.Close()
		s.RunFor(time.Second)
		done := writeAsync(cli, []byte("0123456789"))
		s.RunFor(time.Second)
		if r := <-done; r.n != 8 || !errors.Is(r.err, syscall.ECONNRESET) {
			t.Errorf("Write to a closed peer: %+v; want 8 bytes taken, then ECONNRESET", r)
		}
		if n := s.Buffered(); n != 0 {
			t.Errorf("Buffered %d", n)
		}
	})
}
