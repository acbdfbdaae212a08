package herd

// loglines.go: the log of every line in and out. A loaded node logs many
// times more lines than anything else, so lines are handed to the handler
// directly (no caller lookup), stamped with a clock reading the node
// already has, and given to a LineHandler in batches (the lines of a read,
// the records of a link write) without building a slog.Record per line.

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
)

// LevelLines is the level of the log record of every line a node reads
// or writes (message "in" or "out", attributes conn and line: the full
// I/O log): slog.LevelDebug, so that a Logger at Info gets connection and
// peer link events without one record per line.
const LevelLines = slog.LevelDebug

// LineHandler is an optional interface for the handler of
// [Config.Logger]. A node logs every line it reads or writes at
// [LevelLines]; when the handler (after the node's WithAttrs) implements
// LineHandler, lines go to HandleLines, several at a time when they share
// a connection, a direction and a time, instead of each being built into a
// slog.Record, which spares the record, its two attributes and a copy of
// the line. The node calls HandleLines only when the handler is Enabled
// for LevelLines.
type LineHandler interface {
	slog.Handler
	// HandleLines logs, for each line of lines in order, what Handle
	// would for a record with time t, level LevelLines, message dir ("in"
	// or "out") and the attributes conn=conn and line=string(line): lines
	// (without their newlines) read or written by connection conn. The
	// lines are valid only during the call, and must not be modified.
	HandleLines(t time.Time, dir, conn string, lines [][]byte)
}

// logLine logs one input or output line of connection id, stamped with
// the node's clock. It is cheap when the logger drops LevelLines.
func logLine[T ~string | ~[]byte](n *Node, id, dir string, line T) {
	h := n.log.Handler()
	if h.Enabled(context.Background(), LevelLines) {
		logLineAt(h, n.clock.Now(), id, dir, line)
	}
}

// oneLine is a LineHandler's batch of one line, pooled so that a string
// line is copied into a buffer that is used again.
type oneLine struct {
	buf   []byte
	lines [1][]byte
}

var oneLines = sync.Pool{New: func() any { return new(oneLine) }}

// logLineAt logs one line through h, calling the handler directly: a
// Logger would look up its caller's position for every line, which no
// handler here prints.
func logLineAt[T ~string | ~[]byte](h slog.Handler, t time.Time, id, dir string, line T) {
	for len(line) > 0 && line[len(line)-1] == '\n' {
		line = line[:len(line)-1] // replies carry their newlines; the log doesn't
	}
	if lh, ok := h.(LineHandler); ok {
		one := oneLines.Get().(*oneLine)
		switch l := any(line).(type) {
		case []byte:
			one.lines[0] = l
		default:
			one.buf = append(one.buf[:0], line...)
			one.lines[0] = one.buf
		}
		lh.HandleLines(t, dir, id, one.lines[:])
		one.lines[0] = nil
		oneLines.Put(one)
		return
	}
	r := slog.NewRecord(t, LevelLines, dir, 0)
	r.AddAttrs(slog.String("conn", id), slog.String("line", string(line)))
	h.Handle(context.Background(), r)
}

// logLine logs a line the session read ("in") or is about to write
// ("out"), stamped with the time of its last read: a line's receive time,
// and close enough for the replies made from that read's lines, without a
// clock reading per line. The caller has checked s.logLines.
//
// Lines read are held (they are slices of the read buffer) and logged
// together by flushLog: before the next read, before a line written, and
// when the session ends. A link reader's lines are thus logged a read at
// a time.
func (s *session) logLine(dir string, line []byte) {
	if dir == "in" {
		s.logIn = append(s.logIn, line)
		return
	}
	s.flushLog()
	logLineAt(s.n.log.Handler(), s.recv, s.id, dir, line)
}

// flushLog logs the lines read that logLine holds.
func (s *session) flushLog() {
	if len(s.logIn) == 0 {
		return
	}
	h := s.n.log.Handler()
	if lh, ok := h.(LineHandler); ok {
		lh.HandleLines(s.recv, "in", s.id, s.logIn)
	} else {
		for _, line := range s.logIn {
			logLineAt(h, s.recv, s.id, "in", line)
		}
	}
	clear(s.logIn) // the read buffer is the session's, not the log's
	s.logIn = s.logIn[:0]
}

// lineLog logs the lines a link writer writes, one write at a time.
type lineLog struct {
	n     *Node
	id    string
	lines [][]byte // the lines of the write being logged
}

// lineLog returns the line log of connection id's writes.
func (n *Node) lineLog(id string) *lineLog {
	return &lineLog{n: n, id: id}
}

// out logs the lines of buf, a write of whole lines each ended by a
// newline, with one clock reading.
func (b *lineLog) out(buf []byte) {
	h := b.n.log.Handler()
	if !h.Enabled(context.Background(), LevelLines) {
		return
	}
	now := b.n.clock.Now()
	lh, ok := h.(LineHandler)
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			i = len(buf)
		}
		if ok {
			b.lines = append(b.lines, buf[:i])
		} else {
			logLineAt(h, now, b.id, "out", buf[:i])
		}
		buf = buf[min(i+1, len(buf)):]
	}
	if ok {
		lh.HandleLines(now, "out", b.id, b.lines)
		clear(b.lines)
		b.lines = b.lines[:0]
	}
}
