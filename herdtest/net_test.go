package herdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// pipe connects client (a client label or a host) to a listener of host
// on s, and returns both ends once the dial has been answered.
func pipe(t *testing.T, s *Sim, client, host string) (cli, srv net.Conn) {
	t.Helper()
	ln, err := s.Transport(host).Listen(context.Background(), host+":0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err == nil {
			srv = c
		}
		ln.Close()
	}()
	go func() {
		var err error
		s.mu.Lock()
		_, isHost := s.hosts[client]
		s.mu.Unlock()
		if isHost {
			cli, err = s.Transport(client).Dial(context.Background(), ln.Addr().String())
		} else {
			cli, err = s.Dial(context.Background(), client, ln.Addr().String())
		}
		if err != nil {
			t.Error(err)
		}
	}()
	if !s.RunUntil(func() bool { return cli != nil && srv != nil }, time.Minute) {
		t.Fatal("no connection")
	}
	return cli, srv
}

// readNow reads what is there without blocking: the caller knows data,
// EOF or an error is pending.
func readNow(t *testing.T, c net.Conn) (string, error) {
	t.Helper()
	var buf [1024]byte
	n, err := c.Read(buf[:])
	return string(buf[:n]), err
}

func simTest(t *testing.T, opts SimOptions, f func(t *testing.T, s *Sim)) {
	synctest.Test(t, func(t *testing.T) { f(t, NewSim(opts)) })
}

func TestConnHalfClose(t *testing.T) {
	simTest(t, SimOptions{Seed: 1}, func(t *testing.T, s *Sim) {
		cli, srv := pipe(t, s, "client", "srv")
		io.WriteString(cli, "ping ")
		io.WriteString(cli, "again")
		cli.(interface{ CloseWrite() error }).CloseWrite()
		if _, err := io.WriteString(cli, "more"); !errors.Is(err, syscall.EPIPE) {
			t.Errorf("write after CloseWrite: %v, want EPIPE", err)
		}
		s.RunFor(time.Second)
		// Both writes of one step arrive as one delivery, then EOF.
		if got, err := readNow(t, srv); got != "ping again" || err != nil {
			t.Errorf("server read %q, %v", got, err)
		}
		if got, err := readNow(t, srv); got != "" || err != io.EOF {
			t.Errorf("server read %q, %v; want EOF", got, err)
		}
		// The other direction still works after the half-close.
		io.WriteString(srv, "pong")
		srv.Close()
		s.RunFor(time.Second)
		if got, err := readNow(t, cli); got != "pong" || err != nil {
			t.Errorf("client read %q, %v", got, err)
		}
		if _, err := readNow(t, cli); err != io.EOF {
			t.Errorf("client read: %v, want EOF", err)
		}
		if _, err := readNow(t, srv); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after Close: %v, want net.ErrClosed", err)
		}
		cli.Close()
	})
}

func TestConnCloseWithUnreadDataResets(t *testing.T) {
	simTest(t, SimOptions{Seed: 2}, func(t *testing.T, s *Sim) {
		cli, srv := pipe(t, s, "client", "srv")
		io.WriteString(cli, "unread request")
		s.RunFor(time.Second)
		io.WriteString(srv, "reply")
		srv.Close() // unread bytes: RST follows the reply
		s.RunFor(time.Second)
		// The client was not reading when the RST came: the reply is lost.
		if got, err := readNow(t, cli); got != "" || !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client read %q, %v; want ECONNRESET", got, err)
		}
		if _, err := io.WriteString(cli, "x"); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client write: %v, want ECONNRESET", err)
		}
		cli.Close()
	})
}

func TestConnWriteToClosedPeerGetsReset(t *testing.T) {
	simTest(t, SimOptions{Seed: 3}, func(t *testing.T, s *Sim) {
		cli, srv := pipe(t, s, "client", "srv")
		srv.Close() // nothing unread: FIN
		s.RunFor(time.Second)
		if _, err := readNow(t, cli); err != io.EOF {
			t.Errorf("client read: %v, want EOF", err)
		}
		if _, err := io.WriteString(cli, "late"); err != nil {
			t.Errorf("first write after the peer's FIN: %v (TCP accepts it)", err)
		}
		s.RunFor(time.Second)
		if _, err := io.WriteString(cli, "later"); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("write after RST: %v, want ECONNRESET", err)
		}
		cli.Close()
	})
}

