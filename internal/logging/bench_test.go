package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/proxyherd/herd"
)

// benchLine is a typical line of a loaded herd: a peer's AT record.
var benchLine = []byte("AT Hands +0.000593594 load-17-123 +34.068930-118.445127 1795305605.299449694")

// logLine is what package herd does for a line on its own (loglines.go,
// logLineAt): a record with the time, the conn and the line, handed to
// the handler, or the line to HandleLines when the handler has it.
func logLine(h slog.Handler, line []byte) {
	if lh, ok := h.(herd.LineHandler); ok {
		one[0] = line
		lh.HandleLines(time.Now(), "in", "Hands#1", one[:])
		return
	}
	logRecord(h, line)
}

// one is logLine's batch of one line (logLine is not called
// concurrently).
var one [1][]byte

// logRecord is logLine through a slog.Record whatever the handler.
func logRecord(h slog.Handler, line []byte) {
	r := slog.NewRecord(time.Now(), slog.LevelDebug, "in", 0)
	r.AddAttrs(slog.String("conn", "Hands#1"), slog.String("line", string(line)))
	h.Handle(context.Background(), r)
}

// BenchmarkHandler measures logging one line, written to io.Discard:
// slog.TextHandler against this package's handler, given the line
// (HandleLines, as package herd does) or a record (-record).
func BenchmarkHandler(b *testing.B) {
	server := []slog.Attr{slog.String("server", "Goloman")}
	for _, tc := range []struct {
		name string
		h    slog.Handler
	}{
		{"slog-text", slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}).WithAttrs(server)},
		{"slog-json", slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}).WithAttrs(server)},
		{"text", NewHandler(io.Discard, &HandlerOptions{Level: slog.LevelDebug}).WithAttrs(server)},
		{"json", NewHandler(io.Discard, &HandlerOptions{Level: slog.LevelDebug, Format: JSON}).WithAttrs(server)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				logLine(tc.h, benchLine)
			}
		})
		if _, mine := tc.h.(*Handler); mine {
			b.Run(tc.name+"-record", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					logRecord(tc.h, benchLine)
				}
			})
		}
	}
	// A link's read or write of ten records, as package herd logs it.
	b.Run("text-batch10", func(b *testing.B) {
		h := NewHandler(io.Discard, &HandlerOptions{Level: slog.LevelDebug}).WithAttrs(server).(herd.LineHandler)
		lines := make([][]byte, 10)
		for i := range lines {
			lines[i] = benchLine
		}
		b.ReportAllocs()
		for b.Loop() {
			h.HandleLines(time.Now(), "in", "Hands#1", lines)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/line")
	})
	// What package herd did before: Logger.LogAttrs (which looks up the
	// caller's position) through slog.TextHandler.
	b.Run("slog-text-logger", func(b *testing.B) {
		log := slog.New(slog.NewTextHandler(io.Discard, nil)).With("server", "Goloman")
		b.ReportAllocs()
		for b.Loop() {
			log.LogAttrs(context.Background(), slog.LevelInfo, "in", slog.String("conn", "Hands#1"), slog.String("line", string(benchLine)))
		}
	})
}

// BenchmarkFile measures a line all the way to a log file: slog's
// TextHandler writing to the file (one write system call per line, as
// the commands did before), against Open's handler, Writer and rotating
// file. Lines the Writer dropped are reported as dropped/op; the file's
// writes finish within the timing (Close).
func BenchmarkFile(b *testing.B) {
	b.Run("slog-text", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "a.log"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		h := slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}).WithAttrs([]slog.Attr{slog.String("server", "Goloman")})
		b.ReportAllocs()
		for b.Loop() {
			logLine(h, benchLine)
		}
	})
	for _, format := range []Format{Text, JSON} {
		for _, parallel := range []bool{false, true} {
			name := format.String()
			if parallel {
				name += "-parallel"
			}
			b.Run(name, func(b *testing.B) {
				l, err := Open(Options{Path: filepath.Join(b.TempDir(), "a.log"), Format: format, Lines: true, MaxSizeMB: 1 << 20})
				if err != nil {
					b.Fatal(err)
				}
				h := l.Logger.Handler().WithAttrs([]slog.Attr{slog.String("server", "Goloman")})
				b.ReportAllocs()
				b.ResetTimer()
				if parallel {
					b.RunParallel(func(pb *testing.PB) {
						lines := [][]byte{benchLine}
						for pb.Next() {
							h.(herd.LineHandler).HandleLines(time.Now(), "in", "Hands#1", lines)
						}
					})
				} else {
					for range b.N {
						logLine(h, benchLine)
					}
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
			})
		}
	}
}
