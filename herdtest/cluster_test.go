package herdtest

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/proxyherd/herd"
)

// fatalTB records Fatal and stops the goroutine, like testing.T.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper()                   {}
func (f *fatalTB) Fatal(args ...any)         { f.msg = fmt.Sprint(args...); runtime.Goexit() }
func (f *fatalTB) Fatalf(s string, a ...any) { f.msg = fmt.Sprintf(s, a...); runtime.Goexit() }

func TestNewClusterOutsideBubble(t *testing.T) {
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		NewCluster(tb, Options{})
	}()
	<-done
	if !strings.Contains(tb.msg, "synctest bubble") {
		t.Errorf("NewCluster outside a bubble: %q", tb.msg)
	}
}

func TestATLine(t *testing.T) {
	recv := time.Unix(1520023935, 182837383)
	for _, tc := range []struct{ tm, want string }{
		{"1520023934.918963997", "+0.263873386"},
		{"1520023935.182837383", "+0.000000000"},
		{"1520023936.682837383", "-1.500000000"},
		{"1520023936.6828373839999", "-1.500000000"},
		{"1519937535", "+86400.182837383"},
		{"9223372036854775807", "-9223372035334751871.817162617"},
		{"0.000000001", "+1520023935.182837382"},
	} {
		line, ok := ATLine("Goloman", recv, "kiwi", "+1.0-2.0", tc.tm)
		want := "AT Goloman " + tc.want + " kiwi +1.0-2.0 " + tc.tm
		if !ok || line != want {
			t.Errorf("ATLine(%s) = %q, %v; want %q", tc.tm, line, ok, want)
		}
	}
	for _, bad := range []string{"", "1.", ".5", "-1", "1e9", "9223372036854775808", "1.2.3"} {
		if _, ok := ATLine("G", recv, "k", "+1.0-2.0", bad); ok {
			t.Errorf("ATLine accepted client time %q", bad)
		}
	}
}

// TestNodeAgreesWithATLine checks herd's replies against ATLine and
// WhatsatReply on one node, and the fake provider's record of the query.
func TestNodeAgreesWithATLine(t *testing.T) {
	topo := herd.Topology{Servers: []string{"Goloman"}}
	Run(t, Options{Seed: 9, Topology: topo}, func(t *testing.T, c *Cluster) {
		rep, err := c.Report("Goloman", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997")
		want, accepted := rep.IAMAT("Goloman", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997")
		if err != nil || !accepted || rep.Reply != want {
			t.Fatalf("IAMAT: %q, %v; want %q", rep.Reply, err, want)
		}
		// An older report gets the stored line.
		old := c.IAMAT("Goloman", "kiwi.cs.ucla.edu", "+0.0+0.0", "1520023934")
		if old != want {
			t.Errorf("stale IAMAT: %q, want %q", old, want)
		}
		got := c.WHATSAT("Goloman", "kiwi.cs.ucla.edu", "10.5", 3)
		calls := c.Places().Calls()
		if len(calls) != 1 || calls[0].Server != "Goloman" || calls[0].Err != nil || !calls[0].Done {
			t.Fatalf("provider calls: %+v", calls)
		}
		q := herd.NearbyQuery{Lat: 34.068930, Lon: -118.445127, RadiusMeters: 10500, MaxResults: 3}
		if calls[0].Query != q {
			t.Errorf("query %+v, want %+v", calls[0].Query, q)
		}
		if w := WhatsatReply(strings.TrimSuffix(want, "\n"), PlacesDocument(q)); got != w {
			t.Errorf("WHATSAT:\n%s\nwant\n%s", got, w)
		}
		if got := c.WHATSAT("Goloman", "nobody", "10", 3); got != "? WHATSAT nobody 10 3\n" {
			t.Errorf("WHATSAT for an unknown client: %q", got)
		}
	})
}

func TestPlacesFailuresAndTimeouts(t *testing.T) {
	topo := herd.Topology{Servers: []string{"A"}}
	opts := Options{Seed: 10, Topology: topo, Places: PlacesOptions{FailureRate: 1}}
	Run(t, opts, func(t *testing.T, c *Cluster) {
		c.IAMAT("A", "kiwi", "+1.0+1.0", "1")
		got := c.WHATSAT("A", "kiwi", "1", 1)
		if !strings.Contains(got, "UNKNOWN_ERROR") || !strings.Contains(got, ErrPlacesFailure.Error()) {
			t.Errorf("failing provider: %q", got)
		}
	})
	opts.Places = PlacesOptions{Latency: Latency{Min: time.Minute, Max: time.Minute}}
	opts.Configure = func(cfg *herd.Config) { cfg.PlacesTimeout = time.Second }
	Run(t, opts, func(t *testing.T, c *Cluster) {
		c.IAMAT("A", "kiwi", "+1.0+1.0", "1")
		start := c.Sim().Elapsed()
		got := c.WHATSAT("A", "kiwi", "1", 1)
		if took := c.Sim().Elapsed() - start; !strings.Contains(got, "UNKNOWN_ERROR") || took > 2*time.Second {
			t.Errorf("slow provider: %q after %v", got, took)
		}
		if calls := c.Places().Calls(); len(calls) != 1 || calls[0].Err == nil {
			t.Errorf("calls: %+v", calls)
		}
	})
}

func TestTopologies(t *testing.T) {
	for n := 1; n <= 6; n++ {
		ring := RingTopology(n)
		if len(ring.Servers) != n || (n > 2 && len(ring.Links) != n) || (n == 2 && len(ring.Links) != 1) {
			t.Errorf("RingTopology(%d) = %+v", n, ring)
		}
	}
	r := newRand(1, "t")
	topo := RandomTopology(r, 30, 3)
	if len(topo.Links) != 45 {
		t.Errorf("RandomTopology(30, 3): %d links, want 45", len(topo.Links))
	}
	// Connected: a walk from the first server reaches all.
	seen := map[string]bool{topo.Servers[0]: true}
	queue := []string{topo.Servers[0]}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, p := range topo.Neighbours(s) {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	if len(seen) != 30 {
		t.Errorf("RandomTopology is not connected: reached %d of 30", len(seen))
	}
}
