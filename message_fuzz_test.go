package herd

import (
	"bytes"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"testing"
	"time"
)

// Reference implementations for the fuzz targets: regular expressions for
// the forms of docs/protocol.md and math/big for the numbers, written without
// any of message.go's helpers.
var (
	msgRefDecimal  = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	msgRefLocation = regexp.MustCompile(`^([+-][0-9]+\.[0-9]+)([+-][0-9]+\.[0-9]+)$`)
	msgRefInteger  = regexp.MustCompile(`^[0-9]+$`)
	msgRefAT       = regexp.MustCompile(`^AT ([^ \t\r\n\f\v]+) ([+-][0-9]+\.[0-9]{9}) ([^ \t\r\n\f\v]+) ([^ \t\r\n\f\v]+) ([^ \t\r\n\f\v]+)$`)
	msgRefMaxInt64 = big.NewInt(math.MaxInt64)
	msgRefBillion  = big.NewInt(1e9)
)

// msgRefFields splits at the six white-space bytes, independently of
// splitFields.
func msgRefFields(line []byte) [][]byte {
	return bytes.FieldsFunc(line, func(r rune) bool {
		switch r {
		case ' ', '\t', '\r', '\n', '\f', '\v':
			return true
		}
		return false
	})
}

// msgRefRat parses a decimal D+ or D+.D+ (with optional sign) exactly.
func msgRefRat(s string) *big.Rat {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		panic("bad reference decimal " + s)
	}
	return r
}

// msgRefLocationOK reports whether loc is a valid location.
func msgRefLocationOK(loc []byte) bool {
	m := msgRefLocation.FindSubmatch(loc)
	if m == nil {
		return false
	}
	lat, lon := msgRefRat(string(m[1])), msgRefRat(string(m[2]))
	return lat.Abs(lat).Cmp(big.NewRat(90, 1)) <= 0 && lon.Abs(lon).Cmp(big.NewRat(180, 1)) <= 0
}

// msgRefTime parses a client time: whole seconds (which must fit in an
// int64) and the first nine fraction digits as nanoseconds.
func msgRefTime(b []byte) (sec int64, nsec int32, ok bool) {
	if !msgRefDecimal.Match(b) {
		return 0, 0, false
	}
	whole, frac, _ := bytes.Cut(b, []byte("."))
	w, _ := new(big.Int).SetString(string(whole), 10)
	if w.Cmp(msgRefMaxInt64) > 0 {
		return 0, 0, false
	}
	frac = append(bytes.Clone(frac), "000000000"...)[:9]
	n, _ := new(big.Int).SetString(string(frac), 10)
	return w.Int64(), int32(n.Int64()), true
}

// msgRefRadius parses a WHATSAT radius and returns it in metres, rounded
// once from the exact value.
func msgRefRadius(b []byte) (float64, bool) {
	if !msgRefDecimal.Match(b) {
		return 0, false
	}
	r := msgRefRat(string(b))
	if r.Sign() <= 0 || r.Cmp(big.NewRat(50, 1)) > 0 {
		return 0, false
	}
	m, _ := r.Mul(r, big.NewRat(1000, 1)).Float64()
	return m, true
}

// msgRefBound parses a WHATSAT bound.
func msgRefBound(b []byte) (int, bool) {
	if !msgRefInteger.Match(b) {
		return 0, false
	}
	n, _ := new(big.Int).SetString(string(b), 10)
	if n.Cmp(big.NewInt(20)) > 0 {
		return 0, false
	}
	return int(n.Int64()), true
}

// msgRefSkew is recv minus the client time in exact integer arithmetic,
// formatted as docs/protocol.md section 2 says.
func msgRefSkew(recvSec int64, recvNsec int64, sec int64, nsec int64) string {
	total := func(s, n int64) *big.Int {
		t := new(big.Int).Mul(big.NewInt(s), msgRefBillion)
		return t.Add(t, big.NewInt(n))
	}
	d := new(big.Int).Sub(total(recvSec, recvNsec), total(sec, nsec))
	sign := "+"
	if d.Sign() < 0 {
		sign = "-"
		d.Neg(d)
	}
	q, r := new(big.Int).QuoRem(d, msgRefBillion, new(big.Int))
	return fmt.Sprintf("%s%s.%09d", sign, q, r.Int64())
}

