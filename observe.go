package herd

// observe.go: what a node tells monitoring (package herdhttp builds
// Prometheus metrics, health checks and the status page on it): timings
// through Config.Observer, and the observation methods LinkStatus,
// RecentUpdates, SampleRecords and Ready. Everything here is read under
// the locks the node already takes, and nothing on a client's or a link's
// path waits for it.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Observer receives a node's timings, for metrics. The node calls its
// methods on its own goroutines (client sessions, link readers, WHATSAT
// calls), possibly concurrently; they must be safe for concurrent use,
// return quickly and never block, and must not call back into the node.
// A nil [Config.Observer] means none, and costs nothing.
type Observer interface {
	// FloodLag reports, for records from neighbour peer that changed this
	// node's table, the time from the record's server receive time (the
	// AT line's client time plus its time difference) to its arrival
	// here. It is negative when the two servers' clocks disagree by more
	// than the lag. Records are sampled: the link's first line and every
	// 16th line after, when it changes the table.
	FloodLag(peer string, d time.Duration)
	// IAMAT reports the time from reading client commands to having their
	// replies ready to write, for writes that carry IAMAT replies: a batch
	// of pipelined commands read together is one observation, of its
	// slowest (last) reply. Writes are sampled, the first of each
	// connection and every 16th after, so that timing costs a clock
	// reading per 16 writes rather than one per line.
	IAMAT(d time.Duration)
	// Places reports one call of the Places provider for WHATSAT: how long
	// it took and its error, if any.
	Places(d time.Duration, err error)
}

// LinkStatus is the state of the link to one configured neighbour.
type LinkStatus struct {
	// Peer and Addr are the neighbour's name and address, as configured.
	Peer, Addr string
	// Dials is true when this node dials the neighbour (its name sorts
	// after this node's); otherwise the neighbour dials this node.
	Dials bool
	// Up is true while an authenticated link is up.
	Up bool
	// Overdue is true when the link has been down for longer than a
	// redial should take (RedialMax plus HandshakeTimeout, whichever side
	// dials): not a blip, something to look at. It makes [Node.Ready]
	// fail.
	Overdue bool
	// Since is when the link came up (Up) or went down; before the first
	// link-up it is when the node started (zero before Start).
	Since time.Time
	// LastUp is when a link to the neighbour last came up; zero if none
	// has.
	LastUp time.Time
	// Ups counts the link-ups since the node started.
	Ups uint64
	// Sent and Received count the records (AT lines) sent to and received
	// from the neighbour over every link since [New].
	Sent, Received uint64
	// Backlog is the number of records waiting to be sent on the link.
	Backlog int
}

// Update is one change of a node's table, as [Node.RecentUpdates] reports
// it.
type Update struct {
	Record
	// From is the neighbour the record came from, or "" when a client of
	// this node reported it.
	From string
}

// recentUpdates is how many table changes a node remembers for
// RecentUpdates.
const recentUpdates = 32

// timingSample is the sampling period of IAMAT and FloodLag timings: one
// observation costs a clock reading or a parse, too much for every line.
const timingSample = 16

// observeState is the node's bookkeeping for the observation methods.
// Guarded by n.mu.
type observeState struct {
	start  time.Time // when the node started listening
	peers  []peerObs // per Config.Peers entry, same order; nil before Start
	recent []Update  // ring of the last recentUpdates changes
	next   int       // where the next change goes in recent
	timing Observer  // Config.Observer, set by New; read-only after
}

// peerObs is what a node remembers of one neighbour across its links.
type peerObs struct {
	live           []*link // links up or still winding down
	sent, received uint64  // counts of links that have ended
	up             bool
	since, lastUp  time.Time
	ups            uint64
}

// observeStart records the start time. Called with n.mu held.
func (n *Node) observeStart() {
	n.obs.start = n.clock.Now()
	n.obs.peers = make([]peerObs, len(n.cfg.Peers))
}

// peerIndex returns the index of peer in Config.Peers, or -1.
func (n *Node) peerIndex(peer string) int {
	i, ok := slices.BinarySearchFunc(n.cfg.Peers, peer, func(p Peer, name string) int { return strings.Compare(p.Name, name) })
	if !ok || n.obs.peers == nil {
		return -1
	}
	return i
}

