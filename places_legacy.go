package herd

// places_legacy.go: writing legacy Nearby Search documents in Google's
// layout. The offline Catalogue, the translation of Places API (New)
// answers and the error replies all write through it, so that every
// provider answers WHATSAT in one shape, byte for byte alike.

import "strconv"

// legacyResult is one entry of a legacy Nearby Search "results" array.
// Empty strings and nil pointers are left out of the written result, and
// so is types when it is nil (an empty, non-nil types is written as []);
// geometry is written when hasLocation is set.
type legacyResult struct {
	businessStatus      string
	hasLocation         bool
	lat, lng            float64
	icon                string
	iconBackgroundColor string
	iconMaskBaseURI     string
	name                string
	openNow             *bool
	placeID             string
	priceLevel          *int
	rating              *float64
	types               []string
	userRatingsTotal    *float64
	vicinity            string
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
func (w *googleWriter) legacyDoc(status, msg string, results []legacyResult) {
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

// legacyAnswer returns the legacy document of a successful lookup,
// followed by a newline as Google ends its documents: results, with status
// OK, or ZERO_RESULTS when there are none.
func legacyAnswer(results []legacyResult) []byte {
	status := "OK"
	if len(results) == 0 {
		status = "ZERO_RESULTS"
	}
	w := googleWriter{b: make([]byte, 0, 128+512*len(results))}
	w.legacyDoc(status, "", results)
	w.raw("\n")
	return w.b
}

// legacyErrorJSON returns the legacy document with an empty results, the
// given status and msg as its error_message, without a trailing newline.
func legacyErrorJSON(status, msg string) []byte {
	w := googleWriter{b: make([]byte, 0, len(msg)+128)}
	w.legacyDoc(status, msg, nil)
	return w.b
}

// result writes r as an element of a results array whose elements sit at
// depth level, members in Google's (alphabetical) order.
func (w *googleWriter) result(level int, r *legacyResult) {
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
			w.raw(formatFloat(*f))
		}
	}
	text("business_status", r.businessStatus)
	if r.hasLocation {
		o.key("geometry")
		g := w.object(level + 1)
		g.key("location")
		l := w.object(level + 2)
		l.key("lat")
		w.raw(formatFloat(r.lat))
		l.key("lng")
		w.raw(formatFloat(r.lng))
		l.end()
		g.end()
	}
	text("icon", r.icon)
	text("icon_background_color", r.iconBackgroundColor)
	text("icon_mask_base_uri", r.iconMaskBaseURI)
	text("name", r.name)
	if r.openNow != nil {
		o.key("opening_hours")
		h := w.object(level + 1)
		h.key("open_now")
		w.raw(strconv.FormatBool(*r.openNow))
		h.end()
	}
	text("place_id", r.placeID)
	if r.priceLevel != nil {
		o.key("price_level")
		w.raw(strconv.Itoa(*r.priceLevel))
	}
	number("rating", r.rating)
	if r.types != nil {
		o.key("types")
		w.stringArray(r.types)
	}
	number("user_ratings_total", r.userRatingsTotal)
	text("vicinity", r.vicinity)
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
