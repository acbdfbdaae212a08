package herdtest

import (
	"bytes"
	"fmt"
)

// BreakMode is how a [Sim.BreakMidLine] fault ends its connection.
type BreakMode int

const (
	// BreakReset resets the connection once the receiver has had the
	// chance to read the partial line: both ends then fail with
	// ECONNRESET, as after a middlebox that drops the connection.
	BreakReset BreakMode = iota
	// BreakFIN ends the direction with FIN right after the partial line:
	// the receiver reads the partial line, then EOF, as when the sender's
	// socket dies in the middle of a write (its process killed while a
	// write was half done, its kernel closing the socket). The sender's
	// end fails with ECONNRESET.
	BreakFIN
)

func (m BreakMode) String() string {
	if m == BreakFIN {
		return "fin"
	}
	return "reset"
}

// breakFault is an armed BreakMidLine.
type breakFault struct {
	from, to string
	mode     BreakMode
	left     int
}

// BreakMidLine arms count faults on connections between registered hosts
// (servers, or attacker hosts that have a Transport; never client
// connections) from host from to host to ("" matches any host): each
// time an AT line starts in a chunk of bytes arriving on such a
// direction, the chunk is cut inside that line, after a number of its
// bytes drawn from the direction's random stream (at least one, never the
// whole line), the rest of the chunk and everything sent after it on that
// direction is lost, and the connection ends as mode says. The cut
// happens at delivery, so which line is hit depends only on the event
// order: one seed still gives one trace. Faults fire in the order they
// were armed; Stats.Breaks counts them.
func (s *Sim) BreakMidLine(from, to string, mode BreakMode, count int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if count <= 0 {
		return
	}
	s.breaks = append(s.breaks, &breakFault{from: from, to: to, mode: mode, left: count})
	s.fault("break-armed", fmt.Sprintf("%q->%q %v x%d", from, to, mode, count))
}

// breakAt returns the armed fault that applies to data arriving at e and
// the number of bytes of data to deliver, or nil. s.mu must be held.
func (s *Sim) breakAt(e *endpoint, data []byte) (*breakFault, int) {
	if !e.c.peers {
		return nil, 0
	}
	var f *breakFault
	for _, b := range s.breaks {
		if b.left > 0 && (b.from == "" || b.from == e.peer().host) && (b.to == "" || b.to == e.host) {
			f = b
			break
		}
	}
	if f == nil {
		return nil, 0
	}
	// The first AT line that starts in data.
	i := -1
	for p := 0; p+3 <= len(data); p++ {
		atStart := (p == 0 && !e.midLine) || (p > 0 && data[p-1] == '\n')
		if atStart && string(data[p:p+3]) == "AT " {
			i = p
			break
		}
	}
	if i < 0 {
		return nil, 0
	}
	j := len(data)
	if nl := bytes.IndexByte(data[i:], '\n'); nl >= 0 {
		j = i + nl
	}
	// Deliver data[:k], with k-i in [1, j-i-1]: part of the line, never
	// all of it.
	k := i + 1 + s.rng(e.peer().outKey).IntN(j-i-1)
	return f, k
}

// cutLine applies fault f to a data event at e: it delivers data[:k],
// loses the rest and schedules the end of the connection. s.mu must be
// held.
func (s *Sim) cutLine(e *endpoint, ev *event, f *breakFault, k int) {
	f.left--
	s.stats.Breaks++
	w := e.peer()
	w.cutOut = true
	e.lost(len(ev.data) - k)
	s.trace.add(s.now, ev.key, "break", fmt.Sprintf("%v after %d of %d bytes", f.mode, k, len(ev.data)))
	ev.data = ev.data[:k]
	s.schedule(&event{at: s.now, key: ev.key, kind: kindBreak, ep: e, brk: f})
}

// applyBreak ends the connection of a cut line. s.mu must be held.
func (s *Sim) applyBreak(ev *event) {
	e := ev.ep
	c := e.c
	switch ev.brk.mode {
	case BreakFIN:
		s.trace.add(s.now, ev.key, "fin", "break")
		if !e.closed && !e.rst {
			e.eof = true
			e.wake()
		}
		e.peer().reset()
		s.maybeForget(c)
	default:
		s.stats.Resets++
		s.trace.add(s.now, c.id, "reset", "break")
		for i := range c.ends {
			c.ends[i].reset()
		}
		s.forget(c)
	}
}

// CancelBreaks disarms every BreakMidLine fault that has not fired yet.
func (s *Sim) CancelBreaks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.breaks = nil
	s.fault("break-cancelled", "")
}
