package main

// config.go: the herd config file (docs/running.md describes it). One file
// describes a whole herd; each server process picks its own part with
// -name.

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-multierror"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/cli"
	"github.com/proxyherd/herd/places"
	"github.com/proxyherd/herd/transport"
)

// maxConfigBytes bounds a config file.
const maxConfigBytes = 1 << 20

// fileConfig is the JSON config file. Durations are strings such as "10s"
// or "250ms"; zero values mean herd's defaults.
type fileConfig struct {
	Servers []fileServer `json:"servers,omitempty"`
	Links   [][]string   `json:"links,omitempty"`
	// Provider is decoded on its own (see validate), so that its errors
	// name it.
	Provider json.RawMessage `json:"provider,omitempty"`

	Secret    string `json:"secret,omitempty"`
	SecretEnv string `json:"secret_env,omitempty"`
	// InsecurePeers turns protected mode off (herd.Config.InsecurePeers).
	InsecurePeers bool `json:"insecure_peers,omitempty"`
	// MaxClientAhead is herd.Config.MaxClientAhead; unlike the other
	// durations it may be negative, which turns the check off.
	MaxClientAhead     string `json:"max_client_ahead,omitempty"`
	PeerClockAllowance string `json:"peer_clock_allowance,omitempty"`
	// PlacesLimits are the places_* rate limits, at the top level.
	herd.PlacesLimits

	MaxLineBytes int `json:"max_line_bytes,omitempty"`
	PeerQueue    int `json:"peer_queue,omitempty"`
	MaxConns     int `json:"max_conns,omitempty"`
	MaxClients   int `json:"max_clients,omitempty"`
	ReplyBuffer  int `json:"reply_buffer,omitempty"`

	PlacesTimeout    string `json:"places_timeout,omitempty"`
	RedialMin        string `json:"redial_min,omitempty"`
	RedialMax        string `json:"redial_max,omitempty"`
	HandshakeTimeout string `json:"handshake_timeout,omitempty"`
	IdleTimeout      string `json:"idle_timeout,omitempty"`
	WriteTimeout     string `json:"write_timeout,omitempty"`
	PeerTimeout      string `json:"peer_timeout,omitempty"`

	CloseAfterReply bool `json:"close_after_reply,omitempty"`

	StateFile     string `json:"state_file,omitempty"`
	StateInterval string `json:"state_interval,omitempty"`
	// Ack is when IAMATs are answered: "table" (the default) or
	// "durable" (after the state log's fsync; needs state_file).
	Ack string `json:"ack,omitempty"`

	Log       string `json:"log,omitempty"`
	LogLevel  string `json:"log_level,omitempty"`
	LogLines  bool   `json:"log_lines,omitempty"`
	LogFormat string `json:"log_format,omitempty"`
	LogMaxMB  int    `json:"log_max_mb,omitempty"`
	LogKeep   int    `json:"log_keep,omitempty"`

	// HTTP is where to serve the node's HTTP endpoints (metrics, health
	// checks, status page; see package herdhttp); servers[i].http
	// overrides it. Metrics is its older name, still accepted.
	HTTP    string `json:"http,omitempty"`
	Metrics string `json:"metrics,omitempty"`
	// Pprof serves runtime profiles under /debug/pprof/ on HTTP.
	Pprof bool `json:"pprof,omitempty"`
	// TLS, when set, runs every connection (clients and peers) over TLS.
	// Like Provider, it is decoded on its own (see validate), so that its
	// errors name it.
	TLS json.RawMessage `json:"tls,omitempty"`

	parsed   parsedDurations // filled in by validate
	ack      herd.Ack        // Ack, parsed by validate
	provider cli.Provider    // Provider, decoded by validate
	tls      *cli.TLS        // TLS, decoded by validate; nil without TLS
	// tlsName names TLS's fields in errors; nil means cli.FileNames.
	// In -preset mode they are serve's flags.
	tlsName func(key string) string
}

