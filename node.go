package herd

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/proxyherd/herd/internal/realtime"
	"github.com/proxyherd/herd/transport"
)

// Node is one server of a herd. Build it with [New], run it with
// [Node.Start] or [Node.Run], and stop it with [Node.Close]. All methods are
// safe for concurrent use.
type Node struct {
	cfg       Config
	clock     Clock
	transport Transport
	log       *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node started

	// mu guards the table, the links and the change signal. Offers and
	// fan-out happen under it, so a link's summary and the updates
	// queued after it never miss a record.
	mu        sync.Mutex
	table     *table
	links     []*link // up links, sorted by peer name
	linkSlots uint64  // link slots in use by up links and links draining
	// wakes are the links whose writers have work, to be woken by
	// flushWakes; wakesWaiting says there are some without taking mu.
	wakes        []*link
	wakesWaiting atomic.Bool
	// linkIdle, when not nil, is closed when a link writer goes idle
	// (see awaitLinksDrained).
	linkIdle chan struct{}
	// kicks wake the dial loop of a neighbour (see kick), by name.
	kicks   map[string]chan struct{}
	changed chan struct{}
	watched bool

	stateMu sync.Mutex
	started bool
	closed  bool
	ln      net.Listener
	conns   map[net.Conn]*connState
	// untracked, when not nil, is closed at the next untrack (see
	// awaitClientsGone).
	untracked chan struct{}
	fatal     chan error // the accept loop's error, if it fails

	places PlacesClient // Config.Places, counted; nil if none
	bodies bodyMemo     // WHATSAT bodies of recent provider documents
	gate   *placesGate  // limits on provider calls
	stats  counters
	// offences rate-limits the log lines about misbehaving sources.
	offences   offenceLog
	sweepEpoch atomic.Int64
	obs        observeState // see observe.go; guarded by mu

	// wal is the state log (wal.go), nil without Config.StateFile. It is
	// set in Start before the node serves.
	wal      *stateLog
	walHooks walHooks

	// seed keys every random stream the node uses (see stream).
	seed [32]byte
}

// New validates cfg and returns a node that has not started. It does no
// I/O. Every problem in cfg is reported, each naming its field, in an error
// that wraps [ErrInvalidConfig].
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:       cfg,
		clock:     cfg.Clock,
		transport: cfg.Transport,
		log:       cfg.Logger.With("server", cfg.Name),
		table:     newTable(tableKey(cfg.Secret)),
		changed:   make(chan struct{}),
		conns:     make(map[net.Conn]*connState),
		kicks:     make(map[string]chan struct{}, len(cfg.Peers)),
		fatal:     make(chan error, 1),
		gate:      newPlacesGate(cfg.PlacesLimits),
	}
	if n.clock == nil {
		n.clock = systemClock{}
	}
	for _, p := range cfg.Peers {
		n.kicks[p.Name] = make(chan struct{}, 1)
	}
	if n.transport == nil {
		n.transport = &transport.TCP{}
	}
	entropy := cfg.Entropy
	if entropy == nil {
		entropy = rand.Reader
	}
	if _, err := io.ReadFull(entropy, n.seed[:]); err != nil {
		return nil, fmt.Errorf("%w: Entropy: %v", ErrInvalidConfig, err)
	}
	if p := cfg.Places; p != nil {
		n.places = PlacesFunc(func(ctx context.Context, q NearbyQuery) ([]byte, error) {
			n.stats.placesCalls.Add(1)
			b, err := p.Nearby(ctx, q)
			if err != nil {
				n.stats.placesErrors.Add(1)
			}
			return b, err
		})
	}
	n.obs.timing = cfg.Observer
	n.places = n.timePlaces(n.places)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// Name returns the server's name.
func (n *Node) Name() string { return n.cfg.Name }

// Start listens on [Config.Addr] (or serves on [Config.Listener]) and starts accepting clients and peers and
// dialing neighbours, then returns. With a [Config.StateFile] it first
// loads the table from the snapshot and the state log, and fails if it
// cannot start a new log segment. ctx bounds only the start itself; the
// node runs until [Node.Close]. A ctx that is already done makes Start
// return its error (context.Cause) having started nothing: no listener,
// no goroutine, no state file opened; Start may then be called again.
// Start succeeds at most once.
func (n *Node) Start(ctx context.Context) error {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	switch {
	case n.closed:
		return ErrClosed
	case n.started:
		return ErrStarted
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	ln, release, err := n.listen(ctx)
	if err != nil {
		return err
	}
	if err := n.checkListen(ln.Addr()); err != nil {
		release()
		return err
	}
	if n.cfg.StateFile != "" {
		// Loaded before the first accept: no client sees a partial table.
		if err := n.openLog(); err != nil {
			release()
			return fmt.Errorf("herd: %s: %w", n.cfg.Name, err)
		}
	}
	n.started = true
	n.ln = ln
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "listening", slog.String("addr", ln.Addr().String()))
	n.mu.Lock()
	n.observeStart()
	n.notifyLocked()
	n.mu.Unlock()
	n.goFunc(n.acceptLoop)
	n.goFunc(n.sweepLoop)
	for _, p := range n.cfg.Peers {
		if p.Name > n.cfg.Name {
			n.goFunc(func() { n.dialLoop(p) })
		} else {
			n.goFunc(func() { n.knock(p) })
		}
	}
	return nil
}

