package places

// translate.go: turning a Places API (New) searchNearby answer
// into the legacy Nearby Search document that the protocol promises, so
// that WHATSAT has one shape whichever Google API is behind the server.

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/proxyherd/herd/internal/gdoc"
)

// newPlacesDoc is the part of a searchNearby response that the
// translation reads; other members are ignored.
type newPlacesDoc struct {
	Places []newPlace `json:"places"`
}

// newPlace is one place of a searchNearby response. Pointers tell a
// missing member from a zero one.
type newPlace struct {
	BusinessStatus        string     `json:"businessStatus"`
	CurrentOpeningHours   *newHours  `json:"currentOpeningHours"`
	DisplayName           *newText   `json:"displayName"`
	FormattedAddress      string     `json:"formattedAddress"`
	IconBackgroundColor   string     `json:"iconBackgroundColor"`
	IconMaskBaseURI       string     `json:"iconMaskBaseUri"`
	ID                    string     `json:"id"`
	Location              *newLatLng `json:"location"`
	PriceLevel            string     `json:"priceLevel"`
	Rating                *float64   `json:"rating"`
	RegularOpeningHours   *newHours  `json:"regularOpeningHours"`
	ShortFormattedAddress string     `json:"shortFormattedAddress"`
	Types                 []string   `json:"types"`
	UserRatingCount       *float64   `json:"userRatingCount"`
}

// newText is a LocalizedText.
type newText struct {
	Text string `json:"text"`
}

// newLatLng is a LatLng. Google writes proto3 JSON, which leaves out
// zero values: a missing latitude or longitude is 0.
type newLatLng struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

// newHours is the part of an OpeningHours the translation reads.
type newHours struct {
	OpenNow *bool `json:"openNow"`
}

// newPriceLevels maps the Places API (New) price levels to the legacy
// price_level; PRICE_LEVEL_UNSPECIFIED and unknown names have none.
var newPriceLevels = map[string]int{
	"PRICE_LEVEL_FREE":           0,
	"PRICE_LEVEL_INEXPENSIVE":    1,
	"PRICE_LEVEL_MODERATE":       2,
	"PRICE_LEVEL_EXPENSIVE":      3,
	"PRICE_LEVEL_VERY_EXPENSIVE": 4,
}

// translateNew turns raw, a searchNearby response body, into a legacy
// Nearby Search document in Google's layout (three-space indent,
// `"name" : value`, members in alphabetical order, a final newline):
// html_attributions [], results holding the first 20 places (see
// newPlace.legacy), and status OK, or ZERO_RESULTS with an empty results
// when there is no place ({} or an empty places).
//
// It fails, with a message naming the member, when raw is not a JSON
// object or a member has the wrong JSON type. It does no I/O.
func translateNew(raw []byte) ([]byte, error) {
	if i := gdoc.SkipSpace(raw, 0); i == len(raw) || raw[i] != '{' {
		return nil, errors.New("response is not a JSON object")
	}
	var doc newPlacesDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("response is not a Places API (New) document: %s", describeJSONError(raw, err))
	}
	places := doc.Places[:min(len(doc.Places), maxNewResults)]
	results := make([]gdoc.Result, len(places))
	for i := range places {
		results[i] = places[i].legacy()
	}
	return gdoc.Answer(results), nil
}

// legacy returns p as a legacy result. Members p does not have (or has
// empty) are left out:
//
//   - business_status is businessStatus;
//   - geometry.location's lat and lng are location's latitude and
//     longitude;
//   - icon is iconMaskBaseUri with ".png" appended (Google serves the
//     mask there as a PNG), icon_mask_base_uri is iconMaskBaseUri, and
//     icon_background_color is iconBackgroundColor;
//   - name is displayName.text;
//   - opening_hours.open_now is currentOpeningHours.openNow, or else
//     regularOpeningHours.openNow;
//   - place_id is id;
//   - price_level is priceLevel as a number: FREE 0, INEXPENSIVE 1,
//     MODERATE 2, EXPENSIVE 3, VERY_EXPENSIVE 4;
//   - rating is rating, user_ratings_total is userRatingCount;
//   - types is types;
//   - vicinity is shortFormattedAddress, or else formattedAddress.
func (p *newPlace) legacy() gdoc.Result {
	r := gdoc.Result{
		BusinessStatus:      p.BusinessStatus,
		IconBackgroundColor: p.IconBackgroundColor,
		IconMaskBaseURI:     p.IconMaskBaseURI,
		PlaceID:             p.ID,
		Rating:              p.Rating,
		Types:               p.Types,
		UserRatingsTotal:    p.UserRatingCount,
		Vicinity:            p.ShortFormattedAddress,
	}
	if p.Location != nil {
		r.HasLocation, r.Lat, r.Lng = true, p.Location.Latitude, p.Location.Longitude
	}
	if p.IconMaskBaseURI != "" {
		r.Icon = p.IconMaskBaseURI + ".png"
	}
	if p.DisplayName != nil {
		r.Name = p.DisplayName.Text
	}
	switch {
	case p.CurrentOpeningHours != nil && p.CurrentOpeningHours.OpenNow != nil:
		r.OpenNow = p.CurrentOpeningHours.OpenNow
	case p.RegularOpeningHours != nil:
		r.OpenNow = p.RegularOpeningHours.OpenNow
	}
	if level, ok := newPriceLevels[p.PriceLevel]; ok {
		r.PriceLevel = &level
	}
	if r.Vicinity == "" {
		r.Vicinity = p.FormattedAddress
	}
	return r
}
