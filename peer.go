package herd

// peer.go: links between servers. A link is one connection on the normal
// port; the neighbour whose name sorts first dials. The handshake:
//
//	dialer:   HERD 1 <dialer> <acceptor> <nonceD>
//	acceptor: HERD-OK <acceptor> <nonceA> <mac("accept")>
//	dialer:   HERD-AUTH <mac("dial")>
//	acceptor: HERD-WELCOME
//
// where mac(role) is hex HMAC-SHA256 under Config.Secret of the role, both
// names and both nonces. Fresh nonces on both sides mean a recorded
// handshake cannot be replayed, and the role in the MAC means one side's
// answer cannot be reflected back as the other's. A refusal is "? " and the
// offending line, then close. After the handshake each side sends its whole
// table, then every record that changes its table, as AT lines.

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	helloVerb   = "HERD"
	protoVer    = "1"
	nonceBytes  = 16
	writeBuffer = 64 << 10
)

// isPeerHello reports whether a connection's first line asks for a peer
// link.
func isPeerHello(line []byte) bool {
	var f fieldList
	n := splitFields(line, &f)
	return n > 0 && string(f[0]) == helloVerb
}

// handshakeMAC is the hex HMAC-SHA256 of one side's handshake answer.
func handshakeMAC(secret []byte, role, dialer, acceptor, nonceD, nonceA string) string {
	h := hmac.New(sha256.New, secret)
	fmt.Fprintf(h, "herd/%s %s\n%s\n%s\n%s\n%s", protoVer, role, dialer, acceptor, nonceD, nonceA)
	return hex.EncodeToString(h.Sum(nil))
}

// nonce draws a fresh handshake nonce from rng.
func nonce(rng *mrand.ChaCha8) string {
	var b [nonceBytes]byte
	rng.Read(b[:])
	return hex.EncodeToString(b[:])
}

// neighbour reports whether name is one of this node's peers.
func (n *Node) neighbour(name string) bool {
	_, ok := slices.BinarySearchFunc(n.cfg.Peers, name, func(p Peer, name string) int { return strings.Compare(p.Name, name) })
	return ok
}

// handshakeTimer closes the session's connection if the handshake takes
// longer than HandshakeTimeout; the returned function disarms it.
func (n *Node) handshakeTimer(s *session) func() bool {
	t := n.clock.AfterFunc(n.cfg.HandshakeTimeout, func() { s.c.Close() })
	return t.Stop
}

