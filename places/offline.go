package places

// offline.go: a Places provider that answers from a fixed list of
// places, for demos without a Google key and for tests. It writes the
// legacy Nearby Search document, laid out as Google lays it out.

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/gdoc"
)

// Place is one entry of a [Catalogue].
type Place struct {
	// Name is what the place is called. Required.
	Name string
	// PlaceID identifies the place in answers ("place_id"). Empty means
	// one derived from Name and the location ("offline-" and 16 hex
	// digits); IDs must be unique within a catalogue.
	PlaceID string
	// Lat and Lng are the place's location in decimal degrees
	// (-90 to 90, -180 to 180).
	Lat, Lng float64
	// Types are Google place types, such as "cafe" or "university".
	// Optional.
	Types []string
	// Vicinity is a short address, such as "580 Portola Plaza, Los
	// Angeles". Optional; left out of answers when empty.
	Vicinity string
}

// Catalogue is an offline [herd.PlacesClient]: it answers Nearby Search queries
// from a fixed list of places, with no network, in the legacy Nearby Search
// shape (html_attributions, results with geometry.location, name,
// place_id, types and vicinity, and status), laid out like Google's own
// documents (three-space indent, " : " between names and values).
//
// Build one with [ParseCatalogue], [LoadCatalogue] or [NewCatalogue], or
// use [DefaultCatalogue]. A Catalogue never changes after it is built and
// is safe for concurrent use; a nil *Catalogue has no places.
type Catalogue struct {
	source string // the file it was loaded from, if any
	places []Place
}

// catalogueMaxResults is the most results a Catalogue answer holds,
// Google's page size.
const catalogueMaxResults = 20

// earthRadiusMeters is the mean Earth radius (IUGG) used for distances.
const earthRadiusMeters = 6371008.8

// NewCatalogue validates places and returns a catalogue of copies of
// them, deriving missing place IDs, for programs and tests that build
// their places in Go. Errors name the entry and field ("herd: catalogue:
// places[3] (\"Royce Hall\"): location.lat: ..."). It does no I/O and
// does not block.
func NewCatalogue(places []Place) (*Catalogue, error) {
	c := &Catalogue{places: make([]Place, len(places))}
	seen := make(map[string]int, len(places))
	for i, p := range places {
		p.Types = slices.Clone(p.Types)
		if err := checkPlace(&p); err != nil {
			return nil, fmt.Errorf("herd: catalogue: %s: %w", placeRef(i, p.Name), err)
		}
		if j, dup := seen[p.PlaceID]; dup {
			return nil, fmt.Errorf("herd: catalogue: %s: place_id %q is also the ID of %s", placeRef(i, p.Name), p.PlaceID, placeRef(j, places[j].Name))
		}
		seen[p.PlaceID] = i
		c.places[i] = p
	}
	return c, nil
}

// placeRef names entry i of a catalogue in errors.
func placeRef(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("places[%d]", i)
	}
	return fmt.Sprintf("places[%d] (%q)", i, name)
}

// checkPlace validates p and fills in a derived PlaceID.
func checkPlace(p *Place) error {
	if strings.TrimSpace(p.Name) == "" {
		return errors.New("name: must be a non-empty string")
	}
	if math.IsNaN(p.Lat) || p.Lat < -90 || p.Lat > 90 {
		return fmt.Errorf("location.lat: %v is outside [-90, 90]", p.Lat)
	}
	if math.IsNaN(p.Lng) || p.Lng < -180 || p.Lng > 180 {
		return fmt.Errorf("location.lng: %v is outside [-180, 180]", p.Lng)
	}
	for j, t := range p.Types {
		if t == "" || strings.ContainsAny(t, protocolSpace) {
			return fmt.Errorf("types[%d]: %q is not a place type (non-empty, no white space)", j, t)
		}
	}
	if p.PlaceID == "" {
		h := sha256.Sum256([]byte(p.Name + "\x00" + gdoc.FormatFloat(p.Lat) + "," + gdoc.FormatFloat(p.Lng)))
		p.PlaceID = "offline-" + hex.EncodeToString(h[:8])
	}
	return nil
}

// catalogueFile is the JSON form of a catalogue file.
type catalogueFile struct {
	Places *[]json.RawMessage `json:"places"`
}

// catalogueEntry is the JSON form of one place; pointers tell a missing
// member from a zero one.
type catalogueEntry struct {
	Name     *string `json:"name"`
	PlaceID  string  `json:"place_id"`
	Location *struct {
		Lat *float64 `json:"lat"`
		Lng *float64 `json:"lng"`
	} `json:"location"`
	Types    []string `json:"types"`
	Vicinity string   `json:"vicinity"`
}

