package herd

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// linkPair starts B (the acceptor) after fillB, then A (the dialer) after
// fillA, and waits until their tables are the same. It returns both.
func linkPair(t *testing.T, fillA, fillB func(n *Node)) (a, b *Node) {
	t.Helper()
	cfgB := Config{Name: "B", Addr: "127.0.0.1:0", Peers: []Peer{{Name: "A", Addr: "127.0.0.1:1"}}}
	b, err := New(cfgB)
	if err != nil {
		t.Fatal(err)
	}
	fillB(b)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	a, err = New(Config{Name: "A", Addr: "127.0.0.1:0", Peers: []Peer{{Name: "B", Addr: b.Addr().String()}},
		RedialMin: 5 * time.Millisecond, RedialMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fillA(a)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		cha, chb := a.Changed(), b.Changed()
		ra, rb := a.Records(), b.Records()
		if cmp.Equal(ra, rb) {
			break
		}
		select {
		case <-cha:
		case <-chb:
		case <-deadline.C:
			t.Fatalf("tables differ after 20s: A %d records, B %d", len(ra), len(rb))
		}
	}
	return a, b
}

func offerRange(t *testing.T, n *Node, from, to, sec int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, res := n.offer(testRec(t, fmt.Sprintf("c%06d", i), sec), ""); res != offerChanged {
			t.Fatalf("offer c%06d: %v", i, res)
		}
	}
}

// TestLinkUpSendsTheDifference: two tables that mostly agree exchange
// only the records that differ, both ways, and end identical.
func TestLinkUpSendsTheDifference(t *testing.T) {
	const common = 5000
	a, b := linkPair(t,
		func(a *Node) {
			offerRange(t, a, 0, common, 1)
			offerRange(t, a, 10000, 10040, 1) // only A has these
			offerRange(t, a, 100, 130, 3)     // A's are newer
		},
		func(b *Node) {
			offerRange(t, b, 0, common, 1)
			offerRange(t, b, 0, 50, 2)        // B's are newer
			offerRange(t, b, 20000, 20060, 1) // only B has these
		})
	if got := len(a.Records()); got != common+40+60 {
		t.Fatalf("A holds %d clients", got)
	}
	if r, _ := a.Lookup("c000010"); r.Sec != 2 {
		t.Fatalf("A kept %q", r.Line)
	}
	if r, _ := b.Lookup("c000110"); r.Sec != 3 {
		t.Fatalf("B kept %q", r.Line)
	}
	// Records sent: the differing ones, a few at most more than once (a
	// WANT may cross a newer record), never the whole table (5,000).
	sa, sb := a.Stats(), b.Stats()
	sent := sa.RecordsFlooded + sb.RecordsFlooded
	if differing := uint64(40 + 30 + 50 + 60); sent > 3*differing {
		t.Fatalf("link-up queued %d records for %d differing clients (A %+v, B %+v)", sent, differing, sa, sb)
	}
}

// TestLinkUpFillsAnEmptyTable: an empty server gets the whole table.
func TestLinkUpFillsAnEmptyTable(t *testing.T) {
	for _, emptyIsDialer := range []bool{true, false} {
		t.Run(fmt.Sprint("emptyIsDialer=", emptyIsDialer), func(t *testing.T) {
			fill := func(n *Node) { offerRange(t, n, 0, 3000, 1) }
			none := func(*Node) {}
			var a *Node
			if emptyIsDialer {
				a, _ = linkPair(t, none, fill)
			} else {
				a, _ = linkPair(t, fill, none)
			}
			if got := len(a.Records()); got != 3000 {
				t.Fatalf("%d records", got)
			}
		})
	}
}

// TestHostileSummariesRefused: an authenticated neighbour that sends
// malformed, inconsistent or endless sync lines gets each refused and
// counted, without harm: the link stays up, the table unchanged, and
// records still flow.
func TestHostileSummariesRefused(t *testing.T) {
	secret := []byte("s3cret")
	logs := newLogSink()
	hands := startNode(t, Config{Name: "Hands", Peers: []Peer{{Name: "Goloman", Addr: "127.0.0.1:1"}}, Secret: secret, Clock: kiwiClock(), Logger: logs.logger()})
	offerRange(t, hands, 0, 100, 1)
	zeros := func(n int) string { return b64.EncodeToString(make([]byte, n)) }
	bad := []string{
		"SUM 0 0 " + zeros(16),    // level 0 is never sent
		"SUM 5 0 " + zeros(16),    // below the leaves
		"SUM 1 1 " + zeros(16),    // level 1 has one parent
		"SUM 4 4096 " + zeros(16), // no such parent
		"SUM 1 0 !!!!",            // not base64
		"SUM 1 0 " + zeros(15),    // 15 children
		"SUM 1 0 " + zeros(17),    // 17 children
		"SUM 1 0 " + b64.EncodeToString([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), // a count past 2^32
		"SUM 1 0",                         // no data
		"HAVE 4 65536 -",                  // no such leaf
		"HAVE 4 0 " + zeros(8*(maxIDs+1)), // too many hashes
		"WANT 4 0 " + zeros(7),            // not whole hashes
		"PUSH 1",                          // no range
		"PUSH x 0",                        // not a number
		"HAVE -1 0 -",
	}
	f := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	// Lines are handled in order: once the record after them is in, so
	// are they.
	const after = "AT Goloman +0.000000000 after.noise +1.0+1.0 5"
	if _, got := f.auth(secret, strings.Join(bad, "\n")+"\n"+after+"\n"); got != "HERD-WELCOME\n" {
		t.Fatalf("auth answered %q", got)
	}
	waitNode(t, hands, "the record after the bad lines", hasLine("after.noise", after))
	if st := hands.Stats(); st.SyncRefused != uint64(len(bad)) || st.LinksUp != 1 {
		t.Fatalf("after the bad lines: %+v", st)
	}
	logs.waitFor(t, `msg="bad sync line from peer"`, `why="level out of range"`, `why="not one fingerprint per child"`)

	// Past the budget a sync line is refused too, however well formed:
	// an endless stream of them costs the node bounded work.
	before := hands.Stats()
	const extra = 3
	var b strings.Builder
	for range maxSyncLines + extra { // refused lines spend no budget
		b.WriteString("PUSH 4 65535\n")
	}
	// The link still carries records.
	b.WriteString("AT Goloman +0.000000000 still.flows +1.0+1.0 5\n")
	f.send(b.String())
	waitNode(t, hands, "a record after the noise", hasLine("still.flows", "AT Goloman +0.000000000 still.flows +1.0+1.0 5"))
	st := hands.Stats()
	if handled := st.SyncLines + st.SyncRefused - before.SyncLines - before.SyncRefused; handled != uint64(maxSyncLines+extra) || st.SyncRefused-before.SyncRefused != extra || st.LinksUp != 1 {
		t.Fatalf("after the budget: %d lines handled, %+v", handled, st)
	}
	if got := len(hands.Records()); got != 102 {
		t.Fatalf("%d records", got)
	}
}
