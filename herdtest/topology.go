package herdtest

import (
	"fmt"
	"math/rand/v2"

	"github.com/proxyherd/herd"
)

// serverNames returns n names that sort in index order: s00, s01, ...
func serverNames(n int) []string {
	width := len(fmt.Sprint(max(n-1, 0)))
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("s%0*d", width, i)
	}
	return names
}

// RingTopology returns n servers (s0, s1, ... zero-padded so they sort in
// order) each linked to the next, the last to the first: the slowest
// connected herd to flood, as every update crosses n/2 links.
func RingTopology(n int) herd.Topology {
	names := serverNames(n)
	t := herd.Topology{Servers: names}
	for i := range n {
		if j := (i + 1) % n; j != i && !(n == 2 && i == 1) {
			t.Links = append(t.Links, [2]string{names[i], names[j]})
		}
	}
	return t
}

// RandomTopology returns a connected herd of n servers (named as in
// RingTopology) chosen by r: a random spanning tree, plus random extra
// links until the average number of neighbours reaches degree (or the
// graph is complete).
func RandomTopology(r *rand.Rand, n int, degree float64) herd.Topology {
	names := serverNames(n)
	t := herd.Topology{Servers: names}
	have := make(map[[2]int]bool)
	add := func(i, j int) bool {
		if i == j {
			return false
		}
		if j < i {
			i, j = j, i
		}
		if have[[2]int{i, j}] {
			return false
		}
		have[[2]int{i, j}] = true
		t.Links = append(t.Links, [2]string{names[i], names[j]})
		return true
	}
	// Random tree: each server links to one placed before it, in a random
	// order of placement.
	order := r.Perm(n)
	for k := 1; k < n; k++ {
		add(order[k], order[r.IntN(k)])
	}
	want := min(int(degree*float64(n)/2), n*(n-1)/2)
	for len(t.Links) < want {
		add(r.IntN(n), r.IntN(n))
	}
	return t
}
