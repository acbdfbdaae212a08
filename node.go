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
	"strconv"
	"sync"
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
	// fan-out happen under it, so a link's table snapshot and the updates
	// queued after it never miss a record.
	mu      sync.Mutex
	table   *table
	links   []*link // up links, sorted by peer name
	changed chan struct{}
	watched bool

	stateMu sync.Mutex
	started bool
	closed  bool
	ln      net.Listener
	conns   map[net.Conn]struct{}
	fatal   chan error // the accept loop's error, if it fails

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
		table:     newTable(),
		changed:   make(chan struct{}),
		conns:     make(map[net.Conn]struct{}),
		fatal:     make(chan error, 1),
	}
	if n.clock == nil {
		n.clock = systemClock{}
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
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// Name returns the server's name.
func (n *Node) Name() string { return n.cfg.Name }

// Start listens on [Config.Addr] and starts accepting clients and peers and
// dialing neighbours, then returns. ctx bounds only the start itself; the
// node runs until [Node.Close]. Start may be called once.
func (n *Node) Start(ctx context.Context) error {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	switch {
	case n.closed:
		return ErrClosed
	case n.started:
		return ErrStarted
	}
	ln, err := n.transport.Listen(ctx, n.cfg.Addr)
	if err != nil {
		return fmt.Errorf("herd: %s: listen on %s: %w", n.cfg.Name, n.cfg.Addr, err)
	}
	n.started = true
	n.ln = ln
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "listening", slog.String("addr", ln.Addr().String()))
	n.mu.Lock()
	n.notifyLocked()
	n.mu.Unlock()
	n.goFunc(n.acceptLoop)
	for _, p := range n.cfg.Peers {
		if p.Name > n.cfg.Name {
			n.goFunc(func() { n.dialLoop(p) })
		}
	}
	return nil
}

// Run starts the node, serves until ctx is done, then closes it and waits
// for every goroutine it started. It returns nil after a shutdown caused by
// ctx, or the error that stopped the node. It suits errgroup and main.
func (n *Node) Run(ctx context.Context) error {
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

// Close stops the node: it closes the listener, every client connection
// and every peer link, cancels pending provider calls and redials, and
// waits for every goroutine the node started. It is idempotent and
// returns nil; later Start and Run calls fail with [ErrClosed].
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
	for c := range n.conns {
		c.Close()
	}
	n.stateMu.Unlock()
	n.wg.Wait()
	n.log.LogAttrs(context.Background(), slog.LevelInfo, "closed")
	return nil
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

// Records returns every stored record, sorted by client ID.
func (n *Node) Records() []Record {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.snapshot()
}

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

// track registers c so that Close closes it; it reports false (and closes
// c) if the node is already closing.
func (n *Node) track(c net.Conn) bool {
	n.stateMu.Lock()
	defer n.stateMu.Unlock()
	if n.closed {
		c.Close()
		return false
	}
	n.conns[c] = struct{}{}
	return true
}

func (n *Node) untrack(c net.Conn) {
	n.stateMu.Lock()
	delete(n.conns, c)
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
		if !n.track(c) {
			return
		}
		seq++
		id := "c" + strconv.FormatUint(seq, 10)
		n.goFunc(func() {
			defer n.untrack(c)
			n.serveConn(c, id)
		})
	}
}

// offer stores r if it is newer than the client's record and floods it to
// every up link but the one named from. It returns the record the table
// holds afterwards and whether r changed the table.
func (n *Node) offer(r Record, from string) (Record, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.table.offer(r) {
		old, _ := n.table.get([]byte(r.Client))
		return old, false
	}
	for _, l := range n.links {
		if l.peer != from {
			l.enqueue(r.Line)
		}
	}
	n.notifyLocked()
	return r, true
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
