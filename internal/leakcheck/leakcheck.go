// Package leakcheck fails a test binary whose goroutines outlive its tests.
// It is for the project's own TestMain functions.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests and then, if they passed, fails the run while a
// goroutine whose stack mentions any of patterns is still alive.
//
// A goroutine that has just signalled its owner (wg.Done, close(done)) is
// still returning for a moment after Close has returned, so the check looks
// again for up to a second before it calls anything a leak, as
// go.uber.org/goleak does. A real leak never goes away.
func Main(m *testing.M, patterns ...string) {
	code := m.Run()
	if code == 0 {
		if leak, stacks := find(patterns); leak != "" {
			fmt.Fprintf(os.Stderr, "goroutine leak: %s still running\n%s", leak, stacks)
			code = 1
		}
	}
	os.Exit(code)
}

func find(patterns []string) (leak, stacks string) {
	buf := make([]byte, 1<<20)
	for try := 0; try < 100; try++ {
		stacks = string(buf[:runtime.Stack(buf, true)])
		leak = ""
		for _, p := range patterns {
			if strings.Contains(stacks, p) {
				leak = p
				break
			}
		}
		if leak == "" {
			return "", ""
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
	return leak, stacks
}
