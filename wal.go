package herd

// wal.go: the state log, which makes the table durable (Config.StateFile).
//
// Every change to the table, from a client or a peer, is appended to an
// in-memory buffer under the node's lock, framed with its length and a
// CRC. A commit takes the whole buffer at once and writes it to a "lane",
// a log segment file of its own:
//
//   - With AckTable, one lane goroutine commits as soon as the buffer
//     fills, and fsyncs every StateInterval.
//   - With AckDurable, a session that holds replies waits for the log to
//     be on disk up to its last record (waitSynced). If those records are
//     not taken yet and a lane is free, the session commits them itself,
//     with every record appended by then, and fsyncs; the position up to
//     which every taken batch is on disk moves on, releasing every reply
//     waiting for it: one fsync serves every reply waiting at that moment
//     (group commit). With more than one lane (walLanes), lanes fsync at
//     once, each its own file, so a new batch need not wait for the
//     fsync under way. Records no reply
//     waits for (peers') are committed every StateInterval.
//
// The table is a last-writer-wins register per client: replaying a record
// twice, or records in any order, gives the same table. So segments need no
// order among lanes, and the log is compacted simply: once it outgrows
// both walCompactMin and the last snapshot, every lane moves on to a new
// segment before its next write, and a goroutine writes the table as a
// snapshot (state.go) that covers every older segment, then removes them.
// Each step leaves files from which the table can be rebuilt.
//
// Files, for StateFile P:
//
//	P                          the snapshot (state.go)
//	P.wal.<16 hex digits>      log segments, numbered from 1
//	P.tmp<digits>              a snapshot being written; removed at start
//	P.corrupt, P.wal.*.corrupt files that did not check out, set aside
//
// A segment is "herd-wal 1\n", then records: a 4-byte little-endian length
// n, a 4-byte little-endian CRC-32C (Castagnoli) of those 4 bytes and the
// payload, and n bytes of payload, the record's AT line. At start the
// snapshot is loaded, then every segment it does not cover is replayed; a
// segment is cut at its first record that is torn or does not check out,
// which is reported. Every start and every compaction begins new segments;
// old ones are only read.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	walMagic     = "herd-wal 1\n"
	walFrame     = 8 // length and CRC before each record
	walSegment   = ".wal."
	walSeqDigits = 16
	// walCompactMin is the smallest log that is compacted: below it a
	// restart replays the log faster than a snapshot would be written.
	walCompactMin = 16 << 20
	// walLanes is how many lanes fsync at once with AckDurable. More
	// than one cost more CPU than they saved in waiting on the shared
	// 2-core machine of docs/performance.md (1 lane: 144,000 replies/s,
	// 2: 136,000, 4: 99,000); the code keeps the choice open.
	walLanes = 1
	// walSpareMax bounds the buffer a lane keeps for reuse.
	walSpareMax = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends line to b as one framed record.
func appendFrame(b []byte, line string) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(line)))
	b = append(b, 0, 0, 0, 0)
	b = append(b, line...)
	binary.LittleEndian.PutUint32(b[start+4:], frameCRC(b[start:start+4], b[start+walFrame:]))
	return b
}

// frameCRC is the CRC of a record with length field size and payload.
func frameCRC(size, payload []byte) uint32 {
	return crc32.Update(crc32.Update(0, crcTable, size), crcTable, payload)
}

// walHooks are tests' handles on the state log; the zero value is the
// production behaviour.
type walHooks struct {
	compactMin int64                // walCompactMin if 0
	lanes      int                  // walLanes if 0
	sync       func(*os.File) error // (*os.File).Sync if nil
	// step, if set, is called at each step of a compaction ("rotated",
	// "snapshot synced", "snapshot renamed", "segments removed"), where a
	// crash must leave files that hold every record.
	step func(string)
}

// at calls the step hook.
func (w *stateLog) at(step string) {
	if h := w.n.walHooks.step; h != nil {
		h(step)
	}
}