// parsedDurations holds the duration fields once validate has parsed them.
type parsedDurations struct {
	placesTimeout, redialMin, redialMax, handshakeTimeout time.Duration
	idleTimeout, writeTimeout, stateInterval              time.Duration
	peerTimeout                                           time.Duration
	peerClockAllowance, maxClientAhead                    time.Duration
}

// fileServer is one entry of "servers".
type fileServer struct {
	Name string `json:"name"`
	// Addr is where the others reach this server (host:port).
	Addr string `json:"addr"`
	// Listen is where it listens, when that differs from Addr (for
	// example ":12000" behind NAT); empty means Addr.
	Listen string `json:"listen,omitempty"`
	// HTTP, when set, is where this server serves its HTTP endpoints,
	// instead of the top-level http (which would clash when several
	// servers share a host). Metrics is its older name.
	HTTP    string `json:"http,omitempty"`
	Metrics string `json:"metrics,omitempty"`
}

// namePlaceholder in the log, state_file and tls paths is replaced by the
// server's name, so one file serves every server.
const namePlaceholder = cli.NamePlaceholder

// loadConfig reads and validates the config file at path.
func loadConfig(path string) (*fileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := readAllLimited(f, maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fc, err := parseConfig(data)
	if err != nil {
		return nil, prefixErrors(path, err)
	}
	return fc, nil
}

func readAllLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return b, nil
}

// parseConfig decodes a config file strictly (unknown fields and trailing
// data are errors) and validates it.
func parseConfig(data []byte) (*fileConfig, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil {
		return nil, jsonError(data, err)
	}
	if rest := bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, fmt.Errorf("%s: unexpected data after the config object", position(data, int64(len(data)-len(rest))))
	}
	if err := fc.validate(); err != nil {
		return nil, err
	}
	return &fc, nil
}

