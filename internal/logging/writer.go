package logging

// writer.go: the asynchronous, bounded log writer.

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for [WriterOptions].
const (
	DefaultBufferBytes   = 32 << 20
	DefaultFlushInterval = 100 * time.Millisecond
)

// writeChunk bounds one write to the destination, so that a rotating file
// (lumberjack refuses writes larger than a whole file) rotates between
// whole lines.
const writeChunk = 256 << 10

// WriterOptions configure a [Writer].
type WriterOptions struct {
	// BufferBytes bounds the lines waiting to be written (default
	// DefaultBufferBytes). A line that does not fit is dropped and counted.
	BufferBytes int
	// FlushInterval is the longest a line waits before its write starts
	// (default DefaultFlushInterval). A buffer an eighth full is written
	// at once.
	FlushInterval time.Duration
	// DropReport, if set, is called from the writer's goroutine after a
	// write when lines have been dropped since the last call (count is
	// how many, total how many since the start), and returns a line
	// saying so, which is queued whether or not it fits.
	DropReport func(count, total uint64) []byte
}

// Writer takes log lines into a bounded buffer and writes them to its
// destination from its own goroutine, at least every FlushInterval and
// whenever the buffer fills up, and on Close. Write never waits for the
// destination: when the buffer is full, the line is dropped and counted.
// It is safe for concurrent use; each Write should be whole lines (as a
// [Handler] writes them), since lines are never split between writes to
// the destination and a dropped Write is dropped whole.
type Writer struct {
	dst      io.Writer
	limit    int
	interval time.Duration
	report   func(count, total uint64) []byte

	mu      sync.Mutex
	buf     []byte // lines waiting
	lines   uint64 // Writes taken
	closed  bool
	dropped atomic.Uint64
	written atomic.Uint64 // bytes handed to dst

	kick      chan struct{} // the buffer is worth writing now
	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the goroutine has written everything
	reopen    chan chan error
	closeOnce sync.Once
	spare     []byte // the buffer being written, reused (flusher only)
	reported  uint64 // drops already reported (flusher only)
	werr      error  // the destination's first write error (flusher only)
}

// NewWriter returns a Writer for dst and starts its goroutine. Close
// stops it.
func NewWriter(dst io.Writer, opts WriterOptions) *Writer {
	w := &Writer{
		dst:      dst,
		limit:    opts.BufferBytes,
		interval: opts.FlushInterval,
		report:   opts.DropReport,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		reopen:   make(chan chan error),
	}
	if w.limit <= 0 {
		w.limit = DefaultBufferBytes
	}
	if w.interval <= 0 {
		w.interval = DefaultFlushInterval
	}
	go w.run()
	return w
}

// Write queues p, which should be one or more whole lines, and returns
// len(p) and nil, without waiting for the destination. If p does not fit
// in the buffer, or the Writer is closed, its lines are dropped and
// counted.
func (w *Writer) Write(p []byte) (int, error) {
	w.writeLines(p, max(bytes.Count(p, []byte{'\n'}), 1))
	return len(p), nil
}

// writeLines is Write for p holding n lines.
func (w *Writer) writeLines(p []byte, n int) {
	w.mu.Lock()
	if w.closed || len(w.buf)+len(p) > w.limit {
		w.mu.Unlock()
		w.dropped.Add(uint64(n))
		return
	}
	before := len(w.buf)
	w.buf = append(w.buf, p...)
	w.lines += uint64(n)
	w.mu.Unlock()
	if t := w.limit / 8; before < t && before+len(p) >= t {
		select {
		case w.kick <- struct{}{}:
			// The writer's goroutine is next to run on this processor:
			// let it, so that it keeps up with a burst (a link-up's
			// whole table) even when every processor is busy. This
			// waits for a scheduling round, never for the disk.
			runtime.Gosched()
		default:
		}
	}
}

// Dropped returns how many lines were dropped since the start because
// the buffer was full (the destination could not keep up) or the Writer
// was closed.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Lines returns how many lines were taken (not dropped) since the start.
func (w *Writer) Lines() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lines
}

// Written returns how many bytes have been handed to the destination.
func (w *Writer) Written() uint64 { return w.written.Load() }

// Reopener is a destination that can let go of its file so that its next
// write opens the file again by name: what logrotate needs after it has
// moved the file.
type Reopener interface {
	Reopen() error
}

// Reopen writes what is buffered, then calls the destination's Reopen if
// it is a [Reopener], and returns its error. Lines keep being buffered
// meanwhile.
func (w *Writer) Reopen() error {
	ch := make(chan error, 1)
	select {
	case w.reopen <- ch:
		return <-ch
	case <-w.done:
		return errors.New("logging: writer closed")
	}
}

// Close writes every buffered line (and the report of any lines dropped),
// stops the goroutine and returns the first error the destination's
// writes returned, if any. It does not close the destination. Writes
// after Close are dropped.
func (w *Writer) Close() error {
	w.closeOnce.Do(func() { close(w.stop) })
	<-w.done
	return w.werr
}

// run is the writer's goroutine.
func (w *Writer) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.kick:
		case ch := <-w.reopen:
			w.flush()
			var err error
			if r, ok := w.dst.(Reopener); ok {
				err = r.Reopen()
			}
			ch <- err
			continue
		case <-w.stop:
			w.mu.Lock()
			w.closed = true
			w.mu.Unlock()
			w.flush()
			w.reportDrops()
			w.flush() // the report
			return
		}
		w.flush()
		w.reportDrops()
	}
}

// flush writes everything buffered so far.
func (w *Writer) flush() {
	w.mu.Lock()
	all := w.buf
	w.buf = w.spare[:0]
	w.mu.Unlock()
	for b := all; len(b) > 0; {
		n := len(b)
		if n > writeChunk {
			// Cut after the last newline within the chunk; a line longer
			// than the chunk goes whole.
			n = bytes.LastIndexByte(b[:writeChunk], '\n') + 1
			if n == 0 {
				if n = bytes.IndexByte(b, '\n') + 1; n == 0 {
					n = len(b)
				}
			}
		}
		if _, err := w.dst.Write(b[:n]); err != nil && w.werr == nil {
			w.werr = err
		}
		w.written.Add(uint64(n))
		b = b[n:]
	}
	if cap(all) > 1<<20 && len(all) < cap(all)/8 {
		all = nil // a burst is over: don't keep its buffer
	}
	w.spare = all[:0]
}

// reportDrops queues the DropReport line if Writes were dropped since the
// last call. The buffer may be full: the report goes in anyway, a line
// beyond the bound, so that it is never itself dropped.
func (w *Writer) reportDrops() {
	total := w.dropped.Load()
	if total == w.reported || w.report == nil {
		return
	}
	line := w.report(total-w.reported, total)
	w.reported = total
	w.mu.Lock()
	w.buf = append(w.buf, line...)
	w.mu.Unlock()
}