// stateLog is a node's state log and its lanes.
type stateLog struct {
	n          *Node
	base       string // Config.StateFile
	durable    bool
	compactMin int64
	// syncFile makes a file's contents durable: (*os.File).Sync. Tests
	// replace it to hold or fail an fsync.
	syncFile func(*os.File) error

	mu      sync.Mutex
	buf     []byte        // framed records no lane has taken yet
	end     uint64        // log position after the last record appended
	taken   uint64        // log position up to which lanes took records
	want    uint64        // the furthest position a waitSynced waits for
	batches []*batch      // taken and not yet on disk, in log order
	err     error         // why the log stopped; nil while it works
	synced  chan struct{} // closed and replaced when syncedPos moves or err is set
	nextSeq uint64        // the next segment number to hand out
	// rotateAt: a lane whose segment is numbered below it starts a new
	// one before it writes again.
	rotateAt uint64
	free     []*lane  // lanes no commit is using
	spares   [][]byte // taken buffers, for reuse

	// Log positions count the bytes appended since the node started.
	endPos    atomic.Uint64 // end, for sessions to read without mu
	syncedPos atomic.Uint64 // how far the log is on disk

	// AckTable's lane goroutine: records to write, StateInterval passed,
	// and closeLog's signal to write what is left and end.
	wake chan struct{}
	tick chan struct{}
	stop chan struct{}

	lanes     []*lane
	lanesDone sync.WaitGroup

	// logBytes counts what lanes wrote since the last compaction began
	// (and the segments replayed at start); compactAt is the size that
	// starts the next one.
	logBytes    atomic.Int64
	compactAt   atomic.Int64
	compacting  atomic.Bool
	compactions sync.WaitGroup
	hadSnapshot bool // set by openLog
	replayed    bool // segments replayed at start are not compacted yet
}

// batch is records a lane took: the log up to end, on disk once done.
type batch struct {
	end  uint64
	done bool
}

// lane is a segment file, written by one commit at a time.
type lane struct {
	f       *os.File
	seq     uint64
	written uint64 // log position of the last batch written (AckTable)
	dirty   bool   // written since the last fsync (AckTable)
}

// logRecord appends r to the state log, if the node keeps one. It is
// called with n.mu held, where the table changes, so that a record is in
// the log before anyone can see it in the table.
func (n *Node) logRecord(r *Record) {
	if n.wal != nil {
		n.wal.append(r.Line)
	}
}

// writeSnapshotBody writes the body of a snapshot to out, every record's
// AT line and a newline, and returns how many records it wrote and the
// body's checksum. It reads a few shards of the table at a time (as many
// records as Records reads at once) into a buffer it reuses, so the
// node's lock is never held for work that grows with the table and a
// compaction never holds a copy of the table: at a million clients that
// copy was 90 MB per server. The lines are in the index's order: a
// snapshot needs none, since the table is a last-writer-wins register,
// and sorting a million records by client (as Records does) took over
// half the CPU of a herd whose servers kept state files.
func (n *Node) writeSnapshotBody(out io.Writer) (count int, sum [sha256.Size]byte, err error) {
	const chunk = numShards * recordsChunk / numLeaves // shards per hold
	h := sha256.New()
	var buf []byte
	for lo := 0; lo < numShards; lo += chunk {
		n.mu.Lock()
		var k int
		buf, k = n.table.appendShardLines(lo, lo+chunk, buf[:0])
		n.mu.Unlock()
		count += k
		h.Write(buf)
		if _, err := out.Write(buf); err != nil {
			return 0, sum, err
		}
	}
	h.Sum(sum[:0])
	return count, sum, nil
}

// append adds one record to the buffer. With AckTable it wakes the lane
// goroutine if the buffer was empty; with AckDurable the records are
// committed when a reply waits for them (or StateInterval passes). A
// stopped log takes nothing: the table has the record, and the final
// snapshot at Close tries again.
func (w *stateLog) append(line string) {
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return
	}
	idle := len(w.buf) == 0
	w.buf = appendFrame(w.buf, line)
	w.end += uint64(walFrame + len(line))
	w.endPos.Store(w.end)
	w.mu.Unlock()
	if idle && !w.durable {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// waitSynced waits until the log is on disk up to pos, or fails if the log
// stopped before it got there. With a free lane and records up to pos not
// yet taken, the caller commits them itself (with every other record
// appended by then): no hand-off to another goroutine on the way.
func (w *stateLog) waitSynced(pos uint64) error {
	for {
		if w.syncedPos.Load() >= pos {
			return nil
		}
		w.mu.Lock()
		if w.syncedPos.Load() >= pos {
			w.mu.Unlock()
			return nil
		}
		if err := w.err; err != nil {
			w.mu.Unlock()
			return err
		}
		w.want = max(w.want, pos)
		if w.taken < pos && len(w.free) > 0 {
			w.commitLocked()
			continue
		}
		ch := w.synced
		w.mu.Unlock()
		<-ch // a batch is on disk, or a lane is free again
	}
}

// broadcastLocked wakes every waitSynced. Called with w.mu held.
func (w *stateLog) broadcastLocked() {
	close(w.synced)
	w.synced = make(chan struct{})
}

// fail stops the log for good: after a failed write or fsync, what the
// file holds is unknown (and after a failed fsync the kernel may have
// dropped the pages it could not write), so nothing more is promised
// durable. Waiting sessions get the error and close without replying.
func (w *stateLog) fail(l *lane, err error) {
	path := w.segmentPath(l.seq)
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = fmt.Errorf("state log %s: %w", path, err)
		w.buf = nil
		w.broadcastLocked()
	}
	w.mu.Unlock()
	if first {
		w.n.stats.stateErrors.Add(1)
		w.n.log.LogAttrs(context.Background(), slog.LevelError, "state log failed", slog.String("file", path), slog.String("err", err.Error()),
			slog.String("effect", "nothing more is logged; durable replies fail; Close tries a snapshot"))
	}
}

