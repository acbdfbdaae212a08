package bench

// sched.go: the arithmetic of open-loop load (herd bench load
// -rate). Requests go out on a fixed schedule whatever the replies do,
// and a request's latency counts from the time it was due, not from when
// it was written: a server that stalls for a second then delays every
// request due in that second, as it would delay real clients, instead of
// delaying only the few the generator happened to have in flight
// ("coordinated omission", corrected as wrk2 does). Pure functions, so
// the tests can check them exactly.

// schedule is the send schedule of one connection of an open-loop load.
// Over all conns connections, request g = k*conns + conn (request k of
// connection conn) is due g/rate seconds after the start, so the
// connections' requests interleave evenly instead of arriving in bursts
// of one per connection.
type schedule struct {
	rate  float64 // requests per second over all connections; > 0
	conns int     // connections; > 0
	conn  int     // this connection, 0 <= conn < conns
}

// at returns when request k of the connection is due, in nanoseconds
// after the start.
func (s schedule) at(k uint64) int64 {
	g := k*uint64(s.conns) + uint64(s.conn)
	return int64(float64(g) * 1e9 / s.rate)
}

// due returns how many of the connection's requests are due at t
// nanoseconds after the start: the least k with at(k) > t.
func (s schedule) due(t int64) uint64 {
	if t < 0 {
		return 0
	}
	var k uint64
	if x := float64(t)*s.rate/1e9 - float64(s.conn); x >= 0 {
		k = uint64(x/float64(s.conns)) + 1
	}
	// The division above can round either way; at is the reference.
	for k > 0 && s.at(k-1) > t {
		k--
	}
	for s.at(k) <= t {
		k++
	}
	return k
}

// latency returns the latency of request k of the connection answered at
// t (both in nanoseconds after the start), counted from when it was due.
// It is never negative: the writer never sends a request early.
func (s schedule) latency(k uint64, t int64) int64 {
	return max(t-s.at(k), 0)
}
