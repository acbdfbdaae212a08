// Package herd builds application server herds: a handful of servers, each
// accepting TCP connections from mobile clients, that keep every client's
// latest reported location in sync by flooding updates to their neighbours,
// and that answer "what is near this client?" by asking a Places provider.
//
// A Go service builds a [Node] from a [Config] with [New] and runs it with
// [Node.Start] or [Node.Run]. Clients speak the line protocol of
// docs/protocol.md in the repository (IAMAT, WHATSAT, AT and the "? "
// reply); peers speak it too, on the same port, after a handshake that
// names both sides and, with [Config.Secret], authenticates them with
// HMAC-SHA256 (docs/protocol.md section 7); without a secret a node links
// over loopback only (protected mode, see [Config.InsecurePeers]).
//
// Everything a node touches outside its own memory goes through three small
// interfaces: [Transport] (listen and dial byte streams), [Clock] (the only
// source of time) and [PlacesClient] (the provider behind WHATSAT). The same
// flooding, ordering and WHATSAT code therefore runs over real TCP in
// production and over a simulated network, clock and provider in tests (see
// package herdtest).
//
// # Layout
//
// This package is the herd's core: the protocol (message.go), the client
// table (flood.go), the node, its client sessions and peer links (node.go,
// conn.go, peer.go), its limits and durable state, and the Places seam
// (places.go: the query, the WHATSAT body cut to its bound, error
// documents). The Places providers themselves (Google's two APIs, an
// offline catalogue, the caching and limiting Frugal, and places.New,
// which chooses among them) are package places, which imports this one
// and never the other way round; any [PlacesClient], a [PlacesFunc]
// included, can take their place. Package transport holds TCP and TLS,
// herdhttp the HTTP endpoints, client a Go client, herdtest simulated
// herds, and cmd/herd the command (its measuring kit is internal/bench).
//
// # Determinism rules
//
// The simulation depends on these, and every change to this package keeps
// them:
//
//  1. Package herd never calls time.Now, time.Sleep, time.After,
//     context.WithTimeout or connection deadlines: all time goes through
//     [Clock], and timeouts are [Clock.AfterFunc] plus cancel or Close.
//     The one use of SetReadDeadline sets a fixed time in the past, as an
//     interrupt that moves an idle session to a smaller goroutine; no
//     decision depends on it, and transports without deadlines (like the
//     simulation's) simply keep such sessions where they are.
//  2. No global random source: nonces and jitter come from [Config.Entropy].
//  3. No decision depends on map iteration order: peers and clients are
//     sorted before anything is sent.
package herd

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/proxyherd/herd/internal/configerr"
)

