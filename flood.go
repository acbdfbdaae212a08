package herd

// flood.go: the client table, a last-writer-wins register per client, and
// what each link still owes its neighbour. It is pure: no locks, no I/O;
// the node serialises access to it.
//
// The table is built for millions of clients. Its index is 256 shards of
// open addressing with linear probing, each slot three words and no
// pointer; a shard that fills doubles on its own, so growing never rehashes
// more than 1/256 of the table at once. Records live in the arena (see
// arena.go). A client's home slot comes from the top bits of its hash, so
// a shard keeps its clients in hash order, which lets the link-up summary
// (summary.go) walk one bucket of clients without an index of its own.
//
// What a link owes is a bit per slot (slot.dirty, one bit per link slot)
// plus the link's own FIFO of client hashes (see link.owed): a client is
// queued for a link at most once however often it changes, so what a slow
// neighbour is owed is bounded by the table, never by a queue limit, and
// it receives each client's newest record.

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"
)

const (
	shardBits = 8
	numShards = 1 << shardBits
	// maxLinkSlots is how many links (up, or going down and not yet
	// drained) a node can have at once: one bit of slot.dirty each.
	maxLinkSlots = 64
	// minShard is a shard's first size; maxLoad/8 its fill limit.
	minShard = 16
	maxLoad  = 6
)

// table maps a client ID to its newest record in Record.Compare order.
type table struct {
	key    hashKey
	shards [numShards]shard
	n      int
	arena  arena
	sum    summary
	// warmSink keeps warm's loads from being optimised away.
	warmSink uint64
}

// shard is one open-addressing index.
type shard struct {
	slots []slot // power-of-two length, or nil while the shard is empty
	n     int
}

// slot is one client in the index. hash is never 0 for a used slot.
type slot struct {
	hash  uint64
	rec   ref
	dirty uint64 // bit k: queued for the link in link slot k
	item  uint64 // the hash of the record's line (see holds and summary)
}

// pos is a slot's place in the index; valid until the table next changes.
type pos struct{ shard, i int }

func newTable(key hashKey) *table {
	t := &table{key: key}
	t.arena = arena{head: -1, alloc: newSegAlloc(t)}
	return t
}

// clientHash is the hash the table files client under (never 0).
func (t *table) clientHash(client []byte) uint64 { return hashBytes(t.key, client) | 1 }

// home is the first slot of h in a shard of 2^bits slots: the hash's bits
// after the shard's, so a shard is in hash order.
func home(h uint64, bits int) int { return int(h << shardBits >> (64 - bits)) }

func shardOf(h uint64) int { return int(h >> (64 - shardBits)) }

// lookup returns the slot of client (hash h) and true, or the empty slot
// where it would go and false. The shard must have slots.
func lookup[T ~string | ~[]byte](t *table, h uint64, client T) (pos, bool) {
	sh := &t.shards[shardOf(h)]
	mask := len(sh.slots) - 1
	for i := home(h, bitsOf(len(sh.slots))); ; i = (i + 1) & mask {
		s := &sh.slots[i]
		if s.hash == 0 {
			return pos{shardOf(h), i}, false
		}
		if s.hash == h && string(atClient(t.arena.line(s.rec))) == string(client) {
			return pos{shardOf(h), i}, true
		}
	}
}

// bitsOf returns log2 of a power of two.
func bitsOf(n int) int { return bits.Len(uint(n)) - 1 }

// atClient returns the client ID of a stored AT line: its fourth field.
// Stored lines have single-space separators (parseATFields checks).
func atClient(line []byte) []byte {
	spaces, start := 0, 0
	for i, c := range line {
		if c != ' ' {
			continue
		}
		spaces++
		if spaces == 3 {
			start = i + 1
		} else if spaces == 4 {
			return line[start:i]
		}
	}
	return nil
}

// offerResult says what an offer did.
type offerResult int

const (
	offerStale   offerResult = iota // the table holds a record that comes after
	offerChanged                    // the record is stored
	offerFull                       // a new client, but the table is at its limit
)

// offer stores r if it comes after the client's stored record, or if the
// client is new and the table holds fewer than limit clients. It returns
// the client's slot (for offerStale and offerChanged) and what happened.
func (t *table) offer(r *Record, limit int) (pos, offerResult) {
	h := hashBytes(t.key, r.Client) | 1
	sh := &t.shards[shardOf(h)]
	if sh.slots == nil {
		sh.slots = make([]slot, minShard)
	}
	p, found := lookup(t, h, r.Client)
	if found {
		s := &sh.slots[p.i]
		if !t.after(r, s.rec) {
			return p, offerStale
		}
		t.sum.change(h, s.item, -1)
		t.arena.drop(s.rec)
		s.rec = arenaPut(&t.arena, r.Line, r.Sec, r.Nsec)
		s.item = hashBytes(t.key, r.Line)
		t.sum.change(h, s.item, +1)
		t.compactStep() // moves records, never slots
		return p, offerChanged
	}
	if t.n >= limit {
		return p, offerFull
	}
	if (sh.n+1)*8 > len(sh.slots)*maxLoad {
		t.grow(sh)
		p, _ = lookup(t, h, r.Client)
	}
	item := hashBytes(t.key, r.Line)
	sh.slots[p.i] = slot{hash: h, rec: arenaPut(&t.arena, r.Line, r.Sec, r.Nsec), item: item}
	sh.n++
	t.n++
	t.sum.change(h, item, +1)
	t.compactStep()
	return p, offerChanged
}

