// Package gdoc reads and writes JSON documents in the shape of Google's
// legacy Places Nearby Search: the scanners that find where values end
// (package herd cuts WHATSAT bodies with them, package places classifies
// provider answers), and the writer that lays documents out byte for byte
// as Google does (the offline catalogue, the Places API (New) translation
// and herd's error replies all write through it, so that every provider
// answers WHATSAT in one shape).
package gdoc

// scan.go: the JSON scanners, and small text helpers shared by package
// herd and package places.

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The JSON scanners below assume valid JSON (json.Valid) and only find
// where things end; out of range they return len(b) instead of panicking.

// SkipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// SkipString returns the index just past the string that starts with the
// quote at b[i], honouring backslash escapes.
func SkipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// SkipValue returns the index just past the value that starts at b[i].
func SkipValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return SkipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = SkipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	default: // number, true, false, null
		for i < len(b) && !strings.ContainsRune(",]} \n\r\t", rune(b[i])) {
			i++
		}
		return i
	}
}

// MemberName returns the quoted member name key (a valid JSON string)
// unquoted, or "" if it cannot be.
func MemberName(key []byte) string {
	if bytes.IndexByte(key, '\\') < 0 {
		if len(key) < 2 {
			return ""
		}
		return string(key[1 : len(key)-1])
	}
	var name string
	if json.Unmarshal(key, &name) != nil {
		return ""
	}
	return name
}

// FormatFloat writes f in plain decimal with as many digits as it needs
// (10587.1263 stays 10587.1263, never 1.05871263e+04).
func FormatFloat(f float64) string {
	if f == 0 {
		f = 0 // -0 (a location of "-0.0") is written as 0
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Snippet renders the start of a response body for an error message: valid
// UTF-8, white space runs folded to one space, at most limit bytes and
// "..." when cut.
func Snippet(b []byte, limit int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
