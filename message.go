package herd

// message.go: pure parse and format of every protocol line. Nothing here
// keeps state, does I/O or allocates on the hot path: parsers return
// sub-slices of their input, formatters append to a caller's buffer.

import (
	"encoding/binary"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// maxFields is one more than the longest line the protocol has (AT, six
// fields), so that splitFields can tell "too many" from "exactly six".
const maxFields = 7

// fieldList holds the fields of one line, as sub-slices of it.
type fieldList [maxFields][]byte

// spaceTable marks the bytes that separate fields: space, tab, CR, LF,
// form feed and vertical tab (docs/protocol.md section 1). A table lookup is
// one load per byte on the per-line hot path.
var spaceTable = [256]bool{' ': true, '\t': true, '\r': true, '\n': true, '\f': true, '\v': true}

// isSpaceByte reports whether c separates fields.
func isSpaceByte(c byte) bool { return spaceTable[c] }

// isSpace is isSpaceByte for runes, for validating names.
func isSpace(r rune) bool { return r < 0x80 && isSpaceByte(byte(r)) }

// splitFields splits line at runs of white space into f and returns how
// many fields it found, stopping at maxFields (which means "too many").
func splitFields(line []byte, f *fieldList) int {
	n := 0
	i := 0
	for i < len(line) {
		for i < len(line) && spaceTable[line[i]] {
			i++
		}
		if i == len(line) {
			break
		}
		start := i
		i = fieldEnd(line, i)
		if n == maxFields {
			return n
		}
		f[n] = line[start:i]
		n++
	}
	return n
}

// fieldEnd returns the index of the first white-space byte in b at or
// after i, or len(b). It looks at eight bytes at a time: a word with no
// byte below 0x21 holds no white space (every separator is 0x09-0x0d or
// 0x20), and the classic "has a byte less than n" bit trick finds the
// first byte below 0x21 exactly (borrows only run upwards). Such a byte
// may still be a control character that belongs to the field.
func fieldEnd(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		m := (x - 0x21*ones) &^ x & highs
		if m == 0 {
			i += 8
			continue
		}
		j := i + bits.TrailingZeros64(m)/8
		if spaceTable[b[j]] {
			return j
		}
		i = j + 1
	}
	for i < len(b) && !spaceTable[b[i]] {
		i++
	}
	return i
}

// iamat is a parsed IAMAT command; the byte fields alias the input line.
type iamat struct {
	client, location, time []byte
	sec                    int64
	nsec                   int32
}

// parseIAMAT parses the fields of an IAMAT line (f[0] is "IAMAT").
func parseIAMAT(f *fieldList, n int) (m iamat, ok bool) {
	if n != 4 {
		return m, false
	}
	if !validLocation(f[2]) {
		return m, false
	}
	sec, nsec, ok := parseClientTime(f[3])
	if !ok {
		return m, false
	}
	return iamat{client: f[1], location: f[2], time: f[3], sec: sec, nsec: nsec}, true
}

// whatsat is a parsed WHATSAT command; client aliases the input line.
type whatsat struct {
	client       []byte
	radiusMeters float64
	bound        int
}

// parseWHATSAT parses the fields of a WHATSAT line (f[0] is "WHATSAT").
func parseWHATSAT(f *fieldList, n int) (m whatsat, ok bool) {
	if n != 4 {
		return m, false
	}
	meters, ok := parseRadius(f[2])
	if !ok {
		return m, false
	}
	bound, ok := parseBound(f[3])
	if !ok {
		return m, false
	}
	return whatsat{client: f[1], radiusMeters: meters, bound: bound}, true
}

