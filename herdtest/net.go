package herdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"

	"github.com/proxyherd/herd"
)

// Errors of the simulated network. They wrap the syscall errors real
// sockets return, so errors.Is(err, syscall.ECONNRESET) works on both.
var (
	errRefused     = &net.OpError{Op: "dial", Net: "sim", Err: syscall.ECONNREFUSED}
	errUnreachable = &net.OpError{Op: "dial", Net: "sim", Err: syscall.EHOSTUNREACH}
	errHostDown    = &net.OpError{Op: "dial", Net: "sim", Err: errors.New("host crashed")}
)

// Addr is a simulated network address: a host:port string.
type Addr string

// Network returns "sim".
func (Addr) Network() string { return "sim" }

// String returns the address.
func (a Addr) String() string { return string(a) }

// Transport returns a herd.Transport for host, which registers host as a
// server: partitions apply to it. Call it again after Crash for the
// restarted node; transports handed out before the crash fail.
//
// Listen accepts any host:port (port 0 picks a free port); the listener
// belongs to host whatever the address says. Dial connects after a latency
// drawn for the dial's key, or fails with ECONNREFUSED (nothing listens
// there), EHOSTUNREACH (a partition separates the hosts) or the context's
// error.
func (s *Sim) Transport(hostName string) herd.Transport {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hosts[hostName]
	if h == nil {
		h = &host{name: hostName}
		s.hosts[hostName] = h
	}
	return &transport{s: s, host: h, inc: h.inc}
}

type transport struct {
	s    *Sim
	host *host
	inc  int
}

func (t *transport) dead() bool { return t.host.inc != t.inc }

// Listen announces on addr.
func (t *transport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	s := t.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.dead() {
		return nil, &net.OpError{Op: "listen", Net: "sim", Err: errors.New("host crashed")}
	}
	h, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "sim", Err: err}
	}
	if port == "0" {
		port = strconv.Itoa(s.nextPort)
		s.nextPort++
		addr = net.JoinHostPort(h, port)
	}
	if s.listeners[addr] != nil {
		return nil, &net.OpError{Op: "listen", Net: "sim", Addr: Addr(addr), Err: syscall.EADDRINUSE}
	}
	ln := &listener{s: s, host: t.host.name, addr: Addr(addr)}
	ln.cond.L = &s.mu
	s.listeners[addr] = ln
	s.fault("listen", t.host.name+" "+addr)
	return ln, nil
}

// Dial connects to addr.
func (t *transport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return t.s.dial(ctx, t, t.host.name, addr)
}

// Dial connects the party from (a client label, never partitioned unless
// it is a registered host) to addr. It blocks until the connect event is
// applied, so another goroutine must drive the simulation meanwhile. The
// driver itself uses Cluster.Connect instead.
func (s *Sim) Dial(ctx context.Context, from, addr string) (net.Conn, error) {
	return s.dial(ctx, nil, from, addr)
}

// pendingDial is a dial whose connect event has not been applied.
type pendingDial struct {
	from, addr string
	result     chan dialResult // buffered: the connect event never blocks
	done       bool            // a result was sent
}

type dialResult struct {
	c   net.Conn
	err error
}

// fail ends the dial with err. s.mu must be held.
func (d *pendingDial) fail(err error) {
	if !d.done {
		d.done = true
		d.result <- dialResult{err: err}
	}
}

func (s *Sim) dial(ctx context.Context, t *transport, from, addr string) (net.Conn, error) {
	d, err := s.startDial(t, from, addr)
	if err != nil {
		return nil, err
	}
	select {
	case r := <-d.result:
		return r.c, r.err
	case <-ctx.Done():
	}
	s.mu.Lock()
	if d.done {
		s.mu.Unlock()
		if r := <-d.result; r.c != nil {
			r.c.Close()
		}
		return nil, ctx.Err()
	}
	d.done = true
	delete(s.dials, d)
	s.mu.Unlock()
	return nil, ctx.Err()
}