// jsonError rewords a decoding error with a line and column.
func jsonError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		// Offset counts the offending byte.
		return fmt.Errorf("%s: %s", position(data, se.Offset-1), strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		// Fields of the embedded herd.PlacesLimits are top-level keys.
		field := strings.TrimPrefix(te.Field, "PlacesLimits.")
		if field == "" {
			field = "the config"
		}
		// Offset is just past the value: point at its last byte.
		return fmt.Errorf("%s: %s must be %s, not %s", position(data, te.Offset-1), field, jsonKind(te.Type), te.Value)
	case errors.Is(err, io.EOF):
		return errors.New("empty file: want a JSON object")
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names the JSON form of a Go type.
func jsonKind(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return "a string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	}
	return t.String()
}

// position renders the place of the byte at index i as line:column
// (both from 1).
func position(data []byte, i int64) string {
	i = min(max(i, 0), int64(len(data)))
	line := 1 + bytes.Count(data[:i], []byte("\n"))
	col := i - int64(bytes.LastIndexByte(data[:i], '\n'))
	return fmt.Sprintf("%d:%d", line, col)
}

// prefixErrors puts prefix before every error in err (one per line for a
// multierror).
func prefixErrors(prefix string, err error) error {
	var me *multierror.Error
	if !errors.As(err, &me) {
		return fmt.Errorf("%s: %w", prefix, err)
	}
	out := &multierror.Error{ErrorFormat: listFormat}
	for _, e := range me.Errors {
		out.Errors = append(out.Errors, fmt.Errorf("%s: %w", prefix, e))
	}
	return out
}

// listFormat writes one error per line.
var listFormat = cli.ListFormat

// validate checks every field, reporting every problem at once, each
// naming its field as it is spelled in the file.
func (fc *fileConfig) validate() error {
	errs := &multierror.Error{ErrorFormat: listFormat}
	bad := func(field, format string, args ...any) {
		errs = multierror.Append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(fc.Servers) == 0 {
		bad("servers", "must list at least one server")
	}
	index := make(map[string]int, len(fc.Servers))
	for i, s := range fc.Servers {
		field := fmt.Sprintf("servers[%d]", i)
		switch {
		case s.Name == "":
			bad(field+".name", "must not be empty")
		case strings.ContainsFunc(s.Name, unicode.IsSpace):
			bad(field+".name", "%q must not contain white space", s.Name)
		case hasKey(index, s.Name):
			bad(field+".name", "%q is already servers[%d]", s.Name, index[s.Name])
		default:
			index[s.Name] = i
		}
		if s.Addr == "" {
			bad(field+".addr", "must not be empty (host:port where the others reach %s)", s.Name)
		} else if err := checkHostPort(s.Addr, false); err != nil {
			bad(field+".addr", "%v", err)
		}
		if s.Listen != "" {
			if err := checkHostPort(s.Listen, true); err != nil {
				bad(field+".listen", "%v", err)
			}
		}
		checkHTTP(bad, field+".", s.HTTP, s.Metrics)
	}
	seen := make(map[[2]string]int)
	for i, l := range fc.Links {
		field := fmt.Sprintf("links[%d]", i)
		if len(l) != 2 {
			bad(field, "want a pair of server names, got %d names", len(l))
			continue
		}
		ok := true
		for _, name := range l {
			if !hasKey(index, name) {
				bad(field, "%q is not in servers", name)
				ok = false
			}
		}
		if !ok {
			continue
		}
		if l[0] == l[1] {
			bad(field, "links %q with itself", l[0])
			continue
		}
		key := [2]string{min(l[0], l[1]), max(l[0], l[1])}
		if j, dup := seen[key]; dup {
			bad(field, "%s-%s is already links[%d]", l[0], l[1], j)
			continue
		}
		seen[key] = i
	}
	if len(fc.Provider) > 0 {
		dec := json.NewDecoder(bytes.NewReader(fc.Provider))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fc.provider); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				bad("provider."+strings.TrimPrefix(te.Field, "Config."), "must be %s, not %s", jsonKind(te.Type), te.Value)
			} else {
				bad("provider", "%s", strings.TrimPrefix(err.Error(), "json: "))
			}
		}
	}
	if fc.Secret != "" && fc.SecretEnv != "" {
		bad("secret", "set secret or secret_env, not both")
	}
	for _, f := range []struct {
		name string
		v    int
		min  int
	}{
		{"max_line_bytes", fc.MaxLineBytes, 64},
		{"peer_queue", fc.PeerQueue, 1},
		{"max_conns", fc.MaxConns, 1},
		{"max_clients", fc.MaxClients, 1},
		{"reply_buffer", fc.ReplyBuffer, 1},
	} {
		if f.v != 0 && f.v < f.min {
			bad(f.name, "must be at least %d (or 0 or absent for the default), got %d", f.min, f.v)
		}
	}
	durs := fc.durations()
	for _, d := range durs {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		switch {
		case err != nil:
			bad(d.name, "%q is not a duration (want e.g. \"250ms\", \"10s\", \"1m\")", d.text)
		case v < 0:
			bad(d.name, "must not be negative, got %q", d.text)
		default:
			*d.dst = v
		}
	}
	if fc.MaxClientAhead != "" {
		// Negative turns the check off, so it is parsed apart.
		v, err := time.ParseDuration(fc.MaxClientAhead)
		if err != nil {
			bad("max_client_ahead", "%q is not a duration (want e.g. \"1h\", or \"-1s\" to turn the check off)", fc.MaxClientAhead)
		}
		fc.parsed.maxClientAhead = v
	}
	for _, b := range []struct {
		name string
		v    int
	}{{"places_conn_burst", fc.ConnBurst}, {"places_addr_burst", fc.AddrBurst}, {"places_server_burst", fc.ServerBurst}} {
		if b.v < 0 {
			bad(b.name, "must not be negative (or 0 or absent for the default), got %d", b.v)
		}
	}
	if rmin, rmax := *durs[1].dst, *durs[2].dst; rmin > 0 && rmax > 0 && rmax < rmin {
		bad("redial_max", "%v is below redial_min %v", rmax, rmin)
	}
	fc.ack = herd.AckTable
	if fc.Ack != "" {
		if a, err := herd.ParseAck(fc.Ack); err != nil {
			bad("ack", "%v", err)
		} else {
			fc.ack = a
		}
	}
	if fc.ack == herd.AckDurable && fc.StateFile == "" {
		bad("ack", "%q needs state_file (or -state-file): the log it waits for", fc.Ack)
	}
	logKeys := map[string]string{"Level": "log_level", "Format": "log_format", "MaxMB": "log_max_mb", "Keep": "log_keep"}
	for _, c := range []cli.LogConfig{{Level: fc.LogLevel}, {Format: fc.LogFormat}, {MaxMB: fc.LogMaxMB}, {Keep: fc.LogKeep}} {
		// One field at a time, so that every problem is reported.
		if err := c.Check(func(field string) string { return logKeys[field] }); err != nil {
			key, msg, _ := strings.Cut(err.Error(), ": ")
			bad(key, "%s", msg)
		}
	}
	checkHTTP(bad, "", fc.HTTP, fc.Metrics)
	fc.tls = nil
	if len(fc.TLS) > 0 {
		dec := json.NewDecoder(bytes.NewReader(fc.TLS))
		dec.DisallowUnknownFields()
		var t cli.TLS
		if err := dec.Decode(&t); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				bad("tls."+te.Field, "must be %s, not %s", jsonKind(te.Type), te.Value)
			} else {
				bad("tls", "%s", strings.TrimPrefix(err.Error(), "json: "))
			}
		} else {
			fc.tls = &t
			errs = multierror.Append(errs, t.Check(fc.tlsNames())...)
		}
	}
	return errs.ErrorOrNil()
}

