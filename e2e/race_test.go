//go:build race

package e2e_test

// raceEnabled reports whether the tests run with -race; the binaries they
// start are then built with -race too.
const raceEnabled = true
