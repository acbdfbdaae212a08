package herd

// Tests for changes to the code that once passed every test (the mutation
// audit of issue 13).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestDialerChecksAcceptorMAC: a fake neighbour answers the dialer's hello
// with a HERD-OK whose MAC is wrong (made with another secret, or
// reflected from nothing at all): the dialer must refuse it, sending no
// HERD-AUTH, count and log the failure, and bring no link up. With the
// right MAC, the same fake gets the dialer's HERD-AUTH.
func TestDialerChecksAcceptorMAC(t *testing.T) {
	secret := []byte("the herd's secret")
	for _, tc := range []struct {
		name   string
		mac    func(nonceD, nonceA string) string
		refuse bool
	}{
		{"wrong secret", func(d, a string) string { return handshakeMAC([]byte("not the secret"), "accept", "A", "B", d, a) }, true},
		{"dialer's role", func(d, a string) string { return handshakeMAC(secret, "dial", "A", "B", d, a) }, true},
		{"right", func(d, a string) string { return handshakeMAC(secret, "accept", "A", "B", d, a) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			logs := newLogSink()
			n := startNode(t, Config{Name: "A", Secret: secret, Logger: logs.logger(),
				Peers: []Peer{{Name: "B", Addr: ln.Addr().String()}}})
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			hello, err := br.ReadString('\n')
			f := strings.Fields(hello)
			if err != nil || len(f) != 5 || f[0] != "HERD" || f[2] != "A" || f[3] != "B" {
				t.Fatalf("hello %q, %v", hello, err)
			}
			nonceA := strings.Repeat("ab", nonceBytes)
			fmt.Fprintf(c, "HERD-OK B %s %s\n", nonceA, tc.mac(f[4], nonceA))
			next, err := br.ReadString('\n')
			if !tc.refuse {
				if want := "HERD-AUTH " + handshakeMAC(secret, "dial", "A", "B", f[4], nonceA) + "\n"; next != want {
					t.Fatalf("after a right HERD-OK the dialer sent %q, %v; want %q", next, err, want)
				}
				return
			}
			if next != "" || !errors.Is(err, io.EOF) {
				t.Fatalf("after a HERD-OK with a wrong MAC the dialer sent %q (%v); want it to hang up", next, err)
			}
			logs.waitFor(t, `msg="peer refused"`, "B failed authentication (wrong secret?)")
			if s := n.Stats(); s.HandshakeFails == 0 || s.LinksUp != 0 || len(n.Links()) != 0 {
				t.Errorf("stats %+v, links %v", s, n.Links())
			}
		})
	}
}

// TestLineOneShortOfLimit: a line one byte short of MaxLineBytes whose
// newline comes in a later read is a line, not a line too long; one of
// MaxLineBytes without its newline is too long, however it arrives.
func TestLineOneShortOfLimit(t *testing.T) {
	const max = 100
	read := func(chunks ...string) ([]string, error) {
		var cc chunkConn
		for _, c := range chunks {
			cc.chunks = append(cc.chunks, []byte(c))
		}
		lr := newLineReader(&cc, max)
		var lines []string
		for {
			for {
				line, ok := lr.next()
				if !ok {
					break
				}
				lines = append(lines, string(line))
			}
			if err := lr.fill(); err != nil {
				return lines, err
			}
		}
	}
	short := strings.Repeat("x", max-1)
	for _, chunks := range [][]string{{short, "\n"}, {short[:50], short[50:], "\nnext\n"}, {short + "\n"}} {
		lines, err := read(chunks...)
		if err != io.EOF || len(lines) == 0 || lines[0] != short {
			t.Errorf("%d-byte line in reads %q: lines %q, %v; want the line", len(short), chunks, lines, err)
		}
	}
	long := strings.Repeat("y", max)
	for _, chunks := range [][]string{{long, "\n"}, {long[:99], long[99:], "\n"}, {long + "\n"}} {
		if lines, err := read(chunks...); !errors.Is(err, errLineTooLong) || len(lines) != 0 {
			t.Errorf("%d-byte line in reads %q: lines %q, %v; want errLineTooLong", len(long), chunks, lines, err)
		}
	}
	// Through a whole session: the IAMAT one byte short is answered.
	iamat := "IAMAT " + strings.Repeat("k", max-1-len("IAMAT  +34.068930-118.445127 1520023934.918963997")) + " +34.068930-118.445127 1520023934.918963997"
	if len(iamat) != max-1 {
		t.Fatalf("test IAMAT is %d bytes", len(iamat))
	}
	writes := serveChunks(t, max, [][]byte{[]byte(iamat), []byte("\n")})
	if len(writes) != 1 || !strings.HasPrefix(string(writes[0]), "AT Goloman ") {
		t.Errorf("a %d-byte IAMAT whose newline came later was answered %q", len(iamat), writes)
	}
}

// TestIdleCutWithinTimeout: on the bubble's clock, a client connection
// silent since its last line is cut after at most IdleTimeout and more
// than 3/4 of it, whether its last line came just after a sweep or just
// before one.
func TestIdleCutWithinTimeout(t *testing.T) {
	const idle = 4 * time.Second // sweeps every second
	for _, phase := range []time.Duration{time.Millisecond, 500 * time.Millisecond, time.Second - time.Millisecond} {
		t.Run(fmt.Sprint(phase), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pn := newPipeNet()
				n, err := New(Config{Name: "Goloman", Addr: "127.0.0.1:0", Transport: pn, Clock: kiwiClock(), IdleTimeout: idle})
				if err != nil {
					t.Fatal(err)
				}
				if err := n.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				defer n.Close()
				time.Sleep(n.sweepEvery() + phase) // one sweep, then phase past it
				c := pn.dial(t)
				c.send(kiwiIAMAT + "\n")
				if got := <-c.lines; got != kiwiAT+"\n" {
					t.Fatalf("got %q", got)
				}
				last := time.Now()
				for range c.lines { // until the server closes the connection
				}
				if silent := time.Since(last); silent > idle || silent <= idle*3/4 {
					t.Errorf("cut after %v of silence, want more than %v and at most %v", silent, idle*3/4, idle)
				}
				if s := n.Stats(); s.IdleClosed != 1 {
					t.Errorf("IdleClosed %d", s.IdleClosed)
				}
			})
		})
	}
}
