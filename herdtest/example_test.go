package herdtest_test

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/proxyherd/herd/herdtest"
)

// flood is a whole-herd test as a project that embeds herd would write
// it: the 2018 herd, a report, a partition and a crash, then the heal, and
// a check that every server agrees. TestExample runs it and compares its
// output with testdata/example.golden.
func flood(t *testing.T, w io.Writer) {
	herdtest.Run(t, herdtest.Options{Seed: 1}, func(t *testing.T, c *herdtest.Cluster) {
		if _, ok := c.Quiesce(time.Minute); !ok {
			t.Fatal("links did not come up")
		}
		fmt.Fprint(w, c.IAMAT("Goloman", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997"))
		c.Quiesce(time.Minute) // the report reaches every server

		c.Partition("Welsh") // Welsh is cut off from the rest of the herd
		c.Crash("Hands")     // and Hands loses its table
		fmt.Fprint(w, c.IAMAT("Holiday", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023940.5"))
		fmt.Fprint(w, c.WHATSAT("Welsh", "kiwi.cs.ucla.edu", "10", 0)) // still the old record

		c.Heal()
		c.Restart("Hands") // a fresh node, refilled by anti-entropy
		took, ok := c.Quiesce(time.Minute)
		converged, diff := c.Converged()
		fmt.Fprintf(w, "quiesced: %v after %v; converged: %v %s\n", ok, took, converged, diff)
		fmt.Fprint(w, c.WHATSAT("Hands", "kiwi.cs.ucla.edu", "10", 1))
		fmt.Fprintf(w, "trace: %d entries\n", c.Sim().Trace().Len())
	})
}

// Example shows a whole-herd test. A synctest bubble needs the *testing.T
// of a Test function, which an Example does not get, so this example only
// compiles; TestExample runs it and checks its output. In your tests:
//
//	func TestFlood(t *testing.T) { flood(t, os.Stdout) }
func Example() {
	_ = flood
}
