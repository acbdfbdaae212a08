package herd

// wal.go: the state log, which makes the table durable (Config.StateFile).
//
// Every change to the table, from a client or a peer, is appended to an
// in-memory buffer under the node's lock, framed with its length and a
// CRC. One writer goroutine takes the whole buffer at once, writes it to
// the current log segment and, in AckDurable mode, fsyncs and publishes
// how far the log is on disk: every session waiting for a position up to
// there may then write its replies (group commit: one fsync serves every
// reply waiting at that moment). In AckTable mode the writer writes at once
// but fsyncs only every StateInterval.
//
// The log is compacted in the background once it outgrows both
// walCompactMin and the last snapshot: the writer closes the segment and
// starts the next, a goroutine writes the table as a snapshot (state.go)
// that covers every segment before the new one, and then removes them.
// Each step leaves files from which the table can be rebuilt: the table is
// a last-writer-wins register per client, so replaying a record twice, or
// records in any order, gives the same table.
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
// snapshot is loaded, then every segment it does not cover is replayed in
// order; a segment is cut at its first record that is torn or does not
// check out, which is reported.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
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
	"time"
)

const (
	walMagic     = "herd-wal 1\n"
	walFrame     = 8 // length and CRC before each record
	walSegment   = ".wal."
	walSeqDigits = 16
	// walCompactMin is the smallest log that is compacted: below it a
	// restart replays the log faster than a snapshot would be written.
	walCompactMin = 16 << 20
	// walSpareMax bounds the buffer the writer keeps for reuse.
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

// stateLog is a node's state log and its writer.
type stateLog struct {
	n          *Node
	base       string // Config.StateFile
	durable    bool
	interval   time.Duration
	compactMin int64
	// syncFile makes a file's contents durable: (*os.File).Sync. Tests
	// replace it to hold or fail an fsync.
	syncFile func(*os.File) error

	mu     sync.Mutex
	buf    []byte        // framed records the writer has not taken yet
	end    uint64        // log position after the last record appended
	err    error         // why the log stopped; nil while it works
	synced chan struct{} // closed and replaced when syncedPos moves or err is set

	// Log positions count the bytes appended since the node started.
	endPos    atomic.Uint64 // end, for sessions to read without mu
	syncedPos atomic.Uint64 // how far the log is on disk

	wake chan struct{} // the buffer became non-empty
	tick chan struct{} // time for the periodic fsync (AckTable)
	stop chan struct{} // closed by closeLog: write what is left and end
	done chan struct{} // closed when the writer has ended

	// The writer's own (and openLog's and closeLog's, before and after
	// it runs).
	f           *os.File
	seq         uint64 // the current segment's number
	segBytes    int64  // the current segment's size
	written     uint64 // log position written to f, synced or not
	tickTimer   Timer  // pending periodic fsync, if any
	spare       []byte // a taken buffer, for reuse
	hadSnapshot bool

	// Shared by the writer and compactions.
	oldBytes    atomic.Int64 // bytes in closed segments not yet compacted
	compactAt   atomic.Int64 // log size that starts the next compaction
	compacting  atomic.Bool
	compactions sync.WaitGroup
}

// logRecord appends r to the state log, if the node keeps one. It is
// called with n.mu held, where the table changes, so that a record is in
// the log before anyone can see it in the table.
func (n *Node) logRecord(r *Record) {
	if n.wal != nil {
		n.wal.append(r.Line)
	}
}

// snapshotForCompaction returns every record for a snapshot. It must not
// hold the node's lock for work that grows with the table.
func (n *Node) snapshotForCompaction() []Record {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.snapshot()
}

// append adds one record to the buffer and wakes the writer if it was
// idle. A stopped log takes nothing: the table has the record, and the
// final snapshot at Close tries again.
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
	if idle {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// waitSynced waits until the log is on disk up to pos, or fails if the log
// stopped before it got there.
func (w *stateLog) waitSynced(pos uint64) error {
	for {
		if w.syncedPos.Load() >= pos {
			return nil
		}
		w.mu.Lock()
		ch, err := w.synced, w.err
		w.mu.Unlock()
		if w.syncedPos.Load() >= pos {
			return nil
		}
		if err != nil {
			return err
		}
		<-ch
	}
}

// broadcast wakes every waitSynced. Called with w.mu held.
func (w *stateLog) broadcastLocked() {
	close(w.synced)
	w.synced = make(chan struct{})
}

// publish records that the log is on disk up to pos.
func (w *stateLog) publish(pos uint64) {
	w.syncedPos.Store(pos)
	w.mu.Lock()
	w.broadcastLocked()
	w.mu.Unlock()
}

// fail stops the log for good: after a failed write or fsync, what the
// file holds is unknown (and after a failed fsync the kernel may have
// dropped the pages it could not write), so nothing more is promised
// durable. Waiting sessions get the error and close without replying.
func (w *stateLog) fail(err error) {
	w.mu.Lock()
	first := w.err == nil
	if first {
		w.err = fmt.Errorf("state log %s: %w", w.segmentPath(w.seq), err)
		w.buf = nil
		w.broadcastLocked()
	}
	w.mu.Unlock()
	if first {
		w.n.stats.stateErrors.Add(1)
		w.n.log.LogAttrs(context.Background(), slog.LevelError, "state log failed", slog.String("file", w.segmentPath(w.seq)), slog.String("err", err.Error()),
			slog.String("effect", "nothing more is logged; durable replies fail; Close tries a snapshot"))
	}
}

// run is the writer goroutine.
func (w *stateLog) run() {
	defer close(w.done)
	for {
		stopping := false
		select {
		case <-w.wake:
		case <-w.tick:
			w.tickTimer = nil
			w.syncWritten()
			continue
		case <-w.stop:
			stopping = true
		}
		w.mu.Lock()
		buf, end, failed := w.buf, w.end, w.err != nil
		w.buf = w.spare[:0]
		w.mu.Unlock()
		if !failed && len(buf) > 0 {
			w.write(buf, end)
		}
		w.spare = nil
		if cap(buf) <= walSpareMax {
			w.spare = buf
		}
		if stopping {
			if w.tickTimer != nil {
				w.tickTimer.Stop()
			}
			w.syncWritten()
			return
		}
		w.maybeCompact()
	}
}

// write appends a taken buffer to the segment and, in durable mode,
// fsyncs it and publishes the new position.
func (w *stateLog) write(buf []byte, end uint64) {
	if _, err := w.f.Write(buf); err != nil {
		w.fail(err)
		return
	}
	w.segBytes += int64(len(buf))
	w.written = end
	if w.durable {
		w.syncWritten()
		return
	}
	if w.tickTimer == nil {
		w.tickTimer = w.n.clock.AfterFunc(w.interval, func() {
			select {
			case w.tick <- struct{}{}:
			default:
			}
		})
	}
}

// syncWritten fsyncs what has been written and not yet synced.
func (w *stateLog) syncWritten() {
	w.mu.Lock()
	failed := w.err != nil
	w.mu.Unlock()
	if failed || w.written <= w.syncedPos.Load() {
		return
	}
	if err := w.syncFile(w.f); err != nil {
		w.fail(err)
		return
	}
	w.n.stats.logSyncs.Add(1)
	w.publish(w.written)
}

// maybeCompact starts a compaction when the log has grown enough and none
// is running: the writer moves to a new segment, and a goroutine folds
// every older one into a snapshot.
func (w *stateLog) maybeCompact() {
	if w.compacting.Load() || w.oldBytes.Load()+w.segBytes < w.compactAt.Load() {
		return
	}
	w.mu.Lock()
	failed := w.err != nil
	w.mu.Unlock()
	if failed {
		return
	}
	w.syncWritten()
	w.mu.Lock()
	failed = w.err != nil
	w.mu.Unlock()
	if failed {
		return
	}
	if err := w.f.Close(); err != nil {
		w.fail(err)
		return
	}
	w.oldBytes.Add(w.segBytes)
	if err := w.openSegment(w.seq + 1); err != nil {
		w.fail(err)
		return
	}
	w.at("rotated")
	w.compacting.Store(true)
	w.compactions.Add(1)
	go w.compact(w.seq)
}

// compact writes a snapshot that covers every segment numbered below seq,
// then removes them. The writer has already moved to segment seq, and every
// record of the older ones entered the table before that, so the table
// read now holds each of them or a newer record of the same client.
func (w *stateLog) compact(seq uint64) {
	defer w.compactions.Done()
	defer w.compacting.Store(false)
	size, err := w.writeSnapshot(seq)
	if err != nil {
		// Try again once the log has grown as much again.
		w.compactAt.Add(w.compactMin)
		return
	}
	w.oldBytes.Store(0)
	w.compactAt.Store(max(w.compactMin, size))
}

// writeSnapshot writes the table as the snapshot covering segments below
// seq and removes those segments. It returns the snapshot's size.
func (w *stateLog) writeSnapshot(seq uint64) (int64, error) {
	n := w.n
	recs := n.snapshotForCompaction()
	data := encodeState(recs, seq)
	if err := writeFileAtomic(w.base, data, func() { w.at("snapshot synced") }); err != nil {
		n.stats.stateErrors.Add(1)
		n.log.LogAttrs(context.Background(), slog.LevelError, "state snapshot failed", slog.String("file", w.base), slog.String("err", err.Error()))
		return 0, err
	}
	n.stats.stateSaves.Add(1)
	w.at("snapshot renamed")
	removed := w.removeSegments(func(s uint64) bool { return s < seq })
	w.at("segments removed")
	n.log.LogAttrs(context.Background(), slog.LevelDebug, "state snapshot written", slog.String("file", w.base), slog.Int("records", len(recs)),
		slog.Int("bytes", len(data)), slog.Int("segments_removed", removed))
	return int64(len(data)), nil
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

// openSegment creates segment seq and makes it the current one.
func (w *stateLog) openSegment(seq uint64) error {
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
	w.f, w.seq, w.segBytes = f, seq, int64(len(walMagic))
	return nil
}

// openLog loads the snapshot and replays the log into the table, then
// starts a new segment and the writer. It runs in Start, before the node
// serves.
func (n *Node) openLog() error {
	w := &stateLog{
		n:          n,
		base:       n.cfg.StateFile,
		durable:    n.cfg.Ack == AckDurable,
		interval:   n.cfg.StateInterval,
		compactMin: n.walHooks.compactMin,
		syncFile:   n.walHooks.sync,
		synced:     make(chan struct{}),
		wake:       make(chan struct{}, 1),
		tick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if w.compactMin == 0 {
		w.compactMin = walCompactMin
	}
	if w.syncFile == nil {
		w.syncFile = (*os.File).Sync
	}
	n.removeTemps()
	snapRecs, covered, snapBytes := n.loadSnapshot()
	segs, err := w.segments()
	if err != nil {
		return fmt.Errorf("state log: %w", err)
	}
	logRecs, last := 0, uint64(0)
	for _, s := range segs {
		if s < covered {
			// Folded into the snapshot by a compaction that did not get
			// to remove it.
			os.Remove(w.segmentPath(s))
			continue
		}
		recs, size, err := n.replaySegment(w.segmentPath(s))
		if err != nil {
			return fmt.Errorf("state log: %w", err)
		}
		logRecs += recs
		w.oldBytes.Add(size)
		last = s
	}
	if err := w.openSegment(max(covered, last+1, 1)); err != nil {
		return fmt.Errorf("state log: %w", err)
	}
	w.hadSnapshot = snapBytes > 0
	w.compactAt.Store(max(w.compactMin, snapBytes))
	n.wal = w
	go w.run()
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "state loaded", slog.String("file", w.base), slog.Int("records", snapRecs),
		slog.Int("log_records", logRecs), slog.Int("clients", n.table.len()), slog.String("ack", n.cfg.Ack.String()))
	return nil
}

// closeLog stops the writer once it has written and fsynced everything,
// then folds the whole log into a snapshot, so that the next start reads
// one file. It runs in Close, after every session has ended.
func (n *Node) closeLog() {
	w := n.wal
	if w == nil {
		return
	}
	close(w.stop)
	<-w.done
	w.compactions.Wait()
	w.f.Close()
	if w.end == 0 && w.oldBytes.Load() == 0 && w.hadSnapshot {
		// Nothing happened since the snapshot: the segment is empty.
		os.Remove(w.segmentPath(w.seq))
		return
	}
	w.writeSnapshot(w.seq + 1)
}

// loadSnapshot fills the table from the snapshot, if there is one. It
// returns how many records it held, the first log segment it does not
// cover and its size. A snapshot that does not check out is reported, set
// aside and not trusted.
func (n *Node) loadSnapshot() (records int, covered uint64, size int64) {
	path := n.cfg.StateFile
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, 0
	}
	var recs []Record
	if err == nil {
		recs, covered, err = decodeState(data)
	}
	if err != nil {
		n.stats.stateErrors.Add(1)
		aside := path + ".corrupt"
		os.Rename(path, aside)
		n.log.LogAttrs(n.ctx, slog.LevelError, "state file not trusted", slog.String("file", path), slog.String("err", err.Error()), slog.String("moved_to", aside))
		return 0, 0, 0
	}
	n.mu.Lock()
	for _, r := range recs {
		n.table.offer(r, n.cfg.MaxClients)
	}
	n.mu.Unlock()
	return len(recs), covered, int64(len(data))
}

// replaySegment offers every record of a segment to the table, up to the
// first that is torn or does not check out; there the segment is cut and
// the cut reported. A segment whose header is torn (a crash as it was
// created) is removed; one whose header is wrong is set aside. It returns
// the records replayed and the segment's size afterwards; an error only
// if the file cannot be read or cut.
func (n *Node) replaySegment(path string) (int, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	total := info.Size()
	br := bufio.NewReaderSize(f, 64<<10)
	head := make([]byte, len(walMagic))
	k, err := io.ReadFull(br, head)
	switch {
	case err == nil && string(head) == walMagic:
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF):
		return 0, 0, err
	case err != nil && string(head[:k]) == walMagic[:k]:
		n.reportCut(path, "torn segment header", 0, total, 0, "")
		return 0, 0, os.Remove(path)
	default:
		aside := path + ".corrupt"
		n.reportCut(path, "bad segment header", 0, total, 0, aside)
		return 0, 0, os.Rename(path, aside)
	}
	records, good := 0, int64(len(walMagic))
	var frame [walFrame]byte
	var payload []byte
	why := ""
	for why == "" {
		if _, err := io.ReadFull(br, frame[:]); errors.Is(err, io.EOF) {
			return records, total, nil // the end, between two records
		} else if errors.Is(err, io.ErrUnexpectedEOF) {
			why = "torn record"
			break
		} else if err != nil {
			return 0, 0, err
		}
		size := int64(binary.LittleEndian.Uint32(frame[:4]))
		if size == 0 {
			why = "empty record"
			break
		}
		if size > total-good-walFrame {
			why = "torn record"
			break
		}
		payload = slices.Grow(payload[:0], int(size))[:size]
		if _, err := io.ReadFull(br, payload); err != nil {
			return 0, 0, err
		}
		r, ok := parseAT(payload)
		switch {
		case frameCRC(frame[:4], payload) != binary.LittleEndian.Uint32(frame[4:]):
			why = "checksum mismatch"
		case !ok:
			why = "record is not an AT line"
		default:
			n.mu.Lock()
			n.table.offer(r, n.cfg.MaxClients)
			n.mu.Unlock()
			records++
			good += walFrame + size
		}
	}
	n.reportCut(path, why, good, total, records, "")
	if err := f.Truncate(good); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	return records, good, nil
}

// reportCut logs and counts a segment cut at offset good of total bytes.
func (n *Node) reportCut(path, why string, good, total int64, kept int, aside string) {
	n.stats.logCuts.Add(1)
	attrs := []slog.Attr{slog.String("file", path), slog.String("why", why), slog.Int64("offset", good),
		slog.Int64("bytes_cut", total-good), slog.Int("records_kept", kept)}
	if aside != "" {
		attrs = append(attrs, slog.String("moved_to", aside))
	}
	n.log.LogAttrs(n.ctx, slog.LevelWarn, "state log cut", attrs...)
}

// removeTemps removes temporary snapshot files that a crash during a save
// left behind.
func (n *Node) removeTemps() {
	dir, base := filepath.Split(n.cfg.StateFile)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), base+tempSuffix) || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil {
			n.log.LogAttrs(n.ctx, slog.LevelWarn, "stale temporary file not removed", slog.String("file", path), slog.String("err", err.Error()))
			continue
		}
		n.log.LogAttrs(n.ctx, slog.LevelInfo, "stale temporary file removed", slog.String("file", path))
	}
}
