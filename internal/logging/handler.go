// Package logging is how the herd command and the demo write their logs:
// a [Handler] that formats slog records as one compact line each, text or
// JSON, without reflection or a call stack lookup, and a [Writer] that
// takes those lines into a bounded buffer and writes them to the file from
// its own goroutine, so a server never waits on the disk. When the disk
// cannot keep up, lines are dropped and counted rather than slowing the
// herd ([Writer.Dropped], and a log line saying how many). [Open] puts
// them together with size-based rotation (lumberjack) and reopening for
// logrotate.
//
// A text line:
//
//	2026-11-29T15:04:05.123456Z INFO Goloman connection opened conn=c12 remote=127.0.0.1:50292
//	2026-11-29T15:04:05.123480Z DEBUG Goloman in conn=c12 line="IAMAT kiwi +34.068930-118.445127 1520023934.918963997"
//
// and the same record in JSON:
//
//	{"time":"2026-11-29T15:04:05.123480Z","level":"DEBUG","msg":"in","server":"Goloman","conn":"c12","line":"IAMAT kiwi +34.068930-118.445127 1520023934.918963997"}
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Format is a log line format.
type Format int

const (
	// Text is "TIME LEVEL [SERVER] MESSAGE key=value ...": the time in UTC
	// to the microsecond, the server's name (the attribute "server" given
	// to WithAttrs, as package herd does) bare, the message as is unless
	// it needs quotes, then the attributes, values quoted (Go syntax) when
	// they hold white space, quotes, '=' or bytes that are not printable.
	Text Format = iota
	// JSON is one JSON object per line: "time", "level" and "msg" first,
	// then the attributes in order, as slog.JSONHandler writes them.
	JSON
)

// String returns "text" or "json".
func (f Format) String() string {
	if f == JSON {
		return "json"
	}
	return "text"
}

// ParseFormat parses "text" or "json"; "" means text.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "text":
		return Text, nil
	case "json":
		return JSON, nil
	}
	return 0, fmt.Errorf("%q is not a log format (want text or json)", s)
}

// ServerKey is the attribute key that a text line shows bare, before the
// message, when it is given to WithAttrs outside any group.
const ServerKey = "server"

// HandlerOptions configure a [Handler].
type HandlerOptions struct {
	// Level is the least level logged; nil means slog.LevelInfo.
	Level slog.Leveler
	// Format is Text (the zero value) or JSON.
	Format Format
	// Lines logs package herd's record of every line in and out (level
	// Debug, message "in" or "out": the course's full I/O log) even when
	// Level is above Debug.
	Lines bool
}

// isLine reports whether r is package herd's record of a line in or out.
func isLine(r *slog.Record) bool {
	return r.Level == slog.LevelDebug && (r.Message == "in" || r.Message == "out")
}

// Handler is a slog.Handler that writes each record as one line, in one
// Write call, to its writer. It formats strings, numbers, times and
// durations itself (anything else through fmt or encoding/json) and never
// asks for the caller's source position.
type Handler struct {
	w      io.Writer
	mu     *sync.Mutex // serialises writes unless w is a *Writer, which locks itself
	level  slog.Leveler
	format Format
	lines  bool

	server []byte   // text: the bare server name and a space
	pre    []byte   // attributes from WithAttrs, formatted
	open   int      // JSON: groups opened in pre, closed at the end of a line
	prefix string   // text: the groups' key prefix ("g1.g2.")
	groups []string // JSON: groups named by WithGroup after pre, opened once an attribute needs them
}

// NewHandler returns a handler writing to w. A *Writer is used as is
// (it takes one line per Write without blocking); any other writer gets
// one Write per line under a mutex shared with the handler's derivations.
func NewHandler(w io.Writer, opts *HandlerOptions) *Handler {
	h := &Handler{w: w, level: slog.LevelInfo}
	if opts != nil {
		if opts.Level != nil {
			h.level = opts.Level
		}
		h.format = opts.Format
		h.lines = opts.Lines
	}
	if _, ok := w.(*Writer); !ok {
		h.mu = new(sync.Mutex)
	}
	return h
}

// Enabled reports whether level is at least the handler's level, or is
// Debug when lines are logged.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level() || h.lines && level == slog.LevelDebug
}

// bufPool holds line buffers; a line rarely needs more than its first
// allocation.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Handle formats r as one line and writes it.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < h.level.Level() && !isLine(&r) {
		return nil // a Debug record let in by Lines that is not a line
	}
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	if h.format == JSON {
		b = h.appendJSON(b, &r)
	} else {
		b = h.appendText(b, &r)
	}
	err := h.write(b, 1)
	if cap(b) <= 64<<10 { // don't keep a rare huge line's buffer
		*bp = b
		bufPool.Put(bp)
	}
	return err
}

// write writes n formatted lines.
func (h *Handler) write(b []byte, n int) error {
	if h.mu == nil { // a *Writer
		h.w.(*Writer).writeLines(b, n)
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b)
	return err
}

