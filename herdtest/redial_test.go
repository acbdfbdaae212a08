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