type durationField struct {
	name string
	text string
	dst  *time.Duration
}

// durations lists the duration fields; validate parses them into the
// parsed array. The order of the first three is relied on by validate.
func (fc *fileConfig) durations() []durationField {
	p := &fc.parsed
	return []durationField{
		{"places_timeout", fc.PlacesTimeout, &p.placesTimeout},
		{"redial_min", fc.RedialMin, &p.redialMin},
		{"redial_max", fc.RedialMax, &p.redialMax},
		{"handshake_timeout", fc.HandshakeTimeout, &p.handshakeTimeout},
		{"idle_timeout", fc.IdleTimeout, &p.idleTimeout},
		{"write_timeout", fc.WriteTimeout, &p.writeTimeout},
		{"peer_timeout", fc.PeerTimeout, &p.peerTimeout},
		{"state_interval", fc.StateInterval, &p.stateInterval},
		{"peer_clock_allowance", fc.PeerClockAllowance, &p.peerClockAllowance},
	}
}

// tlsNames names the fields of the tls section in errors.
func (fc *fileConfig) tlsNames() func(string) string {
	if fc.tlsName != nil {
		return fc.tlsName
	}
	return cli.FileNames
}

// checkHTTP checks an http address and its alias metrics, at most one of
// which may be set; prefix locates them in the file.
func checkHTTP(bad func(field, format string, args ...any), prefix, http, metrics string) {
	if http != "" && metrics != "" {
		bad(prefix+"metrics", "is another name for %shttp: set one of them", prefix)
	}
	for _, f := range []struct{ name, addr string }{{"http", http}, {"metrics", metrics}} {
		if f.addr != "" {
			if _, err := cli.CheckHTTPAddr(f.addr); err != nil {
				bad(prefix+f.name, "%v", err)
			}
		}
	}
}

