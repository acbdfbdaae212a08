package herd

// peer.go: links between servers. A link is one connection on the normal
// port; the neighbour whose name sorts first dials. The handshake:
//
//	dialer:   HERD 2 <dialer> <acceptor> <nonceD>
//	acceptor: HERD-OK <acceptor> <nonceA> <mac("accept")>
//	dialer:   HERD-AUTH <mac("dial")>
//	acceptor: HERD-WELCOME
//
// where mac(role) is hex HMAC-SHA256 under Config.Secret of the role, both
// names and both nonces. Fresh nonces on both sides mean a recorded
// handshake cannot be replayed, and the role in the MAC means one side's
// answer cannot be reflected back as the other's. Without a secret the
// empty key proves nothing: protect.go limits such links to loopback and
// keeps them from replacing live ones. A refusal is "? " and the
// offending line, then close. After the handshake the two sides reconcile
// their tables (sync.go) and flood every record that changes them, as AT
// lines (docs/protocol.md section 7).

import (
	"bytes"
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
	protoVer    = "2"
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
		if line, ok := s.next(); ok {
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
	if nf != 5 {
		return s.refuse("", hello, "malformed hello")
	}
	if string(f[1]) != protoVer {
		return s.refuse(string(f[2]), hello, fmt.Sprintf("protocol version %s is not supported (this is %s)", f[1], protoVer))
	}
	dialer, acceptor, nonceD := string(f[2]), string(f[3]), string(f[4])
	if why := n.protectedRefusal(s); why != "" {
		return s.refusePeer(dialer, hello, why)
	}
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
	if why := n.replacementRefusal(s, dialer); why != "" {
		return s.refusePeer(dialer, line, why)
	}
	if err := s.send("HERD-WELCOME"); err != nil {
		return "handshake: " + err.Error()
	}
	stop()
	return n.runLink(s, dialer, false)
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
	if why := n.protectedRefusal(s); why != "" {
		n.stats.peersRefused.Add(1)
		return false, fmt.Errorf("%w: %s", errRefused, why)
	}
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
	n.runLink(s, p.Name, true)
	return true, nil
}

// dialLoop keeps a link to p up until the node closes, redialing with
// capped, jittered exponential backoff; a link that was up resets the
// backoff. A link that p dialed (a knock: p has just started) is kept:
// while it is up the loop dials nothing, since a second link would only
// replace the first, and once it drops the loop redials after RedialMin.
//
// The loop decides to dial only when a timer fires and no link to p is
// up. A kick (see kick) only restarts the wait with the backoff reset, so
// what the loop does never depends on whether a kick arrived just before
// or just after it began to wait: simulations stay deterministic.
func (n *Node) dialLoop(p Peer) {
	backoff := n.cfg.RedialMin
	rng := n.stream("dial/" + p.Name)
	kick := n.kicks[p.Name]
	for attempt := uint64(1); n.ctx.Err() == nil; attempt++ {
		if n.dialOnce(p, rng, attempt) {
			backoff = n.cfg.RedialMin
		}
		// Jitter in [backoff/2, backoff] keeps a restarted herd from
		// redialing in lockstep.
		half := backoff / 2
		wait := half + time.Duration(rng.Uint64()%uint64(half+1))
		for {
			var timer chan struct{} // nil while p's link is up: never fires
			var t Timer
			if wait > 0 {
				timer = make(chan struct{})
				t = n.clock.AfterFunc(wait, func() { close(timer) })
			}
			select {
			case <-timer:
			case <-kick:
				// No random draw here: kicks that arrive together, or
				// just before or after the wait began, all come to the
				// same timer.
				if t != nil {
					t.Stop()
				}
				backoff, wait = n.cfg.RedialMin, n.cfg.RedialMin
				continue
			case <-n.ctx.Done():
				if t != nil {
					t.Stop()
				}
				return
			}
			if !n.linkUp(p.Name) {
				backoff = min(2*backoff, n.cfg.RedialMax)
				break
			}
			wait = 0
		}
	}
}

// knock dials p once when the node starts, although p, whose name sorts
// first, is the one that keeps the link up: p may hold a link to this
// server's previous run that it has not yet found dead, or be waiting out
// a long backoff. The knock's link replaces the stale one at once, so a
// restarted server is linked within a round trip whichever side
// restarted; p keeps the knock's link and dials again only once it drops
// (see dialLoop).
//
// The knock waits knockDelay first, and is not made if p's link is up by
// then: when a whole herd starts together, p dials at once, and a knock
// at the same moment would only cross p's link, one replacing the other.
func (n *Node) knock(p Peer) {
	ready := make(chan struct{})
	t := n.clock.AfterFunc(knockDelay, func() { close(ready) })
	select {
	case <-ready:
	case <-n.ctx.Done():
		t.Stop()
		return
	}
	if !n.linkUp(p.Name) {
		n.dialOnce(p, n.stream("knock/"+p.Name), 0)
	}
}

// knockDelay is how long a starting server leaves its neighbours to dial
// it before it knocks: longer than a handshake on a LAN, and short enough
// that a restarted server is linked well within 100 ms.
const knockDelay = 20 * time.Millisecond

// kick tells the dial loop for peer, if this node has one, that a link
// to peer that peer dialed came up or went down (see dialLoop).
func (n *Node) kick(peer string) {
	select {
	case n.kicks[peer] <- struct{}{}:
	default:
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
	peer string
	s    *session
	wake chan struct{} // signalled when there is something to write
	done chan struct{} // closed when the link is going down
	once sync.Once

	// Guarded by n.mu. pending holds lines for the writer in order (AT
	// lines and sync lines, without newlines) while the link keeps up:
	// every record queued, so that what is sent never depends on when
	// the writer runs. Past Config.PeerQueue pending records (a neighbour
	// that falls behind), clients go to owed instead: the hashes of the
	// clients queued, each once (the dirty bit in its slot, the link's
	// slot, says so), whose newest record the writer sends. pushes are
	// leaf ranges to queue whole, for the link-up. syncIn counts the
	// sync lines received.
	slot       int
	wakeQueued bool        // in n.wakes
	busy       bool        // the writer has taken lines it has not finished writing
	wrote      atomic.Bool // the writer wrote since the last sweep (see pingQuietLinks)
	pending    []string
	owed       hashFIFO
	pushes     []leafRange
	syncIn     int

	sent, received atomic.Uint64 // AT lines written and read
}

// leafRange is the leaf buckets [lo, hi).
type leafRange struct{ lo, hi int }

// newLink returns the link to peer over session s; runLink registers it.
func newLink(peer string, s *session) *link {
	return &link{peer: peer, s: s, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// wakeLater notes that l's writer has work. Writers are woken by
// flushWakes, which every session calls before it waits for input: a
// writer starts once the lines that gave it work have all been handled,
// so it takes them in one batch, and a simulation step queues the same
// lines for it whatever the scheduler does. Called with n.mu held.
func (n *Node) wakeLater(l *link) {
	if !l.wakeQueued {
		l.wakeQueued = true
		n.wakes = append(n.wakes, l)
		n.wakesWaiting.Store(true)
	}
}

// flushWakes wakes the writers that wakeLater noted.
func (n *Node) flushWakes() {
	if !n.wakesWaiting.Load() {
		return
	}
	n.mu.Lock()
	ls := n.wakes
	n.wakes = nil
	for _, l := range ls {
		l.wakeQueued = false
	}
	n.wakesWaiting.Store(false)
	n.mu.Unlock()
	for _, l := range ls {
		l.signal()
	}
}

// signal wakes the link's writer.
func (l *link) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// queue queues the client at p (hash h) for l; line is its record's AT
// line, or "" to read it from the table. Called with n.mu held.
func (n *Node) queue(l *link, p pos, h uint64, line string) {
	if l.owed.len() == 0 && len(l.pending) < n.cfg.PeerQueue {
		if line == "" {
			line = string(n.table.lineAt(p))
		}
		n.stats.recordsFlooded++
		n.queueLine(l, line)
		return
	}
	if !n.table.mark(p, l.slot) {
		return // owed already: the writer will send the newest record
	}
	n.stats.recordsFlooded++
	l.owed.push(h)
	n.wakeLater(l)
}

// queueLine queues one line (no newline) for l's writer. Called with n.mu
// held.
func (n *Node) queueLine(l *link, line string) {
	l.pending = append(l.pending, line)
	n.wakeLater(l)
}

// queueSync queues sync lines, as the append* functions of summary.go
// make them (each ending in a newline). Called with n.mu held.
func (n *Node) queueSync(l *link, b []byte) {
	for line := range bytes.Lines(b) {
		n.queueLine(l, string(line[:len(line)-1]))
	}
}

// pushNow is the most records a push queues at once, in the goroutine
// that asks for it; a larger range is queued a chunk at a time by the
// writer (see fillBatch), so that no call holds n.mu for a whole table.
const pushNow = 4096

// pushRange queues every client in range i of level lvl for l. Called
// with n.mu held.
func (n *Node) pushRange(l *link, lvl, i int) {
	lo, hi := leaves(lvl, i)
	if n.table.sum.get(lvl, i).count <= pushNow {
		n.table.eachInLeaves(lo, hi, func(p pos, h uint64) { n.queue(l, p, h, "") })
		return
	}
	l.pushes = append(l.pushes, leafRange{lo, hi})
	n.wakeLater(l)
}

// pushChunk is how many leaf buckets the writer queues at once from a
// pending push: about 15 clients each at a million clients.
const pushChunk = 64

// fillBatch appends to buf what l's writer sends next: the pending lines,
// then owed records up to about writeBuffer bytes. A push in progress is
// turned into queued clients a chunk at a time. It reports whether more
// is waiting. Called with n.mu held.
func (n *Node) fillBatch(l *link, buf []byte) ([]byte, bool) {
	if l.owed.len() == 0 && len(l.pending) == 0 && len(l.pushes) > 0 {
		r := &l.pushes[0]
		end := min(r.lo+pushChunk, r.hi)
		n.table.eachInLeaves(r.lo, end, func(p pos, h uint64) { n.queue(l, p, h, "") })
		if r.lo = end; r.lo == r.hi {
			l.pushes = slices.Delete(l.pushes, 0, 1)
		}
	}
	start := len(buf)
	for i, line := range l.pending {
		if strings.HasPrefix(line, "AT ") {
			l.sent.Add(1)
		}
		buf = append(append(buf, line...), '\n')
		l.pending[i] = "" // let it be collected
	}
	l.pending = l.pending[:0]
	for l.owed.len() > 0 && len(buf)-start < writeBuffer {
		var ok bool
		if buf, ok = n.table.take(l.owed.pop(), l.slot, buf, true); ok {
			l.sent.Add(1)
		}
	}
	return buf, l.owed.len() > 0 || len(l.pushes) > 0
}

// drainStep unqueues up to max of a down link's owed clients, clearing
// their dirty bits so that its slot can serve another link. It reports
// whether the link owes nothing more. Called with n.mu held.
func (n *Node) drainStep(l *link, max int) bool {
	for i := 0; i < max && l.owed.len() > 0; i++ {
		n.table.take(l.owed.pop(), l.slot, nil, false)
	}
	return l.owed.len() == 0
}

// addLink registers l as the up link to its peer, replacing an older one,
// and gives it a free link slot. It reports false when every slot is
// taken (links flapping faster than they drain). Called with n.mu held.
func (n *Node) addLink(l *link) bool {
	free := -1
	for k := range maxLinkSlots {
		if n.linkSlots&(1<<k) == 0 {
			free = k
			break
		}
	}
	if free < 0 {
		return false
	}
	i, found := slices.BinarySearchFunc(n.links, l.peer, func(l *link, p string) int { return strings.Compare(l.peer, p) })
	if found {
		// A newer link replaces a stale one (the neighbour restarted
		// before we noticed).
		n.links[i].stop()
		n.links = slices.Delete(n.links, i, i+1)
	}
	l.slot = free
	n.linkSlots |= 1 << free
	n.links = slices.Insert(n.links, i, l)
	return true
}

// stop begins taking the link down; safe to call more than once.
func (l *link) stop() {
	l.once.Do(func() {
		close(l.done)
		l.s.c.Close()
	})
}

// pingLine is what a link sends when it has written nothing for a sweep
// (see Config.PeerTimeout).
const pingLine = "PING"

// pingQuietLinks queues a PING on every up link that has written nothing
// since the last sweep, so that its neighbour hears from it at least once
// a sweep and cuts it only when it is really gone.
func (n *Node) pingQuietLinks() {
	n.mu.Lock()
	for _, l := range n.links {
		if !l.wrote.Swap(false) && len(l.pending) == 0 && l.owed.len() == 0 {
			n.queueLine(l, pingLine)
		}
	}
	n.mu.Unlock()
	n.flushWakes()
}

// syncLineMax is the longest line a link must accept whatever
// MaxLineBytes says: a HAVE or WANT of maxIDs hashes.
const syncLineMax = 4 << 10

// runLink serves an authenticated link: it registers it, starts the
// link-up reconciliation (the dialer sends the top summary), then floods
// records both ways until the link drops.
func (n *Node) runLink(s *session, peer string, dialer bool) string {
	l := newLink(peer, s)
	s.st.peer.Store(true)
	s.lr.max = max(s.lr.max, syncLineMax)
	n.mu.Lock()
	if !n.addLink(l) {
		n.mu.Unlock()
		n.log.LogAttrs(n.ctx, slog.LevelWarn, "peer link refused", slog.String("conn", s.id), slog.String("peer", peer), slog.String("why", "no free link slot"))
		return "no free link slot"
	}
	n.observeLink(l, true)
	if !dialer {
		// Possibly a knock (the neighbour has just started): the link
		// replaced any stale one, and the dial loop, if this side keeps
		// the link up, must not dial another while it lasts (see dialLoop).
		n.kick(peer)
	}
	clients := n.table.len()
	if dialer {
		n.queueSync(l, appendSum(nil, 1, 0, n.childPrints(0, 0)))
	}
	n.notifyLocked()
	n.mu.Unlock()
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "peer link up", slog.String("conn", s.id), slog.String("peer", peer), slog.Int("records", clients))

	writerDone := make(chan struct{})
	n.goFunc(func() {
		defer close(writerDone)
		n.linkWriter(l)
	})
	why := n.linkReader(l)
	n.flushWakes() // what its last lines queued for other links
	l.stop()
	<-writerDone

	n.mu.Lock()
	if i, found := slices.BinarySearchFunc(n.links, peer, func(l *link, p string) int { return strings.Compare(l.peer, p) }); found && n.links[i] == l {
		n.links = slices.Delete(n.links, i, i+1)
		n.notifyLocked()
		if !dialer {
			n.kick(peer) // a dial loop waiting out a knock's link redials soon
		}
	}
	l.pushes, l.pending = nil, nil
	n.writerIdle(l) // a link gone owes nothing: Close's drain need not wait for it
	n.observeLink(l, false)
	n.mu.Unlock()
	// Free the link's slot a bounded piece at a time: a link that fell
	// far behind may owe most of the table.
	for {
		n.mu.Lock()
		done := n.drainStep(l, 4096)
		if done {
			n.linkSlots &^= 1 << l.slot
		}
		n.mu.Unlock()
		if done {
			break
		}
	}
	n.stats.linkDrops.Add(1)
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "peer link dropped", slog.String("conn", s.id), slog.String("peer", peer), slog.String("why", why))
	return "peer link dropped: " + why
}

// linkReader offers every record the neighbour sends, and answers its
// sync lines, until the link fails.
func (n *Node) linkReader(l *link) string {
	s := l.s
	s.warmField = 3 // AT server skew client ...
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
			l.received.Add(1)
			continue
		}
		if nf == 1 && string(f[0]) == pingLine {
			continue // a neighbour with nothing else to say is alive
		}
		if nf > 0 && isSyncVerb(f[0]) {
			n.syncLine(l, line, &f, nf)
			continue
		}
		rec, ok := parseATFields(line, &f, nf)
		if !ok {
			n.log.LogAttrs(n.ctx, slog.LevelWarn, "bad record from peer", slog.String("conn", s.id), slog.String("peer", l.peer), slog.String("line", string(line)))
			continue
		}
		l.received.Add(1)
		if n.futurePeerRecord(s, l.peer, &rec) {
			continue
		}
		if _, res := n.offer(rec, l.peer); res == offerChanged {
			n.floodArrived(l, &rec, s.recv)
		}
	}
}

