package main

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-multierror"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/herdhttp"
	"github.com/proxyherd/herd/internal/cli"
	"github.com/proxyherd/herd/internal/logging"
	"github.com/proxyherd/herd/places"
)

// DefaultPort is the first port of a preset herd: the demo's Goloman.
const DefaultPort = 12000

func init() {
	register(&command{
		name:    "serve",
		args:    "(-config FILE | -preset YEAR [-port N] [-host H]) -name NAME [flags]",
		summary: "run one server of a herd until SIGINT or SIGTERM",
		long: "Runs one server, from a config file or a built-in topology, until SIGINT or SIGTERM.\n" +
			"With -preset, servers get ports from -port on in the preset's order (2018: Goloman,\n" +
			"Hands, Holiday, Welsh, Wilkes), the Places key comes from " + cli.KeyEnv + ", and\n" +
			"-print-config writes the equivalent config file to start from. Set a peer secret\n" +
			"(-secret-env, or secret_env in the file): without one, peer links are not\n" +
			"authenticated and are made over loopback only (protected mode).",
		flags: serveFlags,
	})
}

func serveFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	configPath := fs.String("config", "", "config `file` (see docs/running.md)")
	name := fs.String("name", "", "this server's `name`")
	preset := fs.String("preset", "", "run a built-in herd instead of a config file: `YEAR` ("+strings.Join(presetNames(), ", ")+")")
	port := fs.Int("port", DefaultPort, "with -preset: the first server's `port`")
	host := fs.String("host", "127.0.0.1", "with -preset: the `host` every server listens on")
	placesKind := fs.String("places", "", "with -preset: Places provider `kind`: new, new-raw (untranslated Places API (New) documents), legacy or offline (default: new with a key in "+cli.KeyEnv+", else offline)")
	placesURL := fs.String("places-url", "", "with -preset: Google base `URL` instead of Google's own (for local fakes; needs a key, any will do)")
	secretEnv := fs.String("secret-env", "", "with -preset: environment `variable` holding the peer secret, which authenticates peer links (e.g. HERD_SECRET=$(openssl rand -hex 32)); without one, peers are accepted over loopback only")
	insecurePeers := fs.Bool("insecure-peers", false, "with -preset: without a secret, accept peer links from any address and listen on any (protected mode off: anyone who reaches the port can pose as a neighbour)")
	maxClientAhead := fs.Duration("max-client-ahead", 0, "with -preset: refuse an IAMAT whose time is more than `D` ahead of the server's (default 1h; negative turns the check off)")
	limits := placesLimitFlags(fs)
	closeAfterReply := fs.Bool("close-after-reply", false, "close each client connection after its first reply")
	logPath := fs.String("log", "", "log `file` (default: the config's log, else stderr; - for stderr)")
	logFlags := cli.AddLogFlags(fs)
	printConfig := fs.Bool("print-config", false, "print the config as a JSON config file and exit")
	httpAddr := fs.String("http", "", "serve metrics (/metrics), health checks (/healthz, /readyz) and the status page (/) at `ADDR` (default: the config's http; warns unless loopback)")
	metrics := fs.String("metrics", "", "another name for -http `ADDR`")
	pprofOn := fs.Bool("pprof", false, "with -http: also serve runtime profiles at /debug/pprof/ (default: the config's pprof)")
	tlsCert := fs.String("tls-cert", "", "with -preset: the server's TLS certificate (PEM `file`; {name} is replaced by the server's name)")
	tlsKey := fs.String("tls-key", "", "with -preset: the server's TLS private key (PEM `file`; {name} is replaced)")
	tlsCA := fs.String("tls-ca", "", "with -preset: CA bundle (PEM `file`) that verifies neighbours and client certificates (default: the system's roots)")
	ack := fs.String("ack", "", "when to answer an IAMAT: `MODE` table (once stored) or durable (once fsynced to the state log; needs a state file) (default: the config's ack, else table)")
	stateFile := fs.String("state-file", "", "keep the table durable in `FILE` and its log FILE.wal.* ({name} is replaced by the server's name; default: the config's state_file)")
	tlsRequirePeerCert := fs.Bool("tls-require-peer-cert", false, "with -preset: refuse a neighbour without a verified certificate naming it (mutual TLS between servers)")

	return func(ctx context.Context, e *env, args []string) int {
		c := lookup("serve")
		if len(args) > 0 {
			return usageError(e, c, "unexpected arguments %q", args)
		}
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

		var fc *fileConfig
		switch {
		case (*configPath == "") == (*preset == ""):
			return usageError(e, c, "want -config or -preset (one of them)")
		case *configPath != "":
			presetOnly := []string{"port", "host", "places", "places-url", "secret-env", "insecure-peers", "max-client-ahead", "tls-cert", "tls-key", "tls-ca", "tls-require-peer-cert"}
			for _, f := range append(presetOnly, placesLimitFlagNames...) {
				if set[f] {
					return usageError(e, c, "-%s goes with -preset; with -config, set it in the file", f)
				}
			}
			var err error
			if fc, err = loadConfig(*configPath); err != nil {
				return configError(e, err)
			}
			if set["ack"] || set["state-file"] {
				overrideState(fc, set, *ack, *stateFile)
				if err := fc.validate(); err != nil {
					return configError(e, prefixErrors(*configPath+" with -ack or -state-file", err))
				}
			}
		default:
			var err error
			if fc, err = presetConfig(*preset, *host, *port); err != nil {
				return configError(e, err)
			}
			if *placesKind != "" || *placesURL != "" {
				fc.Provider, _ = json.Marshal(cli.Provider{Config: places.Config{Kind: *placesKind, BaseURL: *placesURL}})
			}
			fc.SecretEnv = *secretEnv
			fc.InsecurePeers = *insecurePeers
			if set["max-client-ahead"] {
				fc.MaxClientAhead = maxClientAhead.String()
			}
			fc.PlacesLimits = *limits
			if set["tls-cert"] || set["tls-key"] || set["tls-ca"] || set["tls-require-peer-cert"] {
				fc.TLS, _ = json.Marshal(cli.TLS{Cert: *tlsCert, Key: *tlsKey, CA: *tlsCA, RequirePeerCert: *tlsRequirePeerCert})
				fc.tlsName = cli.FlagNames
			}
			overrideState(fc, set, *ack, *stateFile)
			if err := fc.validate(); err != nil {
				return configError(e, err)
			}
		}
		if *printConfig {
			e.stdout.Write(fc.format())
			return exitOK
		}
		if *name == "" {
			return usageError(e, c, "-name is required (one of %s)", strings.Join(fc.serverNames(), ", "))
		}
		names := cli.JSONNames("provider")
		if *preset != "" {
			names = cli.PlacesFlagNames
		}
		cfg, provider, err := fc.nodeConfig(*name, e.getenv, names)
		if err != nil {
			var me *multierror.Error
			if errors.As(err, &me) && *configPath != "" {
				err = prefixErrors(*configPath, err)
			}
			return configError(e, err)
		}
		defer provider.Close() // after the node has closed
		if err := checkProtected(cfg, *configPath == ""); err != nil {
			return configError(e, err)
		}
		cfg.CloseAfterReply = cfg.CloseAfterReply || *closeAfterReply

		logCfg := fc.logConfig(cfg.Name)
		logFlags.Apply(&logCfg)
		if set["log"] {
			logCfg.Path = *logPath
		}
		if err := logCfg.Check(cli.LogFlagNames); err != nil {
			return usageError(e, c, "%v", err)
		}
		if cfg.StateFile != "" {
			// Like the log's, the state file's directory is created.
			if err := os.MkdirAll(filepath.Dir(cfg.StateFile), 0o755); err != nil {
				fmt.Fprintf(e.stderr, "herd serve: state file: %v\n", err)
				return exitFailure
			}
		}
		log, err := logCfg.Open(e.stderr)
		if err != nil {
			fmt.Fprintf(e.stderr, "herd serve: %v\n", err)
			return exitFailure
		}
		defer func() {
			if err := log.Close(); err != nil {
				fmt.Fprintf(e.stderr, "herd serve: %s: log: %v\n", cfg.Name, err)
			}
		}()
		cfg.Logger = log.Logger
		if e.hangup != nil {
			hup, stop := e.hangup()
			defer stop()
			done := make(chan struct{})
			defer close(done)
			go cli.ReopenOnHangup(hup, done, func(err error) { fmt.Fprintf(e.stderr, "herd serve: %s: %v\n", cfg.Name, err) }, log)
		}

		addr := fc.httpAddr(cfg.Name)
		for _, f := range []struct {
			name string
			v    *string
		}{{"http", httpAddr}, {"metrics", metrics}} {
			if !set[f.name] {
				continue
			}
			if set["http"] && set["metrics"] {
				return usageError(e, c, "-metrics is another name for -http: give one of them")
			}
			if addr = *f.v; addr == "" {
				break
			}
			if _, err := cli.CheckHTTPAddr(addr); err != nil {
				return usageError(e, c, "-%s: %v", f.name, err)
			}
		}
		if addr == "" && (*pprofOn || fc.Pprof) {
			return usageError(e, c, "-pprof: profiles are served on the HTTP endpoint: set -http (or the config's http)")
		}
		var obs *herdhttp.Observer
		if addr != "" {
			obs = herdhttp.NewObserver()
			cfg.Observer = obs
		}

		node, err := herd.New(cfg)
		if err != nil {
			return configError(e, err)
		}
		var m *cli.Metrics
		if addr != "" {
			if loopback, _ := cli.CheckHTTPAddr(addr); !loopback {
				log.Logger.Warn("HTTP endpoint is not on loopback: whoever reaches it sees the metrics, the status page with client IDs and locations, and with -pprof the process's profiles", "server", cfg.Name, "addr", addr)
			}
			m, err = cli.StartMetrics(ctx, addr, httpHandler(node, provider, log, obs, *pprofOn || fc.Pprof))
			if err != nil {
				fmt.Fprintf(e.stderr, "herd serve: %s: http: %v\n", cfg.Name, err)
				return exitFailure
			}
		}
		notices := []string{"Places: " + provider.String()}
		if len(cfg.Secret) == 0 {
			how := "set one with -secret-env VAR"
			if *configPath != "" {
				how = "set secret_env in the config file"
			}
			if cfg.InsecurePeers {
				notices = append(notices, "no peer secret and insecure_peers is on: anyone who reaches the port can pose as a neighbour; "+how)
			} else {
				notices = append(notices, "no peer secret: peer links are not authenticated and are made over loopback only; "+how)
			}
		}
		return serveNode(ctx, e, node, cfg, notices, m)
	}
}

