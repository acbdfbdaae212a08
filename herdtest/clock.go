package herdtest

import (
	"context"
	"time"

	"github.com/proxyherd/herd"
)

// Clock is a herd.Clock on the simulation's virtual time. Its timers are
// events of the simulation with the key "timer <name>": they fire when the
// driver reaches them, each callback in its own goroutine, and all timers
// of one Clock due at the same instant fire together in one step (so the
// order in which goroutines created them does not matter).
type Clock struct {
	s   *Sim
	key string
}

// Clock returns the clock of the party called name (usually a server).
func (s *Sim) Clock(name string) *Clock { return &Clock{s: s, key: "timer " + name} }

// Now returns the simulation's virtual wall-clock time.
func (c *Clock) Now() time.Time { return c.s.Now() }

// AfterFunc calls f in its own goroutine once d of virtual time has
// elapsed, unless the returned Timer is stopped first.
func (c *Clock) AfterFunc(d time.Duration, f func()) herd.Timer {
	return c.s.afterFunc(c.key, d, f)
}

var _ herd.Clock = (*Clock)(nil)

// timer is a pending AfterFunc.
type timer struct {
	s       *Sim
	ev      *event
	f       func()
	fired   bool
	stopped bool
}

func (s *Sim) afterFunc(key string, d time.Duration, f func()) *timer {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &timer{s: s, f: f}
	t.ev = &event{at: s.now + max(d, 0), key: key, kind: kindTimer, timer: t}
	s.schedule(t.ev)
	return t
}

// Stop prevents the call if the timer has not fired; it reports whether it
// did so.
func (t *timer) Stop() bool {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if t.fired || t.stopped {
		return false
	}
	t.stopped = true
	t.s.q.remove(t.ev)
	return true
}

// sleep waits d of virtual time on key's timer, or until ctx is done.
func (s *Sim) sleep(ctx context.Context, key string, d time.Duration) error {
	done := make(chan struct{})
	t := s.afterFunc(key, d, func() { close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}
