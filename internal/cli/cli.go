// Package cli holds what the herd command (cmd/herd) and the five-server
// demo (examples/fivenode) share: choosing the Places provider, opening
// logs, and waiting for a node to listen. Provider choice lives in one
// place, [Provider.Places], so that a new provider is one new case there.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-multierror"
	"github.com/proxyherd/herd"
)

// KeyEnv is the environment variable that holds the Google API key when
// a configuration names none.
const KeyEnv = "GOOGLE_MAPS_API_KEY"

// Provider kinds.
const (
	// KindAuto (the empty kind) picks Google's legacy Nearby Search when a
	// key or a base URL is at hand, and no provider otherwise.
	KindAuto = ""
	// KindNone runs without a provider: WHATSAT with a positive bound
	// answers status UNKNOWN_ERROR.
	KindNone = "none"
	// KindGoogle is Google's legacy Nearby Search ([herd.GoogleLegacy]).
	KindGoogle = "google"
)

// Provider says which Places provider answers WHATSAT. It is the
// "provider" object of a herd config file, and what the demo's flags
// build.
type Provider struct {
	// Kind is "" (auto), "none" or "google".
	Kind string `json:"kind,omitempty"`
	// Key is the API key itself. Prefer KeyEnv: config files get copied.
	Key string `json:"key,omitempty"`
	// KeyEnv names the environment variable holding the key; empty
	// means GOOGLE_MAPS_API_KEY. At most one of Key and KeyEnv is set.
	KeyEnv string `json:"key_env,omitempty"`
	// BaseURL replaces the provider's base URL (scheme, host and an
	// optional path prefix), for local fakes and proxies. With a base
	// URL the key may be empty.
	BaseURL string `json:"base_url,omitempty"`
}

// NoProviderNotice tells a person at a terminal what runs without a
// provider.
const NoProviderNotice = "no Places provider: WHATSAT with a positive bound needs a Google API key " +
	"(set " + KeyEnv + ", or point the server at a local fake with a base URL) and answers " +
	"status UNKNOWN_ERROR until it has one; \"WHATSAT <client> <radius> 0\" works without one"

// Places checks p and returns the provider it describes, or nil for none,
// with a one-line description for the person starting the server (never
// containing the key). getenv reads the environment (os.Getenv; tests
// pass their own). Errors name the offending field as field+".kind" and
// so on, and are all reported at once.
func (p Provider) Places(field string, getenv func(string) string) (herd.PlacesClient, string, error) {
	var errs *multierror.Error
	bad := func(name, format string, args ...any) {
		errs = multierror.Append(errs, fmt.Errorf("%s.%s: %s", field, name, fmt.Sprintf(format, args...)))
	}
	switch p.Kind {
	case KindAuto, KindNone, KindGoogle:
	default:
		bad("kind", "%q is not a provider (want %q, %q or empty for automatic)", p.Kind, KindNone, KindGoogle)
	}
	if p.Key != "" && p.KeyEnv != "" {
		bad("key", "set key or key_env, not both")
	}
	if p.BaseURL != "" {
		if err := CheckBaseURL(p.BaseURL); err != nil {
			bad("base_url", "%v", err)
		}
	}
	env := p.KeyEnv
	if env == "" {
		env = KeyEnv
	}
	key := p.Key
	if key == "" {
		key = getenv(env)
	}
	if p.Kind == KindGoogle && key == "" && p.BaseURL == "" {
		if p.KeyEnv != "" {
			bad("key_env", "environment variable %s is empty or unset", env)
		} else {
			bad("key", "no API key: set key_env (default %s) or key", KeyEnv)
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, "", err
	}
	if p.Kind == KindNone || (p.Kind == KindAuto && key == "" && p.BaseURL == "") {
		return nil, NoProviderNotice, nil
	}
	g := herd.GoogleLegacy{BaseURL: p.BaseURL, Key: key}
	desc := "Places: Google Nearby Search (legacy)"
	if p.BaseURL != "" {
		desc += " at " + p.BaseURL
	}
	if key == "" {
		desc += ", no API key"
	}
	return g, desc, nil
}

// CheckBaseURL accepts a provider base URL: an absolute http or https URL
// without user info, query or fragment.
func CheckBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q: want http(s)://host[:port][/prefix]", s)
	}
	return nil
}

// OpenLog returns a text logger writing to path at level, and a function
// that closes the file. An empty path or "-" means stderr. The file is
// appended to, and its directory created if need be.
func OpenLog(path string, level slog.Leveler, stderr io.Writer) (*slog.Logger, func() error, error) {
	opts := &slog.HandlerOptions{Level: level}
	if path == "" || path == "-" {
		return slog.New(slog.NewTextHandler(stderr, opts)), func() error { return nil }, nil
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("log file: %w", err)
	}
	return slog.New(slog.NewTextHandler(f, opts)), f.Close, nil
}

// ParseLevel parses a log level name: debug, info, warn or error (any
// case), or "" for info.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
	default:
		return 0, fmt.Errorf("%q is not a log level (want debug, info, warn or error)", s)
	}
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// Listening waits until n listens and returns its address. It returns
// ctx's error if ctx ends first (the caller cancels ctx when n's Run
// returns, so that a node that fails to listen does not hang it).
func Listening(ctx context.Context, n *herd.Node) (net.Addr, error) {
	for {
		ch := n.Changed()
		if a := n.Addr(); a != nil {
			return a, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if a := n.Addr(); a != nil {
				return a, nil
			}
			return nil, ctx.Err()
		}
	}
}
