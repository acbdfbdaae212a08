package herdtest

import (
	"slices"
	"strings"
)

// StopReading makes host stop reading what the parties in from send it:
// from then on, Read on host's end of every connection with one of them
// (current and future ones) blocks as if nothing had arrived, until
// ResumeReading. With no from, host stops reading every connection. This
// is a process that stops reading its socket: bytes pile up unread at
// host and, with SimOptions.Window, the senders' writes block once the
// window is full. A reset or a Close of host's end still ends a blocked
// Read, so nodes can close.
func (s *Sim) StopReading(host string, from ...string) {
	s.settle()
	s.mu.Lock()
	if len(from) == 0 {
		from = []string{""}
	}
	for _, f := range from {
		s.stopped[[2]string{host, f}] = true
	}
	s.fault("stop-reading", host+" ["+strings.Join(from, " ")+"]")
	s.mu.Unlock()
	s.settle()
}

// ResumeReading undoes StopReading for the same host and parties (with no
// from, every StopReading of host) and wakes the blocked readers.
func (s *Sim) ResumeReading(host string, from ...string) {
	s.settle()
	s.mu.Lock()
	if len(from) == 0 {
		for k := range s.stopped {
			if k[0] == host {
				delete(s.stopped, k)
			}
		}
	}
	for _, f := range from {
		delete(s.stopped, [2]string{host, f})
	}
	s.fault("resume-reading", host+" ["+strings.Join(from, " ")+"]")
	for _, c := range s.conns {
		for i := range c.ends {
			c.ends[i].wake()
		}
	}
	s.mu.Unlock()
	s.settle()
}

// readStopped reports whether e's owner does not read (StopReading).
// s.mu must be held.
func (s *Sim) readStopped(e *endpoint) bool {
	if len(s.stopped) == 0 {
		return false
	}
	return s.stopped[[2]string{e.host, ""}] || s.stopped[[2]string{e.host, e.peer().host}]
}

// Flow describes one direction of a live connection: what flow control
// sees of it.
type Flow struct {
	// Key names the direction, as in the trace: "Welsh->Holiday#2>" is
	// from the dialer Welsh to Holiday, "Welsh->Holiday#2<" back.
	Key string
	// From and To are the sending and the receiving party.
	From, To string
	// Held is the bytes written on this direction that the receiver has
	// neither read nor lost: in the sender's step buffer, in flight or
	// unread. SimOptions.Window bounds it.
	Held int
	// Unacked is the bytes written that the receiver has not read, lost
	// ones included: what the window counts. It differs from Held only
	// once the receiver has closed or been reset.
	Unacked int
	// Unread is the part of Held that has arrived and waits in the
	// receiver's buffer.
	Unread int
	// Written and Read are the bytes the sender's Writes took and the
	// receiver's Reads returned, since the connection opened.
	Written, Read int64
	// Blocked is the number of Writes waiting for window space.
	Blocked int
	// Stopped reports whether the receiver does not read (StopReading).
	Stopped bool
}

// Flows returns every direction of every live connection, sorted by key.
// A connection stays live until both its ends are closed or reset.
func (s *Sim) Flows() []Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Flow
	for _, c := range s.conns {
		for i := range c.ends {
			w := &c.ends[i]
			r := w.peer()
			out = append(out, Flow{
				Key: w.outKey, From: w.host, To: r.host,
				Held: w.held, Unacked: w.unacked, Unread: len(r.buf),
				Written: w.written, Read: r.read,
				Blocked: w.blocked, Stopped: s.readStopped(r),
			})
		}
	}
	slices.SortFunc(out, func(a, b Flow) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Buffered returns the bytes held by every direction of every live
// connection together (the sum of Flow.Held): what the simulated network
// holds in memory for its users right now.
func (s *Sim) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		n += c.ends[0].held + c.ends[1].held
	}
	return n
}

// Dials returns how many times party from has dialed addr ("Hands:7000"),
// whatever the outcome.
func (s *Sim) Dials(from, addr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialN[from+"->"+addr]
}
