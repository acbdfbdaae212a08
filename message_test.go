package herd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// The example of docs/protocol.md section 2.
const (
	msgExampleIAMAT = "IAMAT kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"
	msgExampleAT    = "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"
)

// msgExampleRecv is the receive time of the example.
var msgExampleRecv = time.Unix(1520023935, 182837383)

// msgFieldsOf runs splitFields on line and returns the fields it found as
// strings, plus the count it returned.
func msgFieldsOf(line []byte) ([]string, int) {
	var f fieldList
	n := splitFields(line, &f)
	out := make([]string, 0, maxFields)
	for i := 0; i < n && i < maxFields; i++ {
		out = append(out, string(f[i]))
	}
	return out, n
}

// msgWithin reports whether sub lies inside the memory of b.
func msgWithin(b, sub []byte) bool {
	if len(sub) == 0 {
		return true
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return p >= start && p+uintptr(len(sub)) <= start+uintptr(len(b))
}

// msgIsSubstring reports whether sub is a sub-string of s in memory, not just
// by value.
func msgIsSubstring(s, sub string) bool {
	if len(sub) == 0 {
		return true
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(s)))
	p := uintptr(unsafe.Pointer(unsafe.StringData(sub)))
	return p >= start && p+uintptr(len(sub)) <= start+uintptr(len(s))
}

func TestIsSpaceByte(t *testing.T) {
	var got []byte
	for c := range 256 {
		if isSpaceByte(byte(c)) {
			got = append(got, byte(c))
		}
	}
	if want := []byte{'\t', '\n', '\v', '\f', '\r', ' '}; string(got) != string(want) {
		t.Errorf("white-space bytes = %q, want %q", got, want)
	}
	for _, r := range []rune{'\t', '\n', '\v', '\f', '\r', ' '} {
		if !isSpace(r) {
			t.Errorf("isSpace(%U) = false, want true", r)
		}
	}
	// Only the six ASCII separators count: Unicode spaces, NUL, DEL and
	// runes whose low byte is a separator do not.
	for _, r := range []rune{0, 'a', 0x7f, 0x85, 0xa0, 0x1680, 0x2000, 0x2028, 0x2029, 0x3000, 0xfeff, 0x120, 0x109, 0x10a, -1, 0x10ffff} {
		if isSpace(r) {
			t.Errorf("isSpace(%U) = true, want false", r)
		}
	}
}

