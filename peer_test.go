package herd

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLinkQueueMergesOnlyWhenLong: a short queue keeps every record in
// order; past mergeAfter, a client's newer record replaces the waiting
// one in place, until the writer takes the queue; PeerQueue waiting
// clients cut the link.
func TestLinkQueueMergesOnlyWhenLong(t *testing.T) {
	n, err := New(Config{Name: "A", Addr: "127.0.0.1:0", PeerQueue: mergeAfter + 2})
	if err != nil {
		t.Fatal(err)
	}
	c := &chunkConn{}
	l := newLink("B", &session{n: n, c: c, st: &connState{id: "B#1", c: c}, id: "B#1"})
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addLink(l)
	entries := map[string]*entry{}
	rec := func(client string, sec int) *entry {
		e := entries[client]
		if e == nil {
			e = &entry{}
			entries[client] = e
		}
		e.rec = mustParseAT(t, fmt.Sprintf("AT A +0.000000000 %s +1.0+1.0 %d", client, sec))
		return e
	}
	l.enqueue(rec("x", 1))
	l.enqueue(rec("x", 2)) // short queue: both kept
	want := []string{"AT A +0.000000000 x +1.0+1.0 1", "AT A +0.000000000 x +1.0+1.0 2"}
	for i := 2; i < mergeAfter; i++ {
		l.enqueue(rec(fmt.Sprint("c", i), 1))
		want = append(want, fmt.Sprintf("AT A +0.000000000 c%d +1.0+1.0 1", i))
	}
	l.enqueue(rec("x", 3)) // long queue: replaces x's newest waiting record
	want[1] = "AT A +0.000000000 x +1.0+1.0 3"
	if d := cmp.Diff(want, l.queue); d != "" {
		t.Fatalf("queue:\n%s", d)
	}
	if len(l.wake) != 1 {
		t.Fatal("the writer was not woken")
	}
	l.enqueue(rec("y", 1))
	l.enqueue(rec("z", 1))
	l.enqueue(rec("w", 1)) // PeerQueue reached
	if !l.failed.Load() || n.stats.peerSlow.Load() != 1 {
		t.Fatal("a link PeerQueue clients behind was not cut")
	}
	n.mu.Unlock()
	got := n.takeQueue(l, nil)
	n.mu.Lock()
	if len(got) != mergeAfter+2 || len(l.queue) != 0 {
		t.Fatalf("takeQueue: %d records, %d left", len(got), len(l.queue))
	}
	// A taken queue's positions are void: once the new queue is long,
	// x (queued at index 1 of the old one) is queued again, not written
	// over index 1 of the new one.
	want = want[:0]
	for i := range mergeAfter {
		l.enqueue(rec(fmt.Sprint("d", i), 1))
		want = append(want, fmt.Sprintf("AT A +0.000000000 d%d +1.0+1.0 1", i))
	}
	l.enqueue(rec("x", 4))
	want = append(want, "AT A +0.000000000 x +1.0+1.0 4")
	if d := cmp.Diff(want, l.queue); d != "" {
		t.Fatalf("queue after take:\n%s", d)
	}
}

// TestLinkSlotReuse: a link that replaces another takes its slot; positions
// recorded for the old link's queue must not be taken for the new one's.
func TestLinkSlotReuse(t *testing.T) {
	n, err := New(Config{Name: "A", Addr: "127.0.0.1:0", PeerQueue: 4 * mergeAfter})
	if err != nil {
		t.Fatal(err)
	}
	newB := func() *link {
		c := &chunkConn{}
		return newLink("B", &session{n: n, c: c, st: &connState{id: "B#1", c: c}, id: "B#1"})
	}
	c := &chunkConn{}
	other := newLink("C", &session{n: n, c: c, st: &connState{id: "C#1", c: c}, id: "C#1"})
	old, repl := newB(), newB()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addLink(old)
	n.addLink(other)
	e := func(client string, sec int) *entry {
		return &entry{rec: mustParseAT(t, fmt.Sprintf("AT A +0.000000000 %s +1.0+1.0 %d", client, sec))}
	}
	x := e("x", 1)
	for i := range mergeAfter {
		old.enqueue(e(fmt.Sprint("o", i), 1))
	}
	old.enqueue(x) // waits at index mergeAfter of old's queue
	n.addLink(repl)
	if repl.slot != old.slot || repl.gen == old.gen || other.slot == repl.slot {
		t.Fatalf("slots: old %d, new %d, other %d; gens old %d new %d", old.slot, repl.slot, other.slot, old.gen, repl.gen)
	}
	if len(n.links) != 2 {
		t.Fatalf("links after the replacement: %d", len(n.links))
	}
	var want []string
	for i := range mergeAfter + 1 {
		r := e(fmt.Sprint("n", i), 1)
		repl.enqueue(r)
		want = append(want, r.rec.Line)
	}
	x.rec = mustParseAT(t, "AT A +0.000000000 x +1.0+1.0 2")
	repl.enqueue(x)
	want = append(want, x.rec.Line)
	if d := cmp.Diff(want, repl.queue); d != "" {
		t.Fatalf("new link's queue:\n%s", d)
	}
}
