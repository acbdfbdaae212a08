package gdoc

import "testing"

func TestPlacesSnippet(t *testing.T) {
	cases := []struct {
		in    string
		limit int
		want  string
	}{
		{"", 10, ""},
		{"  a \n\t b  ", 10, "a b"},
		{"abcdef", 6, "abcdef"},
		{"abcdefg", 6, "abcdef..."},
		{"ab€cd", 3, "ab..."}, // never cuts inside a rune
		{"a\xffb", 10, "a\uFFFDb"},
	}
	for _, c := range cases {
		if got := Snippet([]byte(c.in), c.limit); got != c.want {
			t.Errorf("Snippet(%q, %d) = %q, want %q", c.in, c.limit, got, c.want)
		}
	}
}
