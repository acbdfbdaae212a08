package herdtest_test

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/example.golden")

func TestExample(t *testing.T) {
	var b strings.Builder
	flood(t, &b)
	const golden = "testdata/example.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("output differs from %s (rerun with -update if the change is intended):\n%s", golden, b.String())
	}
}
