package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/proxyherd/herd"
)

// when is the time of the records whose bytes the tests check.
var when = time.Date(2026, 11, 29, 15, 4, 5, 123456789, time.FixedZone("PST", -8*3600))

// lineRecord is the record package herd makes for a line (see logLineAt
// in conn.go).
func lineRecord(dir, line string) slog.Record {
	r := slog.NewRecord(when, slog.LevelDebug, dir, 0)
	r.AddAttrs(slog.String("conn", "c12"), slog.String("line", line))
	return r
}

func TestHandlerExactLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format Format
		rec    slog.Record
		want   string
	}{
		{"text line", Text, lineRecord("in", "IAMAT kiwi +34.068930-118.445127 1520023934.918963997"),
			`2026-11-29T23:04:05.123456Z DEBUG Goloman in conn=c12 line="IAMAT kiwi +34.068930-118.445127 1520023934.918963997"` + "\n"},
		{"text quotes and backslashes", Text, lineRecord("in", `a "b" c\d`),
			`2026-11-29T23:04:05.123456Z DEBUG Goloman in conn=c12 line="a \"b\" c\\d"` + "\n"},
		{"text bare", Text, lineRecord("out", `HERD-WELCOME`),
			`2026-11-29T23:04:05.123456Z DEBUG Goloman out conn=c12 line=HERD-WELCOME` + "\n"},
		{"text control and invalid UTF-8", Text, lineRecord("in", "a\rb\xff\x00"),
			`2026-11-29T23:04:05.123456Z DEBUG Goloman in conn=c12 line="a\rb\xff\x00"` + "\n"},
		{"text unicode", Text, lineRecord("in", "Zürich"),
			`2026-11-29T23:04:05.123456Z DEBUG Goloman in conn=c12 line=Zürich` + "\n"},
		{"text empty", Text, lineRecord("in", ""),
			`2026-11-29T23:04:05.123456Z DEBUG Goloman in conn=c12 line=""` + "\n"},
		{"text event", Text, func() slog.Record {
			r := slog.NewRecord(when, slog.LevelWarn, "peer refused", 0)
			r.AddAttrs(slog.String("peer", "Hands"), slog.Int("records", 3), slog.Duration("after", 1500*time.Millisecond),
				slog.Bool("tls", true), slog.Any("err", errors.New("x=1")), slog.Group("g", slog.Uint64("n", 7), slog.Float64("f", 0.5)))
			return r
		}(), `2026-11-29T23:04:05.123456Z WARN Goloman peer refused peer=Hands records=3 after=1.5s tls=true err="x=1" g.n=7 g.f=0.5` + "\n"},
		{"text message with =", Text, slog.NewRecord(when, slog.LevelInfo+2, "a=b", 0),
			`2026-11-29T23:04:05.123456Z INFO+2 Goloman "a=b"` + "\n"},
		{"text no time", Text, slog.NewRecord(time.Time{}, slog.LevelError, "closed", 0),
			"ERROR Goloman closed\n"},
		{"json line", JSON, lineRecord("in", "IAMAT kiwi +34.068930-118.445127 1520023934.918963997"),
			`{"time":"2026-11-29T23:04:05.123456Z","level":"DEBUG","msg":"in","server":"Goloman","conn":"c12","line":"IAMAT kiwi +34.068930-118.445127 1520023934.918963997"}` + "\n"},
		{"json escapes", JSON, lineRecord("in", "a\"b\\c\r\n\t\x01\xff\u2028é<>&"),
			`{"time":"2026-11-29T23:04:05.123456Z","level":"DEBUG","msg":"in","server":"Goloman","conn":"c12","line":"a\"b\\c\r\n\t\u0001\ufffd\u2028é<>&"}` + "\n"},
		{"json event", JSON, func() slog.Record {
			r := slog.NewRecord(when, slog.LevelInfo, "peer link up", 0)
			r.AddAttrs(slog.Int("records", 3), slog.Duration("after", time.Second), slog.Any("err", errors.New("boom")),
				slog.Any("list", []int{1, 2}), slog.Float64("inf", posInf()), slog.Group("empty"))
			return r
		}(), `{"time":"2026-11-29T23:04:05.123456Z","level":"INFO","msg":"peer link up","server":"Goloman","records":3,"after":1000000000,"err":"boom","list":[1,2],"inf":"+Inf"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := NewHandler(&buf, &HandlerOptions{Level: slog.LevelDebug, Format: tc.format}).WithAttrs([]slog.Attr{slog.String("server", "Goloman")})
			if err := h.Handle(context.Background(), tc.rec); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if tc.format == JSON && !json.Valid(buf.Bytes()) {
				t.Errorf("not JSON: %s", buf.Bytes())
			}
		})
	}
}

func posInf() float64 { f, _ := strconv.ParseFloat("+Inf", 64); return f }

// TestHandlerLines checks that Lines lets herd's line records through at
// Info, and nothing else at Debug.
func TestHandlerLines(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(&buf, &HandlerOptions{Lines: true})
	log := slog.New(h)
	if !h.Enabled(context.Background(), slog.LevelDebug) || h.Enabled(context.Background(), slog.LevelDebug-1) {
		t.Error("Enabled: want Debug (for lines) and nothing below")
	}
	log.Debug("connection parked", "conn", "c1")
	log.Debug("in", "conn", "c1", "line", "IAMAT")
	log.Info("connection opened", "conn", "c1")
	want := "DEBUG in conn=c1 line=IAMAT\nINFO connection opened conn=c1\n"
	if got := stripTimes(buf.String()); got != want {
		t.Errorf("got:\n%swant:\n%s", got, want)
	}
	buf.Reset()
	slog.New(NewHandler(&buf, nil)).Debug("in", "conn", "c1", "line", "IAMAT")
	if buf.Len() != 0 {
		t.Errorf("without Lines: %q", buf.String())
	}
}

// stripTimes drops the leading time of each text line.
func stripTimes(s string) string {
	var out strings.Builder
	for line := range strings.Lines(s) {
		_, rest, _ := strings.Cut(line, " ")
		out.WriteString(rest)
	}
	return out.String()
}

// TestSlogtest runs the standard library's conformance tests for
// handlers over both formats.
func TestSlogtest(t *testing.T) {
	for _, f := range []Format{Text, JSON} {
		t.Run(fmt.Sprint(f), func(t *testing.T) {
			var buf bytes.Buffer
			slogtest.Run(t, func(*testing.T) slog.Handler {
				buf.Reset()
				return NewHandler(&buf, &HandlerOptions{Format: f})
			}, func(t *testing.T) map[string]any {
				line := strings.TrimSuffix(buf.String(), "\n")
				if strings.Contains(line, "\n") {
					t.Fatalf("more than one line: %q", buf.String())
				}
				if f == JSON {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("%v: %s", err, line)
					}
					return m
				}
				return parseText(t, line)
			})
		})
	}
}

// parseText reads a text line back into slogtest's map: the time (if
// the first field parses as one), the level, the message (the words up
// to the first key=value, or one quoted field), then attributes, dotted
// keys as nested maps.
func parseText(t *testing.T, line string) map[string]any {
	m := map[string]any{}
	fields := splitText(t, line)
	if len(fields) > 0 {
		if tm, err := time.Parse(time.RFC3339Nano, fields[0]); err == nil {
			m[slog.TimeKey] = tm
			fields = fields[1:]
		}
	}
	if len(fields) < 2 {
		t.Fatalf("no level and message in %q", line)
	}
	// The message runs from after the level to the first key=value.
	m[slog.LevelKey] = fields[0]
	fields = fields[1:]
	var msg []string
	for len(fields) > 0 && (strings.HasPrefix(fields[0], `"`) || !strings.Contains(fields[0], "=")) {
		msg, fields = append(msg, fields[0]), fields[1:]
	}
	m[slog.MessageKey] = strings.Join(msg, " ")
	if uq, err := strconv.Unquote(m[slog.MessageKey].(string)); err == nil {
		m[slog.MessageKey] = uq
	}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("field %q of %q is not key=value", f, line)
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		dst := m
		keys := strings.Split(k, ".")
		for _, g := range keys[:len(keys)-1] {
			sub, ok := dst[g].(map[string]any)
			if !ok {
				sub = map[string]any{}
				dst[g] = sub
			}
			dst = sub
		}
		dst[keys[len(keys)-1]] = v
	}
	return m
}

