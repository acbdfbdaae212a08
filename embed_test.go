package herd

// embed_test.go: what an embedding service meets at start-up: a context
// already done, configuration errors, a port already taken.

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/proxyherd/herd/transport"
)

// countingTransport is plain TCP that counts its Listen calls, and fails
// them with err when it is set.
type countingTransport struct {
	transport.TCP
	listens atomic.Int64
	err     error
}

func (c *countingTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	c.listens.Add(1)
	if c.err != nil {
		return nil, c.err
	}
	return c.TCP.Listen(ctx, addr)
}

// TestStartDoneContext: Start with a context already done returns the
// context's error and starts nothing, so that a later Start works; Run
// with one closes the node without starting it and returns nil.
func TestStartDoneContext(t *testing.T) {
	tr := &countingTransport{}
	n, err := New(Config{Name: "Goloman", Addr: "127.0.0.1:0", Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	stop := errors.New("stopped before start")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(stop)
	if err := n.Start(ctx); err != stop {
		t.Fatalf("Start with a done context: %v, want %v", err, stop)
	}
	if tr.listens.Load() != 0 || n.Addr() != nil {
		t.Fatalf("Start with a done context listened (%d Listen calls, Addr %v)", tr.listens.Load(), n.Addr())
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("Start after the refused one: %v", err)
	}
	if tr.listens.Load() != 1 || n.Addr() == nil {
		t.Fatalf("%d Listen calls, Addr %v", tr.listens.Load(), n.Addr())
	}

	tr2 := &countingTransport{}
	n2, err := New(Config{Name: "Hands", Addr: "127.0.0.1:0", Transport: tr2})
	if err != nil {
		t.Fatal(err)
	}
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := n2.Run(done); err != nil {
		t.Fatalf("Run with a done context: %v, want nil", err)
	}
	if tr2.listens.Load() != 0 {
		t.Fatal("Run with a done context listened")
	}
	if err := n2.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Run: %v, want ErrClosed", err)
	}
}

// TestConfigErrorsOneLine: every invalid field is one clause of one line,
// ErrInvalidConfig's text is said once, and no clause repeats its value.
func TestConfigErrorsOneLine(t *testing.T) {
	_, err := New(Config{Name: "Goloman", Addr: "nope", RedialMin: 2, RedialMax: 1,
		Peers: []Peer{{Name: "a b"}, {Name: "Zed", Addr: "127.0.0.1"}}})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New: %v, want ErrInvalidConfig", err)
	}
	want := `herd: invalid config: Addr: "nope": missing port in address; ` +
		`Peers[0].Name: "a b" must not contain white space; ` +
		`Peers[1].Addr: "127.0.0.1": missing port in address; ` +
		`RedialMax: 1ns is below RedialMin 2ns`
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	_, err = New(Config{Addr: "127.0.0.1:0"})
	if want := "herd: invalid config: Name: must not be empty"; err == nil || err.Error() != want {
		t.Errorf("one problem: %v, want %s", err, want)
	}
}

// TestListenErrorNamesAddrOnce: a port already taken is reported in the
// listener's own words, which name the address; a Transport whose error
// does not name it gets it added.
func TestListenErrorNamesAddrOnce(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	n, err := New(Config{Name: "Goloman", Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = n.Start(context.Background())
	if want := "herd: Goloman: listen tcp " + addr + ": bind: address already in use"; err == nil || err.Error() != want {
		t.Errorf("busy port: %v\nwant %s", err, want)
	}

	refuse := errors.New("no listening today")
	n2, err := New(Config{Name: "Hands", Addr: "127.0.0.1:0", Transport: &countingTransport{err: refuse}})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	err = n2.Start(context.Background())
	if want := "herd: Hands: listen on 127.0.0.1:0: no listening today"; err == nil || err.Error() != want || !errors.Is(err, refuse) {
		t.Errorf("transport error: %v\nwant %s", err, want)
	}
	if strings.Count(err.Error(), "127.0.0.1:0") != 1 {
		t.Errorf("address named more than once: %v", err)
	}
}

// farListener claims a non-loopback address, as a listener on a LAN
// interface would.
type farListener struct{ net.Listener }

func (farListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 12000} }

// TestConfigListener: a node serves on the listener it is given, never
// calls the Transport's Listen, closes it on Close, and leaves it open
// when Start fails; Addr and Listener together are refused.
func TestConfigListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Name: "Goloman", Addr: "127.0.0.1:0", Listener: ln}); err == nil ||
		err.Error() != `herd: invalid config: Addr: "127.0.0.1:0": must be empty when Listener is set (the node serves on `+ln.Addr().String()+`)` {
		t.Errorf("Addr and Listener: %v", err)
	}

	far := farListener{ln}
	n, err := New(Config{Name: "Goloman", Listener: far})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Start on a non-loopback listener without a secret: %v", err)
	}
	n.Close()

	tr := &countingTransport{}
	n, err = New(Config{Name: "Goloman", Listener: ln, Transport: tr}) // still open
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("Start on the caller's listener after a failed Start: %v", err)
	}
	if n.Addr().String() != ln.Addr().String() || tr.listens.Load() != 0 {
		t.Fatalf("Addr %v, want %v; %d Listen calls", n.Addr(), ln.Addr(), tr.listens.Load())
	}
	c := dialNode(t, n)
	c.send(kiwiIAMAT + "\n")
	if got := c.line(); !strings.HasPrefix(got, "AT Goloman ") {
		t.Fatalf("IAMAT reply %q", got)
	}
	n.Close()
	if err := ln.Close(); err == nil {
		t.Error("the node's Close left the listener open")
	}
}