// listen returns the listener Start serves on: [Config.Listener] as it is,
// or else a new one from the Transport on [Config.Addr]. release undoes
// it if Start fails: it closes a listener of the node's own and leaves
// the caller's open, since the caller still owns it.
func (n *Node) listen(ctx context.Context) (ln net.Listener, release func(), err error) {
	if ln := n.cfg.Listener; ln != nil {
		return ln, func() {}, nil
	}
	ln, err = n.transport.Listen(ctx, n.cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("herd: %s: %w", n.cfg.Name, listenError(n.cfg.Addr, err))
	}
	return ln, func() { ln.Close() }, nil
}

// listenError is err, a Transport's failure to listen on addr, naming
// addr once: as it comes when it names addr already (a *net.OpError
// reads "listen tcp 127.0.0.1:12000: bind: address already in use"),
// else prefixed "listen on addr: ".
func listenError(addr string, err error) error {
	if strings.Contains(err.Error(), addr) {
		return err
	}
	return fmt.Errorf("listen on %s: %w", addr, err)
}

// Run starts the node, serves until ctx is done, then closes it and waits
// for every goroutine it started. It returns nil after a shutdown caused by
// ctx, or the error that stopped the node. It suits errgroup and main. A
// ctx that is already done (a signal during a service's start-up) closes
// the node without starting it, and Run returns nil, as for any shutdown
// caused by ctx.
func (n *Node) Run(ctx context.Context) error {
	if ctx.Err() != nil {
		n.Close()
		return nil
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-n.fatal:
	case <-n.ctx.Done():
	}
	n.Close()
	return err
}

// Close stops the node, in an order that loses nothing it acknowledged:
// it stops accepting, shuts the input of every client connection (each
// session answers the commands it has already read, and the reports among
// them are queued for the neighbours), waits for the sessions to end,
// then waits until every up link has written all it owes, and only then
// closes the links. Client sessions that cannot finish and links that
// cannot drain (a peer that does not read) are cut once
// [Config.ShutdownGrace] has passed since Close began. Pending provider
// calls and redials are cancelled at once. Close waits for every
// goroutine the node started. It is idempotent and returns nil; later
// Start and Run calls fail with [ErrClosed]. With a [Config.StateFile]
// it then writes and fsyncs what is left of the state log and folds the
// log into a snapshot.
func (n *Node) Close() error {
	n.stateMu.Lock()
	if n.closed {
		n.stateMu.Unlock()
		n.wg.Wait()
		return nil
	}
	n.closed = true
	n.cancel()
	if n.ln != nil {
		n.ln.Close()
	}
	for c, st := range n.conns {
		if st.peer.Load() {
			continue // links close once drained
		}
		// A client session whose input is shut answers the commands it
		// has read, then ends.
		if cr, ok := c.(interface{ CloseRead() error }); ok && cr.CloseRead() == nil {
			continue
		}
		c.Close()
	}
	started := n.started
	n.stateMu.Unlock()
	grace := make(chan struct{})
	t := n.clock.AfterFunc(n.cfg.ShutdownGrace, func() {
		close(grace)
		n.closeConns()
	})
	n.awaitClientsGone(grace)
	n.awaitLinksDrained(grace)
	n.closeLinks(grace)
	n.closeConns()
	n.wg.Wait()
	t.Stop()
	if started {
		n.closeLog()
	}
	n.log.LogAttrs(context.Background(), slog.LevelInfo, "closed")
	return nil
}

// closeConns closes every open connection.
func (n *Node) closeConns() {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	for c := range n.conns {
		c.Close()
	}
}

// Addr returns the listener's address, or nil before Start.
func (n *Node) Addr() net.Addr {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	if n.ln == nil {
		return nil
	}
	return n.ln.Addr()
}

// Lookup returns the stored record of client.
func (n *Node) Lookup(client string) (Record, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.get([]byte(client))
}

