package herd

// flood.go: the client table, a last-writer-wins register per client. It is
// pure: no locks, no I/O; the node serialises access to it.

import (
	"slices"
	"strings"
)

// table maps a client ID to its newest record in Record.Compare order.
type table struct {
	recs map[string]Record
}

func newTable() *table { return &table{recs: make(map[string]Record)} }

// offerResult says what an offer did.
type offerResult int

const (
	offerStale   offerResult = iota // the table holds a record that comes after
	offerChanged                    // the record is stored
	offerFull                       // a new client, but the table is at its limit
)

// offer stores r if it comes after the client's stored record, or if the
// client is new and the table holds fewer than limit clients. It returns
// the record the table holds for the client afterwards (r itself when
// refused as full) and what happened.
func (t *table) offer(r Record, limit int) (Record, offerResult) {
	old, ok := t.recs[r.Client]
	switch {
	case ok && r.Compare(&old) <= 0:
		return old, offerStale
	case !ok && len(t.recs) >= limit:
		return r, offerFull
	}
	t.recs[r.Client] = r
	return r, offerChanged
}

// get returns the stored record of client. The []byte form lets callers
// look up without converting (the compiler does not allocate for it).
func (t *table) get(client []byte) (Record, bool) {
	r, ok := t.recs[string(client)]
	return r, ok
}

// len returns the number of clients in the table.
func (t *table) len() int { return len(t.recs) }

// snapshot returns every record, sorted by client ID, so that what a node
// sends never depends on map order.
func (t *table) snapshot() []Record {
	out := make([]Record, 0, len(t.recs))
	for _, r := range t.recs {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Client, b.Client) })
	return out
}
