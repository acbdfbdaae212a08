package herd

// arena.go: where the table keeps its records. It is pure.
//
// Records live in segments of one large byte slice each, so the garbage
// collector sees a few hundred pointers however many clients there are
// (as freecache and bigcache do): a million records cost the collector
// nothing to scan. A record is a 16-byte header (client time seconds and
// nanoseconds, line length) and the AT line. A replaced record becomes
// dead bytes in its segment; the table moves the live records out of the
// emptiest segment once dead bytes outweigh half the live ones (see
// table.compactStep), a bounded amount of work per change.

import "encoding/binary"

const (
	segSize   = 64 << 10 // bytes in an ordinary segment
	recHeader = 16       // sec (8), nsec (4), line length (4)
)

// ref is where a record lives: segment index << 32 | offset.
type ref uint64

func makeRef(seg, off int) ref { return ref(uint64(seg)<<32 | uint64(off)) }
func (r ref) seg() int         { return int(r >> 32) }
func (r ref) off() int         { return int(uint32(r)) }

// arena is the record store.
type arena struct {
	segs [][]byte // nil: free
	fill []int    // bytes written in each segment
	live []int    // bytes of live records in each segment
	free []int    // free ordinary segments, reused before new ones
	head int      // segment being appended to; -1 before the first record

	liveBytes, usedBytes int
	alloc                segAlloc
}

// arenaPut appends a record to a and returns where it is.
func arenaPut[T ~string | ~[]byte](a *arena, line T, sec int64, nsec int32) ref {
	need := recHeader + len(line)
	if a.head < 0 || a.fill[a.head]+need > len(a.segs[a.head]) {
		old := a.head
		a.head = a.newSeg(need)
		if old >= 0 && a.live[old] == 0 {
			a.release(old)
		}
	}
	s, off := a.head, a.fill[a.head]
	b := a.segs[s][off : off+need]
	binary.LittleEndian.PutUint64(b, uint64(sec))
	binary.LittleEndian.PutUint32(b[8:], uint32(nsec))
	binary.LittleEndian.PutUint32(b[12:], uint32(len(line)))
	copy(b[recHeader:], line)
	a.fill[s] += need
	a.live[s] += need
	a.liveBytes += need
	a.usedBytes += need
	return makeRef(s, off)
}

// newSeg returns the index of an empty segment that holds at least need
// bytes.
func (a *arena) newSeg(need int) int {
	if need <= segSize && len(a.free) > 0 {
		s := a.free[len(a.free)-1]
		a.free = a.free[:len(a.free)-1]
		return s
	}
	var b []byte
	if need <= segSize {
		b = a.alloc.get()
	} else {
		b = make([]byte, need) // an outsize line gets a segment of its own
	}
	for i, seg := range a.segs {
		if seg == nil {
			a.segs[i] = b
			return i
		}
	}
	a.segs = append(a.segs, b)
	a.fill = append(a.fill, 0)
	a.live = append(a.live, 0)
	return len(a.segs) - 1
}

// line returns the AT line at r; it is valid until the next change.
func (a *arena) line(r ref) []byte {
	b := a.segs[r.seg()][r.off():]
	n := binary.LittleEndian.Uint32(b[12:])
	return b[recHeader : recHeader+int(n) : recHeader+int(n)]
}

// time returns the client time of the record at r.
func (a *arena) time(r ref) (sec int64, nsec int32) {
	b := a.segs[r.seg()][r.off():]
	return int64(binary.LittleEndian.Uint64(b)), int32(binary.LittleEndian.Uint32(b[8:]))
}

// size returns the bytes the record at r takes.
func (a *arena) size(r ref) int {
	return recHeader + int(binary.LittleEndian.Uint32(a.segs[r.seg()][r.off()+12:]))
}

// drop marks the record at r dead. A segment left with no live record
// and not being appended to is freed.
func (a *arena) drop(r ref) {
	n := a.size(r)
	s := r.seg()
	a.live[s] -= n
	a.liveBytes -= n
	if a.live[s] == 0 && s != a.head {
		a.release(s)
	}
}

// release frees segment s, keeping an ordinary one for reuse.
func (a *arena) release(s int) {
	a.usedBytes -= a.fill[s]
	a.fill[s] = 0
	if len(a.segs[s]) == segSize {
		a.free = append(a.free, s)
	} else {
		a.segs[s] = nil
	}
}

// wasteful reports whether dead bytes outweigh half the live ones by
// more than two segments: then a compaction step pays.
func (a *arena) wasteful() bool {
	return a.usedBytes-a.liveBytes > a.liveBytes/2+2*segSize
}

// victim returns the segment, other than the head, with the fewest live
// bytes, or -1. Ties go to the lowest index, so the choice never depends
// on anything but the table's history.
func (a *arena) victim() int {
	best := -1
	for s, seg := range a.segs {
		if seg == nil || s == a.head || a.fill[s] == 0 {
			continue
		}
		if best < 0 || a.live[s] < a.live[best] {
			best = s
		}
	}
	return best
}

// records calls f with the ref of every record, live or dead, in segment s.
func (a *arena) records(s int, f func(r ref)) {
	for off := 0; off < a.fill[s]; {
		r := makeRef(s, off)
		off += a.size(r)
		f(r)
	}
}