// httpAddr returns where server name serves its HTTP endpoints: its own
// entry's http (or metrics), else the top-level one, else "" for none.
func (fc *fileConfig) httpAddr(name string) string {
	if s, ok := fc.server(name); ok && s.HTTP+s.Metrics != "" {
		return s.HTTP + s.Metrics
	}
	return fc.HTTP + fc.Metrics
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// checkHostPort checks host:port with a numeric port (0 allowed only when
// zeroOK).
func checkHostPort(s string, zeroOK bool) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: %v", s, strings.TrimPrefix(err.Error(), "address "+s+": "))
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	if n == 0 && !zeroOK {
		return fmt.Errorf("%q: port 0: the other servers could not reach it", s)
	}
	return nil
}

// serverNames lists the servers' names, for messages.
func (fc *fileConfig) serverNames() []string {
	names := make([]string, len(fc.Servers))
	for i, s := range fc.Servers {
		names[i] = s.Name
	}
	return names
}

// server returns the entry named name.
func (fc *fileConfig) server(name string) (fileServer, bool) {
	i := slices.IndexFunc(fc.Servers, func(s fileServer) bool { return s.Name == name })
	if i < 0 {
		return fileServer{}, false
	}
	return fc.Servers[i], true
}

// topology returns the servers and links as a herd.Topology.
func (fc *fileConfig) topology() herd.Topology {
	t := herd.Topology{Servers: fc.serverNames()}
	for _, l := range fc.Links {
		t.Links = append(t.Links, [2]string{l[0], l[1]})
	}
	return t
}