// msgFuzzRecvs are the receive times FuzzParseLine formats AT lines with.
var msgFuzzRecvs = []time.Time{
	time.Unix(1520023935, 182837383),
	time.Unix(0, 0),
	time.Unix(math.MinInt64, 0),
	time.Unix(math.MaxInt64, 999999999),
}

// msgFuzzLineSeeds are the f.Add seeds of FuzzParseLine; testdata/fuzz has
// more.
var msgFuzzLineSeeds = []string{
	"",
	" \t\r\n\f\v",
	msgExampleIAMAT,
	msgExampleIAMAT + "\r\n",
	msgExampleAT,
	"WHATSAT kiwi.cs.ucla.edu 10 5",
	"WHATSAT kiwi.cs.ucla.edu 10.5871263 20\r\n",
	"WHATSAT kiwi 50.0001 21",
	"IAMAT \xff\x80 +90.0-180.0 9223372036854775807.999999999",
	"IAMAT c +090.0+0180.0 9223372036854775808",
	"IAMAT c +91.0+10.0 1.1234567891",
	"IAMAT c +34-118 1e9",
	"AT Goloman -9223372035154775807.999999999 c -90.0+180.0 9223372036854775807.999999999",
	"AT\tGoloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997",
	"1 2 3 4 5 6 7 8",
}

// FuzzParseLine feeds arbitrary bytes to every parser and checks each
// against a reference implementation and the others.
func FuzzParseLine(f *testing.F) {
	for _, s := range msgFuzzLineSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		defer func() {
			if !bytes.Equal(line, orig) {
				t.Fatalf("input modified: %q -> %q", orig, line)
			}
		}()

		// splitFields against bytes.FieldsFunc.
		var fl fieldList
		n := splitFields(line, &fl)
		ref := msgRefFields(line)
		if want := min(len(ref), maxFields); n != want {
			t.Fatalf("splitFields(%q) = %d, want %d", line, n, want)
		}
		for i := range n {
			if !bytes.Equal(fl[i], ref[i]) {
				t.Fatalf("splitFields(%q) field %d = %q, want %q", line, i, fl[i], ref[i])
			}
			if !msgWithin(line, fl[i]) {
				t.Fatalf("splitFields(%q) field %d does not alias the line", line, i)
			}
		}

		// appendInvalid.
		if got, want := appendInvalid(nil, line), "? "+string(line)+"\n"; string(got) != want {
			t.Fatalf("appendInvalid(%q) = %q", line, got)
		}

		msgCheckIAMAT(t, line, &fl, n)
		msgCheckWHATSAT(t, line, &fl, n)
		msgCheckAT(t, line)
	})
}

