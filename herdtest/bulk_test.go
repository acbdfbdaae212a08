package herdtest

// Helpers for tests that report many clients (issue 12): pipelined IAMATs
// over one client connection per server, exact checks of their replies,
// and the last-writer-wins expectation they build.

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/proxyherd/herd"
)

// iamatReq is one IAMAT of a bulk batch.
type iamatReq struct{ client, loc, tm string }

// lww holds the newest accepted report of every client (by
// herd.Record.Compare): what every table must hold once the herd is
// healed and quiet.
type lww map[string]herd.Record

// offer records rec if it is newer than what w holds for its client.
func (w lww) offer(rec herd.Record) {
	if old, ok := w[rec.Client]; !ok || rec.Compare(&old) > 0 {
		w[rec.Client] = rec
	}
}

// sorted returns w's records sorted by client, as herd.Node.Records is.
func (w lww) sorted() []herd.Record {
	out := make([]herd.Record, 0, len(w))
	for _, r := range w {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b herd.Record) int { return strings.Compare(a.Client, b.Client) })
	return out
}

// bulkReport sends, for each server (batches[i] goes to names[i]), its
// IAMATs pipelined on one client connection, all servers' batches written
// before any reply is read so that they race through the herd. Each batch
// is written at once and, without SplitWrites or a window, reaches its
// server in one chunk, so every line of it has the arrival time Watch
// records and the exact reply is known: the AT line ATLine computes, or a
// record the server held that is newer. Every reply is offered to best
// (a reply is always a record some server accepted). It returns the number
// of lines answered with their own new AT line.
func bulkReport(t *testing.T, c *Cluster, names []string, batches [][]iamatReq, best lww) (fresh int) {
	t.Helper()
	type pending struct {
		server string
		reqs   []iamatReq
		cc     *ClientConn
		a      *Arrival
	}
	var ps []pending
	for i, reqs := range batches {
		if len(reqs) == 0 {
			continue
		}
		p := pending{server: names[i], reqs: reqs}
		cc, err := c.Connect("bulk", p.server)
		if err != nil {
			t.Fatalf("connect to %s: %v", p.server, err)
		}
		p.cc, p.a = cc, cc.Watch(reqs[0].client)
		var b strings.Builder
		for _, q := range reqs {
			b.WriteString("IAMAT " + q.client + " " + q.loc + " " + q.tm + "\n")
		}
		if err := cc.Write(b.String()); err != nil {
			t.Fatalf("write to %s: %v", p.server, err)
		}
		if err := cc.CloseWrite(); err != nil {
			t.Fatalf("close write to %s: %v", p.server, err)
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		out, err := p.cc.ReadAll()
		p.cc.Close()
		if err != nil {
			t.Fatalf("%d IAMATs to %s: %v after %d bytes", len(p.reqs), p.server, err, len(out))
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != len(p.reqs) {
			t.Fatalf("%d IAMATs to %s: %d reply lines", len(p.reqs), p.server, len(lines))
		}
		for i, q := range p.reqs {
			want, ok := ATLine(p.server, p.a.At, q.client, q.loc, q.tm)
			if !ok {
				t.Fatalf("bad request %+v", q)
			}
			got := lines[i]
			if got == want {
				fresh++
			} else {
				// Not accepted: the reply must be the held record, newer.
				held, ok := RecordOf(got)
				wrec, _ := RecordOf(want)
				if !ok || held.Client != q.client || held.Compare(&wrec) <= 0 {
					t.Fatalf("IAMAT %s %s %s to %s (line %d of %d, arrived %v):\n got %q\nwant %q or a newer record",
						q.client, q.loc, q.tm, p.server, i+1, len(p.reqs), p.a.At, got, want)
				}
			}
			rec, _ := RecordOf(got)
			best.offer(rec)
		}
	}
	return fresh
}

// checkTables fails t unless every running node's table is exactly want
// (sorted by client), describing the first differences.
func checkTables(t *testing.T, c *Cluster, want []herd.Record) {
	t.Helper()
	for _, n := range c.Live() {
		if d := diffTables("accepted", want, n, c.Node(n).Records()); d != "" {
			if len(d) > 2000 {
				d = d[:2000] + "..."
			}
			t.Errorf("%s's table is not the newest accepted report of every client (%d clients):\n%s", n, len(want), d)
		}
	}
}

// peerSlow sums Stats().PeerSlow over the running nodes.
func peerSlow(c *Cluster) uint64 {
	var n uint64
	for _, name := range c.Live() {
		n += c.Node(name).Stats().PeerSlow
	}
	return n
}

// holdsElsewhere reports whether every record of server is held, equal or
// newer, by another running server: then crashing it loses no accepted
// report.
func holdsElsewhere(c *Cluster, server string) bool {
	for _, rec := range c.Node(server).Records() {
		held := false
		for _, other := range c.Live() {
			if other == server {
				continue
			}
			if r, ok := c.Node(other).Lookup(rec.Client); ok && r.Compare(&rec) >= 0 {
				held = true
				break
			}
		}
		if !held {
			return false
		}
	}
	return true
}

// clientName returns the ID of client i of a bulk test.
func clientName(i int) string { return fmt.Sprintf("m%05d.example", i) }