func TestSplitFields(t *testing.T) {
	tests := []struct {
		name string
		line string
		want []string
		n    int
	}{
		{"empty", "", []string{}, 0},
		{"space", " ", []string{}, 0},
		{"all white space", " \t\r\n\f\v \t\r\n\f\v", []string{}, 0},
		{"crlf only", "\r\n", []string{}, 0},
		{"one", "IAMAT", []string{"IAMAT"}, 1},
		{"space sep", "a b", []string{"a", "b"}, 2},
		{"tab sep", "a\tb", []string{"a", "b"}, 2},
		{"cr sep", "a\rb", []string{"a", "b"}, 2},
		{"lf sep", "a\nb", []string{"a", "b"}, 2},
		{"ff sep", "a\fb", []string{"a", "b"}, 2},
		{"vt sep", "a\vb", []string{"a", "b"}, 2},
		{"mixed run", "a \t\r\n\f\v b", []string{"a", "b"}, 2},
		{"leading", "  \t a b", []string{"a", "b"}, 2},
		{"trailing", "a b \t ", []string{"a", "b"}, 2},
		{"crlf end", msgExampleIAMAT + "\r\n", []string{"IAMAT", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997"}, 4},
		{"cr end", msgExampleIAMAT + "\r", []string{"IAMAT", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997"}, 4},
		{"example", msgExampleIAMAT, []string{"IAMAT", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997"}, 4},
		{"six", msgExampleAT, []string{"AT", "Goloman", "+0.263873386", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997"}, 6},
		{"seven", "1 2 3 4 5 6 7", []string{"1", "2", "3", "4", "5", "6", "7"}, 7},
		{"eight is too many", "1 2 3 4 5 6 7 8", []string{"1", "2", "3", "4", "5", "6", "7"}, maxFields},
		{"many is too many", strings.Repeat("x ", 1000), []string{"x", "x", "x", "x", "x", "x", "x"}, maxFields},
		{"seven with trailing space", "1 2 3 4 5 6 7 \r\n", []string{"1", "2", "3", "4", "5", "6", "7"}, 7},
		{"non-UTF-8 not separators", "a\xffb \x80c\x85 \xa0", []string{"a\xffb", "\x80c\x85", "\xa0"}, 3},
		{"UTF-8 spaces not separators", "a\u00a0b\u2028c\u3000d", []string{"a\u00a0b\u2028c\u3000d"}, 1},
		{"NUL not separator", "a\x00b \x00", []string{"a\x00b", "\x00"}, 2},
		{"DEL and other controls", "a\x7fb\x1c\x1d\x1e\x1fc", []string{"a\x7fb\x1c\x1d\x1e\x1fc"}, 1},
		{"long field", strings.Repeat("z", 100000), []string{strings.Repeat("z", 100000)}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := []byte(tc.line)
			got, n := msgFieldsOf(line)
			if n != tc.n {
				t.Errorf("splitFields(%q) = %d, want %d", tc.line, n, tc.n)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("splitFields(%q) fields (-want +got):\n%s", tc.line, diff)
			}
			var f fieldList
			n = splitFields(line, &f)
			for i := range min(n, maxFields) {
				if !msgWithin(line, f[i]) {
					t.Errorf("field %d %q does not alias the line", i, f[i])
				}
			}
		})
	}
}

// TestSplitFieldsLeavesRest checks that splitFields only writes the fields
// it reports.
func TestSplitFieldsLeavesRest(t *testing.T) {
	sentinel := []byte("sentinel")
	var f fieldList
	for i := range f {
		f[i] = sentinel
	}
	n := splitFields([]byte(" a b "), &f)
	if n != 2 || string(f[0]) != "a" || string(f[1]) != "b" {
		t.Fatalf("got %d %q %q, want 2 a b", n, f[0], f[1])
	}
	for i := 2; i < maxFields; i++ {
		if string(f[i]) != "sentinel" {
			t.Errorf("f[%d] = %q, want untouched", i, f[i])
		}
	}
}

// msgIAMATResult is an iamat with comparable fields.
type msgIAMATResult struct {
	Client, Location, Time string
	Sec                    int64
	Nsec                   int32
}

func msgParseIAMATLine(line string) (msgIAMATResult, bool) {
	var f fieldList
	n := splitFields([]byte(line), &f)
	m, ok := parseIAMAT(&f, n)
	return msgIAMATResult{string(m.client), string(m.location), string(m.time), m.sec, m.nsec}, ok
}

func TestParseIAMAT(t *testing.T) {
	tests := []struct {
		name string
		line string
		ok   bool
		want msgIAMATResult
	}{
		{"example", msgExampleIAMAT, true, msgIAMATResult{"kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997", 1520023934, 918963997}},
		{"crlf", msgExampleIAMAT + "\r\n", true, msgIAMATResult{"kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997", 1520023934, 918963997}},
		{"tabs and runs", "\t IAMAT\t\tkiwi \v+34.068930-118.445127\f1520023934.918963997 \r", true, msgIAMATResult{"kiwi", "+34.068930-118.445127", "1520023934.918963997", 1520023934, 918963997}},
		{"non-UTF-8 client", "IAMAT \xff\xfe\x80 +1.0-1.0 1", true, msgIAMATResult{"\xff\xfe\x80", "+1.0-1.0", "1", 1, 0}},
		{"UTF-8 client", "IAMAT 日本語 +1.0-1.0 1", true, msgIAMATResult{"日本語", "+1.0-1.0", "1", 1, 0}},
		{"NUL client", "IAMAT a\x00b +1.0-1.0 1", true, msgIAMATResult{"a\x00b", "+1.0-1.0", "1", 1, 0}},
		{"client looks like a location", "IAMAT +1.0+1.0 +1.0+1.0 1.5", true, msgIAMATResult{"+1.0+1.0", "+1.0+1.0", "1.5", 1, 500000000}},
		{"verb", "IAMAT", false, msgIAMATResult{}},
		{"empty", "", false, msgIAMATResult{}},
		{"two fields", "IAMAT kiwi", false, msgIAMATResult{}},
		{"three fields", "IAMAT kiwi +34.068930-118.445127", false, msgIAMATResult{}},
		{"five fields", msgExampleIAMAT + " x", false, msgIAMATResult{}},
		{"eight fields", msgExampleIAMAT + " 1 2 3 4", false, msgIAMATResult{}},
		{"fields swapped", "IAMAT kiwi 1520023934.918963997 +34.068930-118.445127", false, msgIAMATResult{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := msgParseIAMATLine(tc.line)
			if ok != tc.ok {
				t.Fatalf("parseIAMAT(%q) ok = %v, want %v", tc.line, ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseIAMAT(%q) (-want +got):\n%s", tc.line, diff)
			}
		})
	}
}

func TestParseIAMATAliases(t *testing.T) {
	line := []byte(msgExampleIAMAT)
	var f fieldList
	n := splitFields(line, &f)
	m, ok := parseIAMAT(&f, n)
	if !ok {
		t.Fatal("example rejected")
	}
	for _, b := range [][]byte{m.client, m.location, m.time} {
		if !msgWithin(line, b) {
			t.Errorf("%q does not alias the input line", b)
		}
	}
}

func TestParseIAMATLocation(t *testing.T) {
	tests := []struct {
		loc      string
		ok       bool
		lat, lon float64
	}{
		// docs/protocol.md section 2.
		{"+34.068930-118.445127", true, 34.06893, -118.445127},
		{"+34-118", false, 0, 0},
		{"34.06-118.44", false, 0, 0},
		{"+34.06", false, 0, 0},
		{"+91.0+10.0", false, 0, 0},
		// Boundaries.
		{"+90.0+180.0", true, 90, 180},
		{"-90.000-180.000", true, -90, -180},
		{"+90.0-180.0", true, 90, -180},
		{"+90.0000000000000000000000+180.0000000000000000000", true, 90, 180},
		{"+90.0000001+0.0", false, 0, 0},
		{"-90.0000001+0.0", false, 0, 0},
		{"+90.1+0.0", false, 0, 0},
		{"-90.1+0.0", false, 0, 0},
		{"+89.999999999999999999999+179.999999999999999999999", true, 90, 180},
		{"+0.0+180.0000001", false, 0, 0},
		{"+0.0+180.1", false, 0, 0},
		{"+0.0-180.1", false, 0, 0},
		{"+0.0+181.0", false, 0, 0},
		{"+0.0+190.0", false, 0, 0},
		{"+100.0+0.0", false, 0, 0},
		{"+0.0+1000.0", false, 0, 0},
		{"+999.0+0.0", false, 0, 0},
		{"+9000000000000000000000.0+0.0", false, 0, 0},
		{"+0.0+0.0", true, 0, 0},
		{"-0.0-0.0", true, 0, 0},
		{"+0.000001-0.000001", true, 0.000001, -0.000001},
		// Leading zeros.
		{"+090.0+0180.0", true, 90, 180},
		{"+00000000000000000000000000000000000045.5-000000000000000000000000000000000000000179.25", true, 45.5, -179.25},
		{"+0090.1+0.0", false, 0, 0},
		{"+0.0+0180.1", false, 0, 0},
		{"+000.0+000.0", true, 0, 0},
		// Form.
		{"+34.06+118", false, 0, 0},
		{"+34+118.0", false, 0, 0},
		{"+.5+1.0", false, 0, 0},
		{"+1.+1.0", false, 0, 0},
		{"+1.0+.5", false, 0, 0},
		{"+1.0+1.", false, 0, 0},
		{"+1.0+1.0+1.0", false, 0, 0},
		{"+1.0-1.0-", false, 0, 0},
		{"++1.0+1.0", false, 0, 0},
		{"+1.0++1.0", false, 0, 0},
		{"+1.0--1.0", false, 0, 0},
		{"+-1.0+1.0", false, 0, 0},
		{"1.0+1.0", false, 0, 0},
		{"+1.0 1.0", false, 0, 0},
		{"+", false, 0, 0},
		{"-", false, 0, 0},
		{"+-", false, 0, 0},
		{"++", false, 0, 0},
		{"+1.0+", false, 0, 0},
		{"+1.0-", false, 0, 0},
		{"+1.0.0+1.0", false, 0, 0},
		{"+1..0+1.0", false, 0, 0},
		{"+1.0e1+1.0", false, 0, 0},
		{"+1e1+1.0", false, 0, 0},
		{"+1,0+1,0", false, 0, 0},
		{"+nan+inf", false, 0, 0},
		{"+inf.0+1.0", false, 0, 0},
		{"+0x1.0+1.0", false, 0, 0},
		{"+1_0.0+1.0", false, 0, 0},
		{"+1.0+1.0x", false, 0, 0},
		{"x+1.0+1.0", false, 0, 0},
		{"+\u0661.0+1.0", false, 0, 0}, // Arabic-Indic digit one
		{"+\uff11.0+1.0", false, 0, 0}, // fullwidth digit one
		{"\u2212" + "1.0+1.0", false, 0, 0},
		{"+1.0\u22121.0", false, 0, 0},
		{"+1.0\x00+1.0", false, 0, 0},
		{"+1.0+1.0\xff", false, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.loc, func(t *testing.T) {
			line := "IAMAT c " + tc.loc + " 1"
			got, ok := msgParseIAMATLine(line)
			if ok != tc.ok {
				t.Fatalf("parseIAMAT(%q) ok = %v, want %v", line, ok, tc.ok)
			}
			if ok && got.Location != tc.loc {
				t.Errorf("location = %q, want %q", got.Location, tc.loc)
			}
			if v := validLocation([]byte(tc.loc)); v != tc.ok {
				t.Errorf("validLocation(%q) = %v, want %v", tc.loc, v, tc.ok)
			}
			lat, lon, ok := parseLocation(tc.loc)
			if ok != tc.ok || lat != tc.lat || lon != tc.lon {
				t.Errorf("parseLocation(%q) = %v, %v, %v, want %v, %v, %v", tc.loc, lat, lon, ok, tc.lat, tc.lon, tc.ok)
			}
		})
	}
}

func TestParseLocationSigns(t *testing.T) {
	lat, lon, ok := parseLocation("-0.0+0.0")
	if !ok || lat != 0 || !math.Signbit(lat) || lon != 0 || math.Signbit(lon) {
		t.Errorf("parseLocation(-0.0+0.0) = %v, %v, %v, want -0, +0, true", lat, lon, ok)
	}
	lat, lon, ok = parseLocation("-33.8688+151.2093")
	if !ok || lat != -33.8688 || lon != 151.2093 {
		t.Errorf("parseLocation(-33.8688+151.2093) = %v, %v, %v", lat, lon, ok)
	}
}

func TestParseIAMATTime(t *testing.T) {
	tests := []struct {
		time string
		ok   bool
		sec  int64
		nsec int32
	}{
		{"1520023934.918963997", true, 1520023934, 918963997},
		{"0", true, 0, 0},
		{"0.0", true, 0, 0},
		{"00000.000000000", true, 0, 0},
		{"1", true, 1, 0},
		{"1.5", true, 1, 500000000},
		{"1.05", true, 1, 50000000},
		{"1.000000001", true, 1, 1},
		{"1.999999999", true, 1, 999999999},
		{"0.000000001", true, 0, 1},
		{"0.0000000009", true, 0, 0},
		{"1.1234567891", true, 1, 123456789},
		{"1.123456789999999999", true, 1, 123456789},
		{"1520023934.9189639970000", true, 1520023934, 918963997},
		{"1." + strings.Repeat("9", 10000), true, 1, 999999999},
		{"1." + strings.Repeat("0", 10000), true, 1, 0},
		{strings.Repeat("0", 10000) + "42.25", true, 42, 250000000},
		{"9223372036854775807", true, math.MaxInt64, 0},
		{"9223372036854775807.999999999", true, math.MaxInt64, 999999999},
		{"09223372036854775807", true, math.MaxInt64, 0},
		{"9223372036854775806", true, math.MaxInt64 - 1, 0},
		{"9223372036854775799", true, 9223372036854775799, 0},
		{"922337203685477580", true, 922337203685477580, 0},
		{"9223372036854775808", false, 0, 0},
		{"9223372036854775809", false, 0, 0},
		{"9223372036854775810", false, 0, 0},
		{"9223372036854775900", false, 0, 0},
		{"18446744073709551615", false, 0, 0},
		{"18446744073709551616", false, 0, 0},
		{"92233720368547758070", false, 0, 0},
		{"99999999999999999999", false, 0, 0},
		{"1" + strings.Repeat("0", 10000), false, 0, 0},
		{"1.", false, 0, 0},
		{".5", false, 0, 0},
		{".", false, 0, 0},
		{"-1", false, 0, 0},
		{"+1", false, 0, 0},
		{"-0", false, 0, 0},
		{"1e9", false, 0, 0},
		{"1E9", false, 0, 0},
		{"1.5e9", false, 0, 0},
		{"nan", false, 0, 0},
		{"NaN", false, 0, 0},
		{"inf", false, 0, 0},
		{"+Inf", false, 0, 0},
		{"1.2.3", false, 0, 0},
		{"1..2", false, 0, 0},
		{"0x10", false, 0, 0},
		{"1_000", false, 0, 0},
		{"1,5", false, 0, 0},
		{"1.5x", false, 0, 0},
		{"x1", false, 0, 0},
		{"1\x00", false, 0, 0},
		{"\u0661", false, 0, 0},
		{"1.\u0661", false, 0, 0},
	}
	for _, tc := range tests {
		name := tc.time
		if len(name) > 40 {
			name = fmt.Sprintf("%s...(%d bytes)", name[:20], len(name))
		}
		t.Run(name, func(t *testing.T) {
			line := "IAMAT c +1.0+1.0 " + tc.time
			got, ok := msgParseIAMATLine(line)
			if ok != tc.ok {
				t.Fatalf("parseIAMAT(%q) ok = %v, want %v", name, ok, tc.ok)
			}
			if !ok {
				return
			}
			want := msgIAMATResult{"c", "+1.0+1.0", tc.time, tc.sec, tc.nsec}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("parseIAMAT(%q) (-want +got):\n%s", name, diff)
			}
			sec, nsec, ok := parseClientTime([]byte(tc.time))
			if !ok || sec != tc.sec || nsec != tc.nsec {
				t.Errorf("parseClientTime(%q) = %d, %d, %v, want %d, %d, true", name, sec, nsec, ok, tc.sec, tc.nsec)
			}
		})
	}
}

func TestParseWHATSAT(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		ok     bool
		client string
		meters float64
		bound  int
	}{
		{"example", "WHATSAT kiwi.cs.ucla.edu 10 5", true, "kiwi.cs.ucla.edu", 10000, 5},
		{"crlf", "WHATSAT kiwi.cs.ucla.edu 10 5\r\n", true, "kiwi.cs.ucla.edu", 10000, 5},
		{"runs", " WHATSAT\t\tkiwi \v 10.5871263\f20 ", true, "kiwi", 10587.1263, 20},
		{"non-UTF-8 client", "WHATSAT \xff\x80 1 0", true, "\xff\x80", 1000, 0},
		{"three fields", "WHATSAT kiwi 10", false, "", 0, 0},
		{"five fields", "WHATSAT kiwi 10 5 5", false, "", 0, 0},
		{"eight fields", "WHATSAT kiwi 10 5 5 5 5 5", false, "", 0, 0},
		{"bound and radius swapped", "WHATSAT kiwi 5 10.5", false, "", 0, 0},
		{"verb only", "WHATSAT", false, "", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := []byte(tc.line)
			var f fieldList
			n := splitFields(line, &f)
			m, ok := parseWHATSAT(&f, n)
			if ok != tc.ok {
				t.Fatalf("parseWHATSAT(%q) ok = %v, want %v", tc.line, ok, tc.ok)
			}
			if string(m.client) != tc.client || m.radiusMeters != tc.meters || m.bound != tc.bound {
				t.Errorf("parseWHATSAT(%q) = %q, %v, %d, want %q, %v, %d", tc.line, m.client, m.radiusMeters, m.bound, tc.client, tc.meters, tc.bound)
			}
			if ok && !msgWithin(line, m.client) {
				t.Errorf("client does not alias the line")
			}
		})
	}
}

func TestParseWHATSATRadius(t *testing.T) {
	tests := []struct {
		radius string
		ok     bool
		meters float64
	}{
		{"10", true, 10000},
		{"10.5871263", true, 10587.1263},
		{"50", true, 50000},
		{"50.0", true, 50000},
		{"50.000000000000000000000", true, 50000},
		{"050", true, 50000},
		{"0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000050.0", true, 50000},
		{"0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001.5", true, 1500},
		{"1", true, 1000},
		{"1.5", true, 1500},
		{"0.001", true, 1},
		{"0.0001", true, 0.1},
		{"0.0000000001", true, 1e-7},
		// Valid (r > 0) but below the smallest float64 once in metres.
		{"0." + strings.Repeat("0", 1000) + "1", true, 0},
		{"0." + strings.Repeat("0", 300) + "1", true, 1e-298},
		{"49.9999999999", true, 49999.9999999},
		{"49." + strings.Repeat("9", 1000), true, 50000},
		{"12.345", true, 12345},
		{"12.3456789", true, 12345.6789},
		{"0.1", true, 100},
		{"33.333333333333333333", true, 33333.333333333333333},
		{"50.0001", false, 0},
		{"50.0000000000000000001", false, 0},
		{"50." + strings.Repeat("0", 1000) + "1", false, 0},
		{"0", false, 0},
		{"0.0", false, 0},
		{"00", false, 0},
		{"000.000", false, 0},
		{"-1", false, 0},
		{"-0", false, 0},
		{"+10", false, 0},
		{"51", false, 0},
		{"100", false, 0},
		{"1000", false, 0},
		{"60", false, 0},
		{"99999999999999999999999", false, 0},
		{"1e1", false, 0},
		{"1E1", false, 0},
		{".5", false, 0},
		{"5.", false, 0},
		{".", false, 0},
		{"5..0", false, 0},
		{"1.2.3", false, 0},
		{"10km", false, 0},
		{"0x10", false, 0},
		{"1_0", false, 0},
		{"nan", false, 0},
		{"inf", false, 0},
		{"\u0661\u0660", false, 0},
	}
	for _, tc := range tests {
		name := tc.radius
		if len(name) > 40 {
			name = fmt.Sprintf("%s...(%d bytes)", name[:20], len(name))
		}
		t.Run(name, func(t *testing.T) {
			line := []byte("WHATSAT kiwi " + tc.radius + " 5")
			var f fieldList
			n := splitFields(line, &f)
			m, ok := parseWHATSAT(&f, n)
			if ok != tc.ok {
				t.Fatalf("parseWHATSAT(radius %q) ok = %v, want %v", name, ok, tc.ok)
			}
			if !ok {
				return
			}
			if m.radiusMeters != tc.meters || m.bound != 5 || string(m.client) != "kiwi" {
				t.Errorf("parseWHATSAT(radius %q) = %q %v %d, want kiwi %v 5", name, m.client, m.radiusMeters, m.bound, tc.meters)
			}
		})
	}
}

func TestParseWHATSATBound(t *testing.T) {
	tests := []struct {
		bound string
		ok    bool
		want  int
	}{
		{"0", true, 0},
		{"1", true, 1},
		{"5", true, 5},
		{"19", true, 19},
		{"20", true, 20},
		{"020", true, 20},
		{"00", true, 0},
		{"0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000005", true, 5},
		{strings.Repeat("0", 10000) + "20", true, 20},
		{"21", false, 0},
		{"30", false, 0},
		{"99", false, 0},
		{"100", false, 0},
		{"120", false, 0},
		{"1000000000000000000000000000000", false, 0},
		{"18446744073709551616", false, 0},
		{"-1", false, 0},
		{"-0", false, 0},
		{"+5", false, 0},
		{"5.0", false, 0},
		{"5.", false, 0},
		{".5", false, 0},
		{"1e1", false, 0},
		{"0x5", false, 0},
		{"five", false, 0},
		{"\u0665", false, 0},
	}
	for _, tc := range tests {
		name := tc.bound
		if len(name) > 40 {
			name = fmt.Sprintf("%s...(%d bytes)", name[:20], len(name))
		}
		t.Run(name, func(t *testing.T) {
			line := []byte("WHATSAT kiwi 10 " + tc.bound)
			var f fieldList
			n := splitFields(line, &f)
			m, ok := parseWHATSAT(&f, n)
			if ok != tc.ok {
				t.Fatalf("parseWHATSAT(bound %q) ok = %v, want %v", name, ok, tc.ok)
			}
			if !ok {
				return
			}
			if m.bound != tc.want || m.radiusMeters != 10000 || string(m.client) != "kiwi" {
				t.Errorf("parseWHATSAT(bound %q) = %q %v %d, want kiwi 10000 %d", name, m.client, m.radiusMeters, m.bound, tc.want)
			}
		})
	}
}

func TestAppendSkew(t *testing.T) {
	tests := []struct {
		name      string
		recv      time.Time
		sec       int64
		nsec      int32
		want      string
		wantFloat bool // whether float64 arithmetic happens to get it right
	}{
		{"example", msgExampleRecv, 1520023934, 918963997, "+0.263873386", false},
		{"zero", time.Unix(1520023934, 918963997), 1520023934, 918963997, "+0.000000000", true},
		{"epoch zero", time.Unix(0, 0), 0, 0, "+0.000000000", true},
		{"minus one and a half", time.Unix(100, 0), 101, 500000000, "-1.500000000", true},
		{"one day one nanosecond", time.Unix(86400, 1), 0, 0, "+86400.000000001", false},
		{"client in the future", time.Unix(1520023934, 0), 1520023999, 250000000, "-65.250000000", true},
		{"client a nanosecond ahead", time.Unix(1520023934, 918963996), 1520023934, 918963997, "-0.000000001", false},
		{"client a nanosecond behind", time.Unix(1520023934, 918963998), 1520023934, 918963997, "+0.000000001", false},
		{"borrow", time.Unix(10, 0), 9, 999999999, "+0.000000001", false},
		{"borrow negative", time.Unix(9, 999999999), 10, 0, "-0.000000001", false},
		{"borrow large", time.Unix(1000, 1), 1, 2, "+998.999999999", false},
		{"borrow large negative", time.Unix(1, 2), 1000, 1, "-998.999999999", false},
		{"no borrow", time.Unix(1000, 2), 1, 1, "+999.000000001", false},
		{"same second negative", time.Unix(5, 100), 5, 200, "-0.000000100", false},
		{"same second positive", time.Unix(5, 200), 5, 100, "+0.000000100", false},
		{"exactly one second", time.Unix(2, 0), 1, 0, "+1.000000000", true},
		{"exactly minus one second", time.Unix(1, 0), 2, 0, "-1.000000000", true},
		{"client max int64", time.Unix(1700000000, 0), math.MaxInt64, 0, "-9223372035154775807.000000000", false},
		{"client max int64 max nsec", time.Unix(1700000000, 0), math.MaxInt64, 999999999, "-9223372035154775807.999999999", false},
		{"client max int64 recv nsec", time.Unix(1700000000, 123456789), math.MaxInt64, 0, "-9223372035154775806.876543211", false},
		{"recv max int64", time.Unix(math.MaxInt64, 999999999), 0, 0, "+9223372036854775807.999999999", false},
		{"recv before 1970", time.Unix(-1, 0), 0, 0, "-1.000000000", true},
		{"recv half a second before 1970", time.Unix(-1, 500000000), 0, 0, "-0.500000000", true},
		{"recv normalized nanosecond before 1970", time.Unix(0, -1), 0, 0, "-0.000000001", false},
		{"recv before 1970 vs nsec", time.Unix(-1, 999999999), 0, 1, "-0.000000002", false},
		{"recv year 1 vs recent", time.Unix(-62135596800, 0), 1520023934, 918963997, "-63655620734.918963997", false},
		{"recv min int64 vs zero", time.Unix(math.MinInt64, 0), 0, 0, "-9223372036854775808.000000000", false},
		{"recv min int64 vs max", time.Unix(math.MinInt64, 0), math.MaxInt64, 999999999, "-18446744073709551615.999999999", false},
		{"recv min int64 nsec vs max", time.Unix(math.MinInt64, 999999999), math.MaxInt64, 0, "-18446744073709551614.000000001", false},
		{"recv max int64 vs min", time.Unix(math.MaxInt64, 999999999), math.MinInt64, 0, "+18446744073709551615.999999999", false},
		{"beyond float64 precision", time.Unix(1<<53+1, 1), 1 << 53, 0, "+1.000000001", false},
		{"non-UTC location", msgExampleRecv.In(time.FixedZone("X", -7*3600)), 1520023934, 918963997, "+0.263873386", false},
		{"monotonic reading ignored", time.Unix(1520023935, 182837383).Add(0), 1520023934, 918963997, "+0.263873386", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(appendSkew(nil, tc.recv, tc.sec, tc.nsec))
			if got != tc.want {
				t.Errorf("appendSkew(%d.%09d - %d.%09d) = %q, want %q", tc.recv.Unix(), tc.recv.Nanosecond(), tc.sec, tc.nsec, got, tc.want)
			}
			if !validSkew([]byte(got)) {
				t.Errorf("validSkew(%q) = false", got)
			}
			got = string(appendSkew([]byte("prefix "), tc.recv, tc.sec, tc.nsec))
			if got != "prefix "+tc.want {
				t.Errorf("appendSkew with prefix = %q, want %q", got, "prefix "+tc.want)
			}
		})
	}
}

func TestAppendSkewNow(t *testing.T) {
	// A receive time with a monotonic clock reading formats like its wall
	// time.
	now := time.Now()
	want := string(appendSkew(nil, time.Unix(now.Unix(), int64(now.Nanosecond())), 1520023934, 918963997))
	if got := string(appendSkew(nil, now, 1520023934, 918963997)); got != want {
		t.Errorf("appendSkew(now) = %q, want %q", got, want)
	}
}

func TestValidSkew(t *testing.T) {
	tests := []struct {
		skew string
		ok   bool
	}{
		{"+0.000000000", true},
		{"-0.000000001", true},
		{"+0.263873386", true},
		{"-1.500000000", true},
		{"+86400.000000001", true},
		{"+18446744073709551615.999999999", true},
		{"-18446744073709551615.999999999", true},
		{"+0.5", false},
		{"0.000000000", false},
		{"+1.0000000000", false},
		{"+1.00000000", false},
		{"+1.", false},
		{"+1", false},
		{"+.000000000", false},
		{"+", false},
		{"", false},
		{"++0.000000000", false},
		{"+-0.000000000", false},
		{"*0.000000000", false},
		{" 0.000000000", false},
		{"+0.00000000a", false},
		{"+a.000000000", false},
		{"+0,000000000", false},
		{"+1e1.000000000", false},
		{"+0.000000000+", false},
		{"+0.0000.00000", false},
		{"+\u0661.000000000", false},
	}
	for _, tc := range tests {
		if got := validSkew([]byte(tc.skew)); got != tc.ok {
			t.Errorf("validSkew(%q) = %v, want %v", tc.skew, got, tc.ok)
		}
	}
}

// msgMustIAMAT parses an IAMAT line or fails the test.
func msgMustIAMAT(t testing.TB, line string) iamat {
	t.Helper()
	var f fieldList
	n := splitFields([]byte(line), &f)
	m, ok := parseIAMAT(&f, n)
	if !ok {
		t.Fatalf("parseIAMAT(%q) failed", line)
	}
	return m
}

func TestAppendATExample(t *testing.T) {
	m := msgMustIAMAT(t, msgExampleIAMAT)
	line := string(appendAT(nil, "Goloman", msgExampleRecv, &m))
	if line != msgExampleAT {
		t.Fatalf("appendAT =\n%q, want\n%q", line, msgExampleAT)
	}
	got := newRecord(line, "Goloman", &m)
	want := Record{
		Line:     msgExampleAT,
		Server:   "Goloman",
		Client:   "kiwi.cs.ucla.edu",
		Location: "+34.068930-118.445127",
		Time:     "1520023934.918963997",
		Sec:      1520023934,
		Nsec:     918963997,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("newRecord (-want +got):\n%s", diff)
	}
	msgCheckSubstrings(t, got)

	// The buffer is appended to, not overwritten.
	buf := appendAT([]byte("xyz"), "Goloman", msgExampleRecv, &m)
	if string(buf) != "xyz"+msgExampleAT {
		t.Errorf("appendAT with prefix = %q", buf)
	}
}

// msgCheckSubstrings checks that every string field of r but Line is a
// sub-string of Line in memory.
func msgCheckSubstrings(t *testing.T, r Record) {
	t.Helper()
	for name, s := range map[string]string{"Server": r.Server, "Client": r.Client, "Location": r.Location, "Time": r.Time} {
		if !msgIsSubstring(r.Line, s) {
			t.Errorf("%s %q is not a sub-string of Line", name, s)
		}
	}
}

func TestAppendATAndNewRecord(t *testing.T) {
	tests := []struct {
		name   string
		iamat  string
		server string
		recv   time.Time
		want   Record
	}{
		{
			name:   "client bytes echoed unchanged",
			iamat:  "IAMAT kiwi.cs.ucla.edu +034.0689300-118.4451270 1520023934.9189639970000",
			server: "Goloman",
			recv:   msgExampleRecv,
			want: Record{
				Line:     "AT Goloman +0.263873386 kiwi.cs.ucla.edu +034.0689300-118.4451270 1520023934.9189639970000",
				Server:   "Goloman",
				Client:   "kiwi.cs.ucla.edu",
				Location: "+034.0689300-118.4451270",
				Time:     "1520023934.9189639970000",
				Sec:      1520023934,
				Nsec:     918963997,
			},
		},
		{
			name:   "white space normalized to single spaces",
			iamat:  "\tIAMAT  kiwi\v+1.0-1.0\f\f0007\r\n",
			server: "Hands",
			recv:   time.Unix(7, 0),
			want: Record{
				Line:     "AT Hands +0.000000000 kiwi +1.0-1.0 0007",
				Server:   "Hands",
				Client:   "kiwi",
				Location: "+1.0-1.0",
				Time:     "0007",
				Sec:      7,
			},
		},
		{
			name:   "client in the future",
			iamat:  "IAMAT c -90.0+180.0 9223372036854775807.999999999",
			server: "Wilkes",
			recv:   time.Unix(1700000000, 0),
			want: Record{
				Line:     "AT Wilkes -9223372035154775807.999999999 c -90.0+180.0 9223372036854775807.999999999",
				Server:   "Wilkes",
				Client:   "c",
				Location: "-90.0+180.0",
				Time:     "9223372036854775807.999999999",
				Sec:      math.MaxInt64,
				Nsec:     999999999,
			},
		},
		{
			name:   "non-UTF-8 names",
			iamat:  "IAMAT \xff\x80\x00 +1.5+2.5 1.5",
			server: "S\xfe",
			recv:   time.Unix(3, 0),
			want: Record{
				Line:     "AT S\xfe +1.500000000 \xff\x80\x00 +1.5+2.5 1.5",
				Server:   "S\xfe",
				Client:   "\xff\x80\x00",
				Location: "+1.5+2.5",
				Time:     "1.5",
				Sec:      1,
				Nsec:     500000000,
			},
		},
		{
			name:   "client and server look like other fields",
			iamat:  "IAMAT +1.0+1.0 +1.0+1.0 1.0",
			server: "AT",
			recv:   time.Unix(1, 0),
			want: Record{
				Line:     "AT AT +0.000000000 +1.0+1.0 +1.0+1.0 1.0",
				Server:   "AT",
				Client:   "+1.0+1.0",
				Location: "+1.0+1.0",
				Time:     "1.0",
				Sec:      1,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := msgMustIAMAT(t, tc.iamat)
			line := string(appendAT(nil, tc.server, tc.recv, &m))
			if line != tc.want.Line {
				t.Fatalf("appendAT =\n%q, want\n%q", line, tc.want.Line)
			}
			got := newRecord(line, tc.server, &m)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("newRecord (-want +got):\n%s", diff)
			}
			msgCheckSubstrings(t, got)
			parsed, ok := parseAT([]byte(line))
			if !ok {
				t.Fatalf("parseAT(%q) failed", line)
			}
			if diff := cmp.Diff(tc.want, parsed); diff != "" {
				t.Errorf("parseAT (-want +got):\n%s", diff)
			}
			msgCheckSubstrings(t, parsed)
		})
	}
}

func TestParseATRoundTrip(t *testing.T) {
	iamats := []string{
		msgExampleIAMAT,
		"IAMAT kiwi.cs.ucla.edu +034.0689300-118.4451270 1520023934.9189639970000",
		"IAMAT a +90.0-180.0 0",
		"IAMAT b -90.0+180.0 9223372036854775807.999999999",
		"IAMAT \xff +0.0+0.0 0.000000001",
		"IAMAT c +1.0+1.0 1." + strings.Repeat("5", 1000),
	}
	recvs := []time.Time{
		msgExampleRecv,
		time.Unix(0, 0),
		time.Unix(-1, 1),
		time.Unix(math.MinInt64, 0),
		time.Unix(math.MaxInt64, 999999999),
	}
	for _, s := range iamats {
		m := msgMustIAMAT(t, s)
		for _, recv := range recvs {
			for _, server := range []string{"Goloman", "x", "\xff\xfe"} {
				line := appendAT(nil, server, recv, &m)
				want := newRecord(string(line), server, &m)
				got, ok := parseAT(line)
				if !ok {
					t.Errorf("parseAT(%q) failed", line)
					continue
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("parseAT(%q) (-newRecord +parseAT):\n%s", line, diff)
				}
				msgCheckSubstrings(t, got)
			}
		}
	}
}

func TestParseATCopiesLine(t *testing.T) {
	line := []byte(msgExampleAT)
	r, ok := parseAT(line)
	if !ok {
		t.Fatal("parseAT failed")
	}
	for i := range line {
		line[i] = 'X'
	}
	if r.Line != msgExampleAT || r.Client != "kiwi.cs.ucla.edu" {
		t.Errorf("record changed with its input: %+v", r)
	}
}

func TestParseATValid(t *testing.T) {
	tests := []struct {
		line string
		want Record
	}{
		{msgExampleAT, Record{msgExampleAT, "Goloman", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997", 1520023934, 918963997}},
		{
			"AT Hands -0.000000001 c +1.0+1.0 0",
			Record{"AT Hands -0.000000001 c +1.0+1.0 0", "Hands", "c", "+1.0+1.0", "0", 0, 0},
		},
		{
			"AT H +18446744073709551615.999999999 c -90.0-180.0 9223372036854775807.123456789123",
			Record{"AT H +18446744073709551615.999999999 c -90.0-180.0 9223372036854775807.123456789123", "H", "c", "-90.0-180.0", "9223372036854775807.123456789123", math.MaxInt64, 123456789},
		},
	}
	for _, tc := range tests {
		got, ok := parseAT([]byte(tc.line))
		if !ok {
			t.Errorf("parseAT(%q) failed", tc.line)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseAT(%q) (-want +got):\n%s", tc.line, diff)
		}
		msgCheckSubstrings(t, got)
	}
}

func TestParseATInvalid(t *testing.T) {
	r := strings.NewReplacer
	tests := []struct {
		name string
		line string
	}{
		{"empty", ""},
		{"space", " "},
		{"verb only", "AT"},
		{"double space after verb", r("AT ", "AT  ").Replace(msgExampleAT)},
		{"double space before client", r(" kiwi", "  kiwi").Replace(msgExampleAT)},
		{"double space before time", r(" 1520", "  1520").Replace(msgExampleAT)},
		{"leading space", " " + msgExampleAT},
		{"leading tab", "\t" + msgExampleAT},
		{"trailing space", msgExampleAT + " "},
		{"trailing newline", msgExampleAT + "\n"},
		{"trailing crlf", msgExampleAT + "\r\n"},
		{"trailing cr", msgExampleAT + "\r"},
		{"tab for space", r(" kiwi", "\tkiwi").Replace(msgExampleAT)},
		{"all tabs", r(" ", "\t").Replace(msgExampleAT)},
		{"tab and space", r(" kiwi", "\t kiwi").Replace(msgExampleAT)},
		{"skew +0.5", r("+0.263873386", "+0.5").Replace(msgExampleAT)},
		{"skew unsigned", r("+0.263873386", "0.263873386").Replace(msgExampleAT)},
		{"skew 0.000000000", r("+0.263873386", "0.000000000").Replace(msgExampleAT)},
		{"skew ten decimals", r("+0.263873386", "+1.0000000000").Replace(msgExampleAT)},
		{"skew eight decimals", r("+0.263873386", "+0.26387338").Replace(msgExampleAT)},
		{"skew no whole", r("+0.263873386", "+.263873386").Replace(msgExampleAT)},
		{"skew two signs", r("+0.263873386", "+-0.263873386").Replace(msgExampleAT)},
		{"skew exponent", r("+0.263873386", "+2.63873386e-1").Replace(msgExampleAT)},
		{"skew trailing junk", r("+0.263873386", "+0.263873386s").Replace(msgExampleAT)},
		{"five fields no server", "AT +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127 1520023934.918963997"},
		{"five fields no time", "AT Goloman +0.263873386 kiwi.cs.ucla.edu +34.068930-118.445127"},
		{"seven fields", msgExampleAT + " extra"},
		{"eight fields", msgExampleAT + " extra more"},
		{"location out of range", r("+34.068930", "+91.0").Replace(msgExampleAT)},
		{"longitude out of range", r("-118.445127", "-180.1").Replace(msgExampleAT)},
		{"location no decimals", r("+34.068930-118.445127", "+34-118").Replace(msgExampleAT)},
		{"location unsigned", r("+34.068930-118.445127", "34.06-118.44").Replace(msgExampleAT)},
		{"location latitude only", r("+34.068930-118.445127", "+34.06").Replace(msgExampleAT)},
		{"time exponent", r("1520023934.918963997", "1e9").Replace(msgExampleAT)},
		{"time negative", r("1520023934.918963997", "-1").Replace(msgExampleAT)},
		{"time signed", r("1520023934.918963997", "+1").Replace(msgExampleAT)},
		{"time too large", r("1520023934.918963997", "9223372036854775808").Replace(msgExampleAT)},
		{"time trailing point", r("1520023934.918963997", "1.").Replace(msgExampleAT)},
		{"time leading point", r("1520023934.918963997", ".5").Replace(msgExampleAT)},
		{"time two points", r("1520023934.918963997", "1.2.3").Replace(msgExampleAT)},
		{"time nan", r("1520023934.918963997", "nan").Replace(msgExampleAT)},
		{"verb lower case", "at" + msgExampleAT[2:]},
		{"verb IAMAT", "IAMAT" + msgExampleAT[2:]},
		{"verb ATX", "ATX" + msgExampleAT[2:]},
		{"verb with NUL", "AT\x00" + msgExampleAT[2:]},
		{"verb question", "?" + msgExampleAT[2:]},
		{"fields swapped", "AT Goloman +0.263873386 +34.068930-118.445127 kiwi.cs.ucla.edu 1520023934.918963997"},
		{"invalid reply", "? " + msgExampleAT},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := parseAT([]byte(tc.line)); ok || got != (Record{}) {
				t.Errorf("parseAT(%q) = %+v, %v, want zero, false", tc.line, got, ok)
			}
		})
	}
}

// TestParseATSeparators replaces each of the five single spaces of an AT
// line with every other white-space byte: peers must use single spaces.
func TestParseATSeparators(t *testing.T) {
	var spaces []int
	for i := range len(msgExampleAT) {
		if msgExampleAT[i] == ' ' {
			spaces = append(spaces, i)
		}
	}
	if len(spaces) != 5 {
		t.Fatalf("example has %d spaces", len(spaces))
	}
	for _, i := range spaces {
		for _, c := range []byte("\t\r\n\f\v") {
			line := []byte(msgExampleAT)
			line[i] = c
			if got, ok := parseAT(line); ok {
				t.Errorf("parseAT(%q) = %+v, true; want false", line, got)
			}
		}
	}
}

func TestRecordCompare(t *testing.T) {
	rec := func(sec int64, nsec int32, line string) Record {
		return Record{Line: line, Sec: sec, Nsec: nsec}
	}
	tests := []struct {
		name string
		a, b Record
		want int
	}{
		{"equal", rec(1, 2, "AT x"), rec(1, 2, "AT x"), 0},
		{"equal empty", Record{}, Record{}, 0},
		{"equal ignores other fields", Record{Line: "L", Sec: 1, Server: "a"}, Record{Line: "L", Sec: 1, Server: "b"}, 0},
		{"seconds first", rec(1, 999999999, "AT z"), rec(2, 0, "AT a"), -1},
		{"seconds later", rec(3, 0, "AT a"), rec(2, 999999999, "AT z"), 1},
		{"nanoseconds", rec(5, 1, "AT z"), rec(5, 2, "AT a"), -1},
		{"nanoseconds later", rec(5, 999999999, "AT a"), rec(5, 0, "AT z"), 1},
		{"line bytes", rec(5, 5, "AT Goloman +0.1"), rec(5, 5, "AT Hands +0.1"), -1},
		{"line bytes later", rec(5, 5, "AT Hands +0.1"), rec(5, 5, "AT Goloman +0.1"), 1},
		{"line prefix", rec(5, 5, "AT a"), rec(5, 5, "AT ab"), -1},
		{"line high bytes unsigned", rec(5, 5, "AT \xff"), rec(5, 5, "AT a"), 1},
		{"int64 extremes", rec(math.MinInt64, 0, ""), rec(math.MaxInt64, 0, ""), -1},
		{"int64 extremes later", rec(math.MaxInt64, 0, ""), rec(math.MinInt64, 0, ""), 1},
		{"int32 extremes", rec(0, math.MinInt32, ""), rec(0, math.MaxInt32, ""), -1},
		{"negative seconds", rec(-1, 0, "b"), rec(0, 0, "a"), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Compare(&tc.b); got != tc.want {
				t.Errorf("a.Compare(b) = %d, want %d", got, tc.want)
			}
			if got := tc.b.Compare(&tc.a); got != -tc.want {
				t.Errorf("b.Compare(a) = %d, want %d", got, -tc.want)
			}
			if got := tc.a.Compare(&tc.a); got != 0 {
				t.Errorf("a.Compare(a) = %d, want 0", got)
			}
		})
	}
}

// TestRecordCompareOrder checks Compare against a reference order on every
// pair of a set of records, and that sorting gives the expected order.
func TestRecordCompareOrder(t *testing.T) {
	var recs []Record
	for _, s := range []string{
		"IAMAT a +1.0+1.0 1.5",
		"IAMAT a +1.0+1.0 1.50",
		"IAMAT b +1.0+1.0 1.5",
		"IAMAT a +1.0+1.0 1.499999999",
		"IAMAT a +1.0+1.0 1.4999999999",
		"IAMAT a +1.0+1.0 2",
		"IAMAT a +1.0+1.0 0",
		"IAMAT a +1.0+1.0 9223372036854775807.999999999",
		"IAMAT a +2.0+1.0 1.5",
	} {
		m := msgMustIAMAT(t, s)
		for _, server := range []string{"Hands", "Goloman"} {
			for _, recv := range []time.Time{time.Unix(1, 0), time.Unix(2, 0)} {
				line := string(appendAT(nil, server, recv, &m))
				recs = append(recs, newRecord(line, server, &m))
			}
		}
	}
	ref := func(a, b *Record) int {
		if c := msgCmpRef(a.Sec, b.Sec); c != 0 {
			return c
		}
		if c := msgCmpRef(int64(a.Nsec), int64(b.Nsec)); c != 0 {
			return c
		}
		return msgCmpRef(a.Line, b.Line)
	}
	for i := range recs {
		for j := range recs {
			a, b := &recs[i], &recs[j]
			if got, want := a.Compare(b), ref(a, b); got != want {
				t.Errorf("Compare(%q, %q) = %d, want %d", a.Line, b.Line, got, want)
			}
		}
	}
	sorted := slices.Clone(recs)
	slices.SortFunc(sorted, func(a, b Record) int { return a.Compare(&b) })
	var lines []string
	for _, r := range sorted {
		lines = append(lines, r.Line)
	}
	want := []string{
		"AT Goloman +1.000000000 a +1.0+1.0 0",
		"AT Goloman +2.000000000 a +1.0+1.0 0",
		"AT Hands +1.000000000 a +1.0+1.0 0",
		"AT Hands +2.000000000 a +1.0+1.0 0",
		"AT Goloman +0.500000001 a +1.0+1.0 1.499999999",
		"AT Goloman +0.500000001 a +1.0+1.0 1.4999999999",
		"AT Goloman -0.499999999 a +1.0+1.0 1.499999999",
		"AT Goloman -0.499999999 a +1.0+1.0 1.4999999999",
		"AT Hands +0.500000001 a +1.0+1.0 1.499999999",
		"AT Hands +0.500000001 a +1.0+1.0 1.4999999999",
		"AT Hands -0.499999999 a +1.0+1.0 1.499999999",
		"AT Hands -0.499999999 a +1.0+1.0 1.4999999999",
		"AT Goloman +0.500000000 a +1.0+1.0 1.5",
		"AT Goloman +0.500000000 a +1.0+1.0 1.50",
		"AT Goloman +0.500000000 a +2.0+1.0 1.5",
		"AT Goloman +0.500000000 b +1.0+1.0 1.5",
		"AT Goloman -0.500000000 a +1.0+1.0 1.5",
		"AT Goloman -0.500000000 a +1.0+1.0 1.50",
		"AT Goloman -0.500000000 a +2.0+1.0 1.5",
		"AT Goloman -0.500000000 b +1.0+1.0 1.5",
		"AT Hands +0.500000000 a +1.0+1.0 1.5",
		"AT Hands +0.500000000 a +1.0+1.0 1.50",
		"AT Hands +0.500000000 a +2.0+1.0 1.5",
		"AT Hands +0.500000000 b +1.0+1.0 1.5",
		"AT Hands -0.500000000 a +1.0+1.0 1.5",
		"AT Hands -0.500000000 a +1.0+1.0 1.50",
		"AT Hands -0.500000000 a +2.0+1.0 1.5",
		"AT Hands -0.500000000 b +1.0+1.0 1.5",
		"AT Goloman +0.000000000 a +1.0+1.0 2", // '+' sorts before '-'
		"AT Goloman -1.000000000 a +1.0+1.0 2",
		"AT Hands +0.000000000 a +1.0+1.0 2",
		"AT Hands -1.000000000 a +1.0+1.0 2",
		"AT Goloman -9223372036854775805.999999999 a +1.0+1.0 9223372036854775807.999999999",
		"AT Goloman -9223372036854775806.999999999 a +1.0+1.0 9223372036854775807.999999999",
		"AT Hands -9223372036854775805.999999999 a +1.0+1.0 9223372036854775807.999999999",
		"AT Hands -9223372036854775806.999999999 a +1.0+1.0 9223372036854775807.999999999",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("sorted records (-want +got):\n%s", diff)
	}
}

func msgCmpRef[T int64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestAppendInvalid(t *testing.T) {
	tests := []struct {
		dst, raw, want string
	}{
		{"", "", "? \n"},
		{"", "FOO bar", "? FOO bar\n"},
		{"", "IAMAT kiwi +91.0+10.0 1\r", "? IAMAT kiwi +91.0+10.0 1\r\n"},
		{"", "  \t lead and trail \t ", "?   \t lead and trail \t \n"},
		{"", "\xff\x00\x80 ?", "? \xff\x00\x80 ?\n"},
		{"", "a\nb", "? a\nb\n"},
		{"? x\n", "y", "? x\n? y\n"},
	}
	for _, tc := range tests {
		got := appendInvalid([]byte(tc.dst), []byte(tc.raw))
		if string(got) != tc.want {
			t.Errorf("appendInvalid(%q, %q) = %q, want %q", tc.dst, tc.raw, got, tc.want)
		}
	}
}

var (
	msgSinkIAMAT   iamat
	msgSinkWHATSAT whatsat
	msgSinkRecord  Record
	msgSinkBool    bool
)

func TestAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	line := []byte(msgExampleIAMAT + "\r\n")
	var f fieldList
	if a := testing.AllocsPerRun(100, func() {
		n := splitFields(line, &f)
		msgSinkIAMAT, msgSinkBool = parseIAMAT(&f, n)
	}); a != 0 {
		t.Errorf("splitFields+parseIAMAT: %v allocs per run, want 0", a)
	}
	if !msgSinkBool {
		t.Fatal("parseIAMAT failed")
	}

	m := msgMustIAMAT(t, msgExampleIAMAT)
	buf := make([]byte, 0, 256)
	if a := testing.AllocsPerRun(100, func() {
		buf = appendAT(buf[:0], "Goloman", msgExampleRecv, &m)
	}); a != 0 {
		t.Errorf("appendAT: %v allocs per run, want 0", a)
	}
	if string(buf) != msgExampleAT {
		t.Errorf("appendAT = %q", buf)
	}

	skew := make([]byte, 0, 64)
	if a := testing.AllocsPerRun(100, func() {
		skew = appendSkew(skew[:0], time.Unix(math.MinInt64, 0), math.MaxInt64, 999999999)
	}); a != 0 {
		t.Errorf("appendSkew: %v allocs per run, want 0", a)
	}

	inv := make([]byte, 0, 256)
	if a := testing.AllocsPerRun(100, func() {
		inv = appendInvalid(inv[:0], line)
	}); a != 0 {
		t.Errorf("appendInvalid: %v allocs per run, want 0", a)
	}

	wline := []byte("WHATSAT kiwi.cs.ucla.edu 10.5871263 5\r\n")
	if a := testing.AllocsPerRun(100, func() {
		n := splitFields(wline, &f)
		msgSinkWHATSAT, msgSinkBool = parseWHATSAT(&f, n)
	}); a != 0 {
		t.Errorf("splitFields+parseWHATSAT: %v allocs per run, want 0", a)
	}
	if !msgSinkBool || msgSinkWHATSAT.radiusMeters != 10587.1263 {
		t.Fatalf("parseWHATSAT = %v, %v", msgSinkWHATSAT, msgSinkBool)
	}

	// parseAT makes exactly one string, the record's Line; every other
	// field is a sub-string of it.
	at := []byte(msgExampleAT)
	if a := testing.AllocsPerRun(100, func() {
		msgSinkRecord, msgSinkBool = parseAT(at)
	}); a != 1 {
		t.Errorf("parseAT: %v allocs per run, want 1", a)
	}
	// A rejected line costs nothing.
	bad := []byte(msgExampleAT + " ")
	if a := testing.AllocsPerRun(100, func() {
		msgSinkRecord, msgSinkBool = parseAT(bad)
	}); a != 0 {
		t.Errorf("parseAT of a bad line: %v allocs per run, want 0", a)
	}
}

func BenchmarkParseIAMAT(b *testing.B) {
	line := []byte(msgExampleIAMAT + "\r\n")
	var f fieldList
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	// b.Loop keeps the calls; the result stays local, because storing
	// it to a package variable would add write barriers to the measure.
	var m iamat
	ok := false
	for b.Loop() {
		n := splitFields(line, &f)
		m, ok = parseIAMAT(&f, n)
	}
	if !ok || m.sec != 1520023934 || m.nsec != 918963997 {
		b.Fatalf("parseIAMAT = %+v, %v", m, ok)
	}
}

func BenchmarkAppendAT(b *testing.B) {
	m := msgMustIAMAT(b, msgExampleIAMAT)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(msgExampleAT)))
	for b.Loop() {
		buf = appendAT(buf[:0], "Goloman", msgExampleRecv, &m)
	}
	if string(buf) != msgExampleAT {
		b.Fatalf("appendAT = %q", buf)
	}
}

