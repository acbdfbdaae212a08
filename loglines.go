package herd

// loglines.go: the log of every line in and out. A loaded node logs many
// times more lines than anything else, so each is handed to the handler
// directly (no caller lookup), stamped with a clock reading it already
// has, and given to a LineHandler without building a slog.Record.

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// lineBufs holds the buffers that string lines are copied into for a
// LineHandler.
var lineBufs = sync.Pool{New: func() any { return new([]byte) }}

// LevelLines is the level of the log record of every line a node reads
// or writes (message "in" or "out", attributes conn and line: the full
// I/O log): slog.LevelDebug, so that a Logger at Info gets connection and
// peer link events without one record per line.
const LevelLines = slog.LevelDebug

// LineHandler is an optional interface for the handler of
// [Config.Logger]. A node logs every line it reads or writes at
// [LevelLines]; when the handler (after the node's WithAttrs) implements
// LineHandler, each line goes to HandleLine instead of being built into a
// slog.Record, which spares the record, its two attributes and a copy of
// the line. The node calls HandleLine only when the handler is Enabled
// for LevelLines.
type LineHandler interface {
	slog.Handler
	// HandleLine logs what Handle would for a record with time t, level
	// LevelLines, message dir ("in" or "out") and the attributes
	// conn=conn and line=string(line): line (without its newline) read
	// or written by connection conn. line is valid only during the call,
	// and must not be modified.
	HandleLine(t time.Time, dir, conn string, line []byte)
}

// logLine logs one input or output line of connection id, stamped with
// the node's clock. It is cheap when the logger drops LevelLines.
func logLine[T ~string | ~[]byte](n *Node, id, dir string, line T) {
	h := n.log.Handler()
	if h.Enabled(context.Background(), LevelLines) {
		logLineAt(h, n.clock.Now(), id, dir, line)
	}
}

// logLine logs a line the session read or is about to write, stamped
// with the time of its last read: a line's receive time, and close enough
// for the replies made from that read's lines, without a clock reading
// per line. The caller has checked s.logLines.
func (s *session) logLine(dir string, line []byte) {
	logLineAt(s.n.log.Handler(), s.recv, s.id, dir, line)
}

// lineLog logs the lines of one batch of a connection's output (a link
// writer's) with one clock reading, taken when the first is logged.
type lineLog struct {
	n       *Node
	id      string
	on      bool // lines are logged
	now     time.Time
	scratch []byte // a LineHandler's copy of the line
}

// lineLog starts a batch of output lines of connection id.
func (n *Node) lineLog(id string) lineLog {
	return lineLog{n: n, id: id, on: n.log.Enabled(context.Background(), LevelLines)}
}

// out logs one line of the batch; the caller has checked on.
func (b *lineLog) out(line string) {
	if b.now.IsZero() {
		b.now = b.n.clock.Now()
	}
	h := b.n.log.Handler()
	if lh, ok := h.(LineHandler); ok {
		b.scratch = append(b.scratch[:0], line...) // one buffer for the batch
		lh.HandleLine(b.now, "out", b.id, b.scratch)
		return
	}
	logLineAt(h, b.now, b.id, "out", line)
}

// logLineAt logs one line through h, calling the handler directly: a
// Logger would look up its caller's position for every line, which no
// handler here prints.
func logLineAt[T ~string | ~[]byte](h slog.Handler, t time.Time, id, dir string, line T) {
	for len(line) > 0 && line[len(line)-1] == '\n' {
		line = line[:len(line)-1] // replies carry their newlines; the log doesn't
	}
	if lh, ok := h.(LineHandler); ok {
		var zero T
		if _, isString := any(zero).(string); !isString {
			lh.HandleLine(t, dir, id, []byte(line))
			return
		}
		// A string line (the handshake's, or a link-up's whole table):
		// HandleLine takes bytes, copied into a pooled buffer.
		bp := lineBufs.Get().(*[]byte)
		*bp = append((*bp)[:0], line...)
		lh.HandleLine(t, dir, id, *bp)
		lineBufs.Put(bp)
		return
	}
	r := slog.NewRecord(t, LevelLines, dir, 0)
	r.AddAttrs(slog.String("conn", id), slog.String("line", string(line)))
	h.Handle(context.Background(), r)
}
