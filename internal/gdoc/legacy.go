package gdoc

// legacy.go: writing legacy Nearby Search documents in Google's
// layout. The offline Catalogue, the translation of Places API (New)
// answers and the error replies all write through it, so that every
// provider answers WHATSAT in one shape, byte for byte alike.

import (
	"strconv"
	"unicode/utf8"
)

// Result is one entry of a legacy Nearby Search "results" array.
// Empty strings and nil pointers are left out of the written result, and
// so is Types when it is nil (an empty, non-nil types is written as []);
// geometry is written when HasLocation is set.
type Result struct {
	BusinessStatus      string
	HasLocation         bool
	Lat, Lng            float64
	Icon                string
	IconBackgroundColor string
	IconMaskBaseURI     string
	Name                string
	OpenNow             *bool
	PlaceID             string
	PriceLevel          *int
	Rating              *float64
	Types               []string
	UserRatingsTotal    *float64
	Vicinity            string
}

// googleObject writes the members of one JSON object in Google's layout,
// minding the commas: begin it with [googleWriter.object], start each
// member with key and write its value, then call end.
type googleObject struct {
	w       *googleWriter
	level   int // the depth of the object's braces
	members int
}

// object writes the opening brace of an object whose braces sit at depth
// level (the caller has written the indent before it, if any).
func (w *googleWriter) object(level int) googleObject {
	w.raw("{")
	return googleObject{w: w, level: level}
}

// key ends the previous member, if any, and writes the next member's name.
func (o *googleObject) key(name string) {
	if o.members > 0 {
		o.w.raw(",")
	}
	o.w.raw("\n")
	o.w.member(o.level+1, name)
	o.members++
}

// end writes the closing brace: "{}" for an object without members.
func (o *googleObject) end() {
	if o.members > 0 {
		o.w.raw("\n")
		o.w.indent(o.level)
	}
	o.w.raw("}")
}

// legacyDoc writes a whole legacy Nearby Search document, members in
// Google's (alphabetical) order: error_message when msg is not empty, an
// empty html_attributions, results, and status. It writes no newline after
// the closing brace.
func (w *googleWriter) legacyDoc(status, msg string, results []Result) {
	doc := w.object(0)
	if msg != "" {
		doc.key("error_message")
		w.str(msg)
	}
	doc.key("html_attributions")
	w.raw("[]")
	doc.key("results")
	if len(results) == 0 {
		w.raw("[]")
	} else {
		w.raw("[\n")
		for i := range results {
			w.result(2, &results[i])
			if i < len(results)-1 {
				w.raw(",")
			}
			w.raw("\n")
		}
		w.indent(1)
		w.raw("]")
	}
	doc.key("status")
	w.str(status)
	doc.end()
}

// Answer returns the legacy document of a successful lookup,
// followed by a newline as Google ends its documents: results, with status
// OK, or ZERO_RESULTS when there are none.
func Answer(results []Result) []byte {
	status := "OK"
	if len(results) == 0 {
		status = "ZERO_RESULTS"
	}
	w := googleWriter{b: make([]byte, 0, 128+512*len(results))}
	w.legacyDoc(status, "", results)
	w.raw("\n")
	return w.b
}

// ErrorDoc returns the legacy document with an empty results, the
// given status and msg as its error_message, without a trailing newline.
func ErrorDoc(status, msg string) []byte {
	w := googleWriter{b: make([]byte, 0, len(msg)+128)}
	w.legacyDoc(status, msg, nil)
	return w.b
}

// result writes r as an element of a results array whose elements sit at
// depth level, members in Google's (alphabetical) order.
func (w *googleWriter) result(level int, r *Result) {
	w.indent(level)
	o := w.object(level)
	text := func(name, s string) {
		if s != "" {
			o.key(name)
			w.str(s)
		}
	}
	number := func(name string, f *float64) {
		if f != nil {
			o.key(name)
			w.raw(FormatFloat(*f))
		}
	}
	text("business_status", r.BusinessStatus)
	if r.HasLocation {
		o.key("geometry")
		g := w.object(level + 1)
		g.key("location")
		l := w.object(level + 2)
		l.key("lat")
		w.raw(FormatFloat(r.Lat))
		l.key("lng")
		w.raw(FormatFloat(r.Lng))
		l.end()
		g.end()
	}
	text("icon", r.Icon)
	text("icon_background_color", r.IconBackgroundColor)
	text("icon_mask_base_uri", r.IconMaskBaseURI)
	text("name", r.Name)
	if r.OpenNow != nil {
		o.key("opening_hours")
		h := w.object(level + 1)
		h.key("open_now")
		w.raw(strconv.FormatBool(*r.OpenNow))
		h.end()
	}
	text("place_id", r.PlaceID)
	if r.PriceLevel != nil {
		o.key("price_level")
		w.raw(strconv.Itoa(*r.PriceLevel))
	}
	number("rating", r.Rating)
	if r.Types != nil {
		o.key("types")
		w.stringArray(r.Types)
	}
	number("user_ratings_total", r.UserRatingsTotal)
	text("vicinity", r.Vicinity)
	o.end()
}

// stringArray writes ss on one line, as Google writes arrays of strings:
// [ "a", "b" ], or [] when empty.
func (w *googleWriter) stringArray(ss []string) {
	if len(ss) == 0 {
		w.raw("[]")
		return
	}
	w.raw("[ ")
	for i, s := range ss {
		if i > 0 {
			w.raw(", ")
		}
		w.str(s)
	}
	w.raw(" ]")
}

// googleWriter writes JSON laid out like Google's Places documents: three
// spaces per level, `"name" : value`, members in the order written
// (Google's are alphabetical), arrays of strings on one line.
type googleWriter struct{ b []byte }

func (w *googleWriter) raw(s string) { w.b = append(w.b, s...) }

func (w *googleWriter) indent(level int) {
	for range level {
		w.b = append(w.b, "   "...)
	}
}

// member writes the indent, the quoted name and " : ".
func (w *googleWriter) member(level int, name string) {
	w.indent(level)
	w.str(name)
	w.raw(" : ")
}

// str writes s as a JSON string, escaping as encoding/json does without
// HTML escaping (Google does not escape <, > and & either): invalid UTF-8
// becomes U+FFFD.
func (w *googleWriter) str(s string) { w.b = AppendString(w.b, s) }

// AppendString appends s to b as a JSON string, byte for byte as
// encoding/json writes it with SetEscapeHTML(false).
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
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
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
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