// warm warms the table for the lines at the start of buf (see table.warm).
func (n *Node) warm(buf []byte, field int) int {
	n.mu.Lock()
	k := n.table.warm(buf, field)
	n.mu.Unlock()
	return k
}

// holds reports whether the table holds exactly line as client's record.
func (n *Node) holds(client, line []byte) bool {
	n.mu.Lock()
	ok := n.table.holds(client, line)
	n.mu.Unlock()
	return ok
}

// linkWriter sends what the link owes, in batches of about writeBuffer
// bytes, each taken under n.mu and written without it.
func (n *Node) linkWriter(l *link) {
	var buf []byte
	lines := n.lineLog(l.s.id)
	for {
		select {
		case <-l.done:
			return
		case <-l.wake:
		}
		for {
			n.mu.Lock()
			var more bool
			buf, more = n.fillBatch(l, buf[:0])
			if len(buf) == 0 && !more {
				n.writerIdle(l)
				n.mu.Unlock()
				break
			}
			l.busy = true
			n.mu.Unlock()
			if len(buf) == 0 {
				continue // a chunk of a push with no client in it
			}
			lines.out(buf)
			l.s.st.beginWrite(n)
			_, err := l.s.c.Write(buf)
			l.s.st.endWrite()
			l.wrote.Store(true)
			if err != nil {
				l.stop()
				return
			}
			if cap(buf) > 4*writeBuffer {
				buf = nil
			}
		}
	}
}
