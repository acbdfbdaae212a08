package herd

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNthField(t *testing.T) {
	for _, c := range []struct {
		line string
		f    int
		want string
	}{
		{"AT Hands +0.1 kiwi +1+2 3", 3, "kiwi"},
		{"AT Hands +0.1 kiwi", 3, "kiwi"},
		{"AT Hands +0.1", 3, ""},
		{"IAMAT kiwi +1+2 3", 1, "kiwi"},
		{"IAMAT  kiwi +1+2 3", 1, ""}, // two spaces: an empty field
		{"IAMAT", 1, ""},
		{"", 0, ""},
		{"x y", 0, "x"},
	} {
		if got := string(nthField([]byte(c.line), c.f)); got != c.want {
			t.Errorf("nthField(%q, %d) = %q, want %q", c.line, c.f, got, c.want)
		}
	}
}

// TestTableWarm checks what warm reports and that it changes nothing: it
// only reads.
func TestTableWarm(t *testing.T) {
	tab := newTable(hashKey{1, 2})
	line := func(i int) string {
		return fmt.Sprintf("AT Hands +0.100000000 client-%d +34.068930-118.445127 %d.5", i, i)
	}
	var buf strings.Builder
	for i := range 40 {
		buf.WriteString(line(i) + "\n")
	}
	if got := tab.warm([]byte(buf.String()), 3); got != 1<<30 {
		t.Fatalf("warm on a small table = %d, want 1<<30 (nothing to warm)", got)
	}
	for i := range warmMinClients {
		r, ok := parseAT([]byte(line(i)))
		if !ok {
			t.Fatal(line(i))
		}
		tab.offer(&r, DefaultMaxClients)
	}
	before := tab.snapshot()
	for _, c := range []struct {
		buf  string
		want int
	}{
		{buf.String(), warmBatch},
		{line(1) + "\n" + "garbage\n\n" + line(99999999) + "\n" + line(2), 4},
		{line(1), 0},
		{strings.Repeat("x", warmScan) + "\n" + line(1) + "\n", 0}, // past warmScan
		{line(1) + "\n" + strings.Repeat("x", warmScan) + "\n", 1},
		{"", 0},
	} {
		if got := tab.warm([]byte(c.buf), 3); got != c.want {
			t.Errorf("warm(%.40q...) = %d lines, want %d", c.buf, got, c.want)
		}
	}
	if d := cmp.Diff(before, tab.snapshot()); d != "" {
		t.Fatalf("warm changed the table:\n%s", d)
	}
}