// failed reports whether the log has stopped.
func (w *stateLog) failed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err != nil
}

// run is the lane goroutine of AckTable: it writes records as they come
// and fsyncs every StateInterval.
func (w *stateLog) run(l *lane) {
	defer w.lanesDone.Done()
	for {
		stopping, ticked := false, false
		select {
		case <-w.wake:
		case <-w.tick:
			ticked = true
		case <-w.stop:
			stopping = true
		}
		for w.commit() {
		}
		if ticked || stopping {
			w.syncLane(l)
		}
		if stopping {
			return
		}
	}
}

// commit takes the buffer if it holds records and a lane is free, and
// writes it (see commitLocked). It reports whether it did.
func (w *stateLog) commit() bool {
	w.mu.Lock()
	if w.err != nil || len(w.buf) == 0 || len(w.free) == 0 {
		w.mu.Unlock()
		return false
	}
	w.commitLocked()
	return true
}

// commitLocked takes the buffer and a free lane, then, without w.mu,
// writes the records to the lane's segment and, with AckDurable, fsyncs
// them and moves syncedPos on once every batch taken before is on disk
// too. With several lanes, commits run at once, each on its own file.
// Called with w.mu held and a free lane; returns with w.mu released.
func (w *stateLog) commitLocked() {
	l := w.free[len(w.free)-1]
	w.free = w.free[:len(w.free)-1]
	buf, end := w.buf, w.end
	w.buf = nil
	if k := len(w.spares); k > 0 {
		w.buf, w.spares = w.spares[k-1][:0], w.spares[:k-1]
	}
	w.taken = end
	b := &batch{end: end}
	w.batches = append(w.batches, b)
	var seq uint64
	rotate := l.seq < w.rotateAt
	if rotate {
		seq = w.nextSeq
		w.nextSeq++
	}
	w.mu.Unlock()

	var err error
	if rotate {
		err = w.rotate(l, seq)
	}
	if err == nil && len(buf) > 0 {
		_, err = l.f.Write(buf)
	}
	if err == nil && w.durable {
		if err = w.syncFile(l.f); err == nil {
			w.n.stats.logSyncs.Add(1)
		}
	}
	if err != nil {
		w.fail(l, err)
	} else {
		w.logBytes.Add(int64(len(buf)))
	}

	w.mu.Lock()
	w.free = append(w.free, l)
	if cap(buf) <= walSpareMax && len(w.spares) < len(w.lanes) {
		w.spares = append(w.spares, buf)
	}
	// A failed batch never counts as done, so syncedPos never passes it
	// (the log has stopped for good anyway).
	b.done = err == nil
	i := 0
	for i < len(w.batches) && w.batches[i].done {
		i++
	}
	if w.durable && i > 0 {
		w.syncedPos.Store(w.batches[i-1].end)
	}
	w.batches = slices.Delete(w.batches, 0, i)
	if w.durable {
		w.broadcastLocked() // on disk, or a lane free for a waiter to lead
	}
	w.mu.Unlock()
	if !w.durable {
		l.written, l.dirty = end, true
	}
	w.maybeCompact()
}

// syncLane fsyncs what lane l wrote since its last fsync (AckTable).
func (w *stateLog) syncLane(l *lane) {
	if !l.dirty || w.failed() {
		return
	}
	if err := w.syncFile(l.f); err != nil {
		w.fail(l, err)
		return
	}
	l.dirty = false
	w.n.stats.logSyncs.Add(1)
	// One lane in this mode: what it wrote is everything taken.
	w.syncedPos.Store(l.written)
	w.mu.Lock()
	w.broadcastLocked()
	w.mu.Unlock()
}

// ticker, every StateInterval until the node closes, has the lane fsync
// (AckTable) or commits the records no reply has waited for (AckDurable).
func (w *stateLog) ticker() {
	for w.n.sleep(w.n.cfg.StateInterval) {
		if w.durable {
			for w.commit() {
			}
			continue
		}
		select {
		case w.tick <- struct{}{}:
		default:
		}
	}
}