// observeLink records that l came up (up) or has ended. Called with n.mu
// held, after l was added to or removed from n.links.
func (n *Node) observeLink(l *link, up bool) {
	i := n.peerIndex(l.peer)
	if i < 0 {
		return
	}
	p := &n.obs.peers[i]
	now := n.clock.Now()
	if up {
		p.live = append(p.live, l)
		p.up, p.since, p.lastUp = true, now, now
		p.ups++
		return
	}
	if k := slices.Index(p.live, l); k >= 0 {
		p.live = slices.Delete(p.live, k, k+1)
		p.sent += l.sent.Load()
		p.received += l.received.Load()
	}
	if !slices.ContainsFunc(n.links, func(o *link) bool { return o.peer == l.peer }) {
		p.up, p.since = false, now
	}
}

// backlog returns the number of records waiting on l. Called with n.mu
// held.
func (l *link) backlog() int { return l.owed.len() }

// LinkStatus returns the state of the link to every configured neighbour,
// sorted by name. It does not block on I/O.
func (n *Node) LinkStatus() []LinkStatus {
	now := n.clock.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]LinkStatus, len(n.cfg.Peers))
	for i, p := range n.cfg.Peers {
		s := LinkStatus{Peer: p.Name, Addr: p.Addr, Dials: p.Name > n.cfg.Name, Since: n.obs.start}
		if n.obs.peers != nil {
			o := &n.obs.peers[i]
			s.Sent, s.Received = o.sent, o.received
			for _, l := range o.live {
				s.Sent += l.sent.Load()
				s.Received += l.received.Load()
			}
			s.Up, s.LastUp, s.Ups = o.up, o.lastUp, o.ups
			if !o.since.IsZero() {
				s.Since = o.since
			}
		}
		s.Overdue = !s.Up && !s.Since.IsZero() && now.Sub(s.Since) > n.redialGrace()
		if k, ok := slices.BinarySearchFunc(n.links, p.Name, func(l *link, name string) int { return strings.Compare(l.peer, name) }); ok {
			s.Backlog = n.links[k].backlog()
		}
		out[i] = s
	}
	return out
}

// recordUpdate remembers a table change for RecentUpdates, once someone
// has asked for them. Called with n.mu held.
func (n *Node) recordUpdate(r Record, from string) {
	if n.obs.recent == nil {
		return // nobody watches: not even the copy
	}
	u := Update{Record: r, From: from}
	if len(n.obs.recent) < recentUpdates {
		n.obs.recent = append(n.obs.recent, u)
	} else {
		n.obs.recent[n.obs.next] = u
	}
	n.obs.next = (n.obs.next + 1) % recentUpdates
}

// RecentUpdates returns the node's most recent table changes, newest
// first: at most 32. A node remembers changes from the first call on
// (herdhttp.New makes one), so that one nobody watches pays nothing.
func (n *Node) RecentUpdates() []Update {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.obs.recent == nil {
		n.obs.recent = make([]Update, 0, recentUpdates)
	}
	r := n.obs.recent
	out := make([]Update, 0, len(r))
	for k := 1; k <= len(r); k++ {
		out = append(out, r[(n.obs.next-k+len(r))%len(r)])
	}
	return out
}

// SampleRecords returns at most max stored records, sorted by client ID:
// all of them when the table holds no more, otherwise the clients whose
// IDs hash lowest under the table's own hash, a sample that stays the same
// from call to call and grows and shrinks smoothly with the table. The
// table keeps clients in hash order, so the work is proportional to max,
// not to the table, and the node's lock is released between slices of
// it; a record that changes meanwhile may be seen before or after the
// change.
func (n *Node) SampleRecords(max int) []Record {
	if max <= 0 {
		return nil
	}
	type pick struct {
		h uint64
		r Record
	}
	var picks []pick
	for lo := 0; lo < numLeaves && len(picks) < max; lo += sampleLeaves {
		n.mu.Lock()
		n.table.eachInLeaves(lo, min(lo+sampleLeaves, numLeaves), func(p pos, h uint64) { picks = append(picks, pick{h, n.table.recordAt(p)}) })
		n.mu.Unlock()
	}
	// Every client in a later leaf hashes higher than any picked.
	slices.SortFunc(picks, func(a, b pick) int { return cmp.Or(cmp.Compare(a.h, b.h), strings.Compare(a.r.Client, b.r.Client)) })
	out := make([]Record, 0, min(max, len(picks)))
	for _, p := range picks[:min(max, len(picks))] {
		out = append(out, p.r)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Client, b.Client) })
	return out
}