// splitText splits a text line at spaces outside quotes.
func splitText(t *testing.T, line string) []string {
	var out []string
	for len(line) > 0 {
		i, inQuote := 0, false
		for ; i < len(line); i++ {
			c := line[i]
			switch {
			case c == '\\' && inQuote:
				i++
			case c == '"':
				inQuote = !inQuote
			case c == ' ' && !inQuote:
				goto cut
			}
		}
	cut:
		if inQuote {
			t.Fatalf("unbalanced quotes in %q", line)
		}
		out = append(out, line[:i])
		line = strings.TrimPrefix(line[i:], " ")
	}
	return out
}

// The handler is package herd's fast way for lines.
var _ herd.LineHandler = (*Handler)(nil)

// TestHandleLinesIsHandle checks that HandleLines writes exactly what
// Handle writes for the records package herd would otherwise build, for
// every kind of line, in both formats, with and without groups.
func TestHandleLinesIsHandle(t *testing.T) {
	lines := [][]byte{
		[]byte("IAMAT kiwi +34.068930-118.445127 1520023934.918963997"), []byte("HERD-WELCOME"), nil, []byte(`say "hi" \ bye`),
		[]byte("a=b"), []byte("tab\there"), []byte("Zürich"), []byte("\xff\xfe"), []byte("line\u2028sep"), []byte("AT Goloman +0.1 x\n{\n}"),
	}
	for _, format := range []Format{Text, JSON} {
		for _, derive := range []struct {
			name string
			f    func(slog.Handler) slog.Handler
		}{
			{"plain", func(h slog.Handler) slog.Handler { return h }},
			{"server", func(h slog.Handler) slog.Handler { return h.WithAttrs([]slog.Attr{slog.String("server", "Goloman")}) }},
			{"group-attrs", func(h slog.Handler) slog.Handler {
				return h.WithGroup("g").WithAttrs([]slog.Attr{slog.Int("n", 1)})
			}},
			{"pending-group", func(h slog.Handler) slog.Handler { return h.WithGroup("g") }},
		} {
			for _, tm := range []time.Time{when, {}} {
				var viaLines, viaRecords bytes.Buffer
				hl := derive.f(NewHandler(&viaLines, &HandlerOptions{Format: format, Lines: true})).(herd.LineHandler)
				hr := derive.f(NewHandler(&viaRecords, &HandlerOptions{Format: format, Lines: true}))
				hl.HandleLines(tm, "in", "c12", lines)
				for _, line := range lines {
					r := slog.NewRecord(tm, herd.LevelLines, "in", 0)
					r.AddAttrs(slog.String("conn", "c12"), slog.String("line", string(line)))
					hr.Handle(context.Background(), r)
				}
				if viaLines.String() != viaRecords.String() {
					t.Errorf("%v %s:\nHandleLines\n%s\nHandle\n%s", format, derive.name, viaLines.String(), viaRecords.String())
				}
			}
		}
	}
}

// TestHandleLinesInParts checks that a long batch reaches the writer in
// parts of whole lines, each counted.
func TestHandleLinesInParts(t *testing.T) {
	g := newGate(true)
	w := NewWriter(g, WriterOptions{FlushInterval: time.Hour})
	h := NewHandler(w, &HandlerOptions{Lines: true})
	lines := make([][]byte, 2000) // about 130 KB of log
	for i := range lines {
		lines[i] = []byte(fmt.Sprintf("AT Hands +0.000593594 load-%d +34.068930-118.445127 1795305605.299449694", i))
	}
	h.HandleLines(when, "out", "Hands#1", lines)
	if w.Lines() != 2000 {
		t.Errorf("%d lines taken, want 2000", w.Lines())
	}
	w.Close()
	got := strings.Split(strings.TrimSuffix(g.String(), "\n"), "\n")
	if len(got) != 2000 || !strings.HasSuffix(got[1999], `line="AT Hands +0.000593594 load-1999 +34.068930-118.445127 1795305605.299449694"`) {
		t.Errorf("%d lines, last %q", len(got), got[len(got)-1])
	}
}