// readLine reads the next line of a handshake.
func (s *session) readLine() ([]byte, error) {
	for {
		if line, ok := s.lr.next(); ok {
			return line, nil
		}
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
}

// send writes one line (a newline is added) and logs it.
func (s *session) send(line string) error {
	logLine(s.n, s.id, "out", line)
	_, err := io.WriteString(s.c, line+"\n")
	return err
}

// refuse answers a handshake line with "? " and logs why the link was
// refused; it returns the reason for the connection log.
func (s *session) refuse(peer string, line []byte, why string) string {
	s.n.stats.handshakeFails.Add(1)
	s.n.log.LogAttrs(s.n.ctx, slog.LevelWarn, "peer refused", slog.String("conn", s.id), slog.String("peer", peer), slog.String("why", why))
	s.reply(appendInvalid(s.out, line))
	s.flush()
	return "peer refused: " + why
}

// acceptPeer runs the acceptor's side of the handshake on a connection
// whose first line was hello, then serves the link until it drops.
func (n *Node) acceptPeer(s *session, hello []byte) string {
	s.lr.dropPartial = true
	logLine(n, s.id, "in", hello)
	stop := n.handshakeTimer(s)
	defer stop()
	var f fieldList
	nf := splitFields(hello, &f)
	if nf != 5 || string(f[1]) != protoVer {
		return s.refuse("", hello, "malformed hello")
	}
	dialer, acceptor, nonceD := string(f[2]), string(f[3]), string(f[4])
	switch {
	case acceptor != n.cfg.Name:
		return s.refuse(dialer, hello, fmt.Sprintf("hello is for %q, this is %q", acceptor, n.cfg.Name))
	case !n.neighbour(dialer):
		return s.refuse(dialer, hello, "not a neighbour")
	case len(nonceD) != 2*nonceBytes:
		return s.refuse(dialer, hello, "malformed nonce")
	}
	if err := n.checkPeerCert(s, dialer); err != nil {
		return s.refuse(dialer, hello, err.Error())
	}
	nonceA := nonce(n.stream("accept/" + s.id))
	if err := s.send(fmt.Sprintf("HERD-OK %s %s %s", n.cfg.Name, nonceA, handshakeMAC(n.cfg.Secret, "accept", dialer, acceptor, nonceD, nonceA))); err != nil {
		return "handshake: " + err.Error()
	}
	line, err := s.readLine()
	if err != nil {
		if n.ctx.Err() != nil {
			return "node closing"
		}
		n.stats.handshakeFails.Add(1)
		n.log.LogAttrs(n.ctx, slog.LevelWarn, "peer handshake failed", slog.String("conn", s.id), slog.String("peer", dialer), slog.String("err", err.Error()))
		return "handshake: " + err.Error()
	}
	logLine(n, s.id, "in", line)
	nf = splitFields(line, &f)
	want := handshakeMAC(n.cfg.Secret, "dial", dialer, acceptor, nonceD, nonceA)
	if nf != 2 || string(f[0]) != "HERD-AUTH" || !hmac.Equal(f[1], []byte(want)) {
		return s.refuse(dialer, line, "authentication failed (wrong secret?)")
	}
	if err := s.send("HERD-WELCOME"); err != nil {
		return "handshake: " + err.Error()
	}
	stop()
	return n.runLink(s, dialer)
}

// checkPeerCert enforces Config.RequirePeerCert: the connection must be
// TLS with a verified certificate that names peer.
func (n *Node) checkPeerCert(s *session, peer string) error {
	if !n.cfg.RequirePeerCert {
		return nil
	}
	tc, ok := s.c.(*tls.Conn)
	if !ok {
		return errors.New("peer link is not TLS but RequirePeerCert is set")
	}
	state := tc.ConnectionState()
	if len(state.VerifiedChains) == 0 || len(state.PeerCertificates) == 0 {
		return errors.New("no verified certificate")
	}
	cert := state.PeerCertificates[0]
	if cert.Subject.CommonName == peer || slices.Contains(cert.DNSNames, peer) {
		return nil
	}
	return fmt.Errorf("certificate names %q %v, not %q", cert.Subject.CommonName, cert.DNSNames, peer)
}

// errRefused marks a handshake the other side refused.
var errRefused = errors.New("refused")

// dialPeer runs the dialer's side of the handshake, then serves the link
// until it drops. It reports whether the link came up.
func (n *Node) dialPeer(s *session, p Peer, rng *mrand.ChaCha8) (bool, error) {
	s.lr.dropPartial = true
	stop := n.handshakeTimer(s)
	defer stop()
	nonceD := nonce(rng)
	if err := s.send(fmt.Sprintf("%s %s %s %s %s", helloVerb, protoVer, n.cfg.Name, p.Name, nonceD)); err != nil {
		return false, err
	}
	line, err := s.readLine()
	if err != nil {
		return false, err
	}
	logLine(n, s.id, "in", line)
	var f fieldList
	nf := splitFields(line, &f)
	if nf == 0 || string(f[0]) != "HERD-OK" {
		return false, fmt.Errorf("%w: %q", errRefused, line)
	}
	if nf != 4 || string(f[1]) != p.Name {
		return false, fmt.Errorf("%w: answer %q is not from %s", errRefused, line, p.Name)
	}
	if err := n.checkPeerCert(s, p.Name); err != nil {
		return false, fmt.Errorf("%w: %v", errRefused, err)
	}
	nonceA := string(f[2])
	want := handshakeMAC(n.cfg.Secret, "accept", n.cfg.Name, p.Name, nonceD, nonceA)
	if !hmac.Equal(f[3], []byte(want)) {
		return false, fmt.Errorf("%w: %s failed authentication (wrong secret?)", errRefused, p.Name)
	}
	if err := s.send("HERD-AUTH " + handshakeMAC(n.cfg.Secret, "dial", n.cfg.Name, p.Name, nonceD, nonceA)); err != nil {
		return false, err
	}
	line, err = s.readLine()
	if err != nil {
		return false, err
	}
	logLine(n, s.id, "in", line)
	if string(line) != "HERD-WELCOME" {
		return false, fmt.Errorf("%w: %q", errRefused, line)
	}
	stop()
	n.runLink(s, p.Name)
	return true, nil
}

// dialLoop keeps a link to p up until the node closes, redialing with
// capped, jittered exponential backoff.
func (n *Node) dialLoop(p Peer) {
	backoff := n.cfg.RedialMin
	rng := n.stream("dial/" + p.Name)
	for attempt := uint64(1); n.ctx.Err() == nil; attempt++ {
		if n.dialOnce(p, rng, attempt) {
			backoff = n.cfg.RedialMin
		}
		// Jitter in [backoff/2, backoff] keeps a restarted herd from
		// redialing in lockstep.
		half := backoff / 2
		if !n.sleep(half + time.Duration(rng.Uint64()%uint64(half+1))) {
			return
		}
		backoff = min(2*backoff, n.cfg.RedialMax)
	}
}

// dialOnce dials p once and serves the link while it is up. It reports
// whether the link came up.
func (n *Node) dialOnce(p Peer, rng *mrand.ChaCha8, attempt uint64) bool {
	c, err := n.transport.Dial(n.ctx, p.Addr)
	if err != nil {
		if n.ctx.Err() == nil {
			n.log.LogAttrs(n.ctx, slog.LevelInfo, "peer dial failed", slog.String("peer", p.Name), slog.String("addr", p.Addr), slog.String("err", err.Error()))
		}
		return false
	}
	id := p.Name + "#" + strconv.FormatUint(attempt, 10)
	st := n.track(c, id)
	if st == nil {
		return false
	}
	defer n.untrack(c)
	s := &session{n: n, c: c, st: st, id: id, lr: newLineReader(c, n.cfg.MaxLineBytes)}
	up, err := n.dialPeer(s, p, rng)
	if err != nil && n.ctx.Err() == nil {
		n.stats.handshakeFails.Add(1)
		level := slog.LevelInfo
		if errors.Is(err, errRefused) {
			level = slog.LevelWarn
		}
		n.log.LogAttrs(n.ctx, level, "peer refused", slog.String("conn", id), slog.String("peer", p.Name), slog.String("why", err.Error()))
	}
	return up
}

// link is an authenticated connection to a neighbour.
type link struct {
	peer   string
	s      *session
	wake   chan struct{} // signalled when queue becomes non-empty
	done   chan struct{} // closed when the link is going down
	failed atomic.Bool
	once   sync.Once

	// Guarded by n.mu: the records waiting for the writer, in the order
	// they were queued; the queue's generation, node-wide unique and
	// renewed each time the writer takes the queue; and the link's slot,
	// the lowest not used by another up link, which indexes entry.waits.
	queue []string
	gen   uint64
	slot  int
}

// newLink returns the link to peer over session s; runLink registers it.
func newLink(peer string, s *session) *link {
	return &link{peer: peer, s: s, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// mergeAfter is how long a link's queue grows before a newer record of a
// client replaces the one already waiting instead of queueing behind it.
// Short queues keep every record (so a simulation sends the same lines
// whatever the writer's timing); a neighbour that falls behind is sent
// only each client's newest record, which is all its table would keep.
const mergeAfter = 64

// enqueue queues e's record for the neighbour without blocking. A
// neighbour that has PeerQueue clients' records waiting is disconnected;
// the next link-up resynchronises it. Called with n.mu held.
func (l *link) enqueue(e *entry) {
	if l.slot >= len(e.waits) {
		// Room for every up link at once: one allocation per client.
		e.waits = slices.Grow(e.waits, max(l.slot+1, len(l.s.n.links))-len(e.waits))
		e.waits = e.waits[:cap(e.waits)]
	}
	w := &e.waits[l.slot]
	if w.gen == l.gen && len(l.queue) >= mergeAfter {
		l.queue[w.i] = e.rec.Line
		return
	}
	if len(l.queue) >= l.s.n.cfg.PeerQueue {
		if l.failed.CompareAndSwap(false, true) {
			l.s.n.stats.peerSlow.Add(1)
			l.s.n.log.LogAttrs(l.s.n.ctx, slog.LevelWarn, "peer link dropped", slog.String("conn", l.s.id), slog.String("peer", l.peer), slog.String("why", "cannot keep up (queue full)"))
			l.stop()
		}
		return
	}
	*w = queueRef{gen: l.gen, i: len(l.queue)}
	l.queue = append(l.queue, e.rec.Line)
	if len(l.queue) == 1 {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// takeQueue hands the writer every waiting record and empties the queue;
// spare is a slice the writer is done with, reused for the next queue.
func (n *Node) takeQueue(l *link, spare []string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := l.queue
	l.queue = spare[:0]
	n.renewQueue(l)
	return q
}

// renewQueue gives l's queue a new generation, which voids every
// entry.waits position in the old one. Called with n.mu held.
func (n *Node) renewQueue(l *link) {
	n.gens++
	l.gen = n.gens
}

// addLink registers l as the up link to its peer, replacing an older one,
// and gives it a slot and a queue generation. Called with n.mu held.
func (n *Node) addLink(l *link) {
	i, found := slices.BinarySearchFunc(n.links, l.peer, func(l *link, p string) int { return strings.Compare(l.peer, p) })
	if found {
		// A newer link replaces a stale one (the neighbour restarted
		// before we noticed).
		n.links[i].stop()
		n.links = slices.Delete(n.links, i, i+1)
	}
	l.slot = 0
	for slices.ContainsFunc(n.links, func(o *link) bool { return o.slot == l.slot }) {
		l.slot++
	}
	n.renewQueue(l)
	n.links = slices.Insert(n.links, i, l)
}

// stop begins taking the link down; safe to call more than once.
func (l *link) stop() {
	l.once.Do(func() {
		close(l.done)
		l.s.c.Close()
	})
}

// runLink serves an authenticated link: it registers it, pushes the whole
// table (anti-entropy), then floods records both ways until the link
// drops.
func (n *Node) runLink(s *session, peer string) string {
	l := newLink(peer, s)
	s.st.peer.Store(true)
	n.mu.Lock()
	n.addLink(l)
	snapshot := n.table.snapshot()
	n.notifyLocked()
	n.mu.Unlock()
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "peer link up", slog.String("conn", s.id), slog.String("peer", peer), slog.Int("records", len(snapshot)))

	writerDone := make(chan struct{})
	n.goFunc(func() {
		defer close(writerDone)
		n.linkWriter(l, snapshot)
	})
	why := n.linkReader(l)
	l.stop()
	<-writerDone

	n.mu.Lock()
	if i, found := slices.BinarySearchFunc(n.links, peer, func(l *link, p string) int { return strings.Compare(l.peer, p) }); found && n.links[i] == l {
		n.links = slices.Delete(n.links, i, i+1)
		n.notifyLocked()
	}
	n.mu.Unlock()
	n.stats.linkDrops.Add(1)
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "peer link dropped", slog.String("conn", s.id), slog.String("peer", peer), slog.String("why", why))
	return "peer link dropped: " + why
}

// linkReader offers every record the neighbour sends until the link fails.
func (n *Node) linkReader(l *link) string {
	s := l.s
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.EOF {
				return "closed by peer"
			}
			if errors.Is(err, errLineTooLong) {
				return "line longer than the limit"
			}
			return "read: " + err.Error()
		}
		if s.logLines {
			s.logLine("in", line)
		}
		s.st.active.Store(true)
		var f fieldList
		nf := splitFields(line, &f)
		if nf == 6 && n.holds(f[3], line) {
			// The same record came by another path: the common case in a
			// herd with cycles, answered without parsing or allocating.
			continue
		}
		rec, ok := parseATFields(line, &f, nf)
		if !ok {
			n.log.LogAttrs(n.ctx, slog.LevelWarn, "bad record from peer", slog.String("conn", s.id), slog.String("peer", l.peer), slog.String("line", string(line)))
			continue
		}
		n.offer(rec, l.peer)
	}
}

// holds reports whether the table holds exactly line as client's record.
func (n *Node) holds(client, line []byte) bool {
	n.mu.Lock()
	r, ok := n.table.get(client)
	n.mu.Unlock()
	return ok && r.Line == string(line)
}

// linkWriter sends the snapshot, then queued records, batching whatever is
// queued into one write.
func (n *Node) linkWriter(l *link, snapshot []Record) {
	var buf []byte
	lines := n.lineLog(l.s.id)
	write := func() bool {
		if len(buf) == 0 {
			return true
		}
		lines.out(buf)
		l.s.st.beginWrite(n)
		_, err := l.s.c.Write(buf)
		l.s.st.endWrite()
		buf = buf[:0]
		if err != nil {
			l.stop()
			return false
		}
		return true
	}
	for _, r := range snapshot {
		buf = append(append(buf, r.Line...), '\n')
		if len(buf) >= writeBuffer && !write() {
			return
		}
	}
	if !write() {
		return
	}
	var batch []string
	for {
		select {
		case <-l.done:
			return
		case <-l.wake:
		}
		batch = n.takeQueue(l, batch)
		for _, line := range batch {
			buf = append(append(buf, line...), '\n')
			if len(buf) >= writeBuffer && !write() {
				return
			}
		}
		if !write() {
			return
		}
		clear(batch) // let sent lines be collected
	}
}
