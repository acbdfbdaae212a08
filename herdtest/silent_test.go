package herdtest

import (
	"slices"
	"testing"
	"time"

	"github.com/proxyherd/herd"
)

// TestSilentPartitionNoticed: Welsh's network silently drops every packet
// (no reset, no FIN). Both ends notice within PeerTimeout and reports the
// link down, records keep flowing among the rest, and once the network
// heals the link is redialed and Welsh catches up.
func TestSilentPartitionNoticed(t *testing.T) {
	const peerTimeout = 3 * time.Second
	opts := Options{Seed: 3, Topology: herd.Presets["2018"], Configure: func(cfg *herd.Config) {
		cfg.PeerTimeout = peerTimeout
		cfg.RedialMin = 100 * time.Millisecond
		cfg.RedialMax = time.Second
	}}
	Run(t, opts, func(t *testing.T, c *Cluster) {
		c.IAMAT("Goloman", "before", "+1.0+1.0", "1520023934.5")
		if _, ok := c.Quiesce(10 * time.Second); !ok {
			t.Fatal("no quiet before the partition")
		}
		holiday := c.Node("Holiday")
		before := holiday.Stats()
		c.SilentPartition("Welsh")
		start := c.Sim().Elapsed()
		welsh := c.Node("Welsh")
		noticed := c.RunUntil(func() bool {
			return !slices.Contains(holiday.Links(), "Welsh") && len(welsh.Links()) == 0
		}, 2*peerTimeout)
		took := c.Sim().Elapsed() - start
		if !noticed || took > peerTimeout+time.Second {
			t.Fatalf("Holiday and Welsh noticed the silent partition: %v, after %v (PeerTimeout %v)", noticed, took, peerTimeout)
		}
		if st := holiday.Stats(); st.PeerTimeouts-before.PeerTimeouts != 1 {
			t.Errorf("PeerTimeouts +%d, want +1", st.PeerTimeouts-before.PeerTimeouts)
		}
		at := c.IAMAT("Goloman", "during", "+2.0+2.0", "1520023935.5")
		c.RunFor(time.Second)
		c.Heal()
		ok := c.RunUntil(func() bool {
			r, found := c.Node("Welsh").Lookup("during")
			return found && r.Line+"\n" == at
		}, 10*time.Second)
		if !ok {
			t.Fatal("Welsh never caught up after the network healed")
		}
		if ok, diff := c.Converged(); !ok {
			t.Fatalf("not converged: %s", diff)
		}
	})
}