// checkProtected refuses, before anything listens, a listen address
// beyond loopback for a server without a peer secret, naming the flags
// or keys that fix it. The node refuses it too (protected mode), but only
// once it has bound the address, and in herd.Config's terms. Host names
// other than localhost are left to the node, which sees what they
// resolve to.
func checkProtected(cfg herd.Config, preset bool) error {
	if len(cfg.Secret) > 0 || cfg.InsecurePeers {
		return nil
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "localhost" {
		return nil
	}
	if host != "" {
		if ip, err := netip.ParseAddr(host); err != nil || ip.Unmap().IsLoopback() {
			return nil
		}
	}
	how := "set one with -secret-env VAR, or -insecure-peers to accept unauthenticated peers anyway"
	if !preset {
		how = "set secret_env in the config file, or insecure_peers to accept unauthenticated peers anyway"
	}
	return fmt.Errorf("%s: listen address %s is not loopback and no peer secret is set: anyone who reaches it could pose as a neighbour (protected mode); %s", cfg.Name, cfg.Addr, how)
}

// placesLimitFlagNames are the flags placesLimitFlags declares.
var placesLimitFlagNames = []string{
	"places-conn-rate", "places-conn-burst", "places-addr-rate", "places-addr-burst",
	"places-server-rate", "places-server-burst", "places-daily-budget",
}

// placesLimitFlags declares -places-conn-rate and the other limit flags
// of -preset mode (the config file's places_* keys) on fs.
func placesLimitFlags(fs *flag.FlagSet) *herd.PlacesLimits {
	l := new(herd.PlacesLimits)
	for _, f := range []struct {
		name, who string
		rate      *float64
		burst     *int
		defRate   float64
		defBurst  int
	}{
		{"conn", "one client connection", &l.ConnRate, &l.ConnBurst, herd.DefaultPlacesConnRate, herd.DefaultPlacesConnBurst},
		{"addr", "all connections from one address", &l.AddrRate, &l.AddrBurst, herd.DefaultPlacesAddrRate, herd.DefaultPlacesAddrBurst},
		{"server", "the server", &l.ServerRate, &l.ServerBurst, herd.DefaultPlacesServerRate, herd.DefaultPlacesServerBurst},
	} {
		fs.Float64Var(f.rate, "places-"+f.name+"-rate", 0, fmt.Sprintf("with -preset: Places calls a second %s may cause (default %v; negative: no limit)", f.who, f.defRate))
		fs.IntVar(f.burst, "places-"+f.name+"-burst", 0, fmt.Sprintf("with -preset: Places calls %s may cause at once (default %d)", f.who, f.defBurst))
	}
	fs.IntVar(&l.DailyBudget, "places-daily-budget", 0, fmt.Sprintf("with -preset: Places calls the server may make per day, renewed at 00:00 UTC (default %d; negative: no budget)", herd.DefaultPlacesDailyBudget))
	return l
}

// httpHandler serves a server's HTTP endpoints: package herdhttp's, and
// at /debug/vars the expvar JSON that herd serve served before it.
func httpHandler(node *herd.Node, provider *places.Frugal, log *logging.Log, obs *herdhttp.Observer, pprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(cli.MetricsPath, cli.MetricsHandler(metricsVars(node, provider, log)))
	mux.Handle("/", herdhttp.New(node, herdhttp.Options{Observer: obs, Frugal: provider, Pprof: pprof}))
	return mux
}

// overrideState sets fc's ack and state_file from the flags that are set.
func overrideState(fc *fileConfig, set map[string]bool, ack, stateFile string) {
	if set["ack"] {
		fc.Ack = ack
	}
	if set["state-file"] {
		fc.StateFile = stateFile
	}
}

// metricsVars are the variables a server's metrics add to expvar's:
// "herd", the node's Stats, "herd_places", the Places provider's
// FrugalStats (when it is a *places.Frugal, as serve's always is), and
// "herd_log", the log's counts (lines written, and dropped because the
// disk did not keep up).
func metricsVars(node *herd.Node, provider herd.PlacesClient, log *logging.Log) map[string]expvar.Var {
	vars := map[string]expvar.Var{
		"herd": expvar.Func(func() any { return node.Stats() }),
		"herd_log": expvar.Func(func() any {
			return map[string]uint64{"Lines": log.Writer().Lines(), "Dropped": log.Dropped()}
		}),
	}
	if f, ok := provider.(*places.Frugal); ok && f != nil {
		vars["herd_places"] = expvar.Func(func() any { return f.Stats() })
	}
	return vars
}

// serveNode runs node until ctx ends (SIGINT or SIGTERM in main) and
// returns the exit status. Once the node listens, it prints notices to
// stderr, one line each. The metrics server m, if not nil, is already
// serving; it is closed once the node has.
func serveNode(ctx context.Context, e *env, node *herd.Node, cfg herd.Config, notices []string, m *cli.Metrics) int {
	runCtx, stopped := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		errc <- node.Run(ctx)
		stopped()
	}()
	if addr, err := cli.Listening(runCtx, node); err == nil {
		var peers []string
		for _, p := range cfg.Peers {
			peers = append(peers, p.Name+" "+p.Addr)
		}
		fmt.Fprintf(e.stdout, "%s listening on %s (neighbours: %s)\n", cfg.Name, addr, orNone(strings.Join(peers, ", ")))
		if m != nil {
			fmt.Fprintf(e.stdout, "%s status page at %s\n", cfg.Name, m.URL())
			fmt.Fprintf(e.stdout, "%s metrics at %smetrics\n", cfg.Name, m.URL())
		}
		for _, notice := range notices {
			fmt.Fprintf(e.stderr, "herd serve: %s: %s\n", cfg.Name, notice)
		}
	}
	err := <-errc
	if m != nil {
		if merr := m.Close(); merr != nil {
			fmt.Fprintf(e.stderr, "herd serve: %s: http: %v\n", cfg.Name, merr)
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "herd serve: %s\n", libError(err))
		return exitFailure
	}
	fmt.Fprintf(e.stderr, "herd serve: %s: shut down\n", cfg.Name)
	return exitOK
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// configError prints a configuration error, one problem per line, and
// returns exitUsage.
func configError(e *env, err error) int {
	var errs []error
	var me *multierror.Error
	if errors.As(err, &me) {
		errs = me.Errors
	} else {
		errs = []error{err}
	}
	for _, err := range errs {
		for line := range strings.SplitSeq(libError(err), "\n") {
			fmt.Fprintf(e.stderr, "herd serve: %s\n", line)
		}
	}
	return exitUsage
}

// libError is the text of err, an error of package herd or places, without
// the "herd: " they begin with: after "herd serve: " it would say herd
// twice ("herd serve: Goloman: listen tcp ...: address already in use").
func libError(err error) string {
	return strings.TrimPrefix(err.Error(), "herd: ")
}
