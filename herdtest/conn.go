package herdtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// conn is one simulated TCP connection: two endpoints and two directions.
// ends[0] is the dialer's, ends[1] the acceptor's. The direction from
// ends[0] has key id+">", the other id+"<".
type conn struct {
	id    string
	peers bool // both ends are registered hosts (a link between servers)
	ends  [2]endpoint
}

// endpoint is one end of a connection; it is the net.Conn its owner holds.
//
// Semantics follow TCP (Linux):
//   - Without a window (SimOptions.Window zero) Write never blocks: the send
//     buffer is unbounded. With a window, a direction holds at most Window
//     bytes that the receiver has not read (in the sender's step buffer, in
//     flight, or unread at the receiver, like TCP's send and receive
//     buffers together): Write takes what fits and blocks, durably in the
//     synctest sense, until the receiver reads or the connection fails
//     (bytes lost at a receiver that closed or was reset never reopen the
//     window: the writer waits for the reset they draw, as over TCP).
//     A Write that fails after taking part of p reports how much it took;
//     those bytes are still delivered, so a writer cut off while blocked
//     leaves a partial line in the stream, as over TCP. Bytes written
//     during one settle step are delivered, in order, after a latency;
//     with SplitWrites, in up to three pieces.
//   - Sim.StopReading makes Read on the chosen endpoints block as if
//     nothing had arrived (data and EOF wait; a reset or a local Close
//     still ends it), modelling a process that stops reading its socket.
//   - CloseWrite sends FIN after the bytes written before it. The other side
//     reads them, then io.EOF. Writing after CloseWrite fails with EPIPE.
//   - Close stops local reads and writes at once (net.ErrClosed). It sends
//     FIN, or RST if unread bytes remain in the receive buffer. Bytes that
//     later arrive at a closed endpoint are answered with RST.
//   - A received RST (or a fault: partition, ResetConns) makes the next
//     Read and Write fail with ECONNRESET and discards unread bytes, the
//     harsh case of TCP, so a server that closes without lingering loses
//     replies here too.
//   - Deadlines are not supported (herd never sets them): the Set*Deadline
//     methods return an error wrapping errors.ErrUnsupported.
type endpoint struct {
	s             *Sim
	c             *conn
	side          int
	host          string // the party that owns this end
	outKey        string
	local, remote Addr
	cond          sync.Cond // readers wait here; L is &s.mu
	wcond         sync.Cond // writers wait here for window space; L is &s.mu

	buf     []byte // received, not yet read
	eof     bool   // FIN received
	rst     bool   // reset: received RST or a fault
	closed  bool   // Close called (or the host crashed)
	wshut   bool   // FIN queued
	sentRST bool
	cutOut  bool // BreakMidLine cut this direction: later data is lost
	midLine bool // the last byte received was not a newline

	// held counts bytes this end wrote that the other end has neither
	// read nor lost (step buffer, in flight, unread): what the network
	// holds for it. unacked counts bytes written and not yet read by the
	// other end, lost ones included: what the window bounds (bytes lost
	// at a dead receiver never open the window; the reset they draw ends
	// the writer). written and read are totals: bytes Write took on this
	// end, bytes Read returned on this end. blocked counts Writes waiting
	// for window space.
	held, unacked int
	written, read int64
	blocked       int

	// hook, when set, is called by the driver before a data event is
	// applied to this endpoint, without s.mu held.
	hook func(data []byte)
}

func (e *endpoint) init(s *Sim, c *conn, side int, host, outKey string, local, remote Addr) {
	e.s, e.c, e.side, e.host, e.outKey, e.local, e.remote = s, c, side, host, outKey, local, remote
	e.cond.L = &s.mu
	e.wcond.L = &s.mu
}

// wake wakes the endpoint's blocked readers and writers. s.mu must be
// held.
func (e *endpoint) wake() {
	e.cond.Broadcast()
	e.wcond.Broadcast()
}

// consumed accounts for n bytes sent by e's peer that e's owner read:
// they leave the network and free window space. s.mu must be held.
func (e *endpoint) consumed(n int) {
	if n == 0 {
		return
	}
	w := e.peer()
	w.held -= n
	w.unacked -= n
	w.wcond.Broadcast()
}

// lost accounts for n bytes sent by e's peer that were lost at e (unread
// when it closed or was reset, or arriving after): they leave the
// network but free no window space. s.mu must be held.
func (e *endpoint) lost(n int) { e.peer().held -= n }

// discard drops the unread bytes. s.mu must be held.
func (e *endpoint) discard() {
	e.lost(len(e.buf))
	e.buf = nil
}

func (e *endpoint) peer() *endpoint { return &e.c.ends[1-e.side] }