// ParseCatalogue parses a catalogue file:
//
//	{"places": [
//	  {"name": "Boelter Hall", "location": {"lat": 34.0692, "lng": -118.4431},
//	   "types": ["university", "establishment"], "vicinity": "580 Portola Plaza, Los Angeles",
//	   "place_id": "optional"},
//	  ...
//	]}
//
// name and location (lat and lng) are required; types, vicinity and
// place_id are optional; other members are errors, so that typos do not
// pass silently. Errors name the line and column of JSON syntax errors,
// and the entry and member of everything else ("herd: catalogue:
// places[3] (\"Royce Hall\"): location.lat: 91 is outside [-90, 90]").
// [LoadCatalogue] calls it on a file's bytes; programs holding a catalogue
// in memory call it directly. It does no I/O and does not block.
func ParseCatalogue(data []byte) (*Catalogue, error) {
	var f catalogueFile
	if err := strictUnmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("herd: catalogue: %s", describeJSONError(data, err))
	}
	if f.Places == nil {
		return nil, errors.New(`herd: catalogue: want an object with a "places" array`)
	}
	places := make([]Place, len(*f.Places))
	for i, raw := range *f.Places {
		var e catalogueEntry
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			return nil, fmt.Errorf("herd: catalogue: places[%d]: want an object, got %s", i, gdoc.Snippet(t, 40))
		}
		if err := strictUnmarshal(raw, &e); err != nil {
			name := ""
			var probe struct {
				Name string `json:"name"`
			}
			if json.Unmarshal(raw, &probe) == nil {
				name = probe.Name
			}
			return nil, fmt.Errorf("herd: catalogue: %s: %s", placeRef(i, name), describeJSONError(raw, err))
		}
		name := ""
		if e.Name != nil {
			name = *e.Name
		}
		switch {
		case e.Name == nil:
			return nil, fmt.Errorf("herd: catalogue: %s: name: missing", placeRef(i, ""))
		case e.Location == nil:
			return nil, fmt.Errorf("herd: catalogue: %s: location: missing", placeRef(i, name))
		case e.Location.Lat == nil:
			return nil, fmt.Errorf("herd: catalogue: %s: location.lat: missing", placeRef(i, name))
		case e.Location.Lng == nil:
			return nil, fmt.Errorf("herd: catalogue: %s: location.lng: missing", placeRef(i, name))
		}
		places[i] = Place{
			Name:     name,
			PlaceID:  e.PlaceID,
			Lat:      *e.Location.Lat,
			Lng:      *e.Location.Lng,
			Types:    e.Types,
			Vicinity: e.Vicinity,
		}
	}
	return NewCatalogue(places)
}

// strictUnmarshal decodes exactly one JSON value from data into v,
// refusing unknown members.
func strictUnmarshal(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("unexpected data after the top-level value")
	}
	return nil
}

