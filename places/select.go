package places

// select.go: choosing and building the Places provider from a
// configuration that suits JSON files and command-line flags.

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/configerr"
)

// Places provider kinds for [Config.Kind].
const (
	// KindAuto picks KindNew when a key is set and KindOffline
	// otherwise.
	KindAuto = ""
	// KindLegacy is the legacy Google Nearby Search ([GoogleLegacy]),
	// which Google keeps only for projects that used it before 2025.
	KindLegacy = "legacy"
	// KindNew is the Places API (New) Nearby Search ([GoogleNew]),
	// its answers translated into the legacy Nearby Search shape that
	// the protocol promises.
	KindNew = "new"
	// KindNewRaw is the Places API (New) Nearby Search with its answers
	// untouched ([GoogleNew] with Raw set): WHATSAT replies then leave
	// the protocol's shape (a "places" array instead of "results", no
	// status), for clients written for the new API.
	KindNewRaw = "new-raw"
	// KindOffline is an offline [Catalogue].
	KindOffline = "offline"
)

// Config chooses and tunes the Places provider behind WHATSAT. Its
// JSON form (the tags below) suits configuration files, and every field
// suits a command-line flag (durations are [Duration], which is a
// flag.Value). The zero value means: the Places API (New) if Key is set,
// else the built-in offline catalogue, with the default cache and limits.
// Pass it to [New].
type Config struct {
	// Kind is "legacy", "new", "new-raw", "offline" or "" (auto: "new"
	// when Key is set, else "offline").
	Kind string `json:"kind,omitempty"`
	// Key is the Google API key; required for the Google kinds, and
	// ignored by "offline" (so a key in the environment does no harm).
	Key string `json:"key,omitempty"`
	// BaseURL replaces Google's API address (scheme, host and optional
	// path prefix), for proxies and fakes. Empty means Google's.
	BaseURL string `json:"base_url,omitempty"`
	// FieldMask is the Places API (New) field mask ("new" and "new-raw"
	// only); empty means DefaultFieldMask.
	FieldMask string `json:"field_mask,omitempty"`
	// Catalogue is the path of a catalogue file ("offline" only; see
	// ParseCatalogue); empty means the built-in DefaultCatalogue.
	Catalogue string `json:"catalogue,omitempty"`

	// CacheTTL is FrugalOptions.TTL: 0 means 5m, negative turns the
	// cache off.
	CacheTTL Duration `json:"cache_ttl,omitempty"`
	// CacheEntries is FrugalOptions.MaxEntries: 0 means 1024, negative
	// turns the cache off.
	CacheEntries int `json:"cache_entries,omitempty"`
	// MaxInFlight is FrugalOptions.MaxInFlight: 0 means 8, negative means
	// no cap.
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// SlotWait is FrugalOptions.SlotWait: 0 means 2s, negative means no
	// waiting for a slot.
	SlotWait Duration `json:"slot_wait,omitempty"`
	// Retries is FrugalOptions.Retries: 0 means 2, negative means none.
	Retries int `json:"retries,omitempty"`
	// RetryMin and RetryMax are FrugalOptions.RetryMin and RetryMax: 0
	// means 100ms and 2s. Neither may be negative.
	RetryMin Duration `json:"retry_min,omitempty"`
	RetryMax Duration `json:"retry_max,omitempty"`
	// Timeout is FrugalOptions.Timeout, the bound on one merged lookup:
	// 0 means herd.DefaultPlacesTimeout (10s). Keep it equal to
	// Config.PlacesTimeout. It may not be negative.
	Timeout Duration `json:"timeout,omitempty"`
	// Seed is FrugalOptions.Seed, the key of the retry jitter.
	Seed uint64 `json:"seed,omitempty"`

	// HTTP sends the Google requests; nil means http.DefaultClient.
	HTTP *http.Client `json:"-"`
}

// Duration is a time.Duration written as text ("1m30s") in JSON
// and on the command line: it implements encoding.TextMarshaler,
// encoding.TextUnmarshaler and flag.Value.
type Duration time.Duration

// String returns the duration as time.Duration writes it ("1m30s"); the
// flag package calls it for defaults and usage.
func (d Duration) String() string { return time.Duration(d).String() }

// Set parses s with time.ParseDuration ("90s", "1m30s"); the flag package
// calls it, which makes *Duration a flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as String does; encoding/json calls it,
// so durations are JSON strings.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses text as Set does; encoding/json calls it for a
// JSON string (a JSON number is an error).
func (d *Duration) UnmarshalText(text []byte) error { return d.Set(string(text)) }

// kind returns the provider kind c selects, resolving auto.
func (c *Config) kind() string {
	if c.Kind == KindAuto {
		if c.Key != "" {
			return KindNew
		}
		return KindOffline
	}
	return c.Kind
}

