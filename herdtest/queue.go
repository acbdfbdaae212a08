package herdtest

import (
	"container/heap"
	"time"
)

// kind is what an event does when the scheduler applies it.
type kind uint8

const (
	kindConnect kind = iota // a dial reaches its listener
	kindData                // bytes reach an endpoint
	kindFIN                 // the other side's end of stream reaches an endpoint
	kindRST                 // a reset reaches an endpoint
	kindTimer               // a Clock.AfterFunc or sim wake-up is due
	kindBreak               // a BreakMidLine fault ends its connection
)

func (k kind) String() string {
	switch k {
	case kindConnect:
		return "connect"
	case kindData:
		return "data"
	case kindFIN:
		return "fin"
	case kindRST:
		return "rst"
	case kindBreak:
		return "break"
	default:
		return "timer"
	}
}

// event is one entry of the scheduler's queue. Events are applied in
// (at, key, seq) order: seq counts the events of one key, so the order never
// depends on which goroutine happened to schedule first.
type event struct {
	at   time.Duration // virtual time since the simulation started
	key  string        // the link direction, dial or clock the event belongs to
	seq  uint64        // per-key counter
	kind kind

	ep    *endpoint // receiving endpoint (data, fin, rst)
	data  []byte    // data
	dial  *pendingDial
	timer *timer
	brk   *breakFault // the fault a break event applies

	index int // in the heap; -1 once removed
}

// eventQueue is a min-heap of events in (at, key, seq) order.
type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }

func (q eventQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.at != b.at {
		return a.at < b.at
	}
	if a.key != b.key {
		return a.key < b.key
	}
	return a.seq < b.seq
}

func (q eventQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}

func (q *eventQueue) Push(x any) {
	e := x.(*event)
	e.index = len(*q)
	*q = append(*q, e)
}

func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	e.index = -1
	return e
}

func (q *eventQueue) push(e *event) { heap.Push(q, e) }
func (q *eventQueue) pop() *event   { return heap.Pop(q).(*event) }
func (q *eventQueue) peek() *event  { return (*q)[0] }
func (q *eventQueue) remove(e *event) {
	if e.index >= 0 {
		heap.Remove(q, e.index)
	}
}
