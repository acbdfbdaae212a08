package herd

// state.go: the optional durable table (Config.StateFile). The file is
//
//	herd-state 1 <records> <sha256 of the body, hex>\n
//	<AT line>\n ... (the body: every record, sorted by client)
//
// written to a temporary file in the same directory, fsynced and renamed
// over the old one, so a crash leaves either the old file or the new one.
// A file whose header, count, checksum or any record does not check out is
// not trusted at all.

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

const stateMagic = "herd-state 1"

// encodeState renders records as a state file.
func encodeState(recs []Record) []byte {
	var body bytes.Buffer
	for _, r := range recs {
		body.WriteString(r.Line)
		body.WriteByte('\n')
	}
	sum := sha256.Sum256(body.Bytes())
	header := fmt.Sprintf("%s %d %s\n", stateMagic, len(recs), hex.EncodeToString(sum[:]))
	return append([]byte(header), body.Bytes()...)
}

// decodeState parses a state file, refusing anything that does not check
// out.
func decodeState(data []byte) ([]Record, error) {
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		return nil, errors.New("no header line (torn file?)")
	}
	header, body := data[:nl], data[nl+1:]
	var f fieldList
	if splitFields(header, &f) != 4 || string(f[0])+" "+string(f[1]) != stateMagic {
		return nil, fmt.Errorf("bad header %q", header)
	}
	count, err := strconv.Atoi(string(f[2]))
	if err != nil || count < 0 {
		return nil, fmt.Errorf("bad record count %q", f[2])
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != string(f[3]) {
		return nil, errors.New("checksum mismatch (torn or corrupt file)")
	}
	recs := make([]Record, 0, count)
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			return nil, errors.New("last record has no newline")
		}
		r, ok := parseAT(body[:i])
		if !ok {
			return nil, fmt.Errorf("record %d is not a valid AT line: %q", len(recs)+1, body[:i])
		}
		recs = append(recs, r)
		body = body[i+1:]
	}
	if len(recs) != count {
		return nil, fmt.Errorf("header says %d records, file has %d", count, len(recs))
	}
	return recs, nil
}

// writeFileAtomic replaces path with data: temporary file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
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
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
