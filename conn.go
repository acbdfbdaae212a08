package herd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// session is one accepted connection while it serves a client.
type session struct {
	n   *Node
	c   net.Conn
	st  *connState
	id  string
	lr  *lineReader
	out []byte // replies not yet written
	// logLines is whether lines are logged, asked of the logger at each
	// read (a level change applies from the next read) rather than for
	// every line.
	logLines bool
	logIn    [][]byte // lines read and not logged yet (see logLine)
	// recv is when the last read returned: the receive time of every
	// line it completed, so one clock reading serves a whole batch.
	recv time.Time
	// Commands answered since the last flush, added to the node's
	// counters at the next flush: one atomic add per batch, not per line.
	iamats, whatsats, invalids uint64
	// placesLim limits the connection's provider calls (see
	// placesGate.admit); nil until its first one. src is where the
	// connection comes from, once sourceSet.
	placesLim *rate.Limiter
	src       string
	sourceSet bool
	timed     uint64 // writes with IAMAT replies (observe.go)
	// ackPos is how far the state log must be on disk before out may be
	// written (AckDurable; see noteAck).
	ackPos uint64
	// aw writes replies that wait for an fsync (AckDurable; see
	// handOff), started by the first of them; nil otherwise.
	aw *ackWriter

	// warmField is the field of a line that names its client (1 for a
	// client's commands, 3 for a link's records), or 0 for no warming;
	// warmed is how many lines ahead are warmed already (see next).
	warmField, warmed int

	first      bool        // no line has arrived yet
	firstTimer Timer       // cuts a connection whose first line never arrives
	quiet      atomic.Bool // firstTimer fired
}

// serveConn serves one accepted connection until it closes, untracking
// it then. A first line that starts with "HERD" turns it into a peer link;
// anything else makes it a client connection. The session runs on
// goroutines started with goFunc (see awaitInput), so callers that need it
// finished wait for n.wg.
func (n *Node) serveConn(c net.Conn, st *connState) {
	s := &session{n: n, c: c, st: st, id: st.id, lr: newLineReader(c, n.cfg.MaxLineBytes), first: true, warmField: 1}
	// Until its first line arrives a connection is neither client nor
	// peer, and one that never finishes a line must not hold one of
	// MaxConns for ever (slow-loris).
	s.firstTimer = n.clock.AfterFunc(n.cfg.HandshakeTimeout, func() {
		s.quiet.Store(true)
		c.Close()
	})
	st.small.Store(true) // it starts on a fresh goroutine
	n.goFunc(func() { n.awaitInput(s) })
}

// awaitInput waits for a session's next input, then serves it. It runs
// on a fresh goroutine for a new connection and for a parked one (see
// parkRequested): this wait, a few small frames above the read, fits a
// goroutine's initial 2 KiB stack.
func (n *Node) awaitInput(s *session) {
	for {
		err := s.fill()
		switch {
		case err == nil:
			n.runSession(s)
			return
		case !s.parkRequested(err):
			n.endSession(s, s.readFailed(err))
			return
		}
		// Parked while already on a small goroutine: wait on here.
	}
}

// stopFirstTimer disarms the first-line timer and lets it be collected.
func (s *session) stopFirstTimer() {
	if s.firstTimer != nil {
		s.firstTimer.Stop()
		s.firstTimer = nil
	}
}

// handoff is what serve returns when the sweeper parked the session: its
// next wait for input belongs on a fresh goroutine.
const handoff = "handoff"

// aLongTimeAgo is a read deadline in the past: setting it makes a blocked
// Read return at once, as net/http does to abort reads. It is an
// interrupt, not a timeout: no decision here depends on the time.
var aLongTimeAgo = time.Unix(1, 0)

// park asks the session of an idle client connection to move its wait for
// input to a fresh goroutine. Handling lines can grow a goroutine's stack
// to 8 KiB, and Go does not shrink the stack of a goroutine blocked in a
// read; parked, an idle connection costs a 2 KiB stack and no buffers.
// The sweeper calls it once per idle period. Connections that cannot
// interrupt a read (TLS, whose state a read timeout may spoil, and
// transports without deadlines) are not parked.
func (st *connState) park() {
	if _, isTLS := st.c.(*tls.Conn); isTLS || st.small.Load() {
		return
	}
	st.parkReq.Store(true)
	if st.c.SetReadDeadline(aLongTimeAgo) != nil {
		st.parkReq.Store(false)
	}
}

// parkRequested reports whether err is the interrupt of park, and if so
// clears it.
func (s *session) parkRequested(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) || !s.st.parkReq.CompareAndSwap(true, false) {
		return false
	}
	if s.c.SetReadDeadline(time.Time{}) != nil {
		return false
	}
	s.st.small.Store(true)
	return true
}

