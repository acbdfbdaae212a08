package herdhttp

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/proxyherd/herd"
)

// statusDoc is /status.json: everything the status page shows.
type statusDoc struct {
	Server    string      `json:"server"`
	Addr      string      `json:"addr"`
	NowMS     int64       `json:"now_ms"`
	RefreshMS int64       `json:"refresh_ms"`
	Ready     bool        `json:"ready"`
	NotReady  string      `json:"not_ready,omitempty"`
	Stats     herd.Stats  `json:"stats"`
	Links     []linkDoc   `json:"links"`
	Recent    []updateDoc `json:"recent"`
	Clients   clientsDoc  `json:"clients"`
}

type linkDoc struct {
	Peer     string `json:"peer"`
	Addr     string `json:"addr"`
	Dials    bool   `json:"dials"`
	Up       bool   `json:"up"`
	State    string `json:"state"` // up, redialling or down (overdue)
	SinceMS  int64  `json:"since_ms"`
	LastUpMS int64  `json:"last_up_ms"`
	Ups      uint64 `json:"ups"`
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	Backlog  int    `json:"backlog"`
}

type updateDoc struct {
	Client     string  `json:"client"`
	Server     string  `json:"server"`
	Location   string  `json:"location"`
	Lat        float64 `json:"lat"`
	Lon        float64 `json:"lon"`
	From       string  `json:"from"`
	ReceivedMS int64   `json:"received_ms"`
}

type clientsDoc struct {
	Total int64      `json:"total"`
	Shown int        `json:"shown"`
	Plot  []pointDoc `json:"plot"`
}

// pointDoc is one plotted client, with short keys: the page may get
// thousands every second.
type pointDoc struct {
	Client string  `json:"c"`
	Lat    float64 `json:"la"`
	Lon    float64 `json:"lo"`
	Server string  `json:"s"`
}

// statusSource serves /status.json. However many browsers poll, it builds
// the document at most once per half refresh period, and samples the
// table at most once per ten times what the last sample cost, so that
// watching a node with a huge table costs it at most a tenth of a core.
type statusSource struct {
	node *herd.Node
	opts Options

	mu         sync.Mutex
	body       []byte
	builtAt    time.Time
	plot       []pointDoc
	sampledAt  time.Time
	sampleCost time.Duration
}

func newStatusSource(node *herd.Node, opts Options) *statusSource {
	node.RecentUpdates() // the node remembers updates from the first call on
	return &statusSource{node: node, opts: opts}
}

func (s *statusSource) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	now := time.Now()
	if s.body == nil || now.Sub(s.builtAt) >= s.opts.Refresh/2 {
		s.body = s.build(now)
		s.builtAt = now
	}
	body := s.body
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

// build renders the document. Called with s.mu held.
func (s *statusSource) build(now time.Time) []byte {
	n := s.node
	doc := statusDoc{
		Server:    n.Name(),
		NowMS:     now.UnixMilli(),
		RefreshMS: s.opts.Refresh.Milliseconds(),
		Stats:     n.Stats(),
		Links:     []linkDoc{},
		Recent:    []updateDoc{},
	}
	if a := n.Addr(); a != nil {
		doc.Addr = a.String()
	}
	if err := n.Ready(); err != nil {
		doc.NotReady = err.Error()
	} else {
		doc.Ready = true
	}
	for _, l := range n.LinkStatus() {
		doc.Links = append(doc.Links, linkDoc{
			Peer: l.Peer, Addr: l.Addr, Dials: l.Dials, Up: l.Up, State: linkState(l),
			SinceMS: unixMS(l.Since), LastUpMS: unixMS(l.LastUp),
			Ups: l.Ups, Sent: l.Sent, Received: l.Received, Backlog: l.Backlog,
		})
	}
	for _, u := range n.RecentUpdates() {
		d := updateDoc{Client: u.Client, Server: u.Server, Location: u.Location, From: u.From}
		d.Lat, d.Lon, _ = u.LatLon()
		if at, ok := u.ReceivedAt(); ok {
			d.ReceivedMS = at.UnixMilli()
		}
		doc.Recent = append(doc.Recent, d)
	}
	if s.plot == nil || now.Sub(s.sampledAt) >= max(10*s.sampleCost, s.opts.Refresh/2) {
		start := time.Now()
		s.plot = s.plot[:0]
		for _, r := range n.SampleRecords(s.opts.PlotClients) {
			if lat, lon, ok := r.LatLon(); ok {
				s.plot = append(s.plot, pointDoc{Client: r.Client, Lat: lat, Lon: lon, Server: r.Server})
			}
		}
		s.sampledAt, s.sampleCost = now, time.Since(start)
	}
	doc.Clients = clientsDoc{Total: doc.Stats.Clients, Shown: len(s.plot), Plot: s.plot}
	if doc.Clients.Plot == nil {
		doc.Clients.Plot = []pointDoc{}
	}
	body, err := json.Marshal(&doc)
	if err != nil {
		// Every field is a string or a finite number: not expected.
		body, _ = json.Marshal(map[string]string{"server": doc.Server, "error": err.Error()})
	}
	return body
}

// linkState names a link's state for the page.
func linkState(l herd.LinkStatus) string {
	switch {
	case l.Up:
		return "up"
	case l.Overdue:
		return "down"
	}
	return "redialling"
}

// unixMS returns t in Unix milliseconds, or 0 for the zero time.
func unixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
