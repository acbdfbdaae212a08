package main

import (
	"context"
	"encoding/json"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-multierror"
	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/cli"
	"github.com/proxyherd/herd/internal/logging"
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
			"-print-config writes the equivalent config file to start from.",
		flags: serveFlags,
	})
}

func serveFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	configPath := fs.String("config", "", "config `file` (see docs/running.md)")
	name := fs.String("name", "", "this server's `name`")
	preset := fs.String("preset", "", "run a built-in herd instead of a config file: `YEAR` ("+strings.Join(presetNames(), ", ")+")")
	port := fs.Int("port", DefaultPort, "with -preset: the first server's `port`")
	host := fs.String("host", "127.0.0.1", "with -preset: the `host` every server listens on")
	placesKind := fs.String("places", "", "with -preset: Places provider `kind`: new, legacy or offline (default: new with a key in "+cli.KeyEnv+", else offline)")
	placesURL := fs.String("places-url", "", "with -preset: Google base `URL` instead of Google's own (for local fakes; needs a key, any will do)")
	secretEnv := fs.String("secret-env", "", "with -preset: environment `variable` holding the peer secret")
	closeAfterReply := fs.Bool("close-after-reply", false, "close each client connection after its first reply")
	logPath := fs.String("log", "", "log `file` (default: the config's log, else stderr; - for stderr)")
	logFlags := cli.AddLogFlags(fs)
	printConfig := fs.Bool("print-config", false, "print the config as a JSON config file and exit")
	metrics := fs.String("metrics", "", "serve the server's counters as expvar JSON at http://`ADDR`"+cli.MetricsPath+" (loopback only; default: the config's metrics)")
	tlsCert := fs.String("tls-cert", "", "with -preset: the server's TLS certificate (PEM `file`; {name} is replaced by the server's name)")
	tlsKey := fs.String("tls-key", "", "with -preset: the server's TLS private key (PEM `file`; {name} is replaced)")
	tlsCA := fs.String("tls-ca", "", "with -preset: CA bundle (PEM `file`) that verifies neighbours and client certificates (default: the system's roots)")
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
			for _, f := range []string{"port", "host", "places", "places-url", "secret-env", "tls-cert", "tls-key", "tls-ca", "tls-require-peer-cert"} {
				if set[f] {
					return usageError(e, c, "-%s goes with -preset; with -config, set it in the file", f)
				}
			}
			var err error
			if fc, err = loadConfig(*configPath); err != nil {
				return configError(e, err)
			}
		default:
			var err error
			if fc, err = presetConfig(*preset, *host, *port); err != nil {
				return configError(e, err)
			}
			if *placesKind != "" || *placesURL != "" {
				fc.Provider, _ = json.Marshal(cli.Provider{PlacesConfig: herd.PlacesConfig{Kind: *placesKind, BaseURL: *placesURL}})
			}
			fc.SecretEnv = *secretEnv
			if set["tls-cert"] || set["tls-key"] || set["tls-ca"] || set["tls-require-peer-cert"] {
				fc.TLS, _ = json.Marshal(cli.TLS{Cert: *tlsCert, Key: *tlsKey, CA: *tlsCA, RequirePeerCert: *tlsRequirePeerCert})
				fc.tlsName = cli.FlagNames
			}
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
		cfg, places, err := fc.nodeConfig(*name, e.getenv, names)
		if err != nil {
			var me *multierror.Error
			if errors.As(err, &me) && *configPath != "" {
				err = prefixErrors(*configPath, err)
			}
			return configError(e, err)
		}
		defer places.Close() // after the node has closed
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

		metricsAddr := fc.metricsAddr(cfg.Name)
		if set["metrics"] {
			metricsAddr = *metrics
			if metricsAddr != "" {
				if err := cli.CheckMetricsAddr(metricsAddr); err != nil {
					return usageError(e, c, "-metrics: %v", err)
				}
			}
		}

		node, err := herd.New(cfg)
		if err != nil {
			return configError(e, err)
		}
		var m *cli.Metrics
		if metricsAddr != "" {
			m, err = cli.StartMetrics(ctx, metricsAddr, cli.MetricsHandler(metricsVars(node, places, log)))
			if err != nil {
				fmt.Fprintf(e.stderr, "herd serve: %s: metrics: %v\n", cfg.Name, err)
				return exitFailure
			}
		}
		return serveNode(ctx, e, node, cfg, "Places: "+places.String(), m)
	}
}

// metricsVars are the variables a server's metrics add to expvar's:
// "herd", the node's Stats, "herd_places", the Places provider's
// FrugalStats (when it is a *herd.Frugal, as serve's always is), and
// "herd_log", the log's counts (lines written, and dropped because the
// disk did not keep up).
func metricsVars(node *herd.Node, places herd.PlacesClient, log *logging.Log) map[string]expvar.Var {
	vars := map[string]expvar.Var{
		"herd": expvar.Func(func() any { return node.Stats() }),
		"herd_log": expvar.Func(func() any {
			return map[string]uint64{"Lines": log.Writer().Lines(), "Dropped": log.Dropped()}
		}),
	}
	if f, ok := places.(*herd.Frugal); ok && f != nil {
		vars["herd_places"] = expvar.Func(func() any { return f.Stats() })
	}
	return vars
}

// serveNode runs node until ctx ends (SIGINT or SIGTERM in main) and
// returns the exit status. The metrics server m, if not nil, is already
// serving; it is closed once the node has.
func serveNode(ctx context.Context, e *env, node *herd.Node, cfg herd.Config, notice string, m *cli.Metrics) int {
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
			fmt.Fprintf(e.stdout, "%s metrics at %s\n", cfg.Name, m.URL())
		}
		fmt.Fprintf(e.stderr, "herd serve: %s: %s\n", cfg.Name, notice)
	}
	err := <-errc
	if m != nil {
		if merr := m.Close(); merr != nil {
			fmt.Fprintf(e.stderr, "herd serve: %s: metrics: %v\n", cfg.Name, merr)
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "herd serve: %v\n", err)
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
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintf(e.stderr, "herd serve: %s\n", line)
		}
	}
	return exitUsage
}