// digits returns the length of the run of ASCII digits at the start of b.
func digits(b []byte) int {
	i := 0
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// decimal splits b of the form D+ or D+.D+ into its whole and fraction
// digits. With fractionRequired, the D+ form is refused.
func decimal(b []byte, fractionRequired bool) (whole, frac []byte, ok bool) {
	w := digits(b)
	if w == 0 {
		return nil, nil, false
	}
	if w == len(b) {
		return b, nil, !fractionRequired
	}
	if b[w] != '.' {
		return nil, nil, false
	}
	rest := b[w+1:]
	f := digits(rest)
	if f == 0 || f != len(rest) {
		return nil, nil, false
	}
	return b[:w], rest, true
}

// atMost reports whether the decimal whole.frac is at most limit, a small
// whole number, without converting through float64.
func atMost(whole, frac []byte, limit int) bool {
	for len(whole) > 1 && whole[0] == '0' {
		whole = whole[1:]
	}
	if len(whole) > 3 {
		return false
	}
	v := 0
	for _, c := range whole {
		v = v*10 + int(c-'0')
	}
	if v != limit {
		return v < limit
	}
	for _, c := range frac {
		if c != '0' {
			return false
		}
	}
	return true
}

// isZero reports whether the decimal whole.frac is zero.
func isZero(whole, frac []byte) bool {
	for _, c := range whole {
		if c != '0' {
			return false
		}
	}
	for _, c := range frac {
		if c != '0' {
			return false
		}
	}
	return true
}

// splitLocation splits an ISO 6709 location [+-]D+.D+[+-]D+.D+ into its
// signed latitude and longitude texts, checking form and range.
func splitLocation(b []byte) (lat, lon []byte, ok bool) {
	i, ok := coordinate(b, 0, 90)
	if !ok || i == len(b) {
		return nil, nil, false
	}
	if j, ok := coordinate(b, i, 180); !ok || j != len(b) {
		return nil, nil, false
	}
	return b[:i], b[i:], true
}

// coordinate checks a signed decimal [+-]D+.D+ that starts at b[i] and
// whose magnitude is at most limit, in one pass over its bytes (it runs for
// every IAMAT and every peer record), and returns the index just past it.
func coordinate(b []byte, i, limit int) (int, bool) {
	if i >= len(b) || (b[i] != '+' && b[i] != '-') {
		return 0, false
	}
	rest := b[i+1:]
	v, n := 0, 0
	for _, c := range rest {
		if c-'0' > 9 {
			break
		}
		if v <= limit { // past limit the exact value no longer matters
			v = v*10 + int(c-'0')
		}
		n++
	}
	if n == 0 || n == len(rest) || rest[n] != '.' {
		return 0, false
	}
	rest = rest[n+1:]
	var or byte // ORs the fraction's digits less '0': zero iff all zeros
	m := 0
	for _, c := range rest {
		if c-'0' > 9 {
			break
		}
		or |= c - '0'
		m++
	}
	if m == 0 || v > limit || (v == limit && or != 0) {
		return 0, false
	}
	return i + 1 + n + 1 + m, true
}

// validLocation reports whether b is a valid IAMAT location.
func validLocation(b []byte) bool {
	_, _, ok := splitLocation(b)
	return ok
}

// parseLocation returns the latitude and longitude of a valid location.
func parseLocation(s string) (lat, lon float64, ok bool) {
	la, lo, ok := splitLocation([]byte(s))
	if !ok {
		return 0, 0, false
	}
	lat, err1 := strconv.ParseFloat(string(la), 64)
	lon, err2 := strconv.ParseFloat(string(lo), 64)
	return lat, lon, err1 == nil && err2 == nil
}

// parseClientTime parses POSIX seconds D+ or D+.D+ into whole seconds and
// nanoseconds (fraction digits past the ninth are ignored). The whole
// seconds must fit in an int64.
func parseClientTime(b []byte) (sec int64, nsec int32, ok bool) {
	// One pass over the bytes, eight digits at a time where it can: this
	// runs for every IAMAT and every record a peer sends.
	i := 0
	for i < len(b) && b[i] == '0' {
		i++
	}
	// Nineteen significant digits always fit in a uint64; more never fit
	// in an int64 (past that u may wrap, but the length check fails).
	var u uint64
	j := i
	for len(b)-j >= 8 {
		v, all := eightDigits(b[j:])
		if !all {
			break
		}
		u = u*100000000 + v
		j += 8
	}
	for ; j < len(b) && b[j]-'0' <= 9; j++ {
		u = u*10 + uint64(b[j]-'0')
	}
	sig := j - i
	i = j
	if i == 0 || sig > 19 || u > 1<<63-1 {
		return 0, 0, false
	}
	sec = int64(u)
	if i == len(b) {
		return sec, 0, true
	}
	if b[i] != '.' || i+1 == len(b) {
		return 0, 0, false
	}
	frac := b[i+1:]
	digits := 0
	if len(frac) >= 8 {
		if v, all := eightDigits(frac); all {
			nsec, digits, frac = int32(v), 8, frac[8:]
		}
	}
	for _, c := range frac {
		d := int32(c) - '0'
		if uint32(d) > 9 {
			return 0, 0, false
		}
		if digits < 9 {
			nsec = nsec*10 + d
			digits++
		}
	}
	for ; digits < 9; digits++ {
		nsec *= 10
	}
	return sec, nsec, true
}

// eightDigits returns the value of b[:8] if those bytes are all ASCII
// digits; b must hold at least eight bytes. It reads them as one word: a
// byte is a digit iff neither subtracting '0' nor adding 0x46 sets its top
// bit (below '0' the subtraction borrows, from 0x3a to 0xb9 the addition
// reaches 0x80, from 0xba the subtraction leaves at least 0x8a), and
// converts them together by pairing neighbours (x10), then pairs (x100)
// and quads (x10000). It is small enough to be inlined, which is what
// makes it faster than a digit at a time.
func eightDigits(b []byte) (uint64, bool) {
	x := binary.LittleEndian.Uint64(b)
	if ((x-0x3030303030303030)|(x+0x4646464646464646))&0x8080808080808080 != 0 {
		return 0, false
	}
	x -= 0x3030303030303030
	x = x*10 + x>>8
	x = (x&0x000000ff000000ff)*(100+1000000<<32) + (x>>16&0x000000ff000000ff)*(1+10000<<32)
	return x >> 32, true
}

// parseRadius parses a WHATSAT radius in kilometres (D+ or D+.D+,
// 0 < r <= 50) and returns it in metres, shifting the decimal point in the
// text so that 10.5871263 km is exactly 10587.1263 m.
func parseRadius(b []byte) (meters float64, ok bool) {
	whole, frac, ok := decimal(b, false)
	if !ok || isZero(whole, frac) || !atMost(whole, frac, 50) {
		return 0, false
	}
	var buf [80]byte
	s := append(buf[:0], whole...)
	for i := 0; i < 3; i++ {
		if i < len(frac) {
			s = append(s, frac[i])
		} else {
			s = append(s, '0')
		}
	}
	if len(frac) > 3 {
		s = append(s, '.')
		s = append(s, frac[3:]...)
	}
	m, err := strconv.ParseFloat(string(s), 64)
	return m, err == nil
}

// parseBound parses a WHATSAT bound: an integer D+ with 0 <= n <= 20.
func parseBound(b []byte) (int, bool) {
	if len(b) == 0 || digits(b) != len(b) {
		return 0, false
	}
	for len(b) > 1 && b[0] == '0' {
		b = b[1:]
	}
	if len(b) > 2 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		n = n*10 + int(c-'0')
	}
	return n, n <= 20
}

