//go:build !unix

package herd

// segAlloc hands out ordinary arena segments from the Go heap (see
// segalloc_unix.go for the maps used where they exist).
type segAlloc struct{}

func newSegAlloc(*table) segAlloc { return segAlloc{} }

// get returns a zeroed segment of segSize bytes.
func (*segAlloc) get() []byte { return make([]byte, segSize) }
