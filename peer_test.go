package herd

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testLink registers a fake up link to peer on n and returns it.
func testLink(t *testing.T, n *Node, peer string) *link {
	t.Helper()
	c := &chunkConn{}
	l := newLink(peer, &session{n: n, c: c, st: &connState{id: peer + "#1", c: c}, id: peer + "#1"})
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.addLink(l) {
		t.Fatal("no free link slot")
	}
	return l
}

// takeAll returns the lines l owes, as its writer would take them.
func takeAll(n *Node, l *link) []string {
	var out []string
	var buf []byte
	for more := true; more; {
		n.mu.Lock()
		buf, more = n.fillBatch(l, buf[:0])
		n.mu.Unlock()
		for line := range bytes.Lines(buf) {
			out = append(out, string(bytes.TrimSuffix(line, []byte("\n"))))
		}
	}
	return out
}

func testRec(t *testing.T, client string, sec int) Record {
	t.Helper()
	return mustParseAT(t, fmt.Sprintf("AT A +0.000000000 %s +1.0+1.0 %d", client, sec))
}

// TestLinkSendsEveryRecordWhileItKeepsUp: while fewer than PeerQueue
// records wait, every record is sent, in order, whenever the writer runs;
// a record from B is not sent back to B.
func TestLinkSendsEveryRecordWhileItKeepsUp(t *testing.T) {
	n, err := New(Config{Name: "A", Addr: "127.0.0.1:0", PeerQueue: 64})
	if err != nil {
		t.Fatal(err)
	}
	l := testLink(t, n, "B")
	for _, r := range []Record{testRec(t, "x", 1), testRec(t, "y", 1), testRec(t, "x", 2), testRec(t, "z", 1)} {
		n.offer(r, "")
	}
	n.offer(testRec(t, "w", 1), "B")
	want := []string{"AT A +0.000000000 x +1.0+1.0 1", "AT A +0.000000000 y +1.0+1.0 1", "AT A +0.000000000 x +1.0+1.0 2", "AT A +0.000000000 z +1.0+1.0 1"}
	if d := cmp.Diff(want, takeAll(n, l)); d != "" {
		t.Fatal(d)
	}
}

// TestLinkOwesEachClientOnce: once PeerQueue records wait, a link owes
// each client at most once, in the order clients were first owed, and is
// sent the newest record of each; once taken, a client is owed again by
// its next change.
func TestLinkOwesEachClientOnce(t *testing.T) {
	n, err := New(Config{Name: "A", Addr: "127.0.0.1:0", PeerQueue: 64})
	if err != nil {
		t.Fatal(err)
	}
	l := testLink(t, n, "B")
	var want []string
	for i := range n.cfg.PeerQueue {
		r := testRec(t, fmt.Sprintf("fill%d", i), 1)
		n.offer(r, "")
		want = append(want, r.Line)
	}
	for _, r := range []Record{testRec(t, "x", 1), testRec(t, "y", 1), testRec(t, "x", 2), testRec(t, "z", 1), testRec(t, "y", 3)} {
		n.offer(r, "")
	}
	want = append(want, "AT A +0.000000000 x +1.0+1.0 2", "AT A +0.000000000 y +1.0+1.0 3", "AT A +0.000000000 z +1.0+1.0 1")
	if d := cmp.Diff(want, takeAll(n, l)); d != "" {
		t.Fatal(d)
	}
}

// TestLinkBacklogBoundedByTable: whatever falls behind, a link owes at
// most one entry per client and is never cut for it; it catches up with
// the newest record of every client.
func TestLinkBacklogBoundedByTable(t *testing.T) {
	n, err := New(Config{Name: "A", Addr: "127.0.0.1:0", PeerQueue: 64})
	if err != nil {
		t.Fatal(err)
	}
	l := testLink(t, n, "B")
	const clients, rounds = 20000, 3
	for round := 1; round <= rounds; round++ {
		for i := range clients {
			n.offer(testRec(t, fmt.Sprintf("c%d", i), round), "")
		}
	}
	n.mu.Lock()
	owed, pending := l.owed.len(), len(l.pending)
	n.mu.Unlock()
	if owed != clients || pending != n.cfg.PeerQueue {
		t.Fatalf("owes %d clients and %d records for %d clients", owed, pending, clients)
	}
	got := takeAll(n, l)
	if len(got) != clients+n.cfg.PeerQueue {
		t.Fatalf("sent %d records for %d clients", len(got), clients)
	}
	newest := map[string]int64{}
	for _, line := range got {
		r, ok := parseAT([]byte(line))
		if !ok {
			t.Fatalf("sent %q", line)
		}
		newest[r.Client] = max(newest[r.Client], r.Sec)
	}
	for i := range clients {
		if c := fmt.Sprintf("c%d", i); newest[c] != rounds {
			t.Fatalf("%s: newest record sent is from round %d", c, newest[c])
		}
	}
	select {
	case <-l.done:
		t.Fatal("the link was cut")
	default:
	}
}

// TestLinkReplacementGetsAnotherSlot: a link that replaces another to the
// same neighbour takes a free slot while the old one drains, and the old
// slot is free again once drained.
func TestLinkReplacementGetsAnotherSlot(t *testing.T) {
	n, err := New(Config{Name: "A", Addr: "127.0.0.1:0", PeerQueue: 64})
	if err != nil {
		t.Fatal(err)
	}
	old := testLink(t, n, "B")
	n.offer(testRec(t, "x", 1), "")
	repl := testLink(t, n, "B")
	if repl.slot == old.slot {
		t.Fatalf("replacement took slot %d of the link it replaced", old.slot)
	}
	select {
	case <-old.done:
	default:
		t.Fatal("the replaced link was not stopped")
	}
	n.offer(testRec(t, "x", 2), "")
	if d := cmp.Diff([]string{"AT A +0.000000000 x +1.0+1.0 2"}, takeAll(n, repl)); d != "" {
		t.Fatal(d)
	}
	n.mu.Lock()
	done := n.drainStep(old, 10)
	if done {
		n.linkSlots &^= 1 << old.slot
	}
	slots := n.linkSlots
	n.mu.Unlock()
	if !done || slots != 1<<repl.slot {
		t.Fatalf("after draining: done %v, slots %b", done, slots)
	}
}
