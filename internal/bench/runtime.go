package bench

// runtime.go: what "herd bench table" and "herd bench resync" read
// of their own process: resident memory (/proc/self/status VmRSS), the Go
// heap and the collector's work (runtime/metrics).
//
// The runtime updates its CPU estimates (/cpu/classes/...) only when a
// collection ends, so a phase is measured between forced collections
// (runtime.GC): the sample taken at its start is current, and the sample
// at its end is taken twice, before the closing collection (RSS and heap
// as the phase left them; CPU as of the phase's last natural collection)
// and after it (CPU current, heap live).

import (
	"os"
	"runtime"
	"runtime/metrics"
	"time"
)

// rtSample is one reading of the process's memory and collector figures.
type rtSample struct {
	at          time.Time
	rss         int64   // VmRSS, bytes
	heapObjects uint64  // live and unswept heap objects, bytes
	heapLive    uint64  // heap marked live by the last collection, bytes
	mapped      uint64  // all memory the Go runtime maps, bytes
	gcCycles    uint64  // collections completed
	gcCPU       float64 // collector CPU, seconds (runtime estimate)
	totalCPU    float64 // GOMAXPROCS x wall time, seconds (runtime estimate)
	idleCPU     float64 // the part of totalCPU nobody used
	procCPU     time.Duration
}

var rtMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/gc/heap/live:bytes",
	"/memory/classes/total:bytes",
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
	"/cpu/classes/total:cpu-seconds",
	"/cpu/classes/idle:cpu-seconds",
}

// sampleRuntime reads the figures now.
func sampleRuntime() rtSample {
	ms := make([]metrics.Sample, len(rtMetrics))
	for i, name := range rtMetrics {
		ms[i].Name = name
	}
	metrics.Read(ms)
	u := func(i int) uint64 {
		if ms[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return ms[i].Value.Uint64()
	}
	f := func(i int) float64 {
		if ms[i].Value.Kind() != metrics.KindFloat64 {
			return 0
		}
		return ms[i].Value.Float64()
	}
	s := rtSample{at: time.Now(), heapObjects: u(0), heapLive: u(1), mapped: u(2), gcCycles: u(3),
		gcCPU: f(4), totalCPU: f(5), idleCPU: f(6), procCPU: processCPU()}
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		s.rss = procKB(status, "VmRSS:")
	}
	return s
}

// collectAndSample forces a collection, then samples: the CPU figures
// are then current. It also returns the sample taken just before the
// collection and what the collection itself cost.
func collectAndSample() (before, after rtSample, gc gcCost) {
	before = sampleRuntime()
	t := time.Now()
	runtime.GC()
	gc.Wall = time.Since(t)
	after = sampleRuntime()
	gc.CPU = time.Duration((after.gcCPU - before.gcCPU) * 1e9)
	return before, after, gc
}

// gcCost is what one forced collection took.
type gcCost struct {
	Wall time.Duration `json:"wall_ns"`
	CPU  time.Duration `json:"gc_cpu_ns"` // runtime estimate
}

// gcPhase is the collector's share of a phase that starts at a sample
// taken after a forced collection and ends with a forced collection.
//
// The runtime's CPU figures are as of the end of the last collection, so
// the sample taken before the closing collection reads them as of the end
// of the phase's last natural collection: from the start to there is a
// whole number of collection cycles, over which the collector's share is
// exact as far as the runtime's estimates go (the "natural" figures). The
// "closed" figures run to the end of the closing forced collection, which
// a phase with few natural cycles is dominated by.
type gcPhase struct {
	Wall   time.Duration `json:"wall_ns"`
	Cycles uint64        `json:"gc_cycles"` // natural collections in the phase
	// Natural: from the start to the end of the last natural collection.
	GCCPU     float64 `json:"gc_cpu_s"`        // collector CPU (runtime estimate)
	Available float64 `json:"available_cpu_s"` // GOMAXPROCS x wall time
	Busy      float64 `json:"busy_cpu_s"`      // the part of Available used
	// Closed: from the start to the end of the closing forced collection.
	GCCPUClosed     float64 `json:"gc_cpu_closed_s"`
	AvailableClosed float64 `json:"available_cpu_closed_s"`
	// ProcessCPU is the process's CPU time (getrusage) over the phase,
	// collector, node and load generator together: against Wall, it shows
	// how much of the machine the process got.
	ProcessCPU time.Duration `json:"process_cpu_ns"`
}

// newGCPhase computes the phase from its start sample and the samples
// before and after its closing collection.
func newGCPhase(start, end, closed rtSample) gcPhase {
	return gcPhase{
		Wall:            end.at.Sub(start.at),
		Cycles:          end.gcCycles - start.gcCycles,
		GCCPU:           end.gcCPU - start.gcCPU,
		Available:       end.totalCPU - start.totalCPU,
		Busy:            (end.totalCPU - end.idleCPU) - (start.totalCPU - start.idleCPU),
		GCCPUClosed:     closed.gcCPU - start.gcCPU,
		AvailableClosed: closed.totalCPU - start.totalCPU,
		ProcessCPU:      end.procCPU - start.procCPU,
	}
}

// share returns part/whole, or 0 when whole is not positive.
func share(part, whole float64) float64 {
	if whole <= 0 {
		return 0
	}
	return part / whole
}
