package bench

// faultrun.go: carrying out a fault plan (faultplan.go) on a herd of
// processes (herdproc.go) while the load runs. Each fault is applied at
// its planned time, or later if its server, or a second server, is still
// out (a restarted process that has not yet started to listen counts as
// out), so that however slow restarts are, at most maxOut servers are out
// at once. Every fault is printed as it happens, with its time after the
// window started.

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/proxyherd/herd"
)

// appliedFault is a fault as it happened.
type appliedFault struct {
	fault
	Started time.Duration `json:"started_ns"` // when the signal was sent, after the window started
	Back    time.Duration `json:"back_ns"`    // when the server was running again: continued, or restarted and listening
	Pid     int           `json:"pid"`
	NewPid  int           `json:"new_pid,omitempty"` // the restarted process
	Err     string        `json:"error,omitempty"`
}

// faultRunner applies a plan to h.
type faultRunner struct {
	h      *herdProcs
	say    func(format string, args ...any)
	t0     time.Time       // the window's start; faults' times count from it
	ctx    context.Context // start's: once it is done, stopped servers are continued but none is restarted
	end    chan struct{}   // closed when the load is over: recover every server at once, apply no more faults
	bound  time.Duration   // on a restarted server listening again
	recov  sync.WaitGroup
	mu     sync.Mutex
	ended  bool          // finish was called
	done   chan struct{} // closed when run returns; nil until start
	out    map[string]bool
	back   chan struct{} // a server came back (buffered, 1)
	faults []*appliedFault
}

// newFaultRunner returns a runner for h that waits up to bound for a
// restarted server to listen and reports through say.
func newFaultRunner(h *herdProcs, bound time.Duration, say func(string, ...any)) *faultRunner {
	return &faultRunner{h: h, say: say, bound: bound, end: make(chan struct{}),
		out: map[string]bool{}, back: make(chan struct{}, 1)}
}

// since returns the time after the window's start.
func (r *faultRunner) since() time.Duration { return time.Since(r.t0) }

// start sets r.t0 to now and applies plan's faults in order, in a
// goroutine, starting the recovery of each, until every fault has been
// applied or finish is called. Call it when the window starts; after
// finish it does nothing.
func (r *faultRunner) start(ctx context.Context, plan []fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended || r.done != nil {
		return
	}
	r.t0, r.ctx = time.Now(), ctx
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.run(ctx, plan)
	}()
}

// run is start's goroutine.
func (r *faultRunner) run(ctx context.Context, plan []fault) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for _, f := range plan {
		timer.Reset(time.Until(r.t0.Add(f.At)))
		select {
		case <-timer.C:
		case <-r.end:
			return
		case <-ctx.Done():
			return
		}
		for !r.canFault(f.Server) {
			select {
			case <-r.back:
			case <-r.end:
				return
			case <-ctx.Done():
				return
			}
		}
		r.apply(f)
	}
}

// canFault reports whether server may be faulted now: it is not out,
// and fewer than maxOut servers are.
func (r *faultRunner) canFault(server string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.out[server] && len(r.out) < maxOut
}

// apply sends f's signal and starts its recovery.
func (r *faultRunner) apply(f fault) {
	s := r.h.server(f.Server)
	if f.Kind != faultStop {
		// A restart starts its counters afresh: keep the old process's
		// link drops. Best effort; a server that does not answer loses
		// them (the report's per-server total is then low).
		ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
		st, err := r.h.stats(ctx, s)
		cancel()
		if err != nil {
			st = herd.Stats{}
		}
		s.addDrops(st.LinkDrops)
	}
	sig := map[faultKind]syscall.Signal{faultKill: syscall.SIGKILL, faultStop: syscall.SIGSTOP, faultTerm: syscall.SIGTERM}[f.Kind]
	a := &appliedFault{fault: f, Started: r.since()}
	pid, err := s.signal(sig)
	a.Pid = pid
	r.mu.Lock()
	r.faults = append(r.faults, a)
	if err != nil {
		a.Err = err.Error()
		r.mu.Unlock()
		r.say("%s %s %s (pid %d): %v", fmtOffset(a.Started), f.Kind, f.Server, pid, err)
		return
	}
	r.out[f.Server] = true
	r.mu.Unlock()
	r.say("%s %s %s (pid %d), back in %s", fmtOffset(a.Started), f.Kind, f.Server, pid, fmtDur(f.Pause))
	r.recov.Add(1)
	go r.recover(a, s)
}

// recover ends fault a once its pause is over or the load is: SIGCONT,
// or a restart once the process has exited.
func (r *faultRunner) recover(a *appliedFault, s *herdProc) {
	defer r.recov.Done()
	t := time.NewTimer(time.Until(r.t0.Add(a.Started + a.Pause)))
	select {
	case <-t.C:
	case <-r.end:
		t.Stop()
	}
	var err error
	how := "continued"
	switch a.Kind {
	case faultStop:
		_, err = s.signal(syscall.SIGCONT)
	default:
		s.waitExit(termBound)
		if err = r.ctx.Err(); err == nil {
			err = r.h.start(s)
		}
		if err == nil {
			a.NewPid = s.pid()
			err = r.h.waitListening(r.ctx, s, r.bound)
		}
		how = fmt.Sprintf("restarted (pid %d)", a.NewPid)
	}
	r.mu.Lock()
	a.Back = r.since()
	if err != nil {
		a.Err = err.Error()
	}
	delete(r.out, a.Server)
	r.mu.Unlock()
	select {
	case r.back <- struct{}{}:
	default:
	}
	if err != nil {
		r.say("%s %s %s: %v", fmtOffset(a.Back), how, a.Server, err)
		return
	}
	r.say("%s %s %s, out for %s", fmtOffset(a.Back), how, a.Server, fmtDur(a.Back-a.Started))
}

// finish ends the faults (no more are applied, and the pauses of those
// under way are cut short), waits until every server out is back, and
// returns the faults applied.
func (r *faultRunner) finish() []*appliedFault {
	r.mu.Lock()
	r.ended = true
	done := r.done
	r.mu.Unlock()
	close(r.end)
	if done != nil {
		<-done
	}
	r.recov.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.faults
}

// fmtOffset formats a time after the window's start: "+1.234s".
func fmtOffset(d time.Duration) string {
	return fmt.Sprintf("%+.3fs", d.Seconds())
}