// HandleLines logs lines read or written by a connection of package herd
// (it is a herd.LineHandler): for each line, the line Handle would write
// for that record, formatted from the line's bytes without a record or a
// copy, the part before the line once for them all. A handler with groups
// takes the records' way.
func (h *Handler) HandleLines(t time.Time, dir, conn string, lines [][]byte) {
	if h.prefix != "" || len(h.groups) > 0 {
		for _, line := range lines {
			r := slog.NewRecord(t, slog.LevelDebug, dir, 0)
			r.AddAttrs(slog.String("conn", conn), slog.String("line", string(line)))
			h.Handle(context.Background(), r)
		}
		return
	}
	// What comes before the line, and after it, on each line.
	var headBuf [256]byte
	head := headBuf[:0]
	var tail string
	if h.format == JSON {
		head = append(head, '{')
		if !t.IsZero() {
			head = append(head, `"time":"`...)
			head = appendTime(head, t)
			head = append(head, `",`...)
		}
		head = append(head, `"level":"DEBUG","msg":`...)
		head = appendJSONString(head, dir)
		head = append(head, h.pre...)
		head = append(head, `,"conn":`...)
		head = appendJSONString(head, conn)
		head = append(head, `,"line":`...)
		tail = jsonTails[min(h.open, len(jsonTails)-1)]
	} else {
		if !t.IsZero() {
			head = appendTime(head, t)
			head = append(head, ' ')
		}
		head = append(head, "DEBUG "...)
		head = append(head, h.server...)
		head = appendMessage(head, dir)
		head = append(head, h.pre...)
		head = append(head, " conn="...)
		head = appendTextString(head, conn)
		head = append(head, " line="...)
		tail = "\n"
	}
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	n := 0
	for _, line := range lines {
		b = append(b, head...)
		if h.format == JSON {
			b = appendJSONBytes(b, line)
		} else {
			b = appendTextBytes(b, line)
		}
		b = append(b, tail...)
		if n++; len(b) >= 32<<10 {
			h.write(b, n) // a long batch goes in parts, each dropped or taken whole
			b, n = b[:0], 0
		}
	}
	if n > 0 {
		h.write(b, n)
	}
	if cap(b) <= 64<<10 {
		*bp = b
		bufPool.Put(bp)
	}
}

// jsonTails end a JSON line inside i groups opened by WithAttrs.
var jsonTails = func() (t [8]string) {
	for i := range t {
		t[i] = strings.Repeat("}", i+1) + "\n"
	}
	return t
}()

// appendText formats r as a text line.
func (h *Handler) appendText(b []byte, r *slog.Record) []byte {
	if !r.Time.IsZero() {
		b = appendTime(b, r.Time)
		b = append(b, ' ')
	}
	b = appendLevel(b, r.Level)
	b = append(b, ' ')
	b = append(b, h.server...)
	b = appendMessage(b, r.Message)
	b = append(b, h.pre...)
	r.Attrs(func(a slog.Attr) bool {
		b = appendTextAttr(b, h.prefix, a)
		return true
	})
	return append(b, '\n')
}

// appendJSON formats r as a JSON line.
func (h *Handler) appendJSON(b []byte, r *slog.Record) []byte {
	b = append(b, '{')
	if !r.Time.IsZero() {
		b = append(b, `"time":"`...)
		b = appendTime(b, r.Time)
		b = append(b, `",`...)
	}
	b = append(b, `"level":"`...)
	b = appendLevel(b, r.Level)
	b = append(b, `","msg":`...)
	b = appendJSONString(b, r.Message)
	b = append(b, h.pre...)
	if r.NumAttrs() > 0 {
		mark := len(b)
		for _, g := range h.groups {
			b = append(b, ',')
			b = appendJSONString(b, g)
			b = append(b, ":{"...)
		}
		inner := len(b)
		first := len(h.groups) > 0
		r.Attrs(func(a slog.Attr) bool {
			b, first = appendJSONAttr(b, a, first)
			return true
		})
		if len(b) == inner {
			b = b[:mark] // every attribute was empty: no groups either
		} else {
			for range h.groups {
				b = append(b, '}')
			}
		}
	}
	for range h.open {
		b = append(b, '}')
	}
	return append(b, "}\n"...)
}

// WithAttrs returns a handler whose lines carry attrs, formatted once
// here rather than for every line.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	c := h.clone()
	if h.format == JSON {
		mark := len(c.pre)
		for _, g := range c.groups {
			c.pre = append(c.pre, ',')
			c.pre = appendJSONString(c.pre, g)
			c.pre = append(c.pre, ":{"...)
		}
		inner := len(c.pre)
		first := len(c.groups) > 0
		for _, a := range attrs {
			c.pre, first = appendJSONAttr(c.pre, a, first)
		}
		if len(c.pre) == inner {
			c.pre = c.pre[:mark]
		} else {
			c.open += len(c.groups)
			c.groups = nil
		}
		return c
	}
	for _, a := range attrs {
		if a.Key == ServerKey && c.prefix == "" && len(c.server) == 0 {
			if v := a.Value.Resolve(); v.Kind() == slog.KindString {
				c.server = appendTextString(c.server, v.String())
				c.server = append(c.server, ' ')
				continue
			}
		}
		c.pre = appendTextAttr(c.pre, c.prefix, a)
	}
	return c
}

// WithGroup returns a handler that puts later attributes in group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := h.clone()
	if h.format == JSON {
		c.groups = append(c.groups, name)
	} else {
		c.prefix += name + "."
	}
	return c
}

// clone copies h for WithAttrs and WithGroup; the copy's slices never
// share spare capacity with h's.
func (h *Handler) clone() *Handler {
	c := *h
	c.server = slices.Clip(h.server)
	c.pre = slices.Clip(h.pre)
	c.groups = slices.Clip(h.groups)
	return &c
}