// after reports whether r comes after the stored record at old, in
// Record.Compare order.
func (t *table) after(r *Record, old ref) bool {
	sec, nsec := t.arena.time(old)
	switch {
	case r.Sec != sec:
		return r.Sec > sec
	case r.Nsec != nsec:
		return r.Nsec > nsec
	}
	return r.Line > string(t.arena.line(old))
}

// grow doubles a shard, keeping every slot's dirty bits.
func (t *table) grow(sh *shard) {
	old := sh.slots
	sh.slots = make([]slot, 2*len(old))
	// Write every new slot before the probes below read any: a large
	// allocation may be fresh pages from the kernel, and a page read
	// first maps the shared zero page, so the write after it faults
	// again and flushes the other cores' TLBs. Written first, each page
	// faults once.
	clear(sh.slots)
	mask, bits := len(sh.slots)-1, bitsOf(len(sh.slots))
	for _, s := range old {
		if s.hash == 0 {
			continue
		}
		i := home(s.hash, bits)
		for sh.slots[i].hash != 0 {
			i = (i + 1) & mask
		}
		sh.slots[i] = s
	}
}

// compactStep moves the live records out of the emptiest segment when
// the arena holds too many dead bytes: at most one segment (64 KiB) of
// work per change, so no change waits on a whole-table pass.
func (t *table) compactStep() {
	if !t.arena.wasteful() {
		return
	}
	v := t.arena.victim()
	if v < 0 {
		return
	}
	t.arena.records(v, func(r ref) {
		line := t.arena.line(r)
		h := t.clientHash(atClient(line))
		p, found := lookup(t, h, atClient(line))
		if !found {
			return
		}
		s := &t.shards[p.shard].slots[p.i]
		if s.rec != r {
			return // a dead record
		}
		sec, nsec := t.arena.time(r)
		// put may not reuse segment v: v is freed only by the drop of
		// its last live record, after which records stops.
		s.rec = arenaPut(&t.arena, line, sec, nsec)
		t.arena.drop(r)
	})
	if t.arena.segs[v] != nil && t.arena.live[v] == 0 && t.arena.fill[v] > 0 {
		t.arena.release(v)
	}
}

// slotAt returns the slot at p.
func (t *table) slotAt(p pos) *slot { return &t.shards[p.shard].slots[p.i] }

// lineAt returns the line of the record at p, valid until the next change.
func (t *table) lineAt(p pos) []byte { return t.arena.line(t.slotAt(p).rec) }

// get returns the stored record of client.
func (t *table) get(client []byte) (Record, bool) {
	p, ok := t.find(client)
	if !ok {
		return Record{}, false
	}
	return t.recordAt(p), true
}

// find returns the slot of client.
func (t *table) find(client []byte) (pos, bool) {
	h := t.clientHash(client)
	if t.shards[shardOf(h)].slots == nil {
		return pos{}, false
	}
	return lookup(t, h, client)
}

// holds reports whether the table holds line as client's record,
// without allocating.
//
// It compares hashes only, the client's and the line's, so that the
// common duplicate costs no visit to the arena: a record is taken for a
// duplicate only if both 64-bit hashes collide.
//
// If another client with the same hash comes first in the probe run,
// holds answers false, which only sends the line the long way, through
// offer, which compares client IDs.
func (t *table) holds(client, line []byte) bool {
	s := t.slotWithHash(t.clientHash(client))
	return s != nil && s.item == hashBytes(t.key, line)
}

// slotWithHash returns the first slot in h's probe run whose client hash
// is h, or nil: the client's slot, unless another client with the same
// hash comes first. Stopping there spares a new record of a stored client
// the walk to the end of the run.
func (t *table) slotWithHash(h uint64) *slot {
	sh := &t.shards[shardOf(h)]
	if sh.slots == nil {
		return nil
	}
	mask := len(sh.slots) - 1
	for i := home(h, bitsOf(len(sh.slots))); sh.slots[i].hash != 0; i = (i + 1) & mask {
		if sh.slots[i].hash == h {
			return &sh.slots[i]
		}
	}
	return nil
}

// recordAt returns the record at p as a Record (which copies its line).
func (t *table) recordAt(p pos) Record {
	r, _ := parseAT(t.lineAt(p))
	return r
}

// len returns the number of clients in the table.
func (t *table) len() int { return t.n }

// mark queues the client at p for the link in slot k; it reports false if
// the client was already queued there.
func (t *table) mark(p pos, k int) bool {
	s := t.slotAt(p)
	if s.dirty&(1<<k) != 0 {
		return false
	}
	s.dirty |= 1 << k
	return true
}