// appendSkew appends recv minus the client time (sec, nsec), computed in
// integer nanoseconds, with an explicit sign and nine decimals.
func appendSkew(dst []byte, recv time.Time, sec int64, nsec int32) []byte {
	rs, rn := recv.Unix(), int32(recv.Nanosecond())
	neg := rs < sec || (rs == sec && rn < nsec)
	hs, hn, ls, ln := rs, rn, sec, nsec
	if neg {
		hs, hn, ls, ln = sec, nsec, rs, rn
	}
	// The difference of two int64s always fits in a uint64, and unsigned
	// subtraction wraps to exactly it.
	ms := uint64(hs) - uint64(ls)
	mn := hn - ln
	if mn < 0 {
		mn += 1e9
		ms--
	}
	if neg {
		dst = append(dst, '-')
	} else {
		dst = append(dst, '+')
	}
	dst = strconv.AppendUint(dst, ms, 10)
	dst = append(dst, '.')
	var nine [9]byte
	for i := 8; i >= 0; i-- {
		nine[i] = byte('0' + mn%10)
		mn /= 10
	}
	return append(dst, nine[:]...)
}

// appendAT appends the AT line (without newline) that server writes for
// an IAMAT received at recv.
func appendAT(dst []byte, server string, recv time.Time, m *iamat) []byte {
	dst = append(dst, "AT "...)
	dst = append(dst, server...)
	dst = append(dst, ' ')
	dst = appendSkew(dst, recv, m.sec, m.nsec)
	dst = append(dst, ' ')
	dst = append(dst, m.client...)
	dst = append(dst, ' ')
	dst = append(dst, m.location...)
	dst = append(dst, ' ')
	return append(dst, m.time...)
}

