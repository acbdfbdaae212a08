package herd

// ackwriter.go: the durable mode's reply writer. A session that waited for
// the fsync its replies need before it read on would alternate "wait for
// fsync" and "read the next batch", and at most one fsync in two would
// cover its requests. Instead it hands its replies, with the log position
// they need, to a writer goroutine of its own, which waits for the fsync
// and writes them in order, while the session reads and handles the next
// lines. AckTable never starts one.

import (
	"sync/atomic"
	"time"
)

// ackQueue is how many batches of replies a session may hand to its writer
// beyond the one the writer holds; a session with that many waiting waits
// itself (backpressure), so a client that pipelines without end holds at
// most ackQueue+1 batches of about ReplyBuffer bytes.
const ackQueue = 4

// ackSpares and ackSpareMax bound the written buffers a writer keeps for
// its session to reuse: an idle session that is never parked (TLS) keeps
// them, so only small ones, as flush keeps only a small buffer.
const (
	ackSpares   = 2
	ackSpareMax = 4096
)

// ackBatch is replies handed to the writer, in command order.
type ackBatch struct {
	out []byte
	pos uint64 // how far the log must be on disk first; 0 for no wait
	// timed says the Observer gets the delay since recv, the batch's read
	// time, just before the write (see timeIAMATs).
	timed bool
	recv  time.Time
}

// ackWriter is a session's reply writer (see writeAcks).
type ackWriter struct {
	q      chan ackBatch
	free   chan []byte  // written buffers, for the session to reuse
	queued atomic.Int32 // batches handed over and not yet written or dropped
	done   chan struct{}
	// err is why the writer stopped writing, set before failed.
	err    error
	failed atomic.Bool
}

// handOff gives the pending replies, with the log position they need, to
// the session's writer, starting it if needed, and goes on with a fresh
// buffer. It waits only while ackQueue batches are waiting already.
func (s *session) handOff() error {
	w := s.aw
	if w == nil {
		w = &ackWriter{q: make(chan ackBatch, ackQueue), free: make(chan []byte, ackSpares), done: make(chan struct{})}
		s.aw = w
		s.n.goFunc(func() { s.writeAcks(w) })
	}
	b := ackBatch{out: s.out, pos: s.ackPos}
	if s.iamatTimed() {
		b.timed, b.recv = true, s.recv
	}
	s.publishCounts()
	s.ackPos = 0
	select {
	case s.out = <-w.free:
	default:
		s.out = nil
	}
	w.queued.Add(1)
	w.q <- b
	return nil
}

// writeAcks is the writer goroutine: for each batch in order it waits
// until the log is on disk up to the batch's position, then writes it.
// After a failure (the log stopped, or a write failed) it writes nothing
// more, and closes the connection so that the session, which may be
// waiting for input, ends; it still takes batches until the session
// closes the queue, so the session never blocks on it.
func (s *session) writeAcks(w *ackWriter) {
	defer close(w.done)
	for b := range w.q {
		if !w.failed.Load() {
			if err := s.writeAck(&b); err != nil {
				w.err = err
				w.failed.Store(true)
				s.c.Close()
			}
		}
		if cap(b.out) <= ackSpareMax {
			select {
			case w.free <- b.out[:0]:
			default:
			}
		}
		w.queued.Add(-1)
	}
}

// writeAck waits for b's fsync, then writes b.
func (s *session) writeAck(b *ackBatch) error {
	if b.pos != 0 {
		if err := s.n.wal.waitSynced(b.pos); err != nil {
			return err
		}
	}
	if b.timed {
		s.n.obs.timing.IAMAT(s.n.clock.Now().Sub(b.recv))
	}
	s.st.beginWrite(s.n)
	_, err := s.c.Write(b.out)
	s.st.endWrite()
	return err
}

// ackErr returns why the session's writer stopped, if it did.
func (s *session) ackErr() error {
	if w := s.aw; w != nil && w.failed.Load() {
		return w.err
	}
	return nil
}

// finishWrites waits until the session's writer has written every batch
// handed to it, ends it, and returns why it failed, if it did. Every path
// on which a session ends, parks or half-closes its connection calls it
// first, so what was answered is written before that.
func (s *session) finishWrites() error {
	w := s.aw
	if w == nil {
		return nil
	}
	s.aw = nil
	close(w.q)
	<-w.done
	if w.failed.Load() {
		return w.err
	}
	return nil
}