// Transport opens the byte streams a node uses. One listener serves both
// clients and peers.
//
// The node calls Listen once from [Node.Start] and Dial from its redial
// goroutines, possibly concurrently; both may block until ctx is done.
// A nil Transport in [Config] means plain TCP (package transport's TCP).
type Transport interface {
	// Listen announces on addr (host:port; port 0 picks a free port).
	Listen(ctx context.Context, addr string) (net.Listener, error)
	// Dial connects to addr. It must return once ctx is done.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// Clock is the node's only source of time. It is called from any goroutine
// and must be safe for concurrent use. A nil Clock in [Config] means the
// system clock.
type Clock interface {
	// Now returns the current time. Its Unix seconds and nanoseconds are
	// the server receive time of an IAMAT.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed, unless the
	// returned Timer is stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending [Clock.AfterFunc] call. *time.Timer satisfies it.
type Timer interface {
	// Stop prevents the call if it has not started; it reports whether it
	// did so.
	Stop() bool
}

// NearbyQuery is one Places lookup: what WHATSAT asks the provider.
type NearbyQuery struct {
	// Lat and Lon are the client's stored location in decimal degrees.
	Lat, Lon float64
	// RadiusMeters is the WHATSAT radius in metres (kilometres x 1000,
	// computed exactly from the decimal text).
	RadiusMeters float64
	// MaxResults is the WHATSAT bound, 1 to 20. Providers that can limit
	// their answer use it; the reply is cut to it either way.
	MaxResults int
}

// PlacesClient answers Nearby Search queries with the provider's raw JSON.
//
// The node calls Nearby from a client connection's goroutine, possibly from
// many connections at once, and waits for it; ctx is cancelled when the
// node's provider timeout ([Config.PlacesTimeout]) passes or the node
// closes, and Nearby must return promptly then. An error means the provider
// could not be used at all (transport failure, timeout, non-2xx status, a
// body that is not JSON); provider statuses such as ZERO_RESULTS or
// OVER_QUERY_LIMIT come back as a document, not an error.
type PlacesClient interface {
	Nearby(ctx context.Context, q NearbyQuery) ([]byte, error)
}

// PlacesFunc adapts an ordinary function to [PlacesClient].
type PlacesFunc func(ctx context.Context, q NearbyQuery) ([]byte, error)

// Nearby calls f(ctx, q).
func (f PlacesFunc) Nearby(ctx context.Context, q NearbyQuery) ([]byte, error) {
	return f(ctx, q)
}

// Peer is one neighbour of a node.
type Peer struct {
	// Name is the neighbour's server name, as in its own Config.Name.
	Name string
	// Addr is where the neighbour listens (host:port). Of two neighbours,
	// the one whose name sorts first dials the other; the other only
	// accepts, so Addr must be set for neighbours whose name sorts after
	// this node's.
	Addr string
}

// Defaults for the zero values of [Config].
const (
	DefaultMaxLineBytes  = 64 << 10
	DefaultPeerQueue     = 8192
	DefaultPlacesTimeout = 10 * time.Second
	DefaultRedialMin     = 50 * time.Millisecond
	DefaultRedialMax     = 5 * time.Second
	DefaultHandshake     = 10 * time.Second
	DefaultMaxConns      = 50000
	DefaultMaxClients    = 1 << 20
	DefaultIdleTimeout   = 5 * time.Minute
	DefaultWriteTimeout  = 30 * time.Second
	DefaultPeerTimeout   = 5 * time.Second
	DefaultReplyBuffer   = 64 << 10
	DefaultStateInterval = time.Second
	DefaultShutdownGrace = 5 * time.Second
	// DefaultMaxClientAhead is the default of Config.MaxClientAhead.
	DefaultMaxClientAhead = time.Hour
	// DefaultPeerClockAllowance is the default of
	// Config.PeerClockAllowance.
	DefaultPeerClockAllowance = 5 * time.Minute
)

// Config describes one node. The zero value of every optional field means
// the default documented on it. [New] validates and copies the Config; later
// changes to the caller's value have no effect.
type Config struct {
	// Name is this server's name: the second field of every AT line it
	// writes and what its peers call it. Required; no white space.
	Name string
	// Addr is the listen address (host:port). Required unless Listener is
	// set; port 0 picks a free port, which [Node.Addr] reports after Start.
	Addr string
	// Listener, when set, is where the node serves instead of listening
	// on Addr (which must then be empty): a listener the caller opened
	// itself, for instance on port 0 for every node of a herd in one
	// process before any starts, so that each knows its neighbours'
	// addresses. Start serves on it as it is; the Transport only dials
	// (for TLS, wrap it with tls.NewListener). The node owns it once Start
	// has succeeded and closes it on Close; if Start fails, it stays open.
	Listener net.Listener
	// Peers are this node's neighbours. Names must be distinct, non-empty,
	// free of white space and different from Name.
	Peers []Peer
	// Secret, when set, authenticates every peer link with HMAC-SHA256
	// over fresh nonces from both sides and both names. Without it peers
	// are identified by name only, so the node runs in protected mode
	// (see InsecurePeers), and a link never replaces a live link to the
	// same neighbour from anywhere but loopback.
	Secret []byte
	// InsecurePeers turns protected mode off. In protected mode (no
	// Secret, InsecurePeers false) a node refuses to start on a listen
	// address that is not loopback (127.0.0.0/8, ::1), and refuses peer
	// links to and from addresses that are not loopback, since without
	// a secret anyone who reaches the port can pose as a neighbour.
	// Transports whose addresses are not IP addresses (a simulated
	// network) are outside its reach. With InsecurePeers and no Secret
	// the node logs a warning at every start.
	InsecurePeers bool
	// RequirePeerCert refuses a peer link unless it runs over TLS (see
	// package transport) and the other side presented a verified
	// certificate that names the peer (DNS SAN or common name). With a
	// server TLS config of ClientAuth tls.VerifyClientCertIfGiven this is
	// mutual TLS between servers while clients need no certificate.
	RequirePeerCert bool

	// Transport opens listeners and connections; nil means plain TCP.
	Transport Transport
	// Clock is the source of all time; nil means the system clock.
	Clock Clock
	// Places answers WHATSAT; nil means every WHATSAT with a positive
	// bound gets the UNKNOWN_ERROR document ("no Places provider
	// configured").
	Places PlacesClient
	// Logger receives a record for every connection and peer link event
	// (Info; problems at Warn and Error) and, at [LevelLines], for every
	// input and output line; nil discards them. Lines are handed to the
	// Logger's handler directly, without the caller's source position,
	// and through [LineHandler] when the handler implements it.
	Logger *slog.Logger
	// Entropy is the source of handshake nonces and redial jitter; nil
	// means crypto/rand. Simulations pass a seeded stream.
	Entropy io.Reader
	// Observer, when set, receives timings (flood lag, IAMAT handling,
	// Places calls) for metrics; see [Observer]. Nil means none.
	Observer Observer

	// MaxLineBytes bounds one input line (default 64 KiB). A longer line
	// is answered with "? " and its first bytes, and the connection closes.
	MaxLineBytes int
	// PeerQueue is how many records may wait for one neighbour, each
	// sent as it was queued (default 8192). Beyond it the link owes
	// clients instead of records: a client changed again before the
	// writer gets to it is sent once, with its newest record (all the
	// neighbour's table would keep), so what a slow neighbour is owed is
	// bounded by the table and no link is ever cut for falling behind (a
	// neighbour that stops reading is cut by WriteTimeout). Below it,
	// what a link sends does not depend on when its writer runs, which
	// simulations rely on.
	PeerQueue int
	// PlacesTimeout bounds one provider call (default 10s).
	PlacesTimeout time.Duration
	// RedialMin and RedialMax bound the jittered exponential backoff
	// between attempts to dial a neighbour (defaults 50ms and 5s).
	RedialMin, RedialMax time.Duration
	// HandshakeTimeout bounds the wait for a new connection's first
	// complete line (which tells client from peer) and, for a peer, the
	// handshake from that line to the link coming up (default 10s).
	HandshakeTimeout time.Duration
	// CloseAfterReply closes every client connection after its first
	// reply, for test clients that read until EOF.
	CloseAfterReply bool

	// MaxConns bounds open connections, clients and peer links together
	// (default 50,000). A connection beyond it is closed at once and
	// logged.
	MaxConns int
	// MaxClients bounds the client IDs the table tracks (default 2^20).
	// Beyond it an IAMAT for a new client ID gets "? " and a log line, and
	// a peer's record for one is dropped and logged; clients already in
	// the table keep updating.
	MaxClients int
	// IdleTimeout closes a client connection that has sent nothing for
	// this long (default 5m). A sweeper checks connections every quarter
	// of the shortest of IdleTimeout, WriteTimeout and PeerTimeout, so
	// the cut comes after at most IdleTimeout of silence and, when
	// IdleTimeout is the shortest, after more than 3/4 of it. Peer links
	// are exempt.
	IdleTimeout time.Duration
	// PeerTimeout cuts a peer link on which nothing has arrived for this
	// long (default 5s), so that a neighbour whose process is frozen or
	// whose network silently drops packets is noticed, reported down and
	// redialed. A link on which this side has written nothing since the
	// last sweep is sent a PING line, so an idle but healthy link is
	// never cut.
	PeerTimeout time.Duration
	// WriteTimeout cuts a connection whose write has been blocked this
	// long (default 30s): a client that does not read holds up no one
	// but itself, and not for ever.
	WriteTimeout time.Duration
	// ReplyBuffer bounds the replies a client session holds before it
	// writes them (default 64 KiB); with WriteTimeout it bounds what a
	// client that sends without reading can make the server hold.
	ReplyBuffer int

	// StateFile, when set, makes the table durable. Every change to the
	// table, from clients and peers, is appended to a log
	// (StateFile+".wal.<segment>", records framed with their length and a
	// CRC-32C); in the background, once the log outgrows the last
	// snapshot (and 16 MiB), it is folded into a snapshot at StateFile,
	// written atomically (temporary file, fsync, rename) with a checksum.
	// Start loads the snapshot and replays the log; Close folds the whole
	// log into the snapshot. A torn or corrupt log tail is cut at the last
	// good record and reported ("state log cut", Stats.LogCuts); a
	// snapshot that does not check out is reported, set aside as
	// StateFile+".corrupt" and not trusted; temporary files left by a
	// crash are removed. A state file from before the log (version 1) is
	// loaded as a snapshot. Ack says when replies wait for the disk.
	StateFile string
	// StateInterval is how often, with Ack AckTable, the log is fsynced
	// (default 1s). It is written as changes come, so a crash of the
	// process loses almost nothing, and a crash of the machine at most
	// about StateInterval of changes.
	StateInterval time.Duration
	// Ack says when an IAMAT is answered: AckTable (the default) once the
	// table holds it, AckDurable once it is in the log on disk (fsynced,
	// one fsync for every reply waiting; needs StateFile).
	Ack Ack
	// ShutdownGrace bounds how long Close lets client sessions finish
	// the replies to commands they have read (default 5s).
	ShutdownGrace time.Duration

	// MaxClientAhead bounds how far an IAMAT's client time may be ahead
	// of the server's receive time (default 1h, generous to phones whose
	// clocks drift). A report further ahead gets "? ", changes nothing
	// and is counted in Stats.FutureRefused: without the bound, one
	// report from the far future would freeze the client's record, since
	// every later real report is older. Negative turns the check off.
	MaxClientAhead time.Duration
	// PeerClockAllowance is how far a neighbour's clock may run ahead of
	// this node's (default 5m). A peer record whose client time is more
	// than MaxClientAhead plus PeerClockAllowance ahead of this node's
	// clock is dropped, logged and counted in Stats.FutureDropped, so one
	// misconfigured server cannot freeze records herd-wide either. It
	// has no effect when MaxClientAhead is negative.
	PeerClockAllowance time.Duration
	// PlacesLimits bounds the provider calls that WHATSAT makes, per
	// client connection, per source address and per server. Its zero
	// value means the defaults documented on it, which never bother a
	// client asking a few times a second.
	PlacesLimits PlacesLimits
}

// Errors returned by the API. Configuration errors wrap ErrInvalidConfig;
// use errors.Is.
var (
	// ErrInvalidConfig is wrapped by every error [New] returns.
	ErrInvalidConfig = errors.New("herd: invalid config")
	// ErrClosed is returned by Start and Run on a node that was closed.
	ErrClosed = errors.New("herd: node closed")
	// ErrStarted is returned by Start and Run on a node already started.
	ErrStarted = errors.New("herd: node already started")
)

// addrProblem is what net.SplitHostPort found wrong with an address,
// without the address again: its *net.AddrError reads "address X: missing
// port in address", and the caller has named X already.
func addrProblem(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

// validate checks every field and reports all problems at once, each
// naming its field.
func (c *Config) validate() error {
	errs := &multierror.Error{ErrorFormat: configerr.Format(ErrInvalidConfig.Error())}
	bad := func(field, format string, args ...any) {
		errs = multierror.Append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	checkName := func(field, name string) bool {
		switch {
		case name == "":
			bad(field, "must not be empty")
		case strings.ContainsFunc(name, func(r rune) bool { return isSpace(r) }):
			bad(field, "%q must not contain white space", name)
		default:
			return true
		}
		return false
	}
	checkName("Name", c.Name)
	switch {
	case c.Listener != nil:
		if c.Addr != "" {
			bad("Addr", "%q: must be empty when Listener is set (the node serves on %s)", c.Addr, c.Listener.Addr())
		}
	case c.Addr == "":
		bad("Addr", "must not be empty")
	default:
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			bad("Addr", "%q: %s", c.Addr, addrProblem(err))
		}
	}
	seen := make(map[string]bool, len(c.Peers))
	for i, p := range c.Peers {
		field := fmt.Sprintf("Peers[%d].Name", i)
		if !checkName(field, p.Name) {
			continue
		}
		if p.Name == c.Name {
			bad(field, "%q is this node's own name", p.Name)
		}
		if seen[p.Name] {
			bad(field, "%q is listed twice", p.Name)
		}
		seen[p.Name] = true
		if p.Name > c.Name {
			if p.Addr == "" {
				bad(fmt.Sprintf("Peers[%d].Addr", i), "must be set: %s dials %s", c.Name, p.Name)
			} else if _, _, err := net.SplitHostPort(p.Addr); err != nil {
				bad(fmt.Sprintf("Peers[%d].Addr", i), "%q: %s", p.Addr, addrProblem(err))
			}
		}
	}
	if c.MaxLineBytes < 0 {
		bad("MaxLineBytes", "must not be negative, got %d", c.MaxLineBytes)
	} else if c.MaxLineBytes > 0 && c.MaxLineBytes < 64 {
		bad("MaxLineBytes", "must be at least 64, got %d", c.MaxLineBytes)
	}
	for _, f := range []struct {
		field string
		v     int
	}{{"PeerQueue", c.PeerQueue}, {"MaxConns", c.MaxConns}, {"MaxClients", c.MaxClients}, {"ReplyBuffer", c.ReplyBuffer}} {
		if f.v < 0 {
			bad(f.field, "must not be negative, got %d", f.v)
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"PlacesTimeout", c.PlacesTimeout}, {"RedialMin", c.RedialMin}, {"RedialMax", c.RedialMax}, {"HandshakeTimeout", c.HandshakeTimeout},
		{"IdleTimeout", c.IdleTimeout}, {"WriteTimeout", c.WriteTimeout}, {"PeerTimeout", c.PeerTimeout}, {"StateInterval", c.StateInterval}, {"ShutdownGrace", c.ShutdownGrace},
		{"PeerClockAllowance", c.PeerClockAllowance}} {
		if d.v < 0 {
			bad(d.field, "must not be negative, got %v", d.v)
		}
	}
	switch {
	case c.Ack != AckTable && c.Ack != AckDurable:
		bad("Ack", "%v is not AckTable or AckDurable", c.Ack)
	case c.Ack == AckDurable && c.StateFile == "":
		bad("Ack", "AckDurable needs a StateFile for its log")
	}
	if c.RedialMin > 0 && c.RedialMax > 0 && c.RedialMax < c.RedialMin {
		bad("RedialMax", "%v is below RedialMin %v", c.RedialMax, c.RedialMin)
	}
	for _, e := range c.PlacesLimits.check() {
		bad("PlacesLimits."+e.field, "%s", e.msg)
	}
	return errs.ErrorOrNil()
}

// withDefaults returns a copy of c with every zero optional field set to its
// default. Slices are copied so the caller's later changes have no effect.
func (c Config) withDefaults() Config {
	c.Peers = slices.Clone(c.Peers)
	c.Secret = slices.Clone(c.Secret)
	slices.SortFunc(c.Peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	c.MaxLineBytes = cmp.Or(c.MaxLineBytes, DefaultMaxLineBytes)
	c.PeerQueue = cmp.Or(c.PeerQueue, DefaultPeerQueue)
	c.PlacesTimeout = cmp.Or(c.PlacesTimeout, DefaultPlacesTimeout)
	c.RedialMin = cmp.Or(c.RedialMin, DefaultRedialMin)
	if c.RedialMax == 0 {
		c.RedialMax = max(DefaultRedialMax, c.RedialMin)
	}
	c.HandshakeTimeout = cmp.Or(c.HandshakeTimeout, DefaultHandshake)
	c.MaxConns = cmp.Or(c.MaxConns, DefaultMaxConns)
	c.MaxClients = cmp.Or(c.MaxClients, DefaultMaxClients)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, DefaultIdleTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	c.PeerTimeout = cmp.Or(c.PeerTimeout, DefaultPeerTimeout)
	c.ReplyBuffer = cmp.Or(c.ReplyBuffer, DefaultReplyBuffer)
	c.StateInterval = cmp.Or(c.StateInterval, DefaultStateInterval)
	c.ShutdownGrace = cmp.Or(c.ShutdownGrace, DefaultShutdownGrace)
	c.MaxClientAhead = cmp.Or(c.MaxClientAhead, DefaultMaxClientAhead)
	c.PeerClockAllowance = cmp.Or(c.PeerClockAllowance, DefaultPeerClockAllowance)
	c.PlacesLimits = c.PlacesLimits.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Topology is a herd layout: server names and the links between them.
type Topology struct {
	// Servers are the names, in the order presets and demos assign ports.
	Servers []string
	// Links are unordered pairs of server names.
	Links [][2]string
}

// Neighbours returns the names linked with server, sorted.
func (t Topology) Neighbours(server string) []string {
	var out []string
	for _, l := range t.Links {
		switch server {
		case l[0]:
			out = append(out, l[1])
		case l[1]:
			out = append(out, l[0])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Presets are the herds of docs/protocol.md section 6, keyed by year ("2016",
// "2017", "2018", "2020" to "2023"). Servers are listed in the order the
// demo assigns ports. Callers must not modify them.
var Presets = map[string]Topology{
	"2016": herd2016,
	"2017": herd2016,
	"2018": {
		Servers: []string{"Goloman", "Hands", "Holiday", "Welsh", "Wilkes"},
		Links: [][2]string{
			{"Goloman", "Hands"}, {"Goloman", "Holiday"}, {"Goloman", "Wilkes"},
			{"Hands", "Wilkes"}, {"Holiday", "Welsh"}, {"Holiday", "Wilkes"},
		},
	},
	"2020": {
		Servers: []string{"Hill", "Jaquez", "Smith", "Singleton", "Campbell"},
		Links: [][2]string{
			{"Hill", "Jaquez"}, {"Hill", "Smith"}, {"Jaquez", "Singleton"},
			{"Smith", "Campbell"}, {"Smith", "Singleton"}, {"Campbell", "Singleton"},
		},
	},
	"2021": {
		Servers: []string{"Riley", "Jaquez", "Juzang", "Campbell", "Bernard"},
		Links: [][2]string{
			{"Riley", "Jaquez"}, {"Riley", "Juzang"}, {"Jaquez", "Bernard"},
			{"Juzang", "Bernard"}, {"Juzang", "Campbell"}, {"Campbell", "Bernard"},
		},
	},
	"2022": {
		Servers: []string{"Bernard", "Clark", "Jaquez", "Johnson", "Juzang"},
		Links: [][2]string{
			{"Clark", "Jaquez"}, {"Clark", "Juzang"}, {"Bernard", "Juzang"},
			{"Bernard", "Jaquez"}, {"Bernard", "Johnson"}, {"Juzang", "Johnson"},
		},
	},
	"2023": {
		Servers: []string{"Bailey", "Bona", "Campbell", "Clark", "Jaquez"},
		Links: [][2]string{
			{"Clark", "Jaquez"}, {"Clark", "Bona"}, {"Campbell", "Bailey"},
			{"Campbell", "Bona"}, {"Campbell", "Jaquez"}, {"Bona", "Bailey"},
		},
	},
}

var herd2016 = Topology{
	Servers: []string{"Alford", "Ball", "Hamilton", "Holiday", "Welsh"},
	Links: [][2]string{
		{"Alford", "Hamilton"}, {"Alford", "Welsh"}, {"Ball", "Holiday"},
		{"Ball", "Welsh"}, {"Hamilton", "Holiday"},
	},
}
