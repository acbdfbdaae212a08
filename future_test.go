package herd

import (
	"strings"
	"testing"
	"time"
)

// The kiwi clock reads 1520023935.182837383; one hour later is
// 1520027535.182837383.
const kiwiPlusHour = "1520027535.182837383"

// TestIAMATFromTheFutureRefused: on the injected clock, a report up to
// MaxClientAhead (default 1h) ahead is accepted, one a nanosecond beyond
// gets "? " and the line, changes nothing, and is counted and logged.
func TestIAMATFromTheFutureRefused(t *testing.T) {
	logs := newLogSink()
	n := startNode(t, Config{Name: "Goloman", Clock: kiwiClock(), Logger: logs.logger()})
	c := dialNode(t, n)
	for _, tc := range []struct{ time, reply string }{
		{"1520027535.182837382", "AT Goloman -3599.999999999 kiwi +1.0+1.0 1520027535.182837382\n"},
		{kiwiPlusHour, "AT Goloman -3600.000000000 kiwi +1.0+1.0 " + kiwiPlusHour + "\n"},
		{"1520027535.182837384", "? IAMAT kiwi +1.0+1.0 1520027535.182837384\n"},
		{"1520027535.1828373841", "? IAMAT kiwi +1.0+1.0 1520027535.1828373841\n"},
		{"99999999999", "? IAMAT kiwi +1.0+1.0 99999999999\n"},
		{"9223372036854775807.999999999", "? IAMAT kiwi +1.0+1.0 9223372036854775807.999999999\n"},
	} {
		c.send("IAMAT kiwi +1.0+1.0 " + tc.time + "\n")
		if got := c.line(); got != tc.reply {
			t.Errorf("IAMAT at %s: %q, want %q", tc.time, got, tc.reply)
		}
	}
	// The record is the one at the bound; an older report gets it back.
	want := "AT Goloman -3600.000000000 kiwi +1.0+1.0 " + kiwiPlusHour
	if r, _ := n.Lookup("kiwi"); r.Line != want {
		t.Fatalf("record %q", r.Line)
	}
	c.send("IAMAT kiwi +2.0+2.0 1520023934.5\n")
	if got := c.line(); got != want+"\n" {
		t.Fatalf("older report: %q", got)
	}
	logs.waitFor(t, `level=WARN msg="report from the future refused"`, "source=127.0.0.1", "count=1", "client=kiwi", "time=1520027535.182837384", "max_client_ahead=1h0m0s")
	if strings.Count(logs.String(), "report from the future refused") != 1 {
		t.Errorf("more than one line a minute from one source:\n%s", logs)
	}
	if st := n.Stats(); st.FutureRefused != 4 || st.Invalid != 4 || st.IAMAT != 3 || st.RecordsLocal != 2 || st.RecordsFlooded != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestMaxClientAheadTunedOrOff(t *testing.T) {
	n := startNode(t, Config{Name: "Goloman", Clock: kiwiClock(), MaxClientAhead: 10 * time.Second})
	c := dialNode(t, n)
	c.send("IAMAT kiwi +1.0+1.0 1520023945.182837384\n")
	if got := c.line(); got != "? IAMAT kiwi +1.0+1.0 1520023945.182837384\n" {
		t.Fatalf("beyond 10s: %q", got)
	}
	c.send("IAMAT kiwi +1.0+1.0 1520023945.182837383\n")
	if got := c.line(); got != "AT Goloman -10.000000000 kiwi +1.0+1.0 1520023945.182837383\n" {
		t.Fatalf("at 10s: %q", got)
	}

	off := startNode(t, Config{Name: "Goloman", Clock: kiwiClock(), MaxClientAhead: -1})
	c = dialNode(t, off)
	c.send("IAMAT kiwi +1.0+1.0 99999999999\n")
	if got := c.line(); got != "AT Goloman -98479976063.817162617 kiwi +1.0+1.0 99999999999\n" {
		t.Fatalf("check off: %q", got)
	}
}

// TestPeerRecordFromTheFutureDropped: a neighbour's record more than
// MaxClientAhead plus PeerClockAllowance ahead of this node's clock is
// dropped and logged, so one server with a wrong clock cannot freeze a
// record herd-wide; one at the bound is kept.
func TestPeerRecordFromTheFutureDropped(t *testing.T) {
	logs := newLogSink()
	hands := startNode(t, Config{
		Name: "Hands", Peers: []Peer{{Name: "Goloman"}}, Clock: kiwiClock(), Logger: logs.logger(),
		PeerClockAllowance: time.Minute,
	})
	// Now + 1h + 1m = 1520027595.182837383.
	far := "AT Goloman -3660.000000001 x +1.0+1.0 1520027595.182837384"
	atBound := "AT Goloman -3660.000000000 y +1.0+1.0 1520027595.182837383"
	worse := "AT Goloman +0.000000000 x +1.0+1.0 99999999999"
	later := "AT Goloman +0.500000000 z +1.0+1.0 1520023934.5"
	f := forgeHello(t, hands.Addr().String(), "Goloman", "Hands")
	if _, got := f.auth(nil, far+"\n"+atBound+"\n"+worse+"\n"+later+"\n"); got != "HERD-WELCOME\n" {
		t.Fatalf("handshake: %q", got)
	}
	waitNode(t, hands, "the last record", hasLine("z", later))
	if _, ok := hands.Lookup("x"); ok {
		t.Fatal("a record from the future was stored")
	}
	if r, _ := hands.Lookup("y"); r.Line != atBound {
		t.Fatalf("the record at the bound: %q", r.Line)
	}
	logs.waitFor(t, `level=WARN msg="peer record from the future dropped"`, "source=Goloman", "count=1", `line="`+far+`"`, "bound=1h1m0s")
	if st := hands.Stats(); st.FutureDropped != 2 || st.RecordsPeer != 2 {
		t.Fatalf("stats %+v", st)
	}
}