// Records returns every stored record, sorted by client ID. It reads the
// table a slice at a time, so that a large table never holds up reports:
// each record is one the client had at some moment during the call, and a
// record that changes meanwhile may be the old or the new one.
func (n *Node) Records() []Record {
	var out []Record
	for lo := 0; lo < numLeaves; lo += recordsChunk {
		n.mu.Lock()
		if out == nil {
			out = make([]Record, 0, n.table.len())
		}
		out = n.table.appendLeaves(lo, lo+recordsChunk, out)
		n.mu.Unlock()
	}
	sortRecords(out)
	return out
}

// recordsChunk is how many leaf buckets Records reads per hold of n.mu:
// about 15,000 records at a million clients.
const recordsChunk = 1024

// Links returns the names of the neighbours whose links are up, sorted.
func (n *Node) Links() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, len(n.links))
	for i, l := range n.links {
		out[i] = l.peer
	}
	return out
}

// Changed returns a channel that is closed at the next change to the
// table or to the set of up links, or when the node starts listening. Waiters read the state, and if it is
// not what they want, wait on a fresh Changed channel:
//
//	for {
//		ch := n.Changed()
//		if _, ok := n.Lookup("kiwi"); ok {
//			break
//		}
//		<-ch
//	}
func (n *Node) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.watched = true
	return n.changed
}

// notifyLocked wakes Changed waiters. n.mu must be held.
func (n *Node) notifyLocked() {
	if n.watched {
		close(n.changed)
		n.changed = make(chan struct{})
		n.watched = false
	}
}

// goFunc runs f in a goroutine that Close waits for.
func (n *Node) goFunc(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// track registers c so that Close closes it and the sweeper watches it. It
// returns nil (and closes c) if the node is closing or already holds
// MaxConns connections.
func (n *Node) track(c net.Conn, id string) *connState {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	if n.closed {
		c.Close()
		return nil
	}
	if len(n.conns) >= n.cfg.MaxConns {
		c.Close()
		n.stats.connsRefused.Add(1)
		n.log.LogAttrs(n.ctx, slog.LevelWarn, "connection refused", slog.String("conn", id), slog.String("remote", addrString(c.RemoteAddr())), slog.String("why", "MaxConns reached"), slog.Int("limit", n.cfg.MaxConns))
		return nil
	}
	st := &connState{id: id, c: c}
	st.active.Store(true)
	n.conns[c] = st
	return st
}

func (n *Node) untrack(c net.Conn) {
	n.stateMu.Lock()
	delete(n.conns, c)
	if n.untracked != nil {
		close(n.untracked)
		n.untracked = nil
	}
	n.stateMu.Unlock()
	c.Close()
}

func (n *Node) acceptLoop() {
	var seq uint64
	for {
		c, err := n.ln.Accept()
		if err != nil {
			if n.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			n.log.LogAttrs(n.ctx, slog.LevelError, "accept failed", slog.String("err", err.Error()))
			n.fatal <- fmt.Errorf("herd: %s: accept: %w", n.cfg.Name, err)
			return
		}
		seq++
		id := "c" + strconv.FormatUint(seq, 10)
		st := n.track(c, id)
		if st == nil {
			if n.ctx.Err() != nil {
				return
			}
			continue
		}
		n.stats.connsAccepted.Add(1)
		n.log.LogAttrs(n.ctx, slog.LevelInfo, "connection opened", slog.String("conn", id), slog.String("remote", addrString(c.RemoteAddr())))
		n.serveConn(c, st)
	}
}

// offer stores r if it is newer than the client's record and floods it to
// every up link but the one named from ("" for a local client). It
// returns what happened and, for a local client's report that the table
// already has a newer record for (offerStale), that record's line.
func (n *Node) offer(r Record, from string) (string, offerResult) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, res := n.table.offer(&r, n.cfg.MaxClients)
	switch res {
	case offerStale:
		if from == "" {
			return string(n.table.lineAt(p)), res
		}
		return "", res
	case offerFull:
		n.stats.tableFull++
		n.log.LogAttrs(n.ctx, slog.LevelWarn, "table full", slog.String("client", r.Client), slog.String("from", from), slog.Int("limit", n.cfg.MaxClients))
		return "", res
	}
	n.logRecord(&r)
	n.recordUpdate(r, from)
	if from == "" {
		n.stats.recordsLocal++
	} else {
		n.stats.recordsPeer++
	}
	h := n.table.slotAt(p).hash
	for _, l := range n.links {
		if l.peer != from {
			n.queue(l, p, h, r.Line)
		}
	}
	n.notifyLocked()
	return "", offerChanged
}

// systemClock is the default Clock: the system's.
type systemClock struct{}

func (systemClock) Now() time.Time                            { return realtime.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return realtime.AfterFunc(d, f) }

