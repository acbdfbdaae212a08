package herd

// state.go: the snapshot of the durable table (Config.StateFile; wal.go
// has the log that goes with it). The file is
//
//	herd-state 2 <records> <sha256 of the body, hex> <log segment>\n
//	<AT line>\n ... (the body: every record, in any order)
//
// with both numbers zero-padded to 20 digits when this package writes
// them (readers take any decimal), so that a snapshot can be streamed to
// its file and its header rewritten in place at the end.
//
// where <log segment> is the number of the first log segment the snapshot
// does not cover: segments numbered below it are folded in and may be
// deleted. It is written to a temporary file in the same directory,
// fsynced and renamed over the old one, so a crash leaves either the old
// file or the new one. A file whose header, count, checksum or any record
// does not check out is not trusted at all.
//
// Version 1 files (written before the log existed: the same without the
// segment field) are still read, as covering no segment.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

const (
	stateMagic   = "herd-state"
	stateVersion = "2"
)

// encodeState renders records as a snapshot that covers the log segments
// numbered below seq.
func encodeState(recs []Record, seq uint64) []byte {
	size := 0
	for _, r := range recs {
		size += len(r.Line) + 1
	}
	body := make([]byte, 0, size)
	for _, r := range recs {
		body = append(append(body, r.Line...), '\n')
	}
	return append(stateHeader(sha256.Sum256(body), len(recs), seq), body...)
}

// stateHeader returns the header line of a snapshot whose body, with
// checksum sum, holds count records and covers the log segments numbered
// below seq. The numbers are zero-padded to a fixed width (readers parse
// them as numbers all the same), so a snapshot written as a stream can
// hold a placeholder header of the same length and rewrite it at the end.
func stateHeader(sum [sha256.Size]byte, count int, seq uint64) []byte {
	return fmt.Appendf(nil, "%s %s %020d %s %020d\n", stateMagic, stateVersion, count, hex.EncodeToString(sum[:]), seq)
}

// decodeState parses a snapshot, refusing anything that does not check
// out. It returns the records and the first log segment the snapshot does
// not cover (0 for a version 1 file).
func decodeState(data []byte) ([]Record, uint64, error) {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		return nil, 0, errors.New("no header line (torn file?)")
	}
	header, body := data[:nl], data[nl+1:]
	var f fieldList
	nf := splitFields(header, &f)
	var seq uint64
	switch {
	case nf == 4 && string(f[0]) == stateMagic && string(f[1]) == "1":
	case nf == 5 && string(f[0]) == stateMagic && string(f[1]) == stateVersion:
		s, err := strconv.ParseUint(string(f[4]), 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("bad log segment number %q", f[4])
		}
		seq = s
	default:
		return nil, 0, fmt.Errorf("bad header %q", header)
	}
	count, err := strconv.Atoi(string(f[2]))
	if err != nil || count < 0 {
		return nil, 0, fmt.Errorf("bad record count %q", f[2])
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != string(f[3]) {
		return nil, 0, errors.New("checksum mismatch (torn or corrupt file)")
	}
	recs := make([]Record, 0, min(count, len(body)/8))
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			return nil, 0, errors.New("last record has no newline")
		}
		r, ok := parseAT(body[:i])
		if !ok {
			return nil, 0, fmt.Errorf("record %d is not a valid AT line: %q", len(recs)+1, body[:i])
		}
		recs = append(recs, r)
		body = body[i+1:]
	}
	if len(recs) != count {
		return nil, 0, fmt.Errorf("header says %d records, file has %d", count, len(recs))
	}
	return recs, seq, nil
}

// tempSuffix follows the target's name in writeFileAtomic's temporary
// files (then random digits); removeTemps relies on it.
const tempSuffix = ".tmp"

// writeFileAtomic replaces path with what write writes to a temporary
// file in the same directory, then fsync, rename, fsync of the directory.
// beforeRename, if not nil, is called once the temporary file is synced
// (a test's hook).
func writeFileAtomic(path string, write func(*os.File) error, beforeRename func()) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+tempSuffix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if beforeRename != nil {
		beforeRename()
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory, so that the names created, renamed or
// removed in it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	return err
}