// runSession serves s until it ends or hands off.
func (n *Node) runSession(s *session) {
	s.st.active.Store(true)
	if reason := s.serve(); reason != handoff {
		n.endSession(s, reason)
		return
	}
	n.goFunc(func() { n.awaitInput(s) })
}

// endSession logs why a session ended and closes its connection.
func (n *Node) endSession(s *session, reason string) {
	if err := s.finishWrites(); err != nil && !strings.HasPrefix(reason, "write: ") {
		reason += "; write: " + err.Error()
	}
	s.flushLog()
	n.flushWakes()
	s.publishCounts() // commands whose replies were never written count too
	s.stopFirstTimer()
	if s.quiet.Load() {
		reason = "no complete first line within HandshakeTimeout"
	}
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "connection closed", slog.String("conn", s.id), slog.String("remote", addrString(s.c.RemoteAddr())), slog.String("why", reason))
	n.untrack(s.c)
}

// readFailed answers what fill reported and returns why the session ends.
func (s *session) readFailed(err error) string {
	n := s.n
	switch {
	case errors.Is(err, errLineTooLong):
		prefix := s.lr.prefix()
		logLine(n, s.id, "in", prefix)
		n.stats.invalid.Add(1)
		s.reply(appendInvalid(s.out, prefix))
		s.flush()
		n.log.LogAttrs(n.ctx, slog.LevelWarn, "line too long", slog.String("conn", s.id), slog.Int("limit", n.cfg.MaxLineBytes))
		s.linger()
		return "line longer than the limit"
	case err == io.EOF:
		return "client closed"
	default:
		if _, isTLS := s.c.(*tls.Conn); isTLS && s.first {
			n.log.LogAttrs(n.ctx, slog.LevelWarn, "TLS handshake failed", slog.String("conn", s.id), slog.String("err", err.Error()))
		}
		return "read: " + err.Error()
	}
}

// serve runs the client loop and returns why it ended, or handoff.
func (s *session) serve() string {
	n := s.n
	for {
		line, ok := s.next()
		if !ok {
			// No complete line is buffered: write what is pending before
			// a read that may block, so replies never wait on input.
			if err := s.flush(); err != nil {
				return "write: " + err.Error()
			}
			if err := s.fill(); err != nil {
				if werr := s.ackErr(); werr != nil {
					// The writer failed and closed the connection.
					return "write: " + werr.Error()
				}
				if s.parkRequested(err) {
					if werr := s.finishWrites(); werr != nil {
						return "write: " + werr.Error()
					}
					s.out = nil // an idle session holds no buffers
					s.lr.release()
					n.stats.parked.Add(1)
					n.log.LogAttrs(n.ctx, slog.LevelDebug, "connection parked", slog.String("conn", s.id))
					return handoff
				}
				return s.readFailed(err)
			}
			s.st.active.Store(true)
			continue
		}
		s.st.small.Store(false)
		if s.first {
			s.first = false
			s.stopFirstTimer()
			if isPeerHello(line) {
				return n.acceptPeer(s, line)
			}
		}
		if s.logLines {
			s.logLine("in", line)
		}
		s.handle(line)
		if len(s.out) >= n.cfg.ReplyBuffer {
			if err := s.flush(); err != nil {
				return "write: " + err.Error()
			}
		}
		if n.cfg.CloseAfterReply {
			if s.flush() == nil {
				s.linger()
			}
			return "closed after reply"
		}
	}
}

// reply records out (the session's buffer with one more reply appended)
// and logs the new reply.
func (s *session) reply(out []byte) {
	if s.logLines {
		s.logLine("out", out[len(s.out):])
	}
	s.out = out
}

// flush writes every pending reply in one write. Replies are appended
// whole, so no reader ever sees half of one. In durable mode, replies that
// need an fsync not yet done, and any replies after them, go to the
// session's writer instead (handOff), in order.
func (s *session) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	if s.ackPos != 0 || s.aw != nil {
		if err := s.ackErr(); err != nil {
			s.out = s.out[:0] // replies that must not go out
			return err
		}
		if s.aw != nil && s.aw.queued.Load() > 0 || s.ackPos > s.n.wal.syncedPos.Load() {
			return s.handOff()
		}
		s.ackPos = 0 // on disk already, and nothing waits before them
	}
	s.timeIAMATs()
	s.publishCounts()
	s.st.beginWrite(s.n)
	_, err := s.c.Write(s.out)
	s.st.endWrite()
	if cap(s.out) > 4096 {
		s.out = nil // don't keep a large buffer on an idle connection
	} else {
		s.out = s.out[:0]
	}
	return err
}

