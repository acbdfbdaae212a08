// Package herdtest runs whole herds of herd.Nodes inside one test,
// deterministically, with faults: a simulated network (byte streams with
// TCP's half-close and reset semantics, latency ranges, partitions,
// connection resets, crashes and restarts), a virtual clock and a fake
// Places provider, all driven by one goroutine inside a testing/synctest
// bubble. No real time passes and no real socket is opened.
//
// The quickest way in is [Run], which opens the bubble, builds a
// [Cluster] from a topology and closes it at the end:
//
//	func TestFlood(t *testing.T) {
//		herdtest.Run(t, herdtest.Options{Seed: 1}, func(t *testing.T, c *herdtest.Cluster) {
//			c.Quiesce(time.Minute) // all links up
//			c.IAMAT("Goloman", "kiwi.cs.ucla.edu", "+34.068930-118.445127", "1520023934.918963997")
//			c.Partition("Welsh")
//			c.Crash("Hands")
//			c.Heal()
//			c.Restart("Hands")
//			c.Quiesce(time.Minute)
//			if ok, diff := c.Converged(); !ok {
//				t.Fatal(diff)
//			}
//		})
//	}
//
// Under the Cluster sits a [Sim], usable on its own to run any code that
// takes a herd.Transport and a herd.Clock.
//
// # Determinism
//
// One seed gives one run: the same events in the same order at the same
// virtual times, and so the same [Trace] hash, whatever GOMAXPROCS is and
// however the Go scheduler interleaves goroutines. This rests on:
//
//   - One event at a time, in (time, key, seq) order. Keys name a
//     connection direction, a dial or a clock; seq counts per key, never
//     globally, so goroutines racing within a step cannot reorder events.
//   - A settle step (synctest.Wait) after each event: every goroutine the
//     event woke runs until it blocks again before the next event.
//   - Bytes written during a step are held per connection direction and
//     sent, concatenated, at the end of the step in key order: how a
//     writer chunked them does not matter.
//   - A random stream per key (PCG seeded from SHA-256 of the seed and the
//     key) for latencies and splits, per-node entropy seeded from the seed
//     and the node's name and incarnation, and herd's own rule that each
//     of a node's goroutines draws from its own labelled stream.
//   - All timers of one clock due at the same instant fire in one step.
//
// What stays outside: decisions a node makes from the interleaving of its
// own goroutines within one step. Herd's only such case is a link with
// more than Config.PeerQueue records waiting, which then owes clients
// instead of records and merges them depending on when its writer runs;
// keep PeerQueue above the number of records a single step can queue (the
// default, 8192, is; a link-up of a large table can exceed it) when
// determinism matters.
//
// # Faults and what survives them
//
// Besides partitions, resets, crashes and latency, a simulation can
// apply back-pressure and hostile behaviour: SimOptions.Window (and
// Options.Window) gives every connection direction a TCP-like
// flow-control window, so writers block when the receiver does not read;
// [Sim.StopReading] makes a host stop reading chosen connections;
// [Sim.BreakMidLine] cuts a record line in the middle of its delivery and
// ends the connection; [Sim.Flows], [Sim.Buffered] and Stats.MaxBuffered
// show what the network holds.
//
// Partitions refuse dials across them and reset connections across them.
// Clients (connections made by Cluster.Connect, Report, Command or
// Sim.Dial from a non-host) stand outside the herd and are never cut. A
// crash closes all of a host's sockets at once and the node's table is
// lost; a restart is a fresh node with an empty table on the same
// address. A record held only by a node that crashes is lost with it;
// tests that check convergence against every accepted report must only
// crash a node when each record it holds is also held (or bettered) by
// another running node.
package herdtest