// sleep waits d on the node's clock; it returns false if the node closed
// first.
func (n *Node) sleep(d time.Duration) bool {
	done := make(chan struct{})
	t := n.clock.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return true
	case <-n.ctx.Done():
		t.Stop()
		return false
	}
}

// stream returns a random stream for one purpose, keyed by the node's seed
// and label. Each goroutine that needs randomness has its own stream with a
// label that does not depend on scheduling, so a seeded simulation makes
// the same choices whatever order goroutines run in. ChaCha8 is a
// cryptographic generator: with a seed from crypto/rand, nonces drawn from
// it are unpredictable.
func (n *Node) stream(label string) *mrand.ChaCha8 {
	h := sha256.New()
	h.Write(n.seed[:])
	h.Write([]byte(label))
	var key [32]byte
	h.Sum(key[:0])
	return mrand.NewChaCha8(key)
}

// connState is what the sweeper knows of one open connection.
type connState struct {
	id      string
	c       net.Conn
	peer    atomic.Bool  // an authenticated peer link: exempt from IdleTimeout
	active  atomic.Bool  // input arrived since the last sweep
	writing atomic.Int64 // 1 + sweep epoch when the current write began, 0 if none
	idle    int          // sweeps in a row without input (sweeper only)
	parkReq atomic.Bool  // the sweeper asked the session to park
	small   atomic.Bool  // parked, and idle since
}

// beginWrite and endWrite bracket a write so the sweeper can cut one that
// blocks longer than WriteTimeout.
func (st *connState) beginWrite(n *Node) { st.writing.Store(n.sweepEpoch.Load() + 1) }
func (st *connState) endWrite()          { st.writing.Store(0) }

// sweepEvery is the sweeper's period: a quarter of the shorter timeout
// (at least 1ms).
func (n *Node) sweepEvery() time.Duration {
	return max(min(n.cfg.IdleTimeout, n.cfg.WriteTimeout, n.cfg.PeerTimeout)/4, time.Millisecond)
}

// idleSweeps is how many sweeps in a row must find a client connection
// without input, after the sweep that saw its last input, before it is
// cut. With k of them and period p the cut comes between k*p and (k+1)*p
// after the last input; k = floor(IdleTimeout/p) - 1 makes that at most
// IdleTimeout and more than IdleTimeout - 2p: between 3/4 and 1 times
// IdleTimeout when it is the shorter timeout, as p is then a quarter of
// it. (Below 4ms, where p is held at 1ms, a cut may come up to 1ms late.)
func idleSweeps(idle, every time.Duration) int {
	return max(int(idle/every)-1, 1)
}

// sweepLoop closes idle client connections and connections whose write is
// stuck, until the node closes. One loop per node, rather than a timer per
// connection, keeps the per-line path free of timer resets.
func (n *Node) sweepLoop() {
	every := n.sweepEvery()
	clientSweeps := idleSweeps(n.cfg.IdleTimeout, every)
	peerSweeps := idleSweeps(n.cfg.PeerTimeout, every)
	// A write is cut at the writeSweeps-th sweep after the one before it
	// began: between (writeSweeps-1)*p and writeSweeps*p after it began.
	writeSweeps := int64((n.cfg.WriteTimeout + every - 1) / every)
	for n.sleep(every) {
		epoch := n.sweepEpoch.Add(1)
		type victim struct {
			st  *connState
			why string
		}
		var victims []victim
		n.stateMu.Lock()
		for _, st := range n.conns {
			if w := st.writing.Load(); w != 0 && epoch-(w-1) >= writeSweeps {
				victims = append(victims, victim{st, "write blocked longer than WriteTimeout"})
				n.stats.writeTimeouts.Add(1)
				continue
			}
			if st.active.Swap(false) {
				st.idle = 0
				continue
			}
			if st.peer.Load() {
				if st.idle++; st.idle >= peerSweeps {
					victims = append(victims, victim{st, "nothing from the peer for PeerTimeout"})
					n.stats.peerTimeouts.Add(1)
				}
				continue
			}
			if st.idle++; st.idle >= clientSweeps {
				victims = append(victims, victim{st, "idle longer than IdleTimeout"})
				n.stats.idleClosed.Add(1)
			} else if st.idle == 1 {
				st.park()
			}
		}
		n.stateMu.Unlock()
		n.pingQuietLinks()
		// Close in a fixed order, not the map's.
		slices.SortFunc(victims, func(a, b victim) int { return strings.Compare(a.st.id, b.st.id) })
		for _, v := range victims {
			n.log.LogAttrs(n.ctx, slog.LevelInfo, "connection cut", slog.String("conn", v.st.id), slog.String("why", v.why))
			v.st.c.Close()
		}
	}
}
