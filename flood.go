package herd

// flood.go: the client table, a last-writer-wins register per client. It is
// pure: no locks, no I/O; the node serialises access to it.

import (
	"slices"
	"strings"
)

// table maps a client ID to its newest record in Record.Compare order.
// Each record sits in an entry that the node also uses to find where the
// record waits in link queues (see link.enqueue), so that a record costs
// one map lookup however many links it goes out on.
type table struct {
	recs map[string]*entry
}

// entry is one client's slot in the table.
type entry struct {
	rec Record
	// waits[k] is where this client's newest queued record stands in the
	// queue of the link in slot k, valid while that queue's generation
	// is gen. The table itself never reads it.
	waits []queueRef
}

// queueRef is a position in one generation of a link's queue.
type queueRef struct {
	gen uint64
	i   int
}

func newTable() *table { return &table{recs: make(map[string]*entry)} }

// offerResult says what an offer did.
type offerResult int

const (
	offerStale   offerResult = iota // the table holds a record that comes after
	offerChanged                    // the record is stored
	offerFull                       // a new client, but the table is at its limit
)

// offer stores r if it comes after the client's stored record, or if the
// client is new and the table holds fewer than limit clients. It returns
// the client's entry afterwards (nil when refused as full) and what
// happened.
func (t *table) offer(r Record, limit int) (*entry, offerResult) {
	e := t.recs[r.Client]
	switch {
	case e != nil && r.Compare(&e.rec) <= 0:
		return e, offerStale
	case e == nil && len(t.recs) >= limit:
		return nil, offerFull
	case e == nil:
		e = &entry{}
		t.recs[r.Client] = e
	}
	e.rec = r
	return e, offerChanged
}

// get returns the stored record of client. The []byte form lets callers
// look up without converting (the compiler does not allocate for it).
func (t *table) get(client []byte) (Record, bool) {
	if e := t.recs[string(client)]; e != nil {
		return e.rec, true
	}
	return Record{}, false
}

// len returns the number of clients in the table.
func (t *table) len() int { return len(t.recs) }

// snapshot returns every record, sorted by client ID, so that what a node
// sends never depends on map order.
func (t *table) snapshot() []Record {
	out := make([]Record, 0, len(t.recs))
	for _, e := range t.recs {
		out = append(out, e.rec)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Client, b.Client) })
	return out
}
