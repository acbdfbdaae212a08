package logging

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is a destination whose writes wait until it is opened, and which
// reports each write.
type gate struct {
	open   chan struct{}
	wrote  chan struct{}
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func newGate(opened bool) *gate {
	g := &gate{open: make(chan struct{}), wrote: make(chan struct{}, 1000)}
	if opened {
		close(g.open)
	}
	return g
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	g.buf.Write(p)
	g.writes++
	g.mu.Unlock()
	select {
	case g.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// TestWriterFlushesWithoutClose checks that a line reaches the
// destination by itself, within the flush interval, with no Close or
// further writes to push it.
func TestWriterFlushesWithoutClose(t *testing.T) {
	g := newGate(true)
	w := NewWriter(g, WriterOptions{FlushInterval: 10 * time.Millisecond})
	defer w.Close()
	w.Write([]byte("one\n"))
	select {
	case <-g.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("the line was not written")
	}
	if got := g.String(); got != "one\n" {
		t.Errorf("wrote %q", got)
	}
}

// TestWriterDropsRatherThanBlocks holds the destination's write, fills
// the buffer, and checks that Write keeps returning, that what does not
// fit is dropped and counted, that everything taken is written in order
// once the destination moves, and that the drop is reported in the log.
func TestWriterDropsRatherThanBlocks(t *testing.T) {
	g := newGate(false)
	var reports []string
	w := NewWriter(g, WriterOptions{BufferBytes: 1000, FlushInterval: time.Hour, DropReport: func(count, total uint64) []byte {
		reports = append(reports, fmt.Sprintf("%d/%d", count, total))
		return DropReport(nil, when, count, total)
	}})
	// The first line is taken by the writer's goroutine at once (the
	// buffer passes an eighth), and its write waits at the gate.
	w.Write([]byte(strings.Repeat("a", 199) + "\n"))
	for i := 0; i < 100; i++ {
		w.Write(fmt.Appendf(nil, "%099d\n", i)) // 100 bytes each
	}
	// Whether the first line was taken before the others came or not,
	// at most 1000 bytes wait in the buffer.
	taken, dropped := w.Lines(), w.Dropped()
	if taken+dropped != 101 || dropped < 80 {
		t.Fatalf("taken %d, dropped %d of 101", taken, dropped)
	}
	close(g.open)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out := g.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if uint64(len(lines)) != taken+1 {
		t.Fatalf("%d lines written, want the %d taken and the report:\n%s", len(lines), taken, out)
	}
	last := -1
	for _, l := range lines[1 : len(lines)-1] {
		var i int
		if _, err := fmt.Sscanf(l, "%d", &i); err != nil || len(l) != 99 || i <= last {
			t.Fatalf("line %q after line %d", l, last)
		}
		last = i
	}
	want := fmt.Sprintf("WARN log lines dropped: the disk did not keep up count=%d total=%d", dropped, dropped)
	if got := stripTimes(lines[len(lines)-1] + "\n"); got != want+"\n" || len(reports) != 1 {
		t.Errorf("last line %q, reports %v; want %q", got, reports, want)
	}
	if n, _ := w.Write([]byte("late\n")); n != 5 || w.Dropped() != dropped+1 {
		t.Errorf("a write after Close: n %d, dropped %d", n, w.Dropped())
	}
}

// TestWriterSplitsAtLines checks that a large buffer goes out in writes
// that each end at a line's end.
func TestWriterSplitsAtLines(t *testing.T) {
	g := newGate(true)
	w := NewWriter(g, WriterOptions{FlushInterval: time.Hour})
	line := []byte(strings.Repeat("x", 999) + "\n")
	for range 1000 { // 1 MB
		w.Write(line)
	}
	long := []byte(strings.Repeat("y", writeChunk+10) + "\n")
	w.Write(long)
	w.Close()
	if got, want := g.String(), strings.Repeat(string(line), 1000)+string(long); got != want {
		t.Fatalf("wrote %d bytes, want %d", len(got), len(want))
	}
	if g.writes < 4 {
		t.Errorf("%d writes for 1 MB", g.writes)
	}
}

// TestOpenRotatesAndReopens writes a file log past its size, checks the
// rotation, then moves the file as logrotate does and checks that after
// Reopen lines go to a new file of the same name.
func TestOpenRotatesAndReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "Goloman.log")
	l, err := Open(Options{Path: path, MaxSizeMB: 1, Keep: 3, Lines: true})
	if err != nil {
		t.Fatal(err)
	}
	log := l.Logger.With("server", "Goloman")
	line := strings.Repeat("z", 900)
	// About 1.5 MB: one rotation (two in one millisecond would give the
	// rotated files one name).
	const n = 1600
	for i := range n {
		log.Debug("in", "conn", "c1", "line", line, "i", i)
		if i%200 == 0 {
			l.Writer().Reopen() // the same name: nothing moved, the file goes on
		}
	}
	if err := l.Reopen(); err != nil { // writes everything first
		t.Fatal(err)
	}
	if l.Dropped() != 0 {
		t.Fatalf("%d lines dropped", l.Dropped())
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "Goloman*.log"))
	if len(files) != 2 {
		t.Fatalf("files %v, want the log and a rotated one", files)
	}
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1<<20 {
			t.Errorf("%s: %d bytes, over 1 MiB", f, len(b))
		}
		for l := range strings.Lines(string(b)) {
			if !strings.HasSuffix(l, "\n") || !strings.Contains(l, " DEBUG Goloman in conn=c1 line="+line+" i=") {
				t.Fatalf("%s: torn or wrong line %.80q", f, l)
			}
			seen++
		}
	}
	if seen != n {
		t.Errorf("%d lines in the files, want %d", seen, n)
	}

	moved := path + ".1"
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	log.Info("after the move") // still goes to the moved file's descriptor
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	log.Info("after reopen")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(moved)
	cur, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(old), "INFO Goloman after the move\n") {
		t.Errorf("moved file ends %q", tail(old))
	}
	if got := stripTimes(string(cur)); got != "INFO Goloman after reopen\n" {
		t.Errorf("new file %q", cur)
	}
}

func tail(b []byte) string {
	return string(b[max(0, len(b)-80):])
}

// TestOpenStderrAndErrors checks a log without a file, and that a path
// that cannot be written is reported by Open.
func TestOpenStderrAndErrors(t *testing.T) {
	var buf bytes.Buffer
	l, err := Open(Options{Stderr: &buf, Format: JSON})
	if err != nil {
		t.Fatal(err)
	}
	l.Logger.Info("hello", "n", 1)
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if !strings.HasSuffix(buf.String(), `,"level":"INFO","msg":"hello","n":1}`+"\n") {
		t.Errorf("stderr %q", buf.String())
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Open(Options{Path: filepath.Join(file, "x.log")}); err == nil || !strings.HasPrefix(err.Error(), "log file: ") {
		t.Errorf("Open under a file: %v", err)
	}
}
