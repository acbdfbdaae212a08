// Package cli holds what the herd command (cmd/herd) and the five-server
// demo (examples/fivenode) share: choosing the Places provider, the
// logging flags and opening logs, and waiting for a node to listen. Provider choice lives in one
// place, [Provider.Places], so that a new provider is one new case there.
package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/places"
)

// DefaultAddr is where the client subcommands and "herd bench" connect by
// default: Goloman in the five-server demo.
const DefaultAddr = "127.0.0.1:12000"

// KeyEnv is the environment variable that holds the Google API key when
// a configuration names none.
const KeyEnv = "GOOGLE_MAPS_API_KEY"

// Provider says which Places provider answers WHATSAT. It is the
// "provider" object of a herd config file, and what the demo's flags
// build: [places.Config] (kind, key, base_url, catalogue, cache and
// retry settings) plus key_env, so that keys need not be written in files.
type Provider struct {
	places.Config
	// KeyEnv names the environment variable holding the key when Key is
	// empty; empty means GOOGLE_MAPS_API_KEY. At most one of Key and
	// KeyEnv is set.
	KeyEnv string `json:"key_env,omitempty"`
}

// Places resolves the key (Key, else the variable KeyEnv names, read with
// getenv) and builds the provider with [places.New]: with the default
// kind, Google's Places API (New) when there is a key and the built-in
// offline catalogue otherwise. The result's String describes it for the
// person starting the server, never with the key; close it after the
// nodes that use it.
//
// Errors name fields as the user wrote them: name maps a
// [places.Config] field name ("Kind", "BaseURL", ...) to a config-file
// key or a flag (see [JSONNames]). Every problem is reported at once.
func (p Provider) Places(getenv func(string) string, name func(field string) string) (*places.Frugal, error) {
	cfg := p.Config
	env := p.KeyEnv
	if env == "" {
		env = KeyEnv
	}
	errs := &multierror.Error{ErrorFormat: ListFormat}
	if cfg.Key != "" && p.KeyEnv != "" {
		errs = multierror.Append(errs, fmt.Errorf("%s: set it or %s, not both", name("Key"), name("KeyEnv")))
	}
	if cfg.Key == "" {
		cfg.Key = getenv(env)
	}
	f, err := places.New(cfg, nil)
	if err != nil {
		var me *multierror.Error
		if errors.As(err, &me) {
			for _, e := range me.Errors {
				errs = multierror.Append(errs, p.renameField(e, name, env))
			}
		} else {
			errs = multierror.Append(errs, p.renameField(err, name, env))
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		if f != nil {
			f.Close()
		}
		return nil, err
	}
	return f, nil
}

// ListFormat formats a multierror with one error per line and no header.
func ListFormat(es []error) string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// renameField rewrites herd's "herd: invalid config: Field: problem" as
// "name(Field): problem", and says where a missing key was looked for.
func (p Provider) renameField(err error, name func(string) string, env string) error {
	msg := strings.TrimPrefix(err.Error(), herd.ErrInvalidConfig.Error()+": ")
	field, rest, ok := strings.Cut(msg, ": ")
	if !ok || strings.ContainsAny(field, " \t") {
		return errors.New(msg)
	}
	if field == "Key" && p.Key == "" {
		rest += " (the key comes from $" + env + ", which is empty or unset)"
	}
	return fmt.Errorf("%s: %s", name(field), rest)
}

// JSONNames returns the field namer for a config file: a
// [places.Config] or [Provider] field becomes prefix+"."+its JSON key
// ("BaseURL" becomes "provider.base_url").
func JSONNames(prefix string) func(string) string {
	keys := map[string]string{}
	for _, t := range []reflect.Type{reflect.TypeFor[places.Config](), reflect.TypeFor[Provider]()} {
		for i := range t.NumField() {
			f := t.Field(i)
			if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" && tag != "-" {
				keys[f.Name] = tag
			}
		}
	}
	return func(field string) string {
		k, ok := keys[field]
		if !ok {
			k = field
		}
		return prefix + "." + k
	}
}

// PlacesFlagNames is the field namer for the -places and -places-url
// flags that the demo and "herd serve" with a preset share; the key comes
// from the environment.
func PlacesFlagNames(field string) string {
	switch field {
	case "Kind":
		return "-places"
	case "BaseURL":
		return "-places-url"
	case "Key":
		return "key"
	}
	return field
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