// nodeConfig builds the herd.Config of server name, without Logger, with
// its Places provider, which the caller closes after the node. getenv
// reads the environment for the key and the secret; names names the
// provider's fields in errors (see cli.Provider.Places).
func (fc *fileConfig) nodeConfig(name string, getenv func(string) string, names func(string) string) (herd.Config, *places.Frugal, error) {
	s, ok := fc.server(name)
	if !ok {
		return herd.Config{}, nil, fmt.Errorf("-name: %q is not in servers (have %s)", name, strings.Join(fc.serverNames(), ", "))
	}
	cfg := herd.Config{
		Name:             s.Name,
		Addr:             s.Addr,
		MaxLineBytes:     fc.MaxLineBytes,
		PeerQueue:        fc.PeerQueue,
		MaxConns:         fc.MaxConns,
		MaxClients:       fc.MaxClients,
		ReplyBuffer:      fc.ReplyBuffer,
		PlacesTimeout:    fc.parsed.placesTimeout,
		RedialMin:        fc.parsed.redialMin,
		RedialMax:        fc.parsed.redialMax,
		HandshakeTimeout: fc.parsed.handshakeTimeout,
		IdleTimeout:      fc.parsed.idleTimeout,
		WriteTimeout:     fc.parsed.writeTimeout,
		PeerTimeout:      fc.parsed.peerTimeout,
		StateInterval:    fc.parsed.stateInterval,
		CloseAfterReply:  fc.CloseAfterReply,
		StateFile:        strings.ReplaceAll(fc.StateFile, namePlaceholder, s.Name),

		InsecurePeers:      fc.InsecurePeers,
		MaxClientAhead:     fc.parsed.maxClientAhead,
		PeerClockAllowance: fc.parsed.peerClockAllowance,
		PlacesLimits:       fc.PlacesLimits,
		Ack:                fc.ack,
	}
	if s.Listen != "" {
		cfg.Addr = s.Listen
	}
	for _, p := range fc.topology().Neighbours(name) {
		ps, _ := fc.server(p)
		cfg.Peers = append(cfg.Peers, herd.Peer{Name: p, Addr: ps.Addr})
	}
	errs := &multierror.Error{ErrorFormat: listFormat}
	switch {
	case fc.Secret != "":
		cfg.Secret = []byte(fc.Secret)
	case fc.SecretEnv != "":
		v := getenv(fc.SecretEnv)
		if v == "" {
			errs = multierror.Append(errs, fmt.Errorf("secret_env: environment variable %s is empty or unset", fc.SecretEnv))
		}
		cfg.Secret = []byte(v)
	}
	if fc.tls != nil {
		tlsCfg, err := fc.tls.Config(s.Name, fc.tlsNames())
		var me *multierror.Error
		if errors.As(err, &me) {
			errs = multierror.Append(errs, me.Errors...)
		} else if err != nil {
			errs = multierror.Append(errs, err)
		}
		cfg.Transport = &transport.TCP{TLS: tlsCfg}
		cfg.RequirePeerCert = fc.tls.RequirePeerCert
	}
	p := fc.provider
	if p.Timeout == 0 {
		// places.Config asks for its Timeout to equal the node's.
		p.Timeout = places.Duration(fc.parsed.placesTimeout)
	}
	places, err := p.Places(getenv, names)
	if err != nil {
		var me *multierror.Error
		if errors.As(err, &me) {
			errs = multierror.Append(errs, me.Errors...)
		} else {
			errs = multierror.Append(errs, err)
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		if places != nil {
			places.Close()
		}
		return herd.Config{}, nil, err
	}
	cfg.Places = places
	return cfg, places, nil
}

// logConfig returns how server name logs: the log field with {name}
// replaced ("" for stderr), and the other log_ fields.
func (fc *fileConfig) logConfig(name string) cli.LogConfig {
	return cli.LogConfig{
		Path:  strings.ReplaceAll(fc.Log, namePlaceholder, name),
		Level: fc.LogLevel, Lines: fc.LogLines, Format: fc.LogFormat,
		MaxMB: fc.LogMaxMB, Keep: fc.LogKeep,
	}
}

// presetConfig builds the config of a preset herd with ports assigned in
// the order of its servers, from port on.
func presetConfig(preset, host string, port int) (*fileConfig, error) {
	t, ok := herd.Presets[preset]
	if !ok {
		return nil, fmt.Errorf("-preset: %q is not a preset (have %s)", preset, strings.Join(presetNames(), ", "))
	}
	if port < 1 || port+len(t.Servers)-1 > 65535 {
		return nil, fmt.Errorf("-port: %d: want 1 to %d, so that the %d servers get ports", port, 65536-len(t.Servers), len(t.Servers))
	}
	fc := &fileConfig{}
	for i, s := range t.Servers {
		fc.Servers = append(fc.Servers, fileServer{Name: s, Addr: net.JoinHostPort(host, strconv.Itoa(port+i))})
	}
	for _, l := range t.Links {
		fc.Links = append(fc.Links, []string{l[0], l[1]})
	}
	return fc, nil
}

// presetNames lists herd.Presets' keys, sorted.
func presetNames() []string {
	var names []string
	for k := range herd.Presets {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// format writes fc as a config file: one line per server and per link,
// then the other fields that are set.
func (fc *fileConfig) format() []byte {
	var b bytes.Buffer
	list := func(key string, n int, item func(i int) any, last bool) {
		fmt.Fprintf(&b, "  %q: [\n", key)
		for i := range n {
			line, _ := json.Marshal(item(i))
			b.WriteString("    ")
			b.Write(line)
			if i < n-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString("  ]")
		if !last {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	rest := *fc
	rest.Servers, rest.Links = nil, nil
	more, _ := json.MarshalIndent(&rest, "", "  ")
	more = bytes.TrimSpace(more[1 : len(more)-1])
	b.WriteString("{\n")
	list("servers", len(fc.Servers), func(i int) any { return fc.Servers[i] }, false)
	list("links", len(fc.Links), func(i int) any { return fc.Links[i] }, len(more) == 0)
	if len(more) > 0 {
		b.WriteString("  ")
		b.Write(more)
		b.WriteByte('\n')
	}
	b.WriteString("}\n")
	return b.Bytes()
}
