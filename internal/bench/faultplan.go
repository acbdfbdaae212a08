package bench

// faultplan.go: the seeded schedule of "herd bench faults". Planning is
// a pure function of its inputs, so a seed printed by one run replays the
// same faults (the same servers, kinds, times and pauses) in another;
// only the execution (faultrun.go) may run late, when a server takes
// longer to come back than the plan allowed for.

import (
	"math/rand/v2"
	"slices"
	"time"
)

// faultKind is what a fault does to a server, and how it ends.
type faultKind string

const (
	// faultKill: SIGKILL; restarted once the pause is over.
	faultKill faultKind = "kill"
	// faultStop: SIGSTOP; SIGCONT once the pause is over.
	faultStop faultKind = "stop"
	// faultTerm: SIGTERM (a clean shutdown); restarted once it has exited
	// and the pause is over.
	faultTerm faultKind = "term"
)

// faultKinds are the kinds in the order -kinds lists them by default.
var faultKinds = []faultKind{faultKill, faultStop, faultTerm}

// maxOut is the most servers a plan has out at once.
const maxOut = 2

// fault is one planned fault.
type fault struct {
	At     time.Duration `json:"at_ns"` // after the load's window starts
	Server string        `json:"server"`
	Kind   faultKind     `json:"kind"`
	Pause  time.Duration `json:"pause_ns"` // from the signal to the restart or SIGCONT
}

// faultPlan is what a schedule is made from.
type faultPlan struct {
	seed    uint64
	n       int           // faults wanted
	window  time.Duration // faults start in [0, window)
	servers []string      // the herd's servers, in a fixed order
	loaded  string        // the server under load, never faulted
	kinds   []faultKind   // drawn from uniformly
	pause   time.Duration // mean pause; each is uniform in [pause/2, 3*pause/2)
	// margin is how long after its pause a server still counts as out: a
	// restarted process takes a moment to listen again.
	margin time.Duration
}

// back returns when f's server is back, by the plan.
func (f fault) back(margin time.Duration) time.Duration {
	return f.At + f.Pause + margin
}

// planFaults returns the faults of p in time order. Start times are drawn
// uniformly over the window; a fault whose time finds maxOut servers out,
// or no server left to fault, is moved to when the first of them is back,
// and one moved past the window is dropped. The server is drawn from
// those not out and not loaded. Every draw comes from one PCG stream
// seeded with p.seed, in a fixed order, so a seed always gives the same
// plan for the same p.
func planFaults(p faultPlan) []fault {
	if p.n <= 0 || p.window <= 0 || len(p.kinds) == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15))
	times := make([]time.Duration, p.n)
	for i := range times {
		times[i] = time.Duration(rng.Int64N(int64(p.window)))
	}
	slices.Sort(times)
	var plan []fault
	var at time.Duration
	for _, t := range times {
		at = max(at, t)
		kind := p.kinds[rng.IntN(len(p.kinds))]
		pause := p.pause/2 + time.Duration(rng.Int64N(max(int64(p.pause), 1)))
		var pick []string
		for {
			var out []fault
			for _, f := range plan {
				if f.At <= at && at < f.back(p.margin) {
					out = append(out, f)
				}
			}
			pick = pick[:0]
			for _, s := range p.servers {
				if s != p.loaded && !slices.ContainsFunc(out, func(f fault) bool { return f.Server == s }) {
					pick = append(pick, s)
				}
			}
			if len(out) < maxOut && len(pick) > 0 {
				break
			}
			if len(out) == 0 {
				return plan // no server but the loaded one
			}
			// Wait for the first server out to come back.
			next := out[0].back(p.margin)
			for _, f := range out[1:] {
				next = min(next, f.back(p.margin))
			}
			at = next
		}
		if at >= p.window {
			break
		}
		plan = append(plan, fault{At: at, Server: pick[rng.IntN(len(pick))], Kind: kind, Pause: pause})
	}
	return plan
}
