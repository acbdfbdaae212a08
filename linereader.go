package herd

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// errLineTooLong is returned by lineReader.fill when a line reaches the
// limit without a newline.
var errLineTooLong = errors.New("line too long")

// lineReader splits a byte stream into lines without ever holding more
// than max bytes of one line. Its buffer starts small and grows only as a
// long line needs it, so idle connections stay cheap.
//
// Use: call next until it reports false, then fill, and repeat. next does
// no I/O, so the caller knows exactly when a read may block (and flushes
// its pending replies first).
type lineReader struct {
	r          io.Reader
	buf        []byte
	start, end int
	max        int
	scanned    int // buf[start:scanned] holds no newline
	eof        bool
	// dropPartial makes an unterminated last line at EOF disappear
	// instead of counting as a line. Clients' last lines count
	// (docs/protocol.md section 1); a peer's torn line is a record no server
	// wrote and must never be taken for one.
	dropPartial bool
	filled      bool // the last read filled the buffer
}

// initialLineBuffer is the buffer a reader allocates for a read after it
// was released: room for a few commands, small enough that the many idle
// connections a server holds, each blocked in a read, stay cheap.
const initialLineBuffer = 256

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: r, max: max}
}

// next returns the next complete line, without its newline, if one is
// buffered. After EOF it returns the unterminated remainder once, unless
// dropPartial is set. The
// slice is valid until the next call to fill.
func (lr *lineReader) next() ([]byte, bool) {
	if lr.start == lr.end {
		return nil, false
	}
	if i := bytes.IndexByte(lr.buf[lr.scanned:lr.end], '\n'); i >= 0 {
		nl := lr.scanned + i
		line := lr.buf[lr.start:nl]
		lr.start = nl + 1
		lr.scanned = lr.start
		return line, true
	}
	lr.scanned = lr.end
	if lr.eof {
		line := lr.buf[lr.start:lr.end]
		lr.start, lr.scanned = lr.end, lr.end
		return line, !lr.dropPartial
	}
	return nil, false
}

// fill reads more input. It returns io.EOF at the end of the stream,
// errLineTooLong when the partial line has reached max bytes (prefix then
// returns them), or the read error.
func (lr *lineReader) fill() error {
	if lr.eof {
		return io.EOF
	}
	if lr.end-lr.start >= lr.max {
		return errLineTooLong
	}
	if lr.start > 0 {
		// Nothing before start is needed any more.
		n := copy(lr.buf, lr.buf[lr.start:lr.end])
		lr.scanned -= lr.start
		lr.start, lr.end = 0, n
	}
	if lr.buf == nil && lr.max >= initialLineBuffer {
		lr.buf = linePool.Get().(*[initialLineBuffer]byte)[:]
	} else if lr.end == len(lr.buf) || (lr.filled && len(lr.buf) < lr.max) {
		// A full buffer must grow for a long line; a busy stream (the
		// last read filled all the room there was) grows it too, so that
		// one read takes many lines.
		size := max(initialLineBuffer, 2*len(lr.buf))
		size = min(size, lr.max)
		nb := make([]byte, size)
		copy(nb, lr.buf[:lr.end])
		lr.buf = nb
	}
	n, err := lr.r.Read(lr.buf[lr.end:])
	lr.filled = lr.end+n == len(lr.buf)
	lr.end += n
	if err == io.EOF {
		lr.eof = true
		if n > 0 || lr.end > lr.start {
			return nil
		}
		return io.EOF
	}
	if n > 0 {
		return nil
	}
	return err
}

// unread returns the buffered bytes not returned by next yet.
func (lr *lineReader) unread() []byte { return lr.buf[lr.start:lr.end] }

// prefix returns the buffered bytes of the unterminated line.
func (lr *lineReader) prefix() []byte { return lr.buf[lr.start:lr.end] }

// release drops the buffer of an idle reader (nothing buffered), so an
// idle connection holds no buffer memory.
func (lr *lineReader) release() {
	if lr.start == lr.end {
		if len(lr.buf) == initialLineBuffer {
			linePool.Put((*[initialLineBuffer]byte)(lr.buf))
		}
		lr.buf, lr.start, lr.end, lr.scanned, lr.filled = nil, 0, 0, 0, false
	}
}

// linePool recycles initial buffers: a busy session releases its buffer
// after every burst of input and takes one again for the next read.
var linePool = sync.Pool{New: func() any { return new([initialLineBuffer]byte) }}
