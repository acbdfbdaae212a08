package logging

// format.go: the pieces of a line. Strings, numbers and times are
// appended directly; the common case (a printable ASCII string) is one
// scan and one copy.

import (
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// secondCache holds the text of one UTC second, "2006-01-02T15:04:05":
// lines logged within a second share it.
type secondCache struct {
	sec  int64
	text string
}

var lastSecond atomic.Pointer[secondCache]

// appendTime appends t in UTC to the microsecond:
// 2026-11-29T15:04:05.123456Z.
func appendTime(b []byte, t time.Time) []byte {
	sec := t.Unix()
	c := lastSecond.Load()
	if c == nil || c.sec != sec {
		c = &secondCache{sec: sec, text: t.UTC().Format("2006-01-02T15:04:05")}
		lastSecond.Store(c)
	}
	b = append(b, c.text...)
	us := t.Nanosecond() / 1000
	var d [8]byte
	d[0] = '.'
	for i := 6; i >= 1; i-- {
		d[i] = byte('0' + us%10)
		us /= 10
	}
	d[7] = 'Z'
	return append(b, d[:]...)
}

// appendLevel appends the level's name: DEBUG, INFO, WARN, ERROR, or
// slog's "INFO+2" form for the others.
func appendLevel(b []byte, l slog.Level) []byte {
	switch l {
	case slog.LevelDebug:
		return append(b, "DEBUG"...)
	case slog.LevelInfo:
		return append(b, "INFO"...)
	case slog.LevelWarn:
		return append(b, "WARN"...)
	case slog.LevelError:
		return append(b, "ERROR"...)
	}
	return append(b, l.String()...)
}

// Byte classes for text values, ORed over a string in one pass.
const (
	byteQuote    = 1 << iota // space, '"' or '=': the value is quoted
	byteEscape               // '"' or '\\': escaped inside quotes
	byteComplex              // a control byte or DEL: strconv quotes it
	byteNonASCII             // part of a multi-byte rune: checked rune by rune
)

// byteClass is the class of each byte.
var byteClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= utf8.RuneSelf:
			t[c] = byteNonASCII
		case c < ' ' || c == 0x7f:
			t[c] = byteComplex
		case c == ' ' || c == '=':
			t[c] = byteQuote
		case c == '"':
			t[c] = byteQuote | byteEscape
		case c == '\\':
			t[c] = byteEscape
		}
	}
	return t
}()

// classOf ORs the classes of s's bytes.
func classOf[S ~string | ~[]byte](s S) uint8 {
	var m uint8
	for i := 0; i < len(s); i++ {
		m |= byteClass[s[i]]
	}
	return m
}

// needsStrconv reports whether s, of class m, is quoted by strconv: it
// holds a control byte, or runes beyond ASCII of which one is not
// printable, is white space, or is not valid UTF-8. Like
// slog.TextHandler, printable runes are kept as they are.
func needsStrconv(s string, m uint8) bool {
	if m&byteComplex != 0 {
		return true
	}
	if m&byteNonASCII == 0 {
		return false
	}
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) || r >= utf8.RuneSelf && unicode.IsSpace(r) {
			return true
		}
	}
	return false
}

// appendTextString appends s as a text value: bare unless it is empty or
// holds white space, '"', '=' or a byte that is not printable (as
// slog.TextHandler decides), else in quotes.
func appendTextString(b []byte, s string) []byte {
	m := classOf(s)
	switch {
	case needsStrconv(s, m):
		return strconv.AppendQuote(b, s)
	case s == "" || m&byteQuote != 0:
		return appendQuoted(b, s, m&byteEscape != 0)
	}
	return append(b, s...)
}

