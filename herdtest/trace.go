package herdtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"
)

// traceTail is how many recent entries a Trace keeps for failure reports.
const traceTail = 64

// Trace records every event the simulation applies (each delivered chunk of
// bytes, end of stream and reset, each dial and its outcome, each timer that
// fires) and every fault, one entry per line:
//
//	+0.012345678 Goloman->Hands#3> data "AT Goloman +0.000000000 kiwi ...\n"
//	+1.250000000 - partition [Goloman Hands] | [Holiday Welsh Wilkes]
//
// The first field is virtual time since the simulation started, the second
// the event's key ("-" for faults). Sum hashes every entry ever recorded,
// so two runs with equal sums made the same choices in the same order.
// A Trace is used by one Sim and is not safe for concurrent use by others.
type Trace struct {
	h    hash.Hash
	n    int
	tail [traceTail]string
	w    io.Writer
	buf  []byte
}

func newTrace(w io.Writer) *Trace { return &Trace{h: sha256.New(), w: w} }

// add records one entry.
func (t *Trace) add(at time.Duration, key, kind string, detail string) {
	b := t.buf[:0]
	b = appendOffset(b, at)
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, ' ')
	b = append(b, kind...)
	if detail != "" {
		b = append(b, ' ')
		b = append(b, detail...)
	}
	b = append(b, '\n')
	t.buf = b
	t.h.Write(b)
	if t.w != nil {
		t.w.Write(b)
	}
	entry := string(b[:len(b)-1])
	if len(entry) > 240 {
		entry = entry[:240] + "..."
	}
	t.tail[t.n%traceTail] = entry
	t.n++
}

// Sum returns the hex SHA-256 of every entry recorded so far.
func (t *Trace) Sum() string { return hex.EncodeToString(t.h.Sum(nil)) }

// Len returns the number of entries recorded so far.
func (t *Trace) Len() int { return t.n }

// Tail returns the last entries (at most 64), oldest first, each cut to 240
// bytes: enough to see what a failing run was doing.
func (t *Trace) Tail() []string {
	k := min(t.n, traceTail)
	out := make([]string, 0, k)
	for i := t.n - k; i < t.n; i++ {
		out = append(out, t.tail[i%traceTail])
	}
	return out
}

// appendOffset appends a virtual time offset as "+S.NNNNNNNNN".
func appendOffset(b []byte, d time.Duration) []byte {
	b = append(b, '+')
	b = strconv.AppendInt(b, int64(d/time.Second), 10)
	b = append(b, '.')
	ns := int64(d % time.Second)
	return fmt.Appendf(b, "%09d", ns)
}
