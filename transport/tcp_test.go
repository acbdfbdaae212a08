package transport_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/proxyherd/herd/internal/testcert"
	"github.com/proxyherd/herd/transport"
)

// mutualTLS is a config that presents cert and verifies the other side
// against ca in both directions.
func mutualTLS(ca *testcert.CA, cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      ca.Pool,
		ClientCAs:    ca.Pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// echoOnce accepts one connection on ln, answers its first line with
// "echo: " and the line, and reports what it saw of the peer: the TLS
// state's verified client certificate name, if any.
type accepted struct {
	peerName string
	err      error
}

func echoOnce(ln net.Listener) <-chan accepted {
	done := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- accepted{err: err}
			return
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			done <- accepted{err: err}
			return
		}
		var a accepted
		if tc, ok := c.(*tls.Conn); ok {
			if st := tc.ConnectionState(); len(st.VerifiedChains) > 0 {
				a.peerName = st.PeerCertificates[0].Subject.CommonName
			}
		}
		_, a.err = io.WriteString(c, "echo: "+line)
		done <- a
	}()
	return done
}

// roundTrip dials addr with tr, sends one line and returns the answer.
func roundTrip(t *testing.T, tr *transport.TCP, addr string) (string, net.Conn) {
	t.Helper()
	c, err := tr.Dial(t.Context(), addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "IAMAT kiwi +1.0+1.0 1\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(got), c
}

func TestTCPRoundTrip(t *testing.T) {
	var tr transport.TCP // the zero value is plain TCP
	ln, err := tr.Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, ok := ln.Addr().(*net.TCPAddr); !ok {
		t.Fatalf("listener address %T, want *net.TCPAddr", ln.Addr())
	}
	done := echoOnce(ln)
	got, c := roundTrip(t, &tr, ln.Addr().String())
	if want := "echo: IAMAT kiwi +1.0+1.0 1\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, ok := c.(*net.TCPConn); !ok {
		t.Errorf("plain Dial returned %T, want *net.TCPConn (the node half-closes through it)", c)
	}
	if a := <-done; a.err != nil || a.peerName != "" {
		t.Fatalf("server side: %+v", a)
	}
}

func TestTLSRoundTrip(t *testing.T) {
	ca := testcert.New(t, "transport test CA")
	server := &transport.TCP{TLS: mutualTLS(ca, ca.Issue(t, "Goloman"))}
	client := &transport.TCP{TLS: mutualTLS(ca, ca.Issue(t, "Hands"))}
	ln, err := server.Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := echoOnce(ln)
	got, c := roundTrip(t, client, ln.Addr().String())
	if want := "echo: IAMAT kiwi +1.0+1.0 1\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		t.Fatalf("TLS Dial returned %T, want *tls.Conn", c)
	}
	// Dial completes the handshake: the server's certificate is verified
	// by the time it returns.
	if st := tc.ConnectionState(); !st.HandshakeComplete || st.PeerCertificates[0].Subject.CommonName != "Goloman" {
		t.Fatalf("client state: complete %v, peer %v", st.HandshakeComplete, st.PeerCertificates)
	}
	if a := <-done; a.err != nil || a.peerName != "Hands" {
		t.Fatalf("server side: %+v, want the verified client certificate of Hands", a)
	}
}

func TestTLSRefusesCertificateFromAnotherCA(t *testing.T) {
	ca, rogue := testcert.New(t, "transport test CA"), testcert.New(t, "transport test CA")
	server := &transport.TCP{TLS: mutualTLS(ca, ca.Issue(t, "Goloman"))}
	ln, err := server.Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := echoOnce(ln)
	// The rogue client does not trust the server's CA: Dial fails in the
	// handshake, and the server's first read fails too.
	client := &transport.TCP{TLS: mutualTLS(rogue, rogue.Issue(t, "Hands"))}
	c, err := client.Dial(t.Context(), ln.Addr().String())
	if err == nil {
		c.Close()
		t.Fatal("Dial succeeded with a server certificate from an unknown CA")
	}
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Errorf("Dial error %v (%T), want a certificate verification error", err, err)
	}
	if a := <-done; a.err == nil {
		t.Fatalf("server accepted the rogue client: %+v", a)
	}
}

// silentListener accepts connections and never writes to them; accepted
// receives each connection as it arrives.
func silentListener(t *testing.T) (net.Listener, <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-stopped
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	return ln, accepted
}

func TestDialHonoursContext(t *testing.T) {
	ca := testcert.New(t, "transport test CA")
	ln, accepted := silentListener(t)
	addr := ln.Addr().String()
	for name, tr := range map[string]*transport.TCP{
		"plain": {},
		"tls":   {TLS: mutualTLS(ca, ca.Issue(t, "Hands"))},
	} {
		t.Run(name+"/cancelled before", func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			c, err := tr.Dial(ctx, addr)
			if err == nil {
				c.Close()
				t.Fatal("Dial with a cancelled context succeeded")
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Dial error %v, want one that wraps context.Canceled", err)
			}
		})
	}
	// Against a server that accepts but never answers, a TLS Dial waits
	// in the handshake until its context ends.
	t.Run("tls/cancelled during handshake", func(t *testing.T) {
		tr := &transport.TCP{TLS: mutualTLS(ca, ca.Issue(t, "Hands"))}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			c, err := tr.Dial(ctx, addr)
			if c != nil {
				c.Close()
			}
			errc <- err
		}()
		select {
		case <-accepted: // the TCP connection is up; the handshake waits
		case err := <-errc:
			t.Fatalf("Dial returned before the server accepted: %v", err)
		}
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Dial error %v, want one that wraps context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Dial did not return within 10s of its context being cancelled")
		}
	})
}

func TestListenOnBusyPortFails(t *testing.T) {
	for name, tr := range map[string]*transport.TCP{
		"plain": {},
		"tls":   {TLS: &tls.Config{}},
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := tr.Listen(t.Context(), "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ln2, err := tr.Listen(t.Context(), ln.Addr().String())
			if err == nil {
				ln2.Close()
				t.Fatalf("second Listen on %s succeeded", ln.Addr())
			}
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("second Listen: %v, want EADDRINUSE", err)
			}
		})
	}
}
