// Command fivenode runs the 2018 herd (herd.Presets["2018"]) on 127.0.0.1
// in one process: Goloman, Hands, Holiday, Welsh and Wilkes on five
// consecutive ports, flooding client reports among themselves.
//
//	go run ./examples/fivenode                       # ports 12000 to 12004
//	go run ./examples/fivenode -port 0               # five free ports
//	go run ./examples/fivenode -log-dir logs         # logs/Goloman.log, ...
//	go run ./examples/fivenode -log-dir logs -log-lines   # ... with every line in and out
//	go run ./examples/fivenode -places-url http://127.0.0.1:8080
//
// The Google API key comes from GOOGLE_MAPS_API_KEY. With a key, WHATSAT
// asks Google's Places API (New) (-places legacy picks the legacy Nearby
// Search); without one, the herd answers from herd's built-in offline
// catalogue of places around UCLA, so the demo works with no network at
// all. -places-url sends the Google requests to a local fake instead (a
// key is still required; any value will do).
//
// The five servers share a peer secret drawn afresh from crypto/rand at
// every start and never shown, so no one else can pose as one of them.
//
// It prints where each server listens, then serves until SIGINT or
// SIGTERM, shuts every server down and exits 0. The servers log
// connection and peer link events (level info) to stderr, or to one file
// each with -log-dir; -log-lines adds every line in and out, the course's
// full I/O log. SIGHUP reopens the log files (for logrotate).
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/internal/cli"
	"github.com/proxyherd/herd/internal/logging"
	"github.com/proxyherd/herd/places"
	"github.com/proxyherd/herd/transport"
)

// DefaultPort is Goloman's port; the others follow in preset order.
const DefaultPort = 12000

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process as usual.
	context.AfterFunc(ctx, stop)
	hup, stopHup := cli.NotifyHangup()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv, hup)
	stopHup()
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "fivenode: %v\n", err)
		os.Exit(1)
	}
}

// errUsage marks a usage error the flag package has already reported.
var errUsage = errors.New("usage")