func BenchmarkParseAT(b *testing.B) {
	line := []byte(msgExampleAT)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		msgSinkRecord, msgSinkBool = parseAT(line)
	}
	if !msgSinkBool {
		b.Fatal("parseAT failed")
	}
}

// TestParseClientTimeDifferential compares parseClientTime, which reads
// eight digits at a time, with a plain reference on seeded random texts
// over an alphabet that makes every word boundary and digit count likely.
func TestParseClientTimeDifferential(t *testing.T) {
	ref := func(s string) (int64, int32, bool) {
		whole, frac, dot := strings.Cut(s, ".")
		isDigits := func(s string) bool {
			return s != "" && strings.Trim(s, "0123456789") == ""
		}
		if !isDigits(whole) || (dot && !isDigits(frac)) {
			return 0, 0, false
		}
		sec, err := strconv.ParseInt(whole, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		frac = (frac + "000000000")[:9]
		nsec, _ := strconv.Atoi(frac)
		return sec, int32(nsec), true
	}
	const seed = 7
	rng := rand.New(rand.NewPCG(seed, seed))
	alphabet := "0000123456789999..x/:\x00\xb9\xff"
	b := make([]byte, 0, 48)
	for i := range 200000 {
		b = b[:0]
		for range rng.IntN(40) {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		if i%2 == 0 { // mostly well formed: digits, a point, digits
			b = b[:0]
			for range rng.IntN(22) {
				b = append(b, byte('0'+rng.IntN(10)))
			}
			if rng.IntN(4) > 0 {
				b = append(b, '.')
				for range rng.IntN(14) {
					b = append(b, byte('0'+rng.IntN(10)))
				}
			}
		}
		sec, nsec, ok := parseClientTime(b)
		wsec, wnsec, wok := ref(string(b))
		if sec != wsec || nsec != wnsec || ok != wok {
			t.Fatalf("seed %d case %d: parseClientTime(%q) = %d, %d, %v; want %d, %d, %v", seed, i, b, sec, nsec, ok, wsec, wnsec, wok)
		}
	}
}