// sampleLeaves is how many leaf buckets SampleRecords reads per hold of
// n.mu.
const sampleLeaves = 256

// Ready reports whether the node is ready for traffic: it is listening,
// not closed, and every configured neighbour is linked or has been down
// for no longer than a redial should take (RedialMax plus
// HandshakeTimeout, whichever side dials). Otherwise the error says what
// is missing, naming every neighbour down for longer.
func (n *Node) Ready() error {
	n.stateMu.Lock()
	started, closed := n.started, n.closed
	n.stateMu.Unlock()
	switch {
	case closed:
		return ErrClosed
	case !started:
		return errors.New("herd: not listening yet")
	}
	now := n.clock.Now()
	var down []string
	for _, s := range n.LinkStatus() {
		if s.Overdue {
			down = append(down, fmt.Sprintf("%s down for %v", s.Peer, now.Sub(s.Since).Round(time.Millisecond)))
		}
	}
	if down != nil {
		return fmt.Errorf("herd: neighbours down longer than a redial (%v): %s", n.redialGrace(), strings.Join(down, ", "))
	}
	return nil
}

// redialGrace is how long a link may be down before it is overdue.
func (n *Node) redialGrace() time.Duration { return n.cfg.RedialMax + n.cfg.HandshakeTimeout }

// floodArrived reports the flood lag of r, a record from l's peer that
// changed the table and arrived at recv, to the Observer, for the link's
// first line and every timingSample-th.
func (n *Node) floodArrived(l *link, r *Record, recv time.Time) {
	o := n.obs.timing
	if o == nil || l.received.Load()%timingSample != 1 {
		return
	}
	if at, ok := r.ReceivedAt(); ok {
		o.FloodLag(l.peer, recv.Sub(at))
	}
}

// parseSkew parses the time difference at the start of s (up to the next
// space), as appendSkew writes it, saturating beyond a Duration's range.
func parseSkew(s string) (time.Duration, bool) {
	if i := strings.IndexByte(s, ' '); i >= 0 {
		s = s[:i]
	}
	if len(s) < 12 || (s[0] != '+' && s[0] != '-') {
		return 0, false
	}
	var d int64
	frac, saturated := -1, false
	for _, c := range s[1:] {
		switch {
		case c == '.' && frac < 0:
			frac = 0
		case c >= '0' && c <= '9':
			if frac >= 0 {
				frac++
			}
			if d > (math.MaxInt64-9)/10 {
				saturated = true // centuries, not a lag
				continue
			}
			d = d*10 + int64(c-'0')
		default:
			return 0, false
		}
	}
	switch {
	case frac != 9:
		return 0, false
	case saturated && s[0] == '-':
		return math.MinInt64, true // as time.Time.Sub saturates
	case saturated:
		return math.MaxInt64, true
	case s[0] == '-':
		d = -d
	}
	return time.Duration(d), true
}

// timePlaces wraps p so that every call is timed for the Observer; it
// returns p itself when there is no Observer or no provider.
func (n *Node) timePlaces(p PlacesClient) PlacesClient {
	o := n.obs.timing
	if o == nil || p == nil {
		return p
	}
	return PlacesFunc(func(ctx context.Context, q NearbyQuery) ([]byte, error) {
		start := n.clock.Now()
		b, err := p.Nearby(ctx, q)
		o.Places(n.clock.Now().Sub(start), err)
		return b, err
	})
}

// timeIAMATs reports to the Observer, just before a write, how long
// since the commands it answers were read, if any of them is an IAMAT,
// for the session's first such write and every timingSample-th.
func (s *session) timeIAMATs() {
	if s.iamatTimed() {
		s.n.obs.timing.IAMAT(s.n.clock.Now().Sub(s.recv))
	}
}

// iamatTimed reports whether the write about to happen is one timeIAMATs
// reports, counting it.
func (s *session) iamatTimed() bool {
	if s.n.obs.timing == nil || s.iamats == 0 {
		return false
	}
	s.timed++
	return s.timed%timingSample == 1
}

// LatLon returns the record's location in decimal degrees.
func (r *Record) LatLon() (lat, lon float64, ok bool) { return parseLocation(r.Location) }

// ReceivedAt returns the record's server receive time: its client time
// plus the time difference of its AT line.
func (r *Record) ReceivedAt() (time.Time, bool) {
	skew, ok := parseSkew(r.Line[min(len(r.Line), 4+len(r.Server)):])
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(r.Sec, int64(r.Nsec)).Add(skew), true
}
