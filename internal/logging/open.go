package logging

// open.go: a whole log (handler, writer and rotating file) from options.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Defaults for [Options].
const (
	DefaultMaxSizeMB = 100
	DefaultKeep      = 10
)

// Options describe a log.
type Options struct {
	// Path is the log file; "" or "-" means Stderr. Its directory is
	// created.
	Path string
	// Stderr is where a log without a file goes.
	Stderr io.Writer
	// Level, Format and Lines are the handler's (see [HandlerOptions]).
	Level  slog.Leveler
	Format Format
	Lines  bool
	// MaxSizeMB is the size in megabytes at which the file is rotated:
	// renamed with the time in its name (Goloman-2026-11-29T15-04-05.000.log)
	// and started afresh (default DefaultMaxSizeMB).
	MaxSizeMB int
	// Keep is how many rotated files are kept; older ones are removed
	// (default DefaultKeep).
	Keep int
	// Buffer configures the writer; its OnDrop is set by Open.
	Buffer WriterOptions
}

// Log is an open log: Logger writes through an asynchronous [Writer] to
// stderr or to a rotating file.
type Log struct {
	// Logger is the log's logger.
	Logger *slog.Logger
	w      *Writer
	file   *reopenable // nil for stderr
	path   string
}

// Open opens the log o describes. The file, if any, is opened (and
// created, with its directory) before Open returns, so a path that cannot
// be written is reported here.
func Open(o Options) (*Log, error) {
	l := &Log{}
	var dst io.Writer = plainWriter{o.Stderr}
	if o.Path != "" && o.Path != "-" {
		if err := os.MkdirAll(filepath.Dir(o.Path), 0o755); err != nil {
			return nil, fmt.Errorf("log file: %w", err)
		}
		lj := &lumberjack.Logger{
			Filename:   o.Path,
			MaxSize:    o.MaxSizeMB,
			MaxBackups: o.Keep,
		}
		if lj.MaxSize <= 0 {
			lj.MaxSize = DefaultMaxSizeMB
		}
		if lj.MaxBackups <= 0 {
			lj.MaxBackups = DefaultKeep
		}
		if _, err := lj.Write(nil); err != nil { // opens the file
			return nil, fmt.Errorf("log file: %w", err)
		}
		l.file = &reopenable{lj}
		l.path = o.Path
		dst = l.file
	}
	hopts := &HandlerOptions{Level: o.Level, Format: o.Format, Lines: o.Lines}
	wo := o.Buffer
	wo.DropReport = func(count, total uint64) []byte {
		return DropReport(hopts, time.Now(), count, total)
	}
	l.w = NewWriter(dst, wo)
	l.Logger = slog.New(NewHandler(l.w, hopts))
	return l, nil
}

// DropReport formats the line that says count lines were dropped (total
// since the start), at Warn, as a handler with opts writes it.
func DropReport(opts *HandlerOptions, now time.Time, count, total uint64) []byte {
	var b bytes.Buffer
	r := slog.NewRecord(now, slog.LevelWarn, "log lines dropped: the disk did not keep up", 0)
	r.AddAttrs(slog.Uint64("count", count), slog.Uint64("total", total))
	NewHandler(&b, opts).Handle(context.Background(), r)
	return b.Bytes()
}

// Path returns the log file's name, or "" for a log on stderr.
func (l *Log) Path() string { return l.path }

// Writer returns the log's writer, for its counters.
func (l *Log) Writer() *Writer { return l.w }

// Dropped returns how many lines were dropped because the disk did not
// keep up (see [Writer.Dropped]).
func (l *Log) Dropped() uint64 { return l.w.Dropped() }

// Reopen writes what is buffered and reopens the file by its name, for
// logrotate (which moves the file, then signals). A log on stderr has
// nothing to reopen.
func (l *Log) Reopen() error { return l.w.Reopen() }

// Close writes every buffered line and closes the file.
func (l *Log) Close() error {
	err := l.w.Close()
	if l.file != nil {
		if cerr := l.file.lj.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// reopenable is a rotating file whose Reopen closes it, so that its next
// write opens the file by name again.
type reopenable struct{ lj *lumberjack.Logger }

func (r *reopenable) Write(p []byte) (int, error) { return r.lj.Write(p) }

// Reopen closes the file and opens it again by name (lumberjack opens a
// closed Logger's file at its next write; an empty write is that write),
// so that a path that can no longer be written is reported now.
func (r *reopenable) Reopen() error {
	if err := r.lj.Close(); err != nil {
		return err
	}
	_, err := r.lj.Write(nil)
	return err
}

// plainWriter hides everything but Write (stderr is never closed or
// reopened).
type plainWriter struct{ io.Writer }