// take finds the client with hash h queued for link slot k, unqueues it
// and appends its line and a newline to buf. It reports false if no such
// client is queued (the link's FIFO and the dirty bits always agree, so
// that means a bug or a FIFO being drained).
func (t *table) take(h uint64, k int, buf []byte, send bool) ([]byte, bool) {
	sh := &t.shards[shardOf(h)]
	if sh.slots == nil {
		return buf, false
	}
	mask := len(sh.slots) - 1
	for i := home(h, bitsOf(len(sh.slots))); sh.slots[i].hash != 0; i = (i + 1) & mask {
		s := &sh.slots[i]
		if s.hash == h && s.dirty&(1<<k) != 0 {
			s.dirty &^= 1 << k
			if send {
				buf = append(append(buf, t.arena.line(s.rec)...), '\n')
			}
			return buf, true
		}
	}
	return buf, false
}

// eachInLeaf calls f with the position and hash of every client whose
// hash falls in leaf bucket b (its top leafBits bits), in slot order.
func (t *table) eachInLeaf(b int, f func(p pos, h uint64)) {
	si := b >> (leafBits - shardBits)
	sh := &t.shards[si]
	if sh.n == 0 {
		return
	}
	bits := bitsOf(len(sh.slots))
	sub := b & (1<<(leafBits-shardBits) - 1)
	const subBits = leafBits - shardBits
	lo := (sub << bits) >> subBits
	hi := ((sub+1)<<bits + (1<<subBits - 1)) >> subBits
	mask := len(sh.slots) - 1
	// Clients homed in [lo, hi) lie between lo and the first empty slot
	// at or after hi: probing only moves forward, and nothing is deleted.
	for k, i := 0, lo; k < len(sh.slots); k, i = k+1, (i+1)&mask {
		s := &sh.slots[i]
		if s.hash == 0 {
			if k >= hi-lo {
				return
			}
			continue
		}
		if leafOf(s.hash) == b {
			f(pos{si, i}, s.hash)
		}
	}
}

// leafOf is the leaf summary bucket of a client hash.
func leafOf(h uint64) int { return int(h >> (64 - leafBits)) }

// eachInLeaves calls f for every client in leaf buckets [lo, hi), in
// hash order but within a leaf. A span that covers whole shards is walked
// slot by slot, so a full walk costs the index, not 65,536 leaf probes.
func (t *table) eachInLeaves(lo, hi int, f func(p pos, h uint64)) {
	const perShard = 1 << (leafBits - shardBits)
	for b := lo; b < hi; {
		si := b / perShard
		if b%perShard == 0 && b+perShard <= hi {
			sh := &t.shards[si]
			if sh.n > 0 {
				// Slots are in hash order but for the run that wraps
				// round the end: start after the first empty slot.
				start := 0
				for sh.slots[start].hash != 0 {
					start++
				}
				mask := len(sh.slots) - 1
				var run []pos
				for k := 1; k <= len(sh.slots); k++ {
					i := (start + k) & mask
					if sh.slots[i].hash != 0 {
						run = append(run, pos{si, i})
					}
				}
				slices.SortStableFunc(run, func(x, y pos) int {
					return cmp.Compare(leafOf(sh.slots[x.i].hash), leafOf(sh.slots[y.i].hash))
				})
				for _, p := range run {
					f(p, sh.slots[p.i].hash)
				}
			}
			b += perShard
			continue
		}
		t.eachInLeaf(b, f)
		b++
	}
}

// appendLeaves appends the records of every client in leaf buckets
// [lo, hi) to out, unsorted.
func (t *table) appendLeaves(lo, hi int, out []Record) []Record {
	t.eachInLeaves(lo, hi, func(p pos, _ uint64) { out = append(out, t.recordAt(p)) })
	return out
}

// appendShardLines appends the stored line of every client in shards
// [lo, hi) to buf, each followed by a newline, in slot order (a snapshot
// needs no order, so nothing is sorted); it returns buf and how many lines
// it appended. The lines are scattered over the arena, so it fetches them
// warmBatch at a time (see table.warm) before copying any: the reads
// overlap.
func (t *table) appendShardLines(lo, hi int, buf []byte) ([]byte, int) {
	var batch [warmBatch]ref
	n, k := 0, 0
	flush := func() {
		var sink byte
		for _, r := range batch[:n] {
			sink += t.arena.line(r)[0]
		}
		t.warmSink += uint64(sink)
		for _, r := range batch[:n] {
			buf = append(append(buf, t.arena.line(r)...), '\n')
		}
		k += n
		n = 0
	}
	for si := lo; si < hi; si++ {
		for i := range t.shards[si].slots {
			if s := &t.shards[si].slots[i]; s.hash != 0 {
				batch[n] = s.rec
				if n++; n == len(batch) {
					flush()
				}
			}
		}
	}
	flush()
	return buf, k
}

// sortRecords sorts records by client ID, so that what a node sends or
// saves never depends on the index's order.
func sortRecords(recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int { return strings.Compare(a.Client, b.Client) })
}
