package herdhttp

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxyherd/herd"
	"github.com/proxyherd/herd/places"
)

// Observer is a [herd.Observer] that keeps the node's timings as
// Prometheus histograms: herd_flood_lag_seconds (per neighbour),
// herd_iamat_seconds and herd_places_call_seconds (per outcome). Give it
// to the node as Config.Observer and to [New] as Options.Observer. It is
// a prometheus.Collector, so it can also be registered elsewhere.
type Observer struct {
	lag    *prometheus.HistogramVec
	iamat  prometheus.Histogram
	places *prometheus.HistogramVec
	ok     prometheus.Observer // places{outcome="ok"}
	failed prometheus.Observer // places{outcome="error"}

	// lagByPeer caches lag's child per neighbour: a map read instead of
	// a label hash for every record.
	lagByPeer sync.Map // string -> prometheus.Observer
}

var _ herd.Observer = (*Observer)(nil)

// NewObserver returns an Observer with empty histograms.
func NewObserver() *Observer {
	o := &Observer{
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herd_flood_lag_seconds",
			Help: "Time from a record's server receive time (AT line) to its arrival here, per neighbour it came from; records that changed the table only. Clock differences between servers shift it.",
			// 100 µs to 10 s.
			Buckets: []float64{1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"peer"}),
		iamat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "herd_iamat_seconds",
			Help: "Time from reading IAMAT commands to having their replies ready, once per write (a pipelined batch is one observation).",
			// 1 µs to 100 ms.
			Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1},
		}),
		places: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herd_places_call_seconds",
			Help: "Duration of Places provider calls for WHATSAT, by outcome (ok or error); cache hits included.",
			// 10 µs (a cache hit) to 10 s (the default timeout).
			Buckets: []float64{1e-5, 1e-4, 1e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}, []string{"outcome"}),
	}
	o.ok = o.places.WithLabelValues("ok")
	o.failed = o.places.WithLabelValues("error")
	return o
}

// FloodLag implements [herd.Observer]. A negative lag (clocks that
// disagree) counts as zero.
func (o *Observer) FloodLag(peer string, d time.Duration) {
	h, ok := o.lagByPeer.Load(peer)
	if !ok {
		h, _ = o.lagByPeer.LoadOrStore(peer, o.lag.WithLabelValues(peer))
	}
	h.(prometheus.Observer).Observe(max(d, 0).Seconds())
}

// IAMAT implements [herd.Observer].
func (o *Observer) IAMAT(d time.Duration) { o.iamat.Observe(d.Seconds()) }

// Places implements [herd.Observer].
func (o *Observer) Places(d time.Duration, err error) {
	if err != nil {
		o.failed.Observe(d.Seconds())
		return
	}
	o.ok.Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (o *Observer) Describe(ch chan<- *prometheus.Desc) {
	o.lag.Describe(ch)
	o.iamat.Describe(ch)
	o.places.Describe(ch)
}

// Collect implements prometheus.Collector.
func (o *Observer) Collect(ch chan<- prometheus.Metric) {
	o.lag.Collect(ch)
	o.iamat.Collect(ch)
	o.places.Collect(ch)
}

// stat is one number of a snapshot, exported as a metric.
type stat[S any] struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*S) float64
}

func counter[S any](name, help string, v func(*S) uint64) stat[S] {
	return stat[S]{prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, func(s *S) float64 { return float64(v(s)) }}
}

func gauge[S any, N int | int64](name, help string, v func(*S) N) stat[S] {
	return stat[S]{prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, func(s *S) float64 { return float64(v(s)) }}
}

