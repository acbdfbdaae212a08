// Package testfile reads the fixtures under a test's testdata folder, for
// the tests of package herd and package places, which share fixtures of
// the same names.
package testfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Read returns the bytes of testdata/name, failing t if it cannot.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Names lists the files in testdata that match pattern (a filepath.Match
// pattern such as "nearby_*.json") by their base names, failing t if
// there are none.
func Names(t testing.TB, pattern string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(names) == 0 {
		t.Fatalf("no %s in testdata: %v", pattern, err)
	}
	for i := range names {
		names[i] = filepath.Base(names[i])
	}
	return names
}
