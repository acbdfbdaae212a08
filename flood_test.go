package herd

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestTableOfferOrderIndependent is the property that makes flooding
// converge: any permutation of the same offers leaves every table
// identical, holding for each client the record that comes last.
func TestTableOfferOrderIndependent(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 1))
		var offers []Record
		for i := 0; i < 1+rng.IntN(40); i++ {
			m := iamat{
				client:   fmt.Appendf(nil, "c%d", rng.IntN(4)),
				location: []byte("+1.0-2.0"),
				// Few distinct times, so ties on time are common and
				// the AT line's bytes decide.
				time: fmt.Appendf(nil, "%d.%d", rng.IntN(3), rng.IntN(2)),
			}
			m.sec, m.nsec, _ = parseClientTime(m.time)
			server := []string{"Goloman", "Hands", "Welsh"}[rng.IntN(3)]
			recv := kiwiClock().Now().Add(-time.Duration(rng.Int64N(1e9)))
			line := string(appendAT(nil, server, recv, &m))
			offers = append(offers, newRecord(line, server, &m))
		}
		want := map[string]Record{}
		for _, r := range offers {
			if old, ok := want[r.Client]; !ok || r.Compare(&old) > 0 {
				want[r.Client] = r
			}
		}
		var first []Record
		for perm := 0; perm < 6; perm++ {
			rng.Shuffle(len(offers), func(i, j int) { offers[i], offers[j] = offers[j], offers[i] })
			tab := newTable(hashKey{})
			changes := 0
			for _, r := range offers {
				if _, res := tab.offer(&r, 1000); res == offerChanged {
					changes++
				}
				if _, res := tab.offer(&r, 1000); res != offerStale {
					t.Fatalf("seed %d: offering the same record twice changed the table", seed)
				}
			}
			snap := tab.snapshot()
			if len(snap) != len(want) || changes < len(want) {
				t.Fatalf("seed %d: %d clients, %d changes; want %d clients", seed, len(snap), changes, len(want))
			}
			for _, r := range snap {
				if r != want[r.Client] {
					t.Fatalf("seed %d: client %s holds %q, want %q", seed, r.Client, r.Line, want[r.Client].Line)
				}
			}
			if perm == 0 {
				first = snap
			} else if d := cmp.Diff(first, snap); d != "" {
				t.Fatalf("seed %d: permutation %d gives another table:\n%s", seed, perm, d)
			}
		}
	}
}

func TestTableSnapshotSortedByClient(t *testing.T) {
	tab := newTable(hashKey{})
	for _, c := range []string{"zeta", "alpha", "mu", "Beta"} {
		tab.offer(&Record{Client: c, Line: "AT x +0.000000000 " + c + " +0.0+0.0 1", Sec: 1}, 10)
	}
	var got []string
	for _, r := range tab.snapshot() {
		got = append(got, r.Client)
	}
	if d := cmp.Diff([]string{"Beta", "alpha", "mu", "zeta"}, got); d != "" {
		t.Fatal(d)
	}
}

// snapshot returns every record, sorted by client ID. (The node
// reads the table in pieces: see Node.Records.)
func (t *table) snapshot() []Record {
	out := t.appendLeaves(0, numLeaves, make([]Record, 0, t.n))
	sortRecords(out)
	return out
}