func TestConnDeadlinesUnsupported(t *testing.T) {
	simTest(t, SimOptions{}, func(t *testing.T, s *Sim) {
		cli, srv := pipe(t, s, "client", "srv")
		if err := cli.SetDeadline(time.Time{}); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("SetDeadline: %v", err)
		}
		if cli.LocalAddr().String() != srv.RemoteAddr().String() || srv.LocalAddr().String() != cli.RemoteAddr().String() {
			t.Errorf("addresses: %v %v / %v %v", cli.LocalAddr(), cli.RemoteAddr(), srv.LocalAddr(), srv.RemoteAddr())
		}
		cli.Close()
		srv.Close()
	})
}

func TestSplitWritesKeepOrder(t *testing.T) {
	simTest(t, SimOptions{Seed: 4, SplitWrites: true, Latency: Latency{Min: 0, Max: 50 * time.Millisecond}}, func(t *testing.T, s *Sim) {
		cli, srv := pipe(t, s, "client", "srv")
		var want strings.Builder
		for i := range 50 {
			line := fmt.Sprintf("line %d of the stream\n", i)
			want.WriteString(line)
			io.WriteString(cli, line)
			s.RunFor(time.Duration(i%3) * time.Millisecond)
		}
		cli.Close()
		s.RunFor(time.Second)
		got, err := io.ReadAll(srv)
		if err != nil || string(got) != want.String() {
			t.Errorf("got %q, %v", got, err)
		}
		if s.Stats().Events < 60 {
			t.Errorf("only %d events: writes were not split", s.Stats().Events)
		}
		srv.Close()
	})
}

func TestDialRefusedAndCancelled(t *testing.T) {
	simTest(t, SimOptions{Seed: 5}, func(t *testing.T, s *Sim) {
		var err error
		done := false
		go func() {
			_, err = s.Dial(context.Background(), "client", "nobody:1")
			done = true
		}()
		s.RunUntil(func() bool { return done }, time.Minute)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial to nothing: %v, want ECONNREFUSED", err)
		}

		ln, _ := s.Transport("srv").Listen(context.Background(), "srv:1")
		s.SetLatency("client", "srv", Latency{Min: time.Second, Max: time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		done = false
		go func() {
			_, err = s.Dial(ctx, "client", "srv:1")
			done = true
		}()
		s.RunFor(500 * time.Millisecond)
		cancel()
		s.RunFor(time.Second)
		if !done || !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled dial: done %v, %v", done, err)
		}
		if !strings.Contains(strings.Join(s.Trace().Tail(), "\n"), "connect abandoned") {
			t.Errorf("trace does not show the abandoned connect:\n%s", strings.Join(s.Trace().Tail(), "\n"))
		}
		ln.Close()
	})
}

func TestPartitionRefusesAndResets(t *testing.T) {
	simTest(t, SimOptions{Seed: 6}, func(t *testing.T, s *Sim) {
		s.Transport("A")
		s.Transport("B")
		link, _ := pipe(t, s, "B", "A")
		client, _ := pipe(t, s, "client", "A")
		s.Partition("A")
		if _, err := readNow(t, link); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("link across the partition: %v, want ECONNRESET", err)
		}
		if _, err := io.WriteString(client, "still here"); err != nil {
			t.Errorf("client connection was cut: %v", err)
		}
		ln, _ := s.Transport("A").Listen(context.Background(), "A:9")
		var err error
		done := false
		go func() {
			var c net.Conn
			c, err = s.Transport("B").Dial(context.Background(), "A:9")
			if c != nil {
				c.Close()
			}
			done = true
		}()
		s.RunUntil(func() bool { return done }, time.Minute)
		if !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Errorf("dial across the partition: %v, want EHOSTUNREACH", err)
		}
		s.Heal()
		done = false
		go func() {
			c, _ := ln.Accept()
			c.Close()
		}()
		go func() {
			var c net.Conn
			c, err = s.Transport("B").Dial(context.Background(), "A:9")
			if c != nil {
				c.Close()
			}
			done = true
		}()
		s.RunUntil(func() bool { return done }, time.Minute)
		if err != nil {
			t.Errorf("dial after heal: %v", err)
		}
		s.RunFor(time.Second)
		ln.Close()
		link.Close()
		client.Close()
	})
}

