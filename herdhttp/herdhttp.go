// Package herdhttp serves a herd node's operational endpoints over HTTP:
// Prometheus metrics, health and readiness checks, optional pprof, and a
// live status page. It is built only on the node's public observation
// methods ([herd.Node.Stats], [herd.Node.LinkStatus],
// [herd.Node.RecentUpdates], [herd.Node.SampleRecords], [herd.Node.Ready])
// and on the timings a node reports to a [herd.Observer], so a Go service
// that embeds a node mounts the same handler that `herd serve -http`
// runs:
//
//	obs := herdhttp.NewObserver()
//	cfg.Observer = obs // before herd.New, for the latency histograms
//	node, err := herd.New(cfg)
//	...
//	mux.Handle("/herd/", http.StripPrefix("/herd", herdhttp.New(node, herdhttp.Options{Observer: obs})))
//
// Routes, relative to where the handler is mounted:
//
//	/              the status page (HTML; its assets are embedded)
//	/status.json   what the page shows, as JSON
//	/metrics       Prometheus text format, every name prefixed herd_
//	/healthz       200 while the process serves
//	/readyz        200 when the node is ready (see herd.Node.Ready), else 503 and why
//	/debug/pprof/  runtime profiles, only with Options.Pprof
//
// The handler reads the node's state when asked and keeps no goroutine of
// its own. Its metrics live in a registry of its own, never Prometheus's
// global one, so several nodes in one process each have theirs.
package herdhttp

import (
	"cmp"
	"embed"
	"io"
	"io/fs"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/places"
)

// Options configure [New]. The zero value serves everything but pprof,
// without latency histograms.
type Options struct {
	// Observer is the one the node was built with (its Config.Observer),
	// whose latency histograms /metrics then serves; nil serves none.
	Observer *Observer
	// Frugal, when set, is the node's caching Places wrapper, whose
	// counters /metrics serves as herd_frugal_*.
	Frugal *places.Frugal
	// Pprof serves net/http/pprof's profiles under /debug/pprof/. They
	// can stall the process and reveal its internals: leave it off unless
	// the address is trusted.
	Pprof bool
	// PlotClients bounds the clients the status page plots (default
	// 2000): a deterministic sample of the table (see
	// herd.Node.SampleRecords), however many clients it holds.
	PlotClients int
	// Refresh is how often the status page polls /status.json (default
	// 1s).
	Refresh time.Duration
}

// DefaultPlotClients is the default of [Options.PlotClients].
const DefaultPlotClients = 2000

//go:embed static
var static embed.FS

// New returns the handler of node's endpoints (see the package doc).
func New(node *herd.Node, opts Options) http.Handler {
	opts.PlotClients = cmp.Or(opts.PlotClients, DefaultPlotClients)
	opts.Refresh = cmp.Or(opts.Refresh, time.Second)

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newNodeCollector(node, opts.Frugal),
	)
	if opts.Observer != nil {
		reg.MustRegister(opts.Observer)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := node.Ready(); err != nil {
			plain(w, http.StatusServiceUnavailable, err.Error()+"\n")
			return
		}
		plain(w, http.StatusOK, "ready\n")
	})
	st := newStatusSource(node, opts)
	mux.Handle("GET /status.json", st)
	page, _ := fs.Sub(static, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(page)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		f, _ := page.Open("index.html")
		defer f.Close()
		io.Copy(w, f)
	})
	if opts.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// plain writes a short text/plain answer that caches must not keep.
func plain(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, text)
}
