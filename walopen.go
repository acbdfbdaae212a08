package herd

// walopen.go: the state log's start and end (see wal.go): load the
// snapshot, replay the segments it does not cover (cutting torn or corrupt
// tails), start new segments; and at Close, fold the whole log into a
// snapshot.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// openLog loads the snapshot and replays the log into the table, then
// starts new segments and the lanes. It runs in Start, before the node
// serves.
func (n *Node) openLog() error {
	w := &stateLog{
		n:          n,
		base:       n.cfg.StateFile,
		durable:    n.cfg.Ack == AckDurable,
		compactMin: cmpOr(n.walHooks.compactMin, walCompactMin),
		syncFile:   n.walHooks.sync,
		synced:     make(chan struct{}),
		wake:       make(chan struct{}, 1),
		tick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
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
		w.logBytes.Add(size)
		w.replayed = true
		last = s
	}
	w.nextSeq = max(covered, last+1, 1)
	count := 1
	if w.durable {
		count = int(cmpOr(int64(n.walHooks.lanes), walLanes))
	}
	for range count {
		l := &lane{}
		if err := w.openSegment(l, w.nextSeq); err != nil {
			for _, l := range w.lanes {
				l.f.Close()
			}
			return fmt.Errorf("state log: %w", err)
		}
		w.nextSeq++
		w.lanes = append(w.lanes, l)
	}
	w.hadSnapshot = snapBytes > 0
	w.compactAt.Store(max(w.compactMin, snapBytes))
	w.free = slices.Clone(w.lanes)
	n.wal = w
	if !w.durable {
		w.lanesDone.Add(1)
		go w.run(w.lanes[0])
	}
	n.goFunc(w.ticker)
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "state loaded", slog.String("file", w.base), slog.Int("records", snapRecs),
		slog.Int("log_records", logRecs), slog.Int("clients", n.table.len()), slog.String("ack", n.cfg.Ack.String()))
	return nil
}

// cmpOr returns a, or b if a is zero.
func cmpOr(a, b int64) int64 {
	if a != 0 {
		return a
	}
	return b
}

// closeLog stops the lanes once they have written and fsynced everything,
// then folds the whole log into a snapshot, so that the next start reads
// one file. It runs in Close, after every session has ended.
func (n *Node) closeLog() {
	w := n.wal
	if w == nil {
		return
	}
	close(w.stop)
	w.lanesDone.Wait()
	for w.commit() { // AckDurable: what no reply waited for
	}
	if !w.durable {
		w.syncLane(w.lanes[0])
	}
	w.compactions.Wait()
	for _, l := range w.lanes {
		l.f.Close()
	}
	if w.end == 0 && !w.replayed && w.hadSnapshot {
		// Nothing happened since the snapshot: the segments are empty.
		w.removeSegments(func(uint64) bool { return true })
		return
	}
	w.writeSnapshot(w.nextSeq)
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
	for i := range recs {
		n.table.offer(&recs[i], n.cfg.MaxClients)
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
			n.table.offer(&r, n.cfg.MaxClients)
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
