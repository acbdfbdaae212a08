package cli

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/proxyherd/herd/places"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestProviderPlaces(t *testing.T) {
	names := JSONNames("provider")
	for _, tc := range []struct {
		name string
		p    Provider
		env  map[string]string
		want string // String() of the provider, or the error
	}{
		{"auto without key", Provider{}, nil, "offline catalogue (39 places)"},
		{"auto with key", Provider{}, map[string]string{KeyEnv: "k"}, "Google Places API (New)"},
		{"key_env", Provider{Config: places.Config{Kind: "legacy", BaseURL: "http://127.0.0.1:9"}, KeyEnv: "MINE"}, map[string]string{"MINE": "k"},
			"Google Places Nearby Search (legacy) at http://127.0.0.1:9"},
		{"offline despite key", Provider{Config: places.Config{Kind: "offline"}}, map[string]string{KeyEnv: "k"}, "offline catalogue (39 places)"},
		{"key and key_env", Provider{Config: places.Config{Key: "k"}, KeyEnv: "MINE"}, nil, "provider.key: set it or provider.key_env, not both"},
		{"missing key", Provider{Config: places.Config{Kind: "new"}, KeyEnv: "MINE"}, nil,
			`provider.key: must be set for kind "new" (the key comes from $MINE, which is empty or unset)`},
		{"several problems", Provider{Config: places.Config{Kind: "offline", BaseURL: "x", FieldMask: "a"}}, nil,
			"provider.base_url: only Google kinds use it, and kind is \"offline\"\nprovider.field_mask: only kinds \"new\" and \"new-raw\" use it, and kind is \"offline\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tc.p.Places(env(tc.env), names)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				got = f.String()
				f.Close()
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"": slog.LevelInfo, "debug": slog.LevelDebug, "WARN": slog.LevelWarn, "error": slog.LevelError} {
		if got, err := ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"loud", "info+2"} {
		if _, err := ParseLevel(in); err == nil {
			t.Errorf("ParseLevel(%q) succeeded", in)
		}
	}
}

func TestLogConfigOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "Goloman.log")
	log, err := LogConfig{Path: path, Level: "warn"}.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	log.Logger.Info("dropped")
	log.Logger.Warn("kept", "server", "Goloman")
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); strings.Contains(s, "dropped") || !strings.HasSuffix(s, "Z WARN kept server=Goloman\n") {
		t.Errorf("log:\n%s", s)
	}
}

func TestLogFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	f := AddLogFlags(fs)
	if err := fs.Parse([]string{"-log-lines", "-log-format", "json", "-log-keep", "3"}); err != nil {
		t.Fatal(err)
	}
	c := LogConfig{Path: "p", Level: "warn", Format: "text", MaxMB: 7}
	f.Apply(&c)
	if want := (LogConfig{Path: "p", Level: "warn", Lines: true, Format: "json", MaxMB: 7, Keep: 3}); c != want {
		t.Errorf("got %+v, want %+v", c, want)
	}
	for _, tc := range []struct {
		c    LogConfig
		want string
	}{
		{LogConfig{Level: "loud"}, `-log-level: "loud" is not a log level (want debug, info, warn or error)`},
		{LogConfig{Format: "xml"}, `-log-format: "xml" is not a log format (want text or json)`},
		{LogConfig{MaxMB: -1}, `-log-max-mb: -1: want 0 (the default, 100) or more`},
		{LogConfig{}, ""},
	} {
		err := tc.c.Check(LogFlagNames)
		if got := fmt.Sprint(err); (err == nil) != (tc.want == "") || err != nil && got != tc.want {
			t.Errorf("Check(%+v) = %v, want %q", tc.c, err, tc.want)
		}
	}
}