func msgCheckIAMAT(t *testing.T, line []byte, fl *fieldList, n int) {
	m, ok := parseIAMAT(fl, n)
	wantOK := n == 4 && msgRefLocationOK(fl[2])
	var wantSec int64
	var wantNsec int32
	if wantOK {
		wantSec, wantNsec, wantOK = msgRefTime(fl[3])
	}
	if ok != wantOK {
		t.Fatalf("parseIAMAT(%q) ok = %v, want %v", line, ok, wantOK)
	}
	if !ok {
		return
	}
	if !bytes.Equal(m.client, fl[1]) || !bytes.Equal(m.location, fl[2]) || !bytes.Equal(m.time, fl[3]) || m.sec != wantSec || m.nsec != wantNsec {
		t.Fatalf("parseIAMAT(%q) = %q %q %q %d %d, want %q %q %q %d %d", line,
			m.client, m.location, m.time, m.sec, m.nsec, fl[1], fl[2], fl[3], wantSec, wantNsec)
	}
	if sec, nsec, ok := parseClientTime(m.time); !ok || sec != m.sec || nsec != m.nsec {
		t.Fatalf("parseClientTime(%q) = %d %d %v, want %d %d true", m.time, sec, nsec, ok, m.sec, m.nsec)
	}

	// The location's numbers.
	lat, lon, ok := parseLocation(string(m.location))
	if !ok || !(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180) {
		t.Fatalf("parseLocation(%q) = %v, %v, %v", m.location, lat, lon, ok)
	}
	parts := msgRefLocation.FindSubmatch(m.location)
	wantLat, _ := msgRefRat(string(parts[1])).Float64()
	wantLon, _ := msgRefRat(string(parts[2])).Float64()
	if lat != wantLat || lon != wantLon {
		t.Fatalf("parseLocation(%q) = %v, %v, want %v, %v", m.location, lat, lon, wantLat, wantLon)
	}

	// Format, record and re-parse.
	for _, recv := range msgFuzzRecvs {
		for _, server := range []string{"Goloman", "\xff"} {
			at := appendAT(nil, server, recv, &m)
			skew := msgRefSkew(recv.Unix(), int64(recv.Nanosecond()), m.sec, int64(m.nsec))
			want := "AT " + server + " " + skew + " " + string(m.client) + " " + string(m.location) + " " + string(m.time)
			if string(at) != want {
				t.Fatalf("appendAT = %q, want %q", at, want)
			}
			rec := newRecord(string(at), server, &m)
			if rec.Line != want || rec.Server != server || rec.Client != string(m.client) ||
				rec.Location != string(m.location) || rec.Time != string(m.time) || rec.Sec != m.sec || rec.Nsec != m.nsec {
				t.Fatalf("newRecord(%q) = %+v", at, rec)
			}
			parsed, ok := parseAT(at)
			if !ok {
				t.Fatalf("parseAT(%q) failed", at)
			}
			if parsed != rec {
				t.Fatalf("parseAT(%q) = %+v, newRecord = %+v", at, parsed, rec)
			}
			if parsed.Compare(&rec) != 0 || rec.Compare(&parsed) != 0 {
				t.Fatalf("records of %q do not compare equal", at)
			}
		}
	}
}

func msgCheckWHATSAT(t *testing.T, line []byte, fl *fieldList, n int) {
	m, ok := parseWHATSAT(fl, n)
	wantOK := n == 4
	var wantMeters float64
	var wantBound int
	if wantOK {
		wantMeters, wantOK = msgRefRadius(fl[2])
	}
	if wantOK {
		wantBound, wantOK = msgRefBound(fl[3])
	}
	if ok != wantOK {
		t.Fatalf("parseWHATSAT(%q) ok = %v, want %v", line, ok, wantOK)
	}
	if !ok {
		return
	}
	if !bytes.Equal(m.client, fl[1]) || m.radiusMeters != wantMeters || m.bound != wantBound {
		t.Fatalf("parseWHATSAT(%q) = %q %v %d, want %q %v %d", line, m.client, m.radiusMeters, m.bound, fl[1], wantMeters, wantBound)
	}
	// A radius of a few hundred leading fraction zeros underflows to 0 m.
	if !(m.radiusMeters >= 0 && m.radiusMeters <= 50000) || m.bound < 0 || m.bound > 20 {
		t.Fatalf("parseWHATSAT(%q) out of range: %v %d", line, m.radiusMeters, m.bound)
	}
}