func (e *endpoint) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "sim", Source: e.local, Addr: e.remote, Err: err}
}

// Read reads received bytes, blocking until there are some, the stream
// ended (io.EOF) or the connection failed.
func (e *endpoint) Read(p []byte) (int, error) {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	for {
		switch {
		case e.closed:
			return 0, e.opErr("read", net.ErrClosed)
		case e.rst:
			return 0, e.opErr("read", syscall.ECONNRESET)
		case e.s.readStopped(e):
			// The owner "does not read": wait for ResumeReading.
		case len(e.buf) > 0:
			n := copy(p, e.buf)
			e.buf = e.buf[n:]
			if len(e.buf) == 0 {
				e.buf = nil
			}
			e.read += int64(n)
			e.consumed(n)
			return n, nil
		case e.eof:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		e.cond.Wait()
	}
}

// Write queues p for delivery. Without a window it never blocks; with
// one it takes what fits and waits for room for the rest.
func (e *endpoint) Write(p []byte) (int, error) {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for {
		k, err := e.writeLocked(p[n:])
		n += k
		if err != nil || n == len(p) {
			return n, err
		}
		e.blocked++
		e.wcond.Wait()
		e.blocked--
	}
}

// writeLocked queues as much of p as the window allows, without blocking.
// s.mu must be held.
func (e *endpoint) writeLocked(p []byte) (int, error) {
	s := e.s
	switch {
	case e.closed:
		return 0, e.opErr("write", net.ErrClosed)
	case e.rst:
		return 0, e.opErr("write", syscall.ECONNRESET)
	case e.wshut:
		return 0, e.opErr("write", syscall.EPIPE)
	}
	k := e.room(len(p))
	if k > 0 {
		ob := s.outboxOf(e)
		ob.data = append(ob.data, p[:k]...)
		e.held += k
		e.unacked += k
		e.written += int64(k)
		s.stats.MaxBuffered = max(s.stats.MaxBuffered, e.held)
	}
	return k, nil
}

// room returns how many of want bytes the window lets e write now. s.mu
// must be held.
func (e *endpoint) room(want int) int {
	w := e.s.opts.Window
	if w <= 0 {
		return want
	}
	return max(0, min(want, w-e.unacked))
}

// CloseWrite sends FIN after everything written so far.
func (e *endpoint) CloseWrite() error {
	s := e.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case e.closed:
		return e.opErr("close", net.ErrClosed)
	case e.rst:
		return e.opErr("close", syscall.ECONNRESET)
	case e.wshut:
		return nil
	}
	e.wshut = true
	ob := s.outboxOf(e)
	ob.terms = append(ob.terms, kindFIN)
	return nil
}

// Close closes the endpoint.
func (e *endpoint) Close() error {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	if e.closed {
		return e.opErr("close", net.ErrClosed)
	}
	e.closeLocked()
	return nil
}

// closeLocked closes the endpoint: FIN, or RST if unread bytes remain.
// s.mu must be held.
func (e *endpoint) closeLocked() {
	if e.closed {
		return
	}
	e.closed = true
	if !e.rst {
		switch {
		case len(e.buf) > 0:
			e.sendRST()
		case !e.wshut:
			e.wshut = true
			ob := e.s.outboxOf(e)
			ob.terms = append(ob.terms, kindFIN)
		}
	}
	e.discard()
	e.wake()
	e.s.maybeForget(e.c)
}

// abort closes the endpoint with RST, as a listener closing with a
// connection in its backlog does. s.mu must be held.
func (e *endpoint) abort() {
	if e.closed {
		return
	}
	if !e.rst {
		e.sendRST()
	}
	e.closed = true
	e.discard()
	e.wake()
	e.s.maybeForget(e.c)
}

func (e *endpoint) sendRST() {
	if e.sentRST {
		return
	}
	e.sentRST = true
	ob := e.s.outboxOf(e)
	ob.terms = append(ob.terms, kindRST)
}

// reset is a fault: the connection is gone, silently, on this side.
// s.mu must be held.
func (e *endpoint) reset() {
	if e.closed || e.rst {
		return
	}
	e.rst = true
	e.discard()
	e.wake()
}

