package bench

// linkbytes.go: a herd.Transport that counts what a node writes on
// its peer links, for "herd bench resync". It is plain TCP (package
// transport) with every connection wrapped, dialled or accepted; a
// connection is a peer link if the first bytes it carries, whichever way
// they go, are "HERD" (a peer's hello, docs/protocol.md; the dialer speaks
// first), and a client connection otherwise.

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/proxyherd/herd/transport"
)

// Kinds of counted connections.
const (
	connUnknown int32 = iota // too few bytes yet
	connPeer
	connClient
)

// peerHello is how a peer link's first line starts.
const peerHello = "HERD"

// classifyConn tells a connection's kind from the first bytes it carried.
func classifyConn(head []byte) int32 {
	n := min(len(head), len(peerHello))
	switch {
	case string(head[:n]) != peerHello[:n]:
		return connClient
	case n == len(peerHello):
		return connPeer
	}
	return connUnknown
}

// countingTransport is TCP that counts the bytes written on each
// connection. The zero value is ready to use.
type countingTransport struct {
	tcp   transport.TCP
	mu    sync.Mutex
	conns []*countedConn
}

// Listen listens on addr; every accepted connection is counted.
func (t *countingTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := t.tcp.Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &countingListener{Listener: ln, t: t}, nil
}

// Dial connects to addr; the connection is counted.
func (t *countingTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := t.tcp.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return t.wrap(c), nil
}

func (t *countingTransport) wrap(c net.Conn) *countedConn {
	cc := &countedConn{Conn: c}
	t.mu.Lock()
	t.conns = append(t.conns, cc)
	t.mu.Unlock()
	return cc
}

// peerBytes returns the bytes written on peer links so far, how many
// peer links there have been, and how many writes on them are under way
// (a write blocked on a full socket has counted nothing yet).
func (t *countingTransport) peerBytes() (bytes int64, links, writing int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.conns {
		if c.kind.Load() == connPeer {
			bytes += c.written.Load()
			links++
			writing += int(c.writing.Load())
		}
	}
	return bytes, links, writing
}

type countingListener struct {
	net.Listener
	t *countingTransport
}

// Accept returns the next connection, counted.
func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.t.wrap(c), nil
}

// countedConn counts the bytes written on a connection and learns its
// kind from its first bytes.
type countedConn struct {
	net.Conn
	written atomic.Int64
	writing atomic.Int32 // writes under way
	kind    atomic.Int32
	mu      sync.Mutex
	head    []byte // the first bytes, either way, while the kind is unknown
}

// Read reads from the connection.
func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.kind.Load() == connUnknown {
		c.sniff(b[:n])
	}
	return n, err
}

// Write writes to the connection and counts what was written.
func (c *countedConn) Write(b []byte) (int, error) {
	if len(b) > 0 && c.kind.Load() == connUnknown {
		c.sniff(b)
	}
	c.writing.Add(1)
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	c.writing.Add(-1)
	return n, err
}

func (c *countedConn) sniff(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kind.Load() != connUnknown {
		return
	}
	c.head = append(c.head, b[:min(len(b), len(peerHello)-len(c.head))]...)
	if k := classifyConn(c.head); k != connUnknown {
		c.kind.Store(k)
		c.head = nil
	}
}

var errNoHalfClose = errors.New("connection cannot half-close")

// CloseRead shuts the reading side, as a *net.TCPConn does: the node
// uses it to let a client session finish when it closes.
func (c *countedConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errNoHalfClose
}

// CloseWrite shuts the writing side.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoHalfClose
}