// appendQuoted appends s in double quotes, with '"' and '\\' escaped by a
// backslash when escape is set (else s holds neither).
func appendQuoted[T ~string | ~[]byte](b []byte, s T, escape bool) []byte {
	b = append(b, '"')
	if !escape {
		b = append(b, s...)
		return append(b, '"')
	}
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', c)
			start = i + 1
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendMessage appends a text line's message: as it is, spaces
// included, unless it is empty or holds '=', '"' or anything but
// printable ASCII and printable non-space runes; then quoted, so that a
// reader can tell where the attributes start.
func appendMessage(b []byte, s string) []byte {
	if s != "" && !strings.ContainsAny(s, `="`) && !needsStrconv(s, classOf(s)) {
		return append(b, s...)
	}
	return appendTextString(b, s)
}

// appendTextBytes is appendTextString for a line's bytes, without
// converting them to a string unless they need strconv's quoting.
func appendTextBytes(b, s []byte) []byte {
	m := classOf(s)
	if m&(byteComplex|byteNonASCII) != 0 {
		return appendTextString(b, string(s))
	}
	if len(s) > 0 && m&byteQuote == 0 {
		return append(b, s...)
	}
	return appendQuoted(b, s, m&byteEscape != 0)
}

// appendJSONBytes is appendJSONString for a line's bytes, without
// converting printable ASCII to a string.
func appendJSONBytes(b, s []byte) []byte {
	if classOf(s)&(byteComplex|byteNonASCII) != 0 {
		return appendJSONString(b, string(s))
	}
	return appendQuoted(b, s, true)
}

// appendTextAttr appends " key=value" for a, with the groups' prefix on
// the key; groups become dotted keys, and empty attributes and groups are
// left out, as slog.TextHandler does.
func appendTextAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, m := range a.Value.Group() {
			b = appendTextAttr(b, prefix, m)
		}
		return b
	}
	b = append(b, ' ')
	if prefix == "" {
		b = appendTextString(b, a.Key)
	} else {
		b = appendTextString(b, prefix+a.Key)
	}
	b = append(b, '=')
	return appendTextValue(b, a.Value)
}

// appendTextValue appends a resolved value that is not a group.
func appendTextValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendTextString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return append(b, v.Duration().String()...)
	case slog.KindTime:
		return v.Time().AppendFormat(b, time.RFC3339Nano)
	}
	switch x := v.Any().(type) {
	case error:
		return appendTextString(b, x.Error())
	case encoding.TextMarshaler:
		t, err := x.MarshalText()
		if err != nil {
			return appendTextString(b, "!ERROR:"+err.Error())
		}
		return appendTextString(b, string(t))
	case []byte:
		return strconv.AppendQuote(b, string(x))
	default:
		return appendTextString(b, fmt.Sprintf("%+v", x))
	}
}

// appendJSONString appends s as a JSON string, escaped as
// slog.JSONHandler does (no HTML escaping; invalid UTF-8 becomes U+FFFD).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= ' ' && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigit[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

const hexDigit = "0123456789abcdef"

// appendJSONAttr appends a as a member of the object being written,
// preceded by a comma unless first; it returns whether the next member is
// still the first. Empty attributes and groups are left out; a group with
// an empty key is inlined.
func appendJSONAttr(b []byte, a slog.Attr, first bool) ([]byte, bool) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b, first
	}
	if a.Value.Kind() == slog.KindGroup {
		members := a.Value.Group()
		if a.Key == "" {
			for _, m := range members {
				b, first = appendJSONAttr(b, m, first)
			}
			return b, first
		}
		mark := len(b)
		if !first {
			b = append(b, ',')
		}
		b = appendJSONString(b, a.Key)
		b = append(b, ":{"...)
		inner := len(b)
		inFirst := true
		for _, m := range members {
			b, inFirst = appendJSONAttr(b, m, inFirst)
		}
		if len(b) == inner {
			return b[:mark], first // nothing in it: leave the group out
		}
		return append(b, '}'), false
	}
	if !first {
		b = append(b, ',')
	}
	b = appendJSONString(b, a.Key)
	b = append(b, ':')
	return appendJSONValue(b, a.Value), false
}

// appendJSONValue appends a resolved value that is not a group.
func appendJSONValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendJSONString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		f := v.Float64()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return appendJSONString(b, strconv.FormatFloat(f, 'g', -1, 64))
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return strconv.AppendInt(b, int64(v.Duration()), 10) // nanoseconds, as slog.JSONHandler
	case slog.KindTime:
		b = append(b, '"')
		b = v.Time().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	x := v.Any()
	if err, ok := x.(error); ok {
		if _, custom := x.(json.Marshaler); !custom {
			return appendJSONString(b, err.Error())
		}
	}
	j, err := json.Marshal(x)
	if err != nil {
		return appendJSONString(b, fmt.Sprintf("!ERROR:%v", err))
	}
	return append(b, j...)
}
