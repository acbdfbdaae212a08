// Package testio holds what the command tests (cmd/herd, internal/bench)
// use to watch a command's output while it runs.
package testio

import (
	"bytes"
	"sync"
)

// LineWriter is a concurrency-safe output that also hands out complete
// lines, without their newline, on Lines as they are written (up to 100
// waiting; later ones are dropped from Lines, never from String).
type LineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	part  []byte
	Lines chan string
}

// NewLineWriter returns an empty LineWriter.
func NewLineWriter() *LineWriter { return &LineWriter{Lines: make(chan string, 100)} }

// Write keeps p and sends the lines it completes on Lines. It never
// fails or blocks.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	w.part = append(w.part, p...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		select {
		case w.Lines <- string(w.part[:i]):
		default:
		}
		w.part = w.part[i+1:]
	}
	return len(p), nil
}

// String returns everything written so far.
func (w *LineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
