package herd

// future.go: reports from the future. Records are ordered by client time,
// so one report stamped years ahead would win over every real report that
// follows it, at every server, until its time came. An IAMAT more than
// Config.MaxClientAhead ahead of its receive time is refused; a peer
// record more than that plus Config.PeerClockAllowance ahead of this
// node's clock is dropped.

import (
	"log/slog"
	"math"
	"time"
)

// beyond reports whether the time sec.nsec (Unix seconds and nanoseconds)
// is more than bound after now.
func beyond(sec int64, nsec int32, now time.Time, bound time.Duration) bool {
	limit := now.Add(bound)
	ls := limit.Unix()
	return sec > ls || sec == ls && int(nsec) > limit.Nanosecond()
}

// peerAhead is how far ahead of this node's clock a peer record's client
// time may be: MaxClientAhead plus PeerClockAllowance, saturating.
func (n *Node) peerAhead() time.Duration {
	a, b := n.cfg.MaxClientAhead, n.cfg.PeerClockAllowance
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// futureIAMAT reports whether s must refuse the IAMAT m, received at
// s.recv, as too far in the future; if so it counts and logs it.
func (s *session) futureIAMAT(m *iamat) bool {
	n := s.n
	if n.cfg.MaxClientAhead < 0 || !beyond(m.sec, m.nsec, s.recv, n.cfg.MaxClientAhead) {
		return false
	}
	n.stats.futureRefused.Add(1)
	n.offence("report from the future refused", sourceOf(s.c.RemoteAddr()),
		slog.String("conn", s.id), slog.String("client", string(m.client)), slog.String("time", string(m.time)),
		slog.Duration("max_client_ahead", n.cfg.MaxClientAhead))
	return true
}

// futurePeerRecord reports whether the record r, received from peer over
// s at s.recv, must be dropped as too far in the future; if so it counts
// and logs it.
func (n *Node) futurePeerRecord(s *session, peer string, r *Record) bool {
	if n.cfg.MaxClientAhead < 0 || !beyond(r.Sec, r.Nsec, s.recv, n.peerAhead()) {
		return false
	}
	n.stats.futureDropped.Add(1)
	n.offence("peer record from the future dropped", peer,
		slog.String("conn", s.id), slog.String("line", r.Line), slog.Duration("bound", n.peerAhead()))
	return true
}
