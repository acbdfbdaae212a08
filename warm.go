package herd

// warm.go: fetching what a batch of lines will look up before any of it
// is needed. It is pure, like flood.go: the node holds its lock around it.

import "bytes"

const (
	// warmBatch is how many lines one warm call looks ahead: about as
	// many memory fetches as a core keeps in flight at once.
	warmBatch = 32
	// warmMinClients is the table size below which warming is skipped:
	// a table this small stays in the processor's caches.
	warmMinClients = 1 << 12
	// warmScan bounds the bytes one warm call reads, so a long line
	// arriving in many small reads is not scanned again at every read.
	warmScan = 8 << 10
)

// warm touches, for up to warmBatch complete lines in the first warmScan
// bytes of buf, the index slot, the stored record and the summary leaf
// (summary.go) that looking up and changing the record of the line's
// client (its field f, counted from 0, fields separated by single spaces)
// will read. It returns how many lines it looked at: 0 when those bytes
// hold no complete line, a large number when the table is too small to
// need warming.
//
// Once the table outgrows the caches, each lookup waits for main memory
// for the slot, the record and the leaf, and one line at a time the
// waits add up: at a million clients they were half of a node's CPU time.
// Touched together here, independent fetches overlap, and the lookups
// that follow find their memory in the cache. A line warm misreads only
// costs a wasted fetch.
func (t *table) warm(buf []byte, f int) int {
	if t.n < warmMinClients {
		return 1 << 30
	}
	var hs [warmBatch]uint64
	lines, n := 0, 0
	buf = buf[:min(len(buf), warmScan)]
	for lines < warmBatch {
		end := bytes.IndexByte(buf, '\n')
		if end < 0 {
			break
		}
		if c := nthField(buf[:end], f); len(c) > 0 {
			hs[n] = t.clientHash(c)
			n++
		}
		buf = buf[end+1:]
		lines++
	}
	var sink uint64
	leaves := t.sum.fp[topLevel]
	for _, h := range hs[:n] {
		if sh := &t.shards[shardOf(h)]; sh.slots != nil {
			sink += sh.slots[home(h, bitsOf(len(sh.slots)))].hash
		}
		if leaves != nil {
			sink += leaves[leafOf(h)].sum
		}
	}
	for _, h := range hs[:n] {
		if s := t.slotWithHash(h); s != nil {
			sink += uint64(t.arena.line(s.rec)[0])
		}
	}
	t.warmSink = sink
	return lines
}

// nthField returns field f (from 0) of line split at single spaces, or nil.
func nthField(line []byte, f int) []byte {
	for ; f > 0; f-- {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return nil
		}
		line = line[i+1:]
	}
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		line = line[:i]
	}
	return line
}