func TestCrashClosesEverythingOfTheHost(t *testing.T) {
	simTest(t, SimOptions{Seed: 7}, func(t *testing.T, s *Sim) {
		old := s.Transport("A")
		cli, srv := pipe(t, s, "client", "A")
		ln, _ := old.Listen(context.Background(), "A:1")
		acceptErr := make(chan error, 1)
		go func() {
			_, err := ln.Accept()
			acceptErr <- err
		}()
		s.Crash("A")
		if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
			t.Errorf("accept after crash: %v", err)
		}
		if _, err := readNow(t, srv); !errors.Is(err, net.ErrClosed) {
			t.Errorf("the crashed host's end: %v", err)
		}
		s.RunFor(time.Second)
		if _, err := readNow(t, cli); err != io.EOF {
			t.Errorf("the client's end: %v, want EOF", err)
		}
		if _, err := old.Listen(context.Background(), "A:2"); err == nil {
			t.Error("a transport of the crashed incarnation still listens")
		}
		if _, err := s.Transport("A").Listen(context.Background(), "A:1"); err != nil {
			t.Errorf("restarted host cannot listen on its address: %v", err)
		}
		cli.Close()
	})
}

func TestAcceptOrderFollowsEvents(t *testing.T) {
	simTest(t, SimOptions{Seed: 8, Latency: Latency{Min: time.Millisecond, Max: time.Millisecond}}, func(t *testing.T, s *Sim) {
		ln, _ := s.Transport("srv").Listen(context.Background(), "srv:1")
		// Dialers start in reverse order within one step; at equal times
		// their keys decide.
		for i := 9; i >= 0; i-- {
			go func() {
				c, err := s.Dial(context.Background(), fmt.Sprintf("d%d", i), "srv:1")
				if err == nil {
					c.Close()
				}
			}()
		}
		var order []string
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				order = append(order, c.RemoteAddr().String())
				c.Close()
			}
		}()
		s.RunFor(time.Second)
		ln.Close()
		want := "[d0:1 d1:1 d2:1 d3:1 d4:1 d5:1 d6:1 d7:1 d8:1 d9:1]"
		if got := fmt.Sprint(order); got != want {
			t.Errorf("accept order %s, want %s", got, want)
		}
	})
}

func TestClockTimers(t *testing.T) {
	simTest(t, SimOptions{}, func(t *testing.T, s *Sim) {
		c := s.Clock("A")
		start := time.Now()
		if !c.Now().Equal(DefaultEpoch) {
			t.Errorf("Now = %v, want %v", c.Now(), DefaultEpoch)
		}
		var fired []string
		c.AfterFunc(2*time.Second, func() { fired = append(fired, "2s") })
		stopped := c.AfterFunc(time.Second, func() { fired = append(fired, "stopped") })
		c.AfterFunc(time.Second, func() { fired = append(fired, "1s") })
		if !stopped.Stop() || stopped.Stop() {
			t.Error("Stop should report true once")
		}
		s.RunFor(1500 * time.Millisecond)
		if fmt.Sprint(fired) != "[1s]" {
			t.Errorf("after 1.5s fired %v", fired)
		}
		if got := c.Now().Sub(DefaultEpoch); got != 1500*time.Millisecond {
			t.Errorf("Now advanced %v", got)
		}
		if got := time.Since(start); got != 1500*time.Millisecond {
			t.Errorf("bubble time advanced %v", got) // it moves with the Sim's
		}
		s.RunFor(time.Second)
		if fmt.Sprint(fired) != "[1s 2s]" {
			t.Errorf("after 2.5s fired %v", fired)
		}
	})
}

func TestTraceHashDependsOnSeed(t *testing.T) {
	run := func(seed uint64) string {
		var sum string
		simTest(t, SimOptions{Seed: seed}, func(t *testing.T, s *Sim) {
			cli, srv := pipe(t, s, "client", "srv")
			io.WriteString(cli, "hello")
			cli.Close()
			s.RunFor(time.Second)
			srv.Close()
			s.RunFor(time.Second)
			sum = s.Trace().Sum()
		})
		return sum
	}
	a, b, a2 := run(1), run(2), run(1)
	if a != a2 || a == b {
		t.Errorf("seed 1: %s and %s; seed 2: %s", a, a2, b)
	}
}
