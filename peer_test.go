package herd

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLinkQueueMergesOnlyWhenLong: a short queue keeps every record in
// order; past mergeAfter, a client's newer record replaces the waiting
// one in place; PeerQueue waiting clients cut the link.
func TestLinkQueueMergesOnlyWhenLong(t *testing.T) {
	n, err := New(Config{Name: "A", Addr: "127.0.0.1:0", PeerQueue: mergeAfter + 2})
	if err != nil {
		t.Fatal(err)
	}
	c := &chunkConn{}
	l := newLink("B", &session{n: n, c: c, st: &connState{id: "B#1", c: c}, id: "B#1"})
	rec := func(client string, sec int) *Record {
		r := mustParseAT(t, fmt.Sprintf("AT A +0.000000000 %s +1.0+1.0 %d", client, sec))
		return &r
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
	var lines []string
	for _, q := range l.queue {
		lines = append(lines, q.line)
	}
	if d := cmp.Diff(want, lines); d != "" {
		t.Fatalf("queue:\n%s", d)
	}
	if len(l.wake) != 1 {
		t.Fatal("the writer was not woken")
	}
	l.enqueue(rec("y", 1))
	l.enqueue(rec("z", 1))
	l.enqueue(rec("w", 1)) // PeerQueue reached
	if !l.failed.Load() || n.Stats().PeerSlow != 1 {
		t.Fatal("a link PeerQueue clients behind was not cut")
	}
	if got := n.takeQueue(l, nil); len(got) != mergeAfter+2 || len(l.queue) != 0 || len(l.pending) != 0 {
		t.Fatalf("takeQueue: %d records, %d left", len(got), len(l.queue))
	}
}
