package herdtest

import (
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	Run(t, Options{Seed: 1}, func(t *testing.T, c *Cluster) {
		d, ok := c.Quiesce(time.Minute)
		t.Logf("quiesce %v %v stats %+v", d, ok, c.Sim().Stats())
		rep := c.IAMAT("Goloman", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997")
		t.Logf("reply %q", rep)
		c.Settle()
		ok2, diff := c.Converged()
		t.Logf("converged %v %s", ok2, diff)
		t.Log(c.WHATSAT("Welsh", "kiwi.cs.ucla.edu", "10", 2))
		t.Logf("trace %d %s", c.Sim().Trace().Len(), c.Sim().Trace().Sum())
		for _, l := range c.Sim().Trace().Tail()[40:] {
			t.Log(l)
		}
	})
}
