// Package places holds the Places providers a herd answers WHATSAT from,
// each a [herd.PlacesClient]: [GoogleLegacy] (Google's legacy Nearby
// Search), [GoogleNew] (the Places API (New), its answers translated into
// the legacy shape the protocol promises), [Catalogue] (an offline list of
// places, for demos and tests), and [Frugal], which sits in front of any
// of them to merge identical lookups, cache answers, cap and retry
// provider calls. [New] chooses and wraps one from a [Config] that suits
// configuration files and command-line flags:
//
//	p, err := places.New(places.Config{Kind: places.KindOffline}, nil)
//	if err != nil { ... }
//	defer p.Close() // after the node that uses it
//	n, err := herd.New(herd.Config{Name: "Goloman", Addr: ":12000", Places: p})
//
// Package herd owns the seam: the query, the interface, and the WHATSAT
// body (cut to the bound, newline rules); [herd.WhatsatBody] shows what
// clients will see of a provider's answer. Package herd never imports
// this one.
package places