// maybeCompact starts a compaction when the log has grown enough and none
// is running: every lane moves to a new segment before its next write,
// and a goroutine folds every older segment into a snapshot.
func (w *stateLog) maybeCompact() {
	if w.logBytes.Load() < w.compactAt.Load() || !w.compacting.CompareAndSwap(false, true) {
		return
	}
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		w.compacting.Store(false)
		return
	}
	seq := w.nextSeq
	w.rotateAt = seq
	w.mu.Unlock()
	w.logBytes.Store(0)
	w.at("rotated")
	w.compactions.Add(1)
	go w.compact(seq)
}

// compact writes a snapshot that covers every segment numbered below seq,
// then removes them. No lane writes a batch taken from now on to such a
// segment, and every record of the batches taken before entered the table
// before now, so the table read now holds each of them or a newer record
// of the same client.
func (w *stateLog) compact(seq uint64) {
	defer w.compactions.Done()
	defer w.compacting.Store(false)
	size, err := w.writeSnapshot(seq)
	if err != nil {
		// Try again once the log has grown as much again.
		w.compactAt.Store(w.compactMin)
		return
	}
	w.compactAt.Store(max(w.compactMin, size))
}

// writeSnapshot writes the table as the snapshot covering segments below
// seq and removes those segments. It returns the snapshot's size.
func (w *stateLog) writeSnapshot(seq uint64) (int64, error) {
	n := w.n
	var count int
	var size int64
	write := func(f *os.File) error {
		// A header of the final length first, rewritten once the body's
		// count and checksum are known.
		header := stateHeader([sha256.Size]byte{}, 0, seq)
		if _, err := f.Write(header); err != nil {
			return err
		}
		bw := bufio.NewWriterSize(f, 64<<10)
		c, sum, err := n.writeSnapshotBody(bw)
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			return err
		}
		count = c
		size, err = f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		_, err = f.WriteAt(stateHeader(sum, count, seq), 0)
		return err
	}
	if err := writeFileAtomic(w.base, write, func() { w.at("snapshot synced") }); err != nil {
		n.stats.stateErrors.Add(1)
		n.log.LogAttrs(context.Background(), slog.LevelError, "state snapshot failed", slog.String("file", w.base), slog.String("err", err.Error()))
		return 0, err
	}
	n.stats.stateSaves.Add(1)
	w.at("snapshot renamed")
	removed := w.removeSegments(func(s uint64) bool { return s < seq })
	w.at("segments removed")
	n.log.LogAttrs(context.Background(), slog.LevelDebug, "state snapshot written", slog.String("file", w.base), slog.Int("records", count),
		slog.Int64("bytes", size), slog.Int("segments_removed", removed))
	return size, nil
}

// segmentPath names segment seq.
func (w *stateLog) segmentPath(seq uint64) string {
	return fmt.Sprintf("%s%s%0*x", w.base, walSegment, walSeqDigits, seq)
}

// segments lists the numbers of the segments on disk, in order.
func (w *stateLog) segments() ([]uint64, error) {
	entries, err := os.ReadDir(filepath.Dir(w.base))
	if err != nil {
		return nil, err
	}
	prefix := filepath.Base(w.base) + walSegment
	var out []uint64
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || len(rest) != walSeqDigits {
			continue
		}
		if seq, err := strconv.ParseUint(rest, 16, 64); err == nil {
			out = append(out, seq)
		}
	}
	slices.Sort(out)
	return out, nil
}

// removeSegments removes the segments for which drop is true and returns
// how many it removed.
func (w *stateLog) removeSegments(drop func(uint64) bool) int {
	segs, err := w.segments()
	removed := 0
	for _, s := range segs {
		if drop(s) && os.Remove(w.segmentPath(s)) == nil {
			removed++
		}
	}
	if err == nil && removed > 0 {
		err = syncDir(filepath.Dir(w.base))
	}
	if err != nil {
		// The snapshot is in place: leftover segments are replayed
		// (harmlessly) and removed at the next start.
		w.n.log.LogAttrs(context.Background(), slog.LevelWarn, "state log cleanup failed", slog.String("file", w.base), slog.String("err", err.Error()))
	}
	return removed
}

// rotate closes lane l's segment, fsynced, and starts segment seq.
func (w *stateLog) rotate(l *lane, seq uint64) error {
	if l.dirty {
		if err := w.syncFile(l.f); err != nil {
			return err
		}
		l.dirty = false
	}
	if err := l.f.Close(); err != nil {
		return err
	}
	return w.openSegment(l, seq)
}

// openSegment creates segment seq and makes it lane l's.
func (w *stateLog) openSegment(l *lane, seq uint64) error {
	path := w.segmentPath(seq)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.WriteString(walMagic); err == nil {
		if err = w.syncFile(f); err == nil {
			err = syncDir(filepath.Dir(path))
		}
	}
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.seq = f, seq
	return nil
}