// startDial queues the connect event of a dial.
func (s *Sim) startDial(t *transport, from, addr string) (*pendingDial, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t != nil && t.dead() {
		return nil, errHostDown
	}
	s.stats.Dials++
	s.dialN[from+"->"+addr]++
	d := &pendingDial{from: from, addr: addr, result: make(chan dialResult, 1)}
	s.dials[d] = struct{}{}
	key := "dial " + from + "->" + addr
	to := ""
	if ln := s.listeners[addr]; ln != nil {
		to = ln.host
	}
	at := s.now + s.latency(from, to).draw(s.rng(key))
	s.schedule(&event{at: at, key: key, kind: kindConnect, dial: d})
	return d, nil
}

// connect applies a dial's connect event. s.mu must be held.
func (s *Sim) connect(e *event) {
	d := e.dial
	delete(s.dials, d)
	if d.done {
		s.trace.add(s.now, e.key, "connect", "abandoned")
		return
	}
	ln := s.listeners[d.addr]
	switch {
	case ln == nil || ln.closed:
		s.stats.Refused++
		s.trace.add(s.now, e.key, "connect", "refused")
		d.fail(errRefused)
		return
	case s.hosts[d.from] != nil && s.cut(d.from, ln.host):
		s.stats.Refused++
		s.trace.add(s.now, e.key, "connect", "unreachable")
		d.fail(errUnreachable)
		return
	}
	s.stats.Conns++
	pairKey := d.from + "->" + ln.host
	s.connN[pairKey]++
	id := pairKey + "#" + strconv.Itoa(s.connN[pairKey])
	c := &conn{id: id, peers: s.hosts[d.from] != nil}
	// The dialer's port is the connection's number, so addresses are
	// stable and distinct.
	dialerAddr := Addr(net.JoinHostPort(d.from, strconv.Itoa(s.connN[pairKey])))
	c.ends[0].init(s, c, 0, d.from, id+">", dialerAddr, ln.addr)
	c.ends[1].init(s, c, 1, ln.host, id+"<", ln.addr, dialerAddr)
	s.conns[id] = c
	s.trace.add(s.now, e.key, "connect", id)
	ln.backlog = append(ln.backlog, &c.ends[1])
	ln.cond.Broadcast()
	d.done = true
	d.result <- dialResult{c: &c.ends[0]}
}

// listener is a simulated net.Listener. Accept hands out connections in
// the order their connect events were applied.
type listener struct {
	s       *Sim
	host    string
	addr    Addr
	cond    sync.Cond // L is &s.mu
	backlog []*endpoint
	closed  bool
}

// Accept waits for the next connection.
func (ln *listener) Accept() (net.Conn, error) {
	s := ln.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if ln.closed {
			return nil, &net.OpError{Op: "accept", Net: "sim", Addr: ln.addr, Err: net.ErrClosed}
		}
		if len(ln.backlog) > 0 {
			e := ln.backlog[0]
			ln.backlog = ln.backlog[1:]
			return e, nil
		}
		ln.cond.Wait()
	}
}

// Close stops the listener; connections not yet accepted are reset.
func (ln *listener) Close() error {
	ln.s.mu.Lock()
	defer ln.s.mu.Unlock()
	if ln.closed {
		return &net.OpError{Op: "close", Net: "sim", Addr: ln.addr, Err: net.ErrClosed}
	}
	ln.closeLocked()
	return nil
}

func (ln *listener) closeLocked() {
	if ln.closed {
		return
	}
	s := ln.s
	ln.closed = true
	if s.listeners[string(ln.addr)] == ln {
		delete(s.listeners, string(ln.addr))
	}
	for _, e := range ln.backlog {
		// Like a real backlog: the dialer's connection is reset.
		e.abort()
	}
	ln.backlog = nil
	ln.cond.Broadcast()
}

// Addr returns the listen address.
func (ln *listener) Addr() net.Addr { return ln.addr }

var _ fmt.Stringer = Addr("")
