//go:build unix

package herd

import (
	"runtime"
	"syscall"
)

// segAlloc hands out ordinary arena segments from anonymous memory maps
// outside the Go heap, as fastcache does: the collector neither scans nor
// counts them, so a table of a million records does not double the heap
// target (GOGC) of the process that embeds the node. Maps are made
// segsPerMap segments at a time and unmapped when the table is collected.
type segAlloc struct {
	spare [][]byte // carved from maps, not handed out yet
	maps  *segMaps
}

// segMaps is kept apart from the table so the cleanup can see it.
type segMaps struct{ m [][]byte }

const segsPerMap = 64 // 4 MiB per map

// newSegAlloc returns an allocator whose maps are unmapped once owner is
// unreachable.
func newSegAlloc(owner *table) segAlloc {
	maps := &segMaps{}
	runtime.AddCleanup(owner, func(maps *segMaps) {
		for _, m := range maps.m {
			syscall.Munmap(m)
		}
	}, maps)
	return segAlloc{maps: maps}
}

// get returns a zeroed segment of segSize bytes.
func (a *segAlloc) get() []byte {
	if len(a.spare) == 0 {
		m, err := syscall.Mmap(-1, 0, segsPerMap*segSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			return make([]byte, segSize) // no map: the heap will do
		}
		a.maps.m = append(a.maps.m, m)
		for i := range segsPerMap {
			a.spare = append(a.spare, m[i*segSize:(i+1)*segSize:(i+1)*segSize])
		}
	}
	s := a.spare[len(a.spare)-1]
	a.spare = a.spare[:len(a.spare)-1]
	return s
}