// nodeStats are the metrics of [herd.Stats].
var nodeStats = []stat[herd.Stats]{
	gauge("herd_connections", "Open connections, clients and peers.", func(s *herd.Stats) int64 { return s.Conns }),
	counter("herd_connections_accepted_total", "Connections accepted.", func(s *herd.Stats) uint64 { return s.ConnsAccepted }),
	counter("herd_connections_refused_total", "Connections closed at once because MaxConns was reached.", func(s *herd.Stats) uint64 { return s.ConnsRefused }),
	counter("herd_idle_closed_total", "Client connections closed by IdleTimeout.", func(s *herd.Stats) uint64 { return s.IdleClosed }),
	counter("herd_write_timeouts_total", "Connections cut by WriteTimeout.", func(s *herd.Stats) uint64 { return s.WriteTimeouts }),
	counter("herd_parked_total", "Idle client sessions moved to a small goroutine.", func(s *herd.Stats) uint64 { return s.Parked }),
	counter("herd_iamat_total", "Valid IAMAT commands.", func(s *herd.Stats) uint64 { return s.IAMAT }),
	counter("herd_whatsat_total", "Valid WHATSAT commands for known clients.", func(s *herd.Stats) uint64 { return s.WHATSAT }),
	counter("herd_invalid_total", `Lines answered with "? ".`, func(s *herd.Stats) uint64 { return s.Invalid }),
	counter("herd_table_full_total", "Reports refused or dropped because MaxClients was reached.", func(s *herd.Stats) uint64 { return s.TableFull }),
	gauge("herd_clients", "Client IDs in the table.", func(s *herd.Stats) int64 { return s.Clients }),
	counter("herd_records_local_total", "Table changes from this server's clients.", func(s *herd.Stats) uint64 { return s.RecordsLocal }),
	counter("herd_records_peer_total", "Table changes from neighbours.", func(s *herd.Stats) uint64 { return s.RecordsPeer }),
	counter("herd_records_flooded_total", "Records queued to neighbours.", func(s *herd.Stats) uint64 { return s.RecordsFlooded }),
	gauge("herd_links_up", "Peer links up.", func(s *herd.Stats) int64 { return s.LinksUp }),
	counter("herd_link_drops_total", "Peer links that went down.", func(s *herd.Stats) uint64 { return s.LinkDrops }),
	counter("herd_peer_slow_total", "Always 0: links are no longer cut for falling behind (kept for dashboards).", func(s *herd.Stats) uint64 { return s.PeerSlow }),
	counter("herd_handshake_failures_total", "Peer handshakes refused or failed.", func(s *herd.Stats) uint64 { return s.HandshakeFails }),
	counter("herd_places_calls_total", "Places provider calls made for WHATSAT.", func(s *herd.Stats) uint64 { return s.PlacesCalls }),
	counter("herd_places_errors_total", "WHATSAT replies that carried an error document.", func(s *herd.Stats) uint64 { return s.PlacesErrors }),
	counter("herd_state_saves_total", "State file writes.", func(s *herd.Stats) uint64 { return s.StateSaves }),
	counter("herd_state_errors_total", "State file load or save failures.", func(s *herd.Stats) uint64 { return s.StateErrors }),
}

// frugalStats are the metrics of [places.FrugalStats].
var frugalStats = []stat[places.FrugalStats]{
	counter("herd_frugal_lookups_total", "Lookups of the caching Places wrapper.", func(s *places.FrugalStats) uint64 { return s.Lookups }),
	counter("herd_frugal_cache_hits_total", "Lookups answered from the cache.", func(s *places.FrugalStats) uint64 { return s.CacheHits }),
	counter("herd_frugal_merged_total", "Lookups answered by another lookup's provider call.", func(s *places.FrugalStats) uint64 { return s.Merged }),
	counter("herd_frugal_provider_calls_total", "Calls to the provider, retries included.", func(s *places.FrugalStats) uint64 { return s.ProviderCalls }),
	counter("herd_frugal_retries_total", "Provider calls that were retries.", func(s *places.FrugalStats) uint64 { return s.Retries }),
	counter("herd_frugal_provider_errors_total", "Provider calls that returned an error.", func(s *places.FrugalStats) uint64 { return s.ProviderErrors }),
	counter("herd_frugal_busy_total", "Merged lookups that found no provider slot in time.", func(s *places.FrugalStats) uint64 { return s.Busy }),
	counter("herd_frugal_errors_total", "Lookups that returned an error.", func(s *places.FrugalStats) uint64 { return s.Errors }),
	gauge("herd_frugal_waiting", "Lookups waiting for a provider call.", func(s *places.FrugalStats) int64 { return s.Waiting }),
	gauge("herd_frugal_cache_entries", "Answers cached.", func(s *places.FrugalStats) int { return s.CacheEntries }),
}