// appendInvalid appends the reply to an invalid line: "? ", the line's
// bytes exactly as received (without its final newline), and a newline.
func appendInvalid(dst, raw []byte) []byte {
	dst = append(dst, "? "...)
	dst = append(dst, raw...)
	return append(dst, '\n')
}

// validSkew reports whether b has the form of an AT line's time
// difference: a sign, D+, a point and exactly nine digits.
func validSkew(b []byte) bool {
	if len(b) < 12 || (b[0] != '+' && b[0] != '-') {
		return false
	}
	w, f, ok := decimal(b[1:], true)
	return ok && len(w) > 0 && len(f) == 9
}

// Record is a client's stored report: the AT line a server wrote for its
// IAMAT, and the client time that orders it. All string fields but Line
// are sub-strings of Line.
type Record struct {
	// Line is the AT line, without its newline, exactly as the server that
	// received the IAMAT wrote it.
	Line string
	// Server is the name of that server.
	Server string
	// Client is the client ID.
	Client string
	// Location is the client's ISO 6709 location, as it sent it.
	Location string
	// Time is the client's time, as it sent it.
	Time string
	// Sec and Nsec are Time as whole seconds and nanoseconds.
	Sec  int64
	Nsec int32
}

// Compare orders records by client time (seconds, then nanoseconds), ties
// broken by the AT line's bytes: -1 if r comes before o, 0 if they are the
// same record, +1 if r comes after o. Every server keeps, for each client,
// the record that comes last.
func (r *Record) Compare(o *Record) int {
	switch {
	case r.Sec != o.Sec:
		return cmpInt(r.Sec, o.Sec)
	case r.Nsec != o.Nsec:
		return cmpInt(r.Nsec, o.Nsec)
	}
	return strings.Compare(r.Line, o.Line)
}

func cmpInt[T int32 | int64](a, b T) int {
	if a < b {
		return -1
	}
	return 1
}

// newRecord builds the record whose AT line is line (no newline), from the
// IAMAT it answers. line must have been produced by appendAT.
func newRecord(line string, server string, m *iamat) Record {
	end := len(line)
	timeStart := end - len(m.time)
	locStart := timeStart - 1 - len(m.location)
	clientStart := locStart - 1 - len(m.client)
	return Record{
		Line:     line,
		Server:   line[3 : 3+len(server)],
		Client:   line[clientStart : clientStart+len(m.client)],
		Location: line[locStart : locStart+len(m.location)],
		Time:     line[timeStart:end],
		Sec:      m.sec,
		Nsec:     m.nsec,
	}
}

// parseAT parses an AT line as a record: exactly six fields separated by
// single spaces, with a valid server name, time difference, location and
// client time. Peers send records in this form.
func parseAT(line []byte) (Record, bool) {
	var f fieldList
	return parseATFields(line, &f, splitFields(line, &f))
}

// parseATFields is parseAT for a line already split into f by
// splitFields, which returned n.
func parseATFields(line []byte, f *fieldList, n int) (Record, bool) {
	if n != 6 || string(f[0]) != "AT" {
		return Record{}, false
	}
	size := 5
	for i := range 6 {
		size += len(f[i])
	}
	if size != len(line) || !validSkew(f[2]) || !validLocation(f[4]) {
		return Record{}, false
	}
	sec, nsec, ok := parseClientTime(f[5])
	if !ok {
		return Record{}, false
	}
	// Fields are single-byte separated, so offsets follow from lengths;
	// each separator must be a space, not another white-space byte.
	p1 := 3
	p2 := p1 + len(f[1]) + 1
	p3 := p2 + len(f[2]) + 1
	p4 := p3 + len(f[3]) + 1
	p5 := p4 + len(f[4]) + 1
	if line[p1-1] != ' ' || line[p2-1] != ' ' || line[p3-1] != ' ' || line[p4-1] != ' ' || line[p5-1] != ' ' {
		return Record{}, false
	}
	s := string(line)
	return Record{
		Line:     s,
		Server:   s[p1 : p1+len(f[1])],
		Client:   s[p3 : p3+len(f[3])],
		Location: s[p4 : p4+len(f[4])],
		Time:     s[p5:],
		Sec:      sec,
		Nsec:     nsec,
	}, true
}