// run starts the herd, serves until ctx ends, and shuts it down. Each
// signal from hup reopens the log files.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, hup <-chan os.Signal) error {
	fs := flag.NewFlagSet("fivenode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", DefaultPort, "first `port`: Goloman, Hands, Holiday, Welsh, Wilkes get port to port+4; 0 picks five free ports")
	placesKind := fs.String("places", "", "Places provider `kind`: new, new-raw (untranslated Places API (New) documents), legacy or offline (default: new with a key in "+cli.KeyEnv+", else offline)")
	placesURL := fs.String("places-url", "", "Google base `URL` instead of Google's own, e.g. a local fake (needs a key; any will do)")
	logDir := fs.String("log-dir", "", "write one log file per server in `dir` (default: stderr)")
	logFlags := cli.AddLogFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: fivenode [-port N] [-places KIND] [-places-url URL] [-log-dir DIR] [-log-lines] [log flags]\n\nRuns the 2018 herd on 127.0.0.1 until SIGINT or SIGTERM. The Places key comes from %s.\n\n", cli.KeyEnv)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fivenode: unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	var logCfg cli.LogConfig
	logFlags.Apply(&logCfg)
	if err := logCfg.Check(cli.LogFlagNames); err != nil {
		fmt.Fprintf(stderr, "fivenode: %v\n", err)
		return errUsage
	}
	topo := herd.Presets["2018"]
	if *port != 0 && (*port < 1 || *port+len(topo.Servers)-1 > 65535) {
		fmt.Fprintf(stderr, "fivenode: -port %d: want 0, or 1 to %d\n", *port, 65536-len(topo.Servers))
		return errUsage
	}
	places, err := placesFor(*placesKind, *placesURL, getenv)
	if err != nil {
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintf(stderr, "fivenode: %s\n", line)
		}
		return errUsage
	}
	placesNote := ""
	if *placesKind == "" && getenv(cli.KeyEnv) == "" {
		placesNote = "; set " + cli.KeyEnv + " for Google's Places API (New)"
	}
	defer places.Close() // after the nodes, which run returns only once closed

	// Listen on every port before starting anything: a port in use is
	// reported at once, and with -port 0 every server knows the others'
	// addresses before the first one dials.
	lns, err := listenAll(ctx, topo.Servers, *port)
	if err != nil {
		return err
	}
	addrs := make(map[string]string, len(lns))
	for i, name := range topo.Servers {
		addrs[name] = lns[i].Addr().String()
	}

	// A fresh shared secret: the servers authenticate one another, and
	// since only this process knows it, no one else can pose as a peer.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return fmt.Errorf("peer secret: %w", err)
	}

	logs, err := openLogs(logCfg, *logDir, topo.Servers, stderr)
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return err
	}
	defer func() { // after the nodes: their last lines are written
		for _, l := range logs {
			if err := l.Close(); err != nil {
				fmt.Fprintf(stderr, "fivenode: log: %v\n", err)
			}
		}
	}()
	hupDone := make(chan struct{})
	defer close(hupDone)
	go cli.ReopenOnHangup(hup, hupDone, func(err error) { fmt.Fprintf(stderr, "fivenode: %v\n", err) }, logs...)

	nodes := make([]*herd.Node, len(topo.Servers))
	for i, name := range topo.Servers {
		cfg := herd.Config{
			Name:      name,
			Addr:      addrs[name],
			Secret:    secret,
			Places:    places,
			Logger:    logs[min(i, len(logs)-1)].Logger, // the shared one on stderr
			Transport: &preListened{ln: lns[i]},
		}
		for _, p := range topo.Neighbours(name) {
			cfg.Peers = append(cfg.Peers, herd.Peer{Name: p, Addr: addrs[p]})
		}
		if nodes[i], err = herd.New(cfg); err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, n := range nodes {
		g.Go(func() error { return n.Run(gctx) })
	}
	fmt.Fprintf(stdout, "The 2018 herd:\n")
	for _, n := range nodes {
		addr, err := cli.Listening(gctx, n)
		if err != nil {
			break // a server failed; g.Wait reports it
		}
		fmt.Fprintf(stdout, "%s listening on %s (talks with %s)\n", n.Name(), addr, strings.Join(topo.Neighbours(n.Name()), ", "))
	}
	fmt.Fprintf(stdout, "Places: %s%s\n", places, placesNote)
	if *logDir != "" {
		fmt.Fprintf(stdout, "Logs: %s\n", filepath.Join(*logDir, "<server>.log"))
	}
	fmt.Fprintf(stdout, "Stop with Ctrl-C (SIGINT) or SIGTERM.\n")
	if err := g.Wait(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Shut down.\n")
	return nil
}

// listenAll opens one listener per server on 127.0.0.1, on port+i, or on
// free ports when port is 0. On failure it closes what it opened.
func listenAll(ctx context.Context, servers []string, port int) ([]net.Listener, error) {
	var lc net.ListenConfig
	lns := make([]net.Listener, 0, len(servers))
	for i, name := range servers {
		p := 0
		if port != 0 {
			p = port + i
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// openLogs opens the servers' logs: one file each in dir (DIR/NAME.log),
// or, when dir is empty, one log on stderr that they share (so that their
// lines do not interleave mid-line). On failure it closes what it opened.
func openLogs(c cli.LogConfig, dir string, servers []string, stderr io.Writer) ([]*logging.Log, error) {
	if dir == "" {
		l, err := c.Open(stderr)
		if err != nil {
			return nil, err
		}
		return []*logging.Log{l}, nil
	}
	var logs []*logging.Log
	for _, name := range servers {
		c.Path = filepath.Join(dir, name+".log")
		l, err := c.Open(stderr)
		if err != nil {
			for _, l := range logs {
				l.Close()
			}
			return nil, err
		}
		logs = append(logs, l)
	}
	return logs, nil
}

// preListened is a herd.Transport whose Listen hands out a listener opened
// beforehand; Dial is plain TCP.
type preListened struct {
	transport.TCP
	ln net.Listener
}

// Listen returns the listener opened beforehand; it is called once, from
// Node.Start.
func (p *preListened) Listen(ctx context.Context, addr string) (net.Listener, error) {
	if p.ln == nil {
		return nil, errors.New("fivenode: listener already used")
	}
	ln := p.ln
	p.ln = nil
	return ln, nil
}

// placesFor builds the Places provider from the -places and -places-url
// flags and the key in the environment. Provider choice itself is
// cli.Provider.Places, shared with cmd/herd.
func placesFor(kind, baseURL string, getenv func(string) string) (*places.Frugal, error) {
	p := cli.Provider{Config: places.Config{Kind: kind, BaseURL: baseURL}}
	return p.Places(getenv, cli.PlacesFlagNames)
}