func msgCheckAT(t *testing.T, line []byte) {
	rec, ok := parseAT(line)
	parts := msgRefAT.FindSubmatch(line)
	wantOK := parts != nil && msgRefLocationOK(parts[4])
	var wantSec int64
	var wantNsec int32
	if wantOK {
		wantSec, wantNsec, wantOK = msgRefTime(parts[5])
	}
	if ok != wantOK {
		t.Fatalf("parseAT(%q) ok = %v, want %v", line, ok, wantOK)
	}
	if !ok {
		if rec != (Record{}) {
			t.Fatalf("parseAT(%q) failed but returned %+v", line, rec)
		}
		return
	}
	want := Record{
		Line:     string(line),
		Server:   string(parts[1]),
		Client:   string(parts[3]),
		Location: string(parts[4]),
		Time:     string(parts[5]),
		Sec:      wantSec,
		Nsec:     wantNsec,
	}
	if rec != want {
		t.Fatalf("parseAT(%q) = %+v, want %+v", line, rec, want)
	}
	for _, s := range []string{rec.Server, rec.Client, rec.Location, rec.Time} {
		if !msgIsSubstring(rec.Line, s) {
			t.Fatalf("parseAT(%q): %q is not a sub-string of Line", line, s)
		}
	}
	if !validSkew(parts[2]) {
		t.Fatalf("validSkew(%q) = false", parts[2])
	}
	if rec.Compare(&rec) != 0 {
		t.Fatalf("record of %q does not equal itself", line)
	}

	// An accepted AT line also reads as the IAMAT it answers.
	iamatLine := []byte("IAMAT " + rec.Client + " " + rec.Location + " " + rec.Time)
	var fl fieldList
	n := splitFields(iamatLine, &fl)
	m, ok := parseIAMAT(&fl, n)
	if !ok || m.sec != rec.Sec || m.nsec != rec.Nsec {
		t.Fatalf("parseIAMAT(%q) = %d %d %v, want %d %d true", iamatLine, m.sec, m.nsec, ok, rec.Sec, rec.Nsec)
	}
}

// FuzzSkew checks appendSkew against exact big-integer arithmetic for any
// receive time and any client time the parser can produce.
func FuzzSkew(f *testing.F) {
	seeds := []struct {
		recvSec  int64
		recvNsec uint32
		sec      uint64
		nsec     uint32
	}{
		{1520023935, 182837383, 1520023934, 918963997},
		{0, 0, 0, 0},
		{100, 0, 101, 500000000},
		{86400, 1, 0, 0},
		{10, 0, 9, 999999999},
		{9, 999999999, 10, 0},
		{1700000000, 0, math.MaxInt64, 0},
		{1700000000, 0, math.MaxInt64, 999999999},
		{math.MinInt64, 0, math.MaxInt64, 999999999},
		{math.MaxInt64, 999999999, 0, 0},
		{-1, 500000000, 0, 0},
		{-62135596800, 0, 1520023934, 918963997},
		{1 << 53, 1, 1<<53 + 1, 0},
		{0, math.MaxUint32, math.MaxUint64, math.MaxUint32},
	}
	for _, s := range seeds {
		f.Add(s.recvSec, s.recvNsec, s.sec, s.nsec)
	}
	f.Fuzz(func(t *testing.T, recvSec int64, recvNsec uint32, secBits uint64, nsecBits uint32) {
		rn := int64(recvNsec % 1e9)
		sec := int64(secBits & math.MaxInt64)
		nsec := int32(nsecBits % 1e9)
		recv := time.Unix(recvSec, rn)
		if recv.Unix() != recvSec || int64(recv.Nanosecond()) != rn {
			t.Fatalf("time.Unix(%d, %d) reads back as %d, %d", recvSec, rn, recv.Unix(), recv.Nanosecond())
		}
		want := msgRefSkew(recvSec, rn, sec, int64(nsec))
		got := appendSkew([]byte("x"), recv, sec, nsec)
		if string(got) != "x"+want {
			t.Fatalf("appendSkew(%d.%09d - %d.%09d) = %q, want %q", recvSec, rn, sec, nsec, got[1:], want)
		}
		if !validSkew(got[1:]) {
			t.Fatalf("validSkew(%q) = false", got[1:])
		}
	})
}
