package herd

import "sync/atomic"

// Stats is a snapshot of a node's counters. Counts are since New, except
// the gauges Conns and LinksUp.
type Stats struct {
	Conns         int64  // open connections, clients and peers (gauge)
	ConnsAccepted uint64 // connections accepted
	ConnsRefused  uint64 // connections closed at once: MaxConns reached
	IdleClosed    uint64 // client connections closed by IdleTimeout
	WriteTimeouts uint64 // connections cut by WriteTimeout
	PeerTimeouts  uint64 // peer links cut by PeerTimeout (nothing arrived)
	Parked        uint64 // idle client sessions moved to a small goroutine
	IAMAT         uint64 // valid IAMAT commands
	WHATSAT       uint64 // valid WHATSAT commands for known clients
	Invalid       uint64 // lines answered with "? "
	TableFull     uint64 // reports refused or dropped: MaxClients reached
	Clients       int64  // client IDs in the table (gauge)
	// Digest sums a keyed hash of every record in the table (0 when it
	// is empty). Nodes of one herd (the same Config.Secret) that hold the
	// same records have the same Digest, and nodes whose records differ
	// almost surely do not: comparing it tells whether a herd has
	// converged without reading any table. It is the root of the link-up
	// summary (docs/protocol.md section 7).
	Digest         uint64
	RecordsLocal   uint64 // table changes from this node's clients
	RecordsPeer    uint64 // table changes from peers
	RecordsFlooded uint64 // records queued to neighbours (a client queued again before it went out counts once)
	SyncLines      uint64 // link-up summary lines received and answered
	SyncRefused    uint64 // link-up summary lines refused as malformed or past the bound
	LinksUp        int64  // peer links up (gauge)
	LinkDrops      uint64 // peer links that went down
	// Deprecated: links no longer have a bounded queue, so no link is
	// cut for falling behind (a neighbour that stops reading is cut by
	// WriteTimeout); PeerSlow is always 0.
	PeerSlow       uint64
	HandshakeFails uint64 // peer handshakes refused or failed
	PeersRefused   uint64 // peer links refused by protected mode or the replacement rule (also in HandshakeFails)
	FutureRefused  uint64 // IAMATs refused: client time more than MaxClientAhead ahead (also in Invalid)
	FutureDropped  uint64 // peer records dropped: client time too far ahead of this node's clock
	PlacesCalls    uint64 // provider calls made for WHATSAT
	PlacesErrors   uint64 // WHATSAT replies that carried an error document
	// WHATSATs answered without a provider call because a limit of
	// Config.PlacesLimits was reached: in total, and by limit.
	PlacesLimited       uint64
	PlacesLimitedConn   uint64 // per-connection rate
	PlacesLimitedAddr   uint64 // per-address rate
	PlacesLimitedServer uint64 // per-server rate
	PlacesLimitedDaily  uint64 // daily budget
	StateSaves          uint64 // snapshots written (log compactions and Close)
	StateErrors         uint64 // state file or log failures
	LogSyncs            uint64 // fsyncs of the state log
	LogCuts             uint64 // torn or corrupt log segments cut at start
}

// counters are the node's live counters behind Stats.
type counters struct {
	connsAccepted, connsRefused, idleClosed, writeTimeouts atomic.Uint64
	peerTimeouts                                           atomic.Uint64
	parked                                                 atomic.Uint64
	iamat, whatsat, invalid                                atomic.Uint64
	linkDrops, handshakeFails                              atomic.Uint64
	placesCalls, placesErrors, stateSaves, stateErrors     atomic.Uint64
	peersRefused, futureRefused, futureDropped             atomic.Uint64
	placesLimited                                          [limitKinds]atomic.Uint64
	logSyncs, logCuts                                      atomic.Uint64

	// Guarded by n.mu, which every table change holds anyway: plain
	// fields cost nothing there, where atomic adds from both cores would
	// fight over their cache line for every record.
	tableFull, recordsLocal, recordsPeer, recordsFlooded uint64
	syncLines, syncRefused                               uint64
}

// Stats returns the node's counters. It does not block on I/O.
func (n *Node) Stats() Stats {
	n.stateMu.Lock()
	conns := int64(len(n.conns))
	n.stateMu.Unlock()
	n.mu.Lock()
	clients, links := int64(n.table.len()), int64(len(n.links))
	digest := n.table.sum.get(0, 0).sum
	c := &n.stats
	tableFull, local, peer, flooded := c.tableFull, c.recordsLocal, c.recordsPeer, c.recordsFlooded
	syncLines, syncRefused := c.syncLines, c.syncRefused
	n.mu.Unlock()
	limitedConn, limitedAddr := c.placesLimited[limitConn].Load(), c.placesLimited[limitAddr].Load()
	limitedServer, limitedDaily := c.placesLimited[limitServer].Load(), c.placesLimited[limitDaily].Load()
	return Stats{
		Conns:          conns,
		ConnsAccepted:  c.connsAccepted.Load(),
		ConnsRefused:   c.connsRefused.Load(),
		IdleClosed:     c.idleClosed.Load(),
		WriteTimeouts:  c.writeTimeouts.Load(),
		PeerTimeouts:   c.peerTimeouts.Load(),
		Parked:         c.parked.Load(),
		IAMAT:          c.iamat.Load(),
		WHATSAT:        c.whatsat.Load(),
		Invalid:        c.invalid.Load(),
		TableFull:      tableFull,
		Clients:        clients,
		Digest:         digest,
		RecordsLocal:   local,
		RecordsPeer:    peer,
		RecordsFlooded: flooded,
		SyncLines:      syncLines,
		SyncRefused:    syncRefused,
		LinksUp:        links,
		LinkDrops:      c.linkDrops.Load(),
		HandshakeFails: c.handshakeFails.Load(),
		PlacesCalls:    c.placesCalls.Load(),
		PlacesErrors:   c.placesErrors.Load(),
		PeersRefused:   c.peersRefused.Load(),
		FutureRefused:  c.futureRefused.Load(),
		FutureDropped:  c.futureDropped.Load(),

		PlacesLimited:       limitedConn + limitedAddr + limitedServer + limitedDaily,
		PlacesLimitedConn:   limitedConn,
		PlacesLimitedAddr:   limitedAddr,
		PlacesLimitedServer: limitedServer,
		PlacesLimitedDaily:  limitedDaily,
		StateSaves:          c.stateSaves.Load(),
		StateErrors:         c.stateErrors.Load(),
		LogSyncs:            c.logSyncs.Load(),
		LogCuts:             c.logCuts.Load(),
	}
}
