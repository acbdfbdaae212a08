package herdtest

import (
	"testing"
	"time"

	"github.com/proxyherd/herd"
)

// TestRedialBackoffResetsAfterLinkUp: a dialer whose backoff grew to
// RedialMax while its neighbour was unreachable redials within RedialMin
// once a link that came up drops again, not after RedialMax.
func TestRedialBackoffResetsAfterLinkUp(t *testing.T) {
	const redialMin, redialMax = 100 * time.Millisecond, 20 * time.Second
	topo := herd.Topology{Servers: []string{"A", "B"}, Links: [][2]string{{"A", "B"}}}
	opts := Options{Seed: 5, Topology: topo, Configure: func(cfg *herd.Config) {
		cfg.RedialMin, cfg.RedialMax = redialMin, redialMax
	}}
	Run(t, opts, func(t *testing.T, c *Cluster) {
		a := c.Node("A")
		up := func() bool { return len(a.Links()) == 1 }
		if !c.RunUntil(up, 5*time.Second) {
			t.Fatal("no link at start")
		}
		// Cut off long enough for the backoff to reach RedialMax.
		c.Partition("B")
		c.RunFor(3 * redialMax)
		c.Heal()
		if !c.RunUntil(up, 2*redialMax) {
			t.Fatal("no link after the partition healed")
		}
		c.ResetLinks()
		start := c.Sim().Elapsed()
		if !c.RunUntil(func() bool { return !up() }, time.Second) {
			t.Fatal("the reset did not take the link down")
		}
		if !c.RunUntil(up, redialMax) {
			t.Fatal("no link after the reset")
		}
		if took := c.Sim().Elapsed() - start; took > redialMin+time.Second/2 {
			t.Fatalf("relinked %v after the reset; a link that was up must reset the backoff to RedialMin (%v)", took, redialMin)
		}
	})
}

// TestRestartKeepsTheKnockLink: a restarted server knocks at the neighbour
// that keeps their link up, and that link is the one kept. The neighbour
// does not dial a second link that would replace it, so a restart costs
// each side no link drop beyond the one the crash caused.
func TestRestartKeepsTheKnockLink(t *testing.T) {
	topo := herd.Topology{Servers: []string{"A", "B"}, Links: [][2]string{{"A", "B"}}} // A keeps the link up
	// A long backoff: A is waiting it out when B restarts, so B's knock
	// is the only link being made (when A's redial and the knock cross,
	// one of the two links replaces the other, as any duplicate does).
	configure := func(cfg *herd.Config) { cfg.RedialMin, cfg.RedialMax = time.Minute, time.Minute }
	Run(t, Options{Seed: 7, Topology: topo, Configure: configure}, func(t *testing.T, c *Cluster) {
		linked := func() bool { return len(c.Node("A").Links()) == 1 && len(c.Node("B").Links()) == 1 }
		if !c.RunUntil(linked, 5*time.Second) {
			t.Fatal("no link at start")
		}
		c.RunFor(time.Second) // past the links of the start
		if !linked() {
			t.Fatal("no link a second after the start")
		}
		dropsA := c.Node("A").Stats().LinkDrops
		c.Crash("B")
		if !c.RunUntil(func() bool { return len(c.Node("A").Links()) == 0 }, 5*time.Second) {
			t.Fatal("A did not see B crash")
		}
		c.Restart("B")
		if !c.RunUntil(linked, 5*time.Second) {
			t.Fatal("no link after B restarted")
		}
		c.RunFor(2 * time.Minute) // time for a second link, if A were to dial one
		if !linked() {
			t.Fatal("the link went down")
		}
		if got := c.Node("A").Stats().LinkDrops - dropsA; got != 1 {
			t.Errorf("A: %d link drops since B crashed, want 1 (the crash)", got)
		}
		if got := c.Node("B").Stats().LinkDrops; got != 0 {
			t.Errorf("B (restarted): %d link drops, want 0", got)
		}
	})
}