// publishCounts adds the commands answered since the last call to the
// node's counters, before their replies are written, so that a client
// that has its reply sees it counted.
func (s *session) publishCounts() {
	c := &s.n.stats
	if s.iamats > 0 {
		c.iamat.Add(s.iamats)
	}
	if s.whatsats > 0 {
		c.whatsat.Add(s.whatsats)
	}
	if s.invalids > 0 {
		c.invalid.Add(s.invalids)
	}
	s.iamats, s.whatsats, s.invalids = 0, 0, 0
}

// lingerTimeout and lingerBytes bound how long and how much a closing
// connection drains (see linger).
const (
	lingerTimeout = 2 * time.Second
	lingerBytes   = 1 << 20
)

// linger half-closes the connection and discards what the client still
// sends, for a bounded time and amount, before the caller closes it.
// Closing a socket with unread input makes TCP send a reset, which can
// destroy the reply the client has not read yet.
func (s *session) linger() {
	if s.finishWrites() != nil {
		return
	}
	cw, ok := s.c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	t := s.n.clock.AfterFunc(lingerTimeout, func() { s.c.Close() })
	defer t.Stop()
	io.CopyN(io.Discard, s.c, lingerBytes)
}

// handle answers one client line.
func (s *session) handle(raw []byte) {
	var f fieldList
	nf := splitFields(raw, &f)
	verb := ""
	if nf > 0 {
		verb = cmdName(f[0])
	}
	switch verb {
	case "IAMAT":
		if m, ok := parseIAMAT(&f, nf); ok && s.iamat(&m) {
			s.iamats++
			return
		}
	case "WHATSAT":
		if m, ok := parseWHATSAT(&f, nf); ok && s.whatsat(&m) {
			s.whatsats++
			return
		}
	}
	s.invalids++
	s.reply(appendInvalid(s.out, raw))
}

// cmdName returns the verb if it is one the client protocol knows, without
// allocating.
func cmdName(b []byte) string {
	switch string(b) {
	case "IAMAT":
		return "IAMAT"
	case "WHATSAT":
		return "WHATSAT"
	}
	return ""
}

// iamat stores the report if it is newer than the client's record and
// answers with the record the server holds afterwards. It reports false,
// for a "? " answer, when the report is too far in the future
// (MaxClientAhead) or for a new client while the table is full.
func (s *session) iamat(m *iamat) bool {
	n := s.n
	if s.futureIAMAT(m) {
		return false
	}
	start := len(s.out)
	out := appendAT(s.out, n.cfg.Name, s.recv, m)
	rec := newRecord(string(out[start:]), n.cfg.Name, m)
	stored, res := n.offer(rec, "")
	s.noteAck()
	switch res {
	case offerFull:
		s.out = out[:start]
		return false
	case offerStale:
		out = append(out[:start], stored...)
	}
	s.reply(append(out, '\n'))
	return true
}

// whatsat answers a WHATSAT for a known client and reports false for an
// unknown one.
func (s *session) whatsat(m *whatsat) bool {
	n := s.n
	n.mu.Lock()
	rec, ok := n.table.get(m.client)
	n.mu.Unlock()
	if !ok {
		return false
	}
	var body []byte
	if m.bound == 0 {
		body = emptyJSON
	} else {
		lat, lon, _ := parseLocation(rec.Location)
		q := NearbyQuery{Lat: lat, Lon: lon, RadiusMeters: m.radiusMeters, MaxResults: m.bound}
		k := limitNone
		if n.places != nil {
			k = n.gate.admit(s, n.clock.Now())
		}
		if k != limitNone {
			// Over a limit: answered at once, without the provider.
			body = n.limitedBody(s, k, q)
		} else {
			// The provider may take a while: send earlier replies first.
			if err := s.flush(); err != nil {
				return true // the write error ends the session at the next flush
			}
			body = nearbyBody(n.ctx, n.clock, n.places, n.cfg.PlacesTimeout, q, n.bodies.whatsat)
		}
	}
	out := append(s.out, rec.Line...)
	out = append(out, '\n')
	out = append(out, body...)
	s.reply(append(out, "\n\n"...))
	return true
}

// next returns the next complete buffered line, as lineReader.next does,
// after warming the table for the lines ahead when none are warm (see
// table.warm): the lookups of a batch of lines then wait for memory once
// together rather than once each.
func (s *session) next() ([]byte, bool) {
	if s.warmField != 0 && s.warmed == 0 {
		s.warmed = s.n.warm(s.lr.unread(), s.warmField)
	}
	line, ok := s.lr.next()
	if ok && s.warmed > 0 {
		s.warmed--
	}
	return line, ok
}

// fill reads more input into the session's line reader.
func (s *session) fill() error {
	s.flushLog()     // the lines held are slices of the buffer fill reuses
	s.n.flushWakes() // before waiting: writers take what this batch queued
	err := s.lr.fill()
	s.warmed = 0
	s.recv = s.n.clock.Now()
	s.logLines = s.n.log.Enabled(context.Background(), LevelLines)
	return err
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