// receive applies a data, FIN or RST event to the endpoint. s.mu must be
// held.
func (e *endpoint) receive(ev *event) {
	s := e.s
	dead := e.closed || e.rst
	switch ev.kind {
	case kindData:
		lost := dead || e.peer().cutOut
		if !lost && len(s.breaks) > 0 {
			if f, k := s.breakAt(e, ev.data); f != nil {
				s.cutLine(e, ev, f, k)
			}
		}
		s.stats.Bytes += int64(len(ev.data))
		verb := "data"
		if lost {
			verb = "data-dropped"
		}
		s.trace.add(s.now, ev.key, verb, strconv.Quote(string(ev.data)))
		if lost {
			e.lost(len(ev.data))
			if dead && e.closed && !e.rst {
				e.sendRST() // bytes for a closed socket: the sender gets RST
			}
			return
		}
		e.buf = append(e.buf, ev.data...)
		e.midLine = ev.data[len(ev.data)-1] != '\n'
	case kindFIN:
		s.trace.add(s.now, ev.key, "fin", "")
		if dead {
			return
		}
		e.eof = true
	case kindRST:
		s.trace.add(s.now, ev.key, "rst", "")
		if dead {
			return
		}
		e.rst = true
		e.discard()
	}
	e.wake()
	s.maybeForget(e.c)
}

// LocalAddr returns the endpoint's address.
func (e *endpoint) LocalAddr() net.Addr { return e.local }

// RemoteAddr returns the other endpoint's address.
func (e *endpoint) RemoteAddr() net.Addr { return e.remote }

var errNoDeadlines = fmt.Errorf("herdtest: simulated connections have no deadlines (herd uses Clock.AfterFunc and Close): %w", errors.ErrUnsupported)

// SetDeadline is not supported.
func (e *endpoint) SetDeadline(time.Time) error { return errNoDeadlines }

// SetReadDeadline is not supported.
func (e *endpoint) SetReadDeadline(time.Time) error { return errNoDeadlines }

// SetWriteDeadline is not supported.
func (e *endpoint) SetWriteDeadline(time.Time) error { return errNoDeadlines }

// String names the connection and side, for logs.
func (e *endpoint) String() string { return e.outKey }

// maybeForget drops c from the live set once neither end can send or
// receive. s.mu must be held.
func (s *Sim) maybeForget(c *conn) {
	a, b := &c.ends[0], &c.ends[1]
	if (a.closed || a.rst) && (b.closed || b.rst) {
		s.forget(c)
	}
}

func (s *Sim) forget(c *conn) { delete(s.conns, c.id) }

// outbox holds what one endpoint wrote during the current settle step.
type outbox struct {
	from  *endpoint
	data  []byte
	terms []kind // FIN and RST, after the data
}

func (s *Sim) outboxOf(e *endpoint) *outbox {
	ob := s.outbox[e.outKey]
	if ob == nil {
		ob = &outbox{from: e}
		s.outbox[e.outKey] = ob
	}
	return ob
}

// flush turns the step's outboxes into delivery events, in key order.
// s.mu must be held.
func (s *Sim) flush() {
	if len(s.outbox) == 0 {
		return
	}
	keys := make([]string, 0, len(s.outbox))
	for k := range s.outbox {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ob := s.outbox[k]
		if len(ob.data) > 0 {
			if ob.from.c.peers {
				s.stats.PeerRecords += countRecords(ob.data)
			}
			s.transmit(ob.from, kindData, ob.data)
		}
		for _, t := range ob.terms {
			s.transmit(ob.from, t, nil)
		}
	}
	clear(s.outbox)
}

// transmit schedules delivery of one data, FIN or RST to the other end of
// from, after a latency drawn from the direction's stream and never before
// what was sent earlier on it. s.mu must be held.
func (s *Sim) transmit(from *endpoint, k kind, data []byte) {
	to := from.peer()
	if len(s.silent) > 0 && s.silent[pair(from.host, to.host)] {
		s.trace.add(s.now, from.outKey, "lost", fmt.Sprintf("%d bytes", len(data)))
		return
	}
	key := from.outKey
	r := s.rng(key)
	lat := s.latency(from.host, to.host)
	pieces := [][]byte{data}
	if k == kindData && s.opts.SplitWrites && len(data) > 1 {
		cuts := make([]int, r.IntN(3))
		for i := range cuts {
			cuts[i] = 1 + r.IntN(len(data)-1)
		}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		pieces = pieces[:0]
		prev := 0
		for _, c := range cuts {
			pieces = append(pieces, data[prev:c])
			prev = c
		}
		pieces = append(pieces, data[prev:])
	}
	for _, p := range pieces {
		at := max(s.now+lat.draw(r), s.last[key])
		s.last[key] = at
		s.schedule(&event{at: at, key: key, kind: k, ep: to, data: p})
	}
}

// countRecords counts the lines of b that are AT records.
func countRecords(b []byte) int {
	n := 0
	for len(b) > 0 {
		if len(b) >= 3 && string(b[:3]) == "AT " {
			n++
		}
		i := slices.Index(b, '\n')
		if i < 0 {
			break
		}
		b = b[i+1:]
	}
	return n
}