// describeJSONError renders a decoding error of data for a person: where
// a syntax error is (line and column), which member has the wrong type.
func describeJSONError(data []byte, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(data, se.Offset-1) // Offset is just past the bad byte
		return fmt.Sprintf("line %d, column %d: %s", line, col, se.Error())
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("%s: want %s, got a JSON %s", field, jsonKind(te.Type), te.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// lineCol returns the 1-based line and column of the byte at offset in
// data.
func lineCol(data []byte, offset int64) (line, col int) {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = len(before) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "an array of strings"
		}
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return t.String()
}

// LoadCatalogue reads and parses the catalogue file at path (see
// [ParseCatalogue]); [New] calls it for [Config.Catalogue],
// once, at start-up. Errors name the path. It blocks only while reading
// the file.
func LoadCatalogue(path string) (*Catalogue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("herd: catalogue: %w", err)
	}
	c, err := ParseCatalogue(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.source = path
	return c, nil
}

// embeddedCatalogue is the catalogue DefaultCatalogue serves. It lives at
// the module root, beside this file, rather than under testdata: it is
// shipped data of the library, and tools are free to drop testdata
// directories from what they package.
//
//go:embed catalogue.json
var embeddedCatalogue []byte

var defaultCatalogue = sync.OnceValue(func() *Catalogue {
	c, err := ParseCatalogue(embeddedCatalogue)
	if err != nil {
		panic("herd: embedded catalogue: " + err.Error()) // a test proves it parses
	}
	return c
})

// DefaultCatalogue returns the catalogue built into the package: about 30
// places around UCLA in Westwood, Los Angeles (where the protocol's
// example client, kiwi.cs.ucla.edu, reports from), a few farther across
// Los Angeles and a few elsewhere in the world. The locations are close to
// the real ones but are demo data, not a reference. [New] uses it
// when no Google key is set. The result is shared and immutable; the
// first call parses it, and no call blocks otherwise. The data is the file
// catalogue.json beside this file.
func DefaultCatalogue() *Catalogue { return defaultCatalogue() }

// Len returns the number of places. It does not block.
func (c *Catalogue) Len() int {
	if c == nil {
		return 0
	}
	return len(c.places)
}

// Places returns a copy of the catalogue's places, in file order, with
// derived place IDs filled in. It does not block.
func (c *Catalogue) Places() []Place {
	if c == nil {
		return nil
	}
	out := slices.Clone(c.places)
	for i := range out {
		out[i].Types = slices.Clone(out[i].Types)
	}
	return out
}

// String describes the catalogue for logs and demos: "offline catalogue
// (39 places)", or "offline catalogue places.json (3 places)" for one
// loaded from a file. [New]'s result returns it
// for the demo to print. It does not block.
func (c *Catalogue) String() string {
	n := c.Len()
	unit := "places"
	if n == 1 {
		unit = "place"
	}
	if c == nil || c.source == "" {
		return fmt.Sprintf("offline catalogue (%d %s)", n, unit)
	}
	return fmt.Sprintf("offline catalogue %s (%d %s)", c.source, n, unit)
}

// Nearby answers q from the catalogue: the places within q.RadiusMeters of
// (q.Lat, q.Lon) along the Earth's surface (haversine on a sphere of the
// mean Earth radius), nearest first, ties broken by name and then place
// ID, at most q.MaxResults of them (at most 20; a bound of 0 or less means
// 20), with status "OK", or an empty results array and status
// "ZERO_RESULTS" when none is near.
//
// The node calls it from a client connection's goroutine, possibly from
// several at once. It does no I/O and does not block; it returns ctx's
// error if ctx is already done, and never fails otherwise.
func (c *Catalogue) Nearby(ctx context.Context, q herd.NearbyQuery) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("herd: offline catalogue: %w", err)
	}
	bound := q.MaxResults
	if bound <= 0 || bound > catalogueMaxResults {
		bound = catalogueMaxResults
	}
	type hit struct {
		p *Place
		d float64
	}
	var hits []hit
	if c != nil {
		for i := range c.places {
			p := &c.places[i]
			if d := haversineMeters(q.Lat, q.Lon, p.Lat, p.Lng); d <= q.RadiusMeters {
				hits = append(hits, hit{p, d})
			}
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if a.d != b.d {
			if a.d < b.d {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.p.Name, b.p.Name); c != 0 {
			return c
		}
		return strings.Compare(a.p.PlaceID, b.p.PlaceID)
	})
	hits = hits[:min(len(hits), bound)]

	results := make([]gdoc.Result, len(hits))
	for i, h := range hits {
		results[i] = h.p.legacy()
	}
	return gdoc.Answer(results), nil
}

// protocolSpace holds the bytes that separate fields on the wire
// (docs/protocol.md section 1), which a place type must not contain.
const protocolSpace = " \t\r\n\f\v"

// haversineMeters returns the great-circle distance in metres between two
// points given in decimal degrees.
func haversineMeters(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	φ1, φ2 := lat1*rad, lat2*rad
	dφ, dλ := (lat2-lat1)*rad, (lon2-lon1)*rad
	s1, s2 := math.Sin(dφ/2), math.Sin(dλ/2)
	a := s1*s1 + math.Cos(φ1)*math.Cos(φ2)*s2*s2
	return 2 * earthRadiusMeters * math.Asin(math.Sqrt(min(a, 1)))
}

// legacy returns p as a legacy result: a catalogue result always has its
// geometry, name, place_id and types ([] when it has none), and a vicinity
// when it has one.
func (p *Place) legacy() gdoc.Result {
	types := p.Types
	if types == nil {
		types = []string{}
	}
	return gdoc.Result{
		HasLocation: true, Lat: p.Lat, Lng: p.Lng,
		Name:     p.Name,
		PlaceID:  p.PlaceID,
		Types:    types,
		Vicinity: p.Vicinity,
	}
}
