package herd

// summary.go: the table's fingerprints for link-up reconciliation, and the
// lines that carry them. It is pure.
//
// Client hashes split the table into ranges: level L has fan^L ranges,
// range i holding the clients whose hash starts with i (L*fanBits bits).
// For each range the table keeps the number of clients and the sum, mod
// 2^64, of the hashes of their AT lines: a fingerprint that one change
// updates in O(levels), and that two tables share exactly when they hold
// the same records in that range (but for a 2^-64 chance). When a link
// comes up the two sides compare fingerprints top down, narrowing to the
// ranges that differ, and send each other only the records there (see
// sync.go and docs/protocol.md).

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
)

const (
	leafBits  = 16            // the finest ranges: the top 16 bits of a client hash
	numLeaves = 1 << leafBits // ranges at the leaf level
	fanBits   = 4             // each level splits a range in 2^fanBits
	fan       = 1 << fanBits
	topLevel  = leafBits / fanBits // the leaf level
)

// summary holds the fingerprint of every range at every level. A change
// touches one fingerprint per level, count and sum side by side in one
// cache line.
type summary struct {
	fp [topLevel + 1][]fingerprint
}

// change adds (sign +1) or removes (sign -1) the record whose line hashes
// to item for the client whose hash is client.
func (s *summary) change(client, item uint64, sign int) {
	if s.fp[0] == nil {
		for l := range s.fp {
			s.fp[l] = make([]fingerprint, 1<<(l*fanBits))
		}
	}
	leaf := leafOf(client)
	for l := range s.fp {
		f := &s.fp[l][leaf>>((topLevel-l)*fanBits)]
		if sign > 0 {
			f.count++
			f.sum += item
		} else {
			f.count--
			f.sum -= item
		}
	}
}

// fingerprint is a range's client count and sum of line hashes.
type fingerprint struct {
	count uint32
	sum   uint64
}

// get returns the fingerprint of range i at level l.
func (s *summary) get(l, i int) fingerprint {
	if s.fp[0] == nil {
		return fingerprint{}
	}
	return s.fp[l][i]
}

// leaves returns the leaf ranges [lo, hi) that range i of level l covers.
func leaves(l, i int) (lo, hi int) {
	shift := (topLevel - l) * fanBits
	return i << shift, (i + 1) << shift
}

// rangesAt is the number of ranges at level l.
func rangesAt(l int) int { return 1 << (l * fanBits) }

// Sync verbs. Each is followed by a level and a range index; see
// docs/protocol.md, "Link-up".
const (
	verbSum  = "SUM"  // SUM L P DATA: the fingerprints of the fan children of range P at level L-1
	verbPush = "PUSH" // PUSH L I: send me every record in range I of level L
	verbHave = "HAVE" // HAVE L I DATA: the line hashes of my records in range I of level L
	verbWant = "WANT" // WANT L I DATA: send me your records in range I of level L with these line hashes
)

// maxIDs bounds the line hashes in one HAVE or WANT line; a range with
// more records is pushed whole instead.
const maxIDs = 256

// syncLine is one parsed sync line.
type syncLine struct {
	verb  string
	level int
	index int           // P for SUM, I for the others
	fps   []fingerprint // SUM: fan of them
	ids   []uint64      // HAVE, WANT
}

var b64 = base64.RawURLEncoding

// appendSum appends "SUM L P DATA" for the children of range p at level
// l-1, DATA being base64 of each child's count (uvarint) and, when the
// count is not 0, its sum (8 bytes, little-endian).
func appendSum(b []byte, l, p int, fps []fingerprint) []byte {
	var raw []byte
	for _, f := range fps {
		raw = binary.AppendUvarint(raw, uint64(f.count))
		if f.count != 0 {
			raw = binary.LittleEndian.AppendUint64(raw, f.sum)
		}
	}
	b = append(b, verbSum...)
	b = appendLevelIndex(b, l, p)
	b = append(b, ' ')
	return append(b64.AppendEncode(b, raw), '\n')
}

// appendIDs appends "VERB L I DATA", DATA being base64 of the line hashes
// (8 bytes each, little-endian); with no hashes DATA is "-".
func appendIDs(b []byte, verb string, l, i int, ids []uint64) []byte {
	b = append(b, verb...)
	b = appendLevelIndex(b, l, i)
	b = append(b, ' ')
	if len(ids) == 0 {
		return append(b, "-\n"...)
	}
	raw := make([]byte, 0, 8*len(ids))
	for _, id := range ids {
		raw = binary.LittleEndian.AppendUint64(raw, id)
	}
	return append(b64.AppendEncode(b, raw), '\n')
}

// appendPush appends "PUSH L I".
func appendPush(b []byte, l, i int) []byte {
	b = append(b, verbPush...)
	return append(appendLevelIndex(b, l, i), '\n')
}

func appendLevelIndex(b []byte, l, i int) []byte {
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(l), 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, int64(i), 10)
}

// isSyncVerb reports whether a link line's first field is a sync verb.
func isSyncVerb(v []byte) bool {
	switch string(v) {
	case verbSum, verbPush, verbHave, verbWant:
		return true
	}
	return false
}

// parseSync parses a sync line split into f (n fields), checking every
// bound: a line that does not make sense is an error, never a panic or
// unbounded work.
func parseSync(f *fieldList, n int) (syncLine, error) {
	var m syncLine
	m.verb = string(f[0])
	want := 4
	if m.verb == verbPush {
		want = 3
	}
	if n != want {
		return m, errors.New("wrong number of fields")
	}
	l, err := strconv.Atoi(string(f[1]))
	if err != nil || l < 1 || l > topLevel {
		return m, errors.New("level out of range")
	}
	m.level = l
	limit := rangesAt(l)
	if m.verb == verbSum {
		limit = rangesAt(l - 1)
	}
	i, err := strconv.Atoi(string(f[2]))
	if err != nil || i < 0 || i >= limit {
		return m, errors.New("range out of range")
	}
	m.index = i
	switch m.verb {
	case verbSum:
		raw, err := b64.DecodeString(string(f[3]))
		if err != nil {
			return m, errors.New("bad base64")
		}
		for len(raw) > 0 && len(m.fps) < fan {
			c, k := binary.Uvarint(raw)
			if k <= 0 || c > 1<<32-1 {
				return m, errors.New("bad count")
			}
			raw = raw[k:]
			fp := fingerprint{count: uint32(c)}
			if c != 0 {
				if len(raw) < 8 {
					return m, errors.New("short sum")
				}
				fp.sum = binary.LittleEndian.Uint64(raw)
				raw = raw[8:]
			}
			m.fps = append(m.fps, fp)
		}
		if len(m.fps) != fan || len(raw) != 0 {
			return m, errors.New("not one fingerprint per child")
		}
	case verbHave, verbWant:
		if string(f[3]) == "-" {
			return m, nil
		}
		raw, err := b64.DecodeString(string(f[3]))
		if err != nil || len(raw)%8 != 0 || len(raw) == 0 || len(raw)/8 > maxIDs {
			return m, errors.New("bad line hash list")
		}
		for ; len(raw) > 0; raw = raw[8:] {
			m.ids = append(m.ids, binary.LittleEndian.Uint64(raw))
		}
	}
	return m, nil
}