// Per-link metrics, labelled with the neighbour's name.
var (
	linkUpDesc       = prometheus.NewDesc("herd_link_up", "1 while the link to the neighbour is up, else 0.", []string{"peer"}, nil)
	linkSentDesc     = prometheus.NewDesc("herd_link_records_sent_total", "Records sent to the neighbour.", []string{"peer"}, nil)
	linkReceivedDesc = prometheus.NewDesc("herd_link_records_received_total", "Records received from the neighbour (duplicates included).", []string{"peer"}, nil)
	linkBacklogDesc  = prometheus.NewDesc("herd_link_backlog", "Records waiting to be sent to the neighbour.", []string{"peer"}, nil)
	linkLastUpDesc   = prometheus.NewDesc("herd_link_last_up_timestamp_seconds", "When the link to the neighbour last came up (Unix time); 0 if never.", []string{"peer"}, nil)
	linkUpsDesc      = prometheus.NewDesc("herd_link_ups_total", "Times the link to the neighbour came up.", []string{"peer"}, nil)
	infoDesc         = prometheus.NewDesc("herd_info", "Always 1; the server's name as a label.", []string{"server"}, nil)
	readyDesc        = prometheus.NewDesc("herd_ready", "1 when /readyz answers 200, else 0.", nil, nil)
)

// nodeCollector reads a node's counters and links at each scrape.
type nodeCollector struct {
	node   *herd.Node
	frugal *places.Frugal
}

func newNodeCollector(node *herd.Node, frugal *places.Frugal) *nodeCollector {
	return &nodeCollector{node: node, frugal: frugal}
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range nodeStats {
		ch <- s.desc
	}
	if c.frugal != nil {
		for _, s := range frugalStats {
			ch <- s.desc
		}
	}
	for _, d := range []*prometheus.Desc{linkUpDesc, linkSentDesc, linkReceivedDesc, linkBacklogDesc, linkLastUpDesc, linkUpsDesc, infoDesc, readyDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	emit(ch, nodeStats, c.node.Stats())
	if c.frugal != nil {
		emit(ch, frugalStats, c.frugal.Stats())
	}
	for _, l := range c.node.LinkStatus() {
		up, lastUp := 0.0, 0.0
		if l.Up {
			up = 1
		}
		if !l.LastUp.IsZero() {
			lastUp = float64(l.LastUp.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(linkUpDesc, prometheus.GaugeValue, up, l.Peer)
		ch <- prometheus.MustNewConstMetric(linkSentDesc, prometheus.CounterValue, float64(l.Sent), l.Peer)
		ch <- prometheus.MustNewConstMetric(linkReceivedDesc, prometheus.CounterValue, float64(l.Received), l.Peer)
		ch <- prometheus.MustNewConstMetric(linkBacklogDesc, prometheus.GaugeValue, float64(l.Backlog), l.Peer)
		ch <- prometheus.MustNewConstMetric(linkLastUpDesc, prometheus.GaugeValue, lastUp, l.Peer)
		ch <- prometheus.MustNewConstMetric(linkUpsDesc, prometheus.CounterValue, float64(l.Ups), l.Peer)
	}
	ch <- prometheus.MustNewConstMetric(infoDesc, prometheus.GaugeValue, 1, c.node.Name())
	ready := 0.0
	if c.node.Ready() == nil {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, ready)
}

// emit sends one metric per stat of snapshot s.
func emit[S any](ch chan<- prometheus.Metric, stats []stat[S], s S) {
	for _, st := range stats {
		ch <- prometheus.MustNewConstMetric(st.desc, st.kind, st.value(&s))
	}
}