// New validates cfg and builds the provider it selects, wrapped in a
// [Frugal] that reads time from clock (nil means the system clock). The
// result is what [herd.Config.Places] wants; its String method describes the
// provider for the demo to print ("offline catalogue (39 places)",
// "Google Places API (New)"), never with the key.
//
// A service calls it once at start-up, before [herd.New]. It reads the
// catalogue file, if one is named, and does no other I/O. Every problem is
// reported, each naming its field, in an error that wraps
// [herd.ErrInvalidConfig].
func New(cfg Config, clock herd.Clock) (*Frugal, error) {
	errs := &multierror.Error{ErrorFormat: configerr.Format(herd.ErrInvalidConfig.Error())}
	bad := func(field, format string, args ...any) {
		errs = multierror.Append(errs, fmt.Errorf("%w: %s: %s", herd.ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	kind := cfg.kind()
	why := ""
	if cfg.Kind == KindAuto {
		if kind == KindNew {
			why = " because Key is set"
		} else {
			why = " because Key is empty"
		}
	}
	switch kind {
	case KindLegacy, KindNew, KindNewRaw, KindOffline:
	default:
		bad("Kind", "%q is not one of %q, %q, %q, %q or empty (auto)", cfg.Kind, KindLegacy, KindNew, KindNewRaw, KindOffline)
		kind = "" // check no field against an unknown kind
	}
	newAPI := kind == KindNew || kind == KindNewRaw
	google := kind == KindLegacy || newAPI
	if google {
		switch {
		case cfg.Key == "":
			bad("Key", "must be set for kind %q", kind)
		case strings.ContainsFunc(cfg.Key, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			bad("Key", "must not contain white space or control characters")
		}
	}
	if cfg.BaseURL != "" && kind != "" {
		if !google {
			bad("BaseURL", "only Google kinds use it, and kind is %q%s", kind, why)
		} else if _, err := endpointURL(cfg.BaseURL, "", ""); err != nil {
			bad("BaseURL", "%v", strings.TrimPrefix(err.Error(), "invalid BaseURL "))
		}
	}
	if cfg.FieldMask != "" && kind != "" {
		if !newAPI {
			bad("FieldMask", "only kinds %q and %q use it, and kind is %q%s", KindNew, KindNewRaw, kind, why)
		} else if err := checkFieldMask(cfg.FieldMask); err != nil {
			bad("FieldMask", "%v", err)
		}
	}
	if cfg.Catalogue != "" && kind != "" && kind != KindOffline {
		bad("Catalogue", "only kind %q reads a catalogue, and kind is %q%s", KindOffline, kind, why)
	}
	for _, d := range []struct {
		field string
		v     Duration
	}{{"RetryMin", cfg.RetryMin}, {"RetryMax", cfg.RetryMax}, {"Timeout", cfg.Timeout}} {
		if d.v < 0 {
			bad(d.field, "must not be negative, got %v", d.v)
		}
	}
	if cfg.RetryMin > 0 && cfg.RetryMax > 0 && cfg.RetryMax < cfg.RetryMin {
		bad("RetryMax", "%v is below RetryMin %v", cfg.RetryMax, cfg.RetryMin)
	}

	var next herd.PlacesClient
	switch kind {
	case KindLegacy:
		next = GoogleLegacy{BaseURL: cfg.BaseURL, Key: cfg.Key, HTTP: cfg.HTTP}
	case KindNew, KindNewRaw:
		next = GoogleNew{BaseURL: cfg.BaseURL, Key: cfg.Key, FieldMask: cfg.FieldMask, HTTP: cfg.HTTP, Raw: kind == KindNewRaw}
	case KindOffline:
		if cfg.Catalogue == "" {
			next = DefaultCatalogue()
		} else if c, err := LoadCatalogue(cfg.Catalogue); err != nil {
			bad("Catalogue", "%v", err)
		} else {
			next = c
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	return NewFrugal(next, clock, FrugalOptions{
		TTL:         time.Duration(cfg.CacheTTL),
		MaxEntries:  cfg.CacheEntries,
		MaxInFlight: cfg.MaxInFlight,
		SlotWait:    time.Duration(cfg.SlotWait),
		Retries:     cfg.Retries,
		RetryMin:    time.Duration(cfg.RetryMin),
		RetryMax:    time.Duration(cfg.RetryMax),
		Timeout:     time.Duration(cfg.Timeout),
		Seed:        cfg.Seed,
	}), nil
}

// checkFieldMask checks a Places API (New) field mask: comma-separated
// paths of letters, digits, '_' and '.', or "*".
func checkFieldMask(mask string) error {
	for i, p := range strings.Split(mask, ",") {
		if p == "" {
			return fmt.Errorf("%q: path %d is empty", mask, i+1)
		}
		if p == "*" {
			continue
		}
		for _, r := range p {
			if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return fmt.Errorf("%q: path %q holds %q (want letters, digits, '_' and '.', or *)", mask, p, r)
			}
		}
	}
	return nil
}
