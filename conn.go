package herd

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// session is one accepted connection while it serves a client.
type session struct {
	n   *Node
	c   net.Conn
	st  *connState
	id  string
	lr  *lineReader
	out []byte // replies not yet written
	// firstLine disarms the first-line timer (see serveConn).
	firstLine func() bool
}

// serveConn serves one accepted connection until it closes. A first line
// that starts with "HERD" turns it into a peer link; anything else makes it
// a client connection.
func (n *Node) serveConn(c net.Conn, st *connState) {
	id := st.id
	s := &session{n: n, c: c, st: st, id: id, lr: newLineReader(c, n.cfg.MaxLineBytes)}
	remote := addrString(c.RemoteAddr())
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "connection opened", slog.String("conn", id), slog.String("remote", remote))
	// Until its first line arrives a connection is neither client nor
	// peer, and one that never finishes a line must not hold one of
	// MaxConns for ever (slow-loris).
	var quiet atomic.Bool
	t := n.clock.AfterFunc(n.cfg.HandshakeTimeout, func() {
		quiet.Store(true)
		c.Close()
	})
	s.firstLine = t.Stop
	reason := s.serve()
	t.Stop()
	if quiet.Load() {
		reason = "no complete first line within HandshakeTimeout"
	}
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "connection closed", slog.String("conn", id), slog.String("remote", remote), slog.String("why", reason))
}

// serve runs the client loop and returns why it ended.
func (s *session) serve() string {
	n := s.n
	first := true
	for {
		line, ok := s.lr.next()
		if !ok {
			// No complete line is buffered: write what is pending before
			// a read that may block, so replies never wait on input.
			if err := s.flush(); err != nil {
				return "write: " + err.Error()
			}
			s.lr.release()
			err := s.lr.fill()
			switch {
			case err == nil:
				s.st.active.Store(true)
				continue
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
				if _, isTLS := s.c.(*tls.Conn); isTLS && first {
					n.log.LogAttrs(n.ctx, slog.LevelWarn, "TLS handshake failed", slog.String("conn", s.id), slog.String("err", err.Error()))
				}
				return "read: " + err.Error()
			}
		}
		if first {
			first = false
			s.firstLine()
			if isPeerHello(line) {
				return n.acceptPeer(s, line)
			}
		}
		logLine(n, s.id, "in", line)
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
	logLine(s.n, s.id, "out", out[len(s.out):])
	s.out = out
}

// flush writes every pending reply in one write. Replies are appended
// whole, so no reader ever sees half of one.
func (s *session) flush() error {
	if len(s.out) == 0 {
		return nil
	}
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
			s.n.stats.iamat.Add(1)
			return
		}
	case "WHATSAT":
		if m, ok := parseWHATSAT(&f, nf); ok && s.whatsat(&m) {
			s.n.stats.whatsat.Add(1)
			return
		}
	}
	s.n.stats.invalid.Add(1)
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
// for a "? " answer, when the report is for a new client and the table is
// full.
func (s *session) iamat(m *iamat) bool {
	n := s.n
	start := len(s.out)
	out := appendAT(s.out, n.cfg.Name, n.clock.Now(), m)
	rec := newRecord(string(out[start:]), n.cfg.Name, m)
	stored, res := n.offer(rec, "")
	switch res {
	case offerFull:
		s.out = out[:start]
		return false
	case offerStale:
		out = append(out[:start], stored.Line...)
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
		// The provider may take a while: send earlier replies first.
		if err := s.flush(); err != nil {
			return true // the write error ends the session at the next flush
		}
		lat, lon, _ := parseLocation(rec.Location)
		body = nearby(n.ctx, n.clock, n.places, n.cfg.PlacesTimeout, NearbyQuery{
			Lat: lat, Lon: lon, RadiusMeters: m.radiusMeters, MaxResults: m.bound,
		})
	}
	out := append(s.out, rec.Line...)
	out = append(out, '\n')
	out = append(out, body...)
	s.reply(append(out, "\n\n"...))
	return true
}

// logLine logs one input or output line of connection id. It is cheap
// when the logger drops Info records.
func logLine[T ~string | ~[]byte](n *Node, id, dir string, line T) {
	if !n.log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	for len(line) > 0 && line[len(line)-1] == '\n' {
		line = line[:len(line)-1] // replies carry their newlines; the log doesn't
	}
	n.log.LogAttrs(context.Background(), slog.LevelInfo, dir, slog.String("conn", id), slog.String("line", string(line)))
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
