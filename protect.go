package herd

// protect.go: protected mode, as Redis has it. Without Config.Secret the
// handshake's HMAC is keyed with the empty secret, which anyone can
// compute, so a node without a secret trusts peer links only from
// loopback (unless Config.InsecurePeers says otherwise), and the empty key
// never lets a link replace a live one to the same neighbour from
// elsewhere. Addresses that are not IP addresses (a simulated network,
// in-memory pipes) are outside protected mode's reach: their transport
// decides who can connect.

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// protected reports whether the node runs in protected mode.
func (n *Node) protected() bool { return len(n.cfg.Secret) == 0 && !n.cfg.InsecurePeers }

// ipOf returns the IP address of a, if a is an IP address and port (a
// *net.TCPAddr, or anything whose String is host:port with an IP host).
// IPv4 addresses mapped into IPv6 come back as IPv4.
func ipOf(a net.Addr) (netip.Addr, bool) {
	if a == nil {
		return netip.Addr{}, false
	}
	if t, ok := a.(*net.TCPAddr); ok {
		if t == nil {
			return netip.Addr{}, false
		}
		ip, ok := netip.AddrFromSlice(t.IP)
		return ip.Unmap(), ok
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		host = a.String()
	}
	ip, err := netip.ParseAddr(host)
	return ip.Unmap(), err == nil
}

// trustedLocal reports whether a is a loopback address (127.0.0.0/8, ::1),
// or not an IP address at all, which leaves it outside protected mode.
func trustedLocal(a net.Addr) bool {
	ip, ok := ipOf(a)
	return !ok || ip.IsLoopback()
}

// sourceOf names where a connection comes from, for per-address limits
// and logs: the IPv4 address, the /64 prefix of an IPv6 address (one
// host usually holds a whole /64), or for other addresses the host part of
// host:port, else the whole address.
func sourceOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if ip, ok := ipOf(a); ok {
		if ip.Is4() {
			return ip.String()
		}
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	s := a.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// checkListen enforces protected mode on the listener's address, and logs
// at every start how peers are authenticated.
func (n *Node) checkListen(a net.Addr) error {
	switch {
	case len(n.cfg.Secret) > 0:
		return nil
	case n.cfg.InsecurePeers:
		n.log.LogAttrs(n.ctx, slog.LevelWarn, "insecure peers: no Secret is set and InsecurePeers is on, so anyone who reaches this port can pose as a neighbour and inject records; set a Secret")
		return nil
	}
	if ip, ok := ipOf(a); ok && !ip.IsLoopback() {
		return fmt.Errorf("%w: Addr: %s is not a loopback address and no Secret is set: anyone who reaches it could pose as a neighbour (protected mode); set Secret, or InsecurePeers to run without one anyway", ErrInvalidConfig, a)
	}
	n.log.LogAttrs(n.ctx, slog.LevelInfo, "protected mode: no Secret is set, so peer links are made only over loopback")
	return nil
}

// protectedRefusal returns why protected mode refuses a peer link over
// s's connection, or "" if it does not.
func (n *Node) protectedRefusal(s *session) string {
	if !n.protected() || trustedLocal(s.c.RemoteAddr()) {
		return ""
	}
	return fmt.Sprintf("protected mode: %s is not a loopback address and no Secret is set", addrString(s.c.RemoteAddr()))
}

// replacementRefusal applies the replacement rule to an authenticated
// link from peer over s's connection: without a secret, a link that
// would replace a live link to the same neighbour proves nothing, so it
// is refused unless it comes over loopback (or a transport outside
// protected mode), where it is kept with a warning. It returns why the
// link is refused, or "".
func (n *Node) replacementRefusal(s *session, peer string) string {
	if len(n.cfg.Secret) > 0 || !n.linkUp(peer) {
		return ""
	}
	if trustedLocal(s.c.RemoteAddr()) {
		n.offence("peer link replaced without a secret", sourceOf(s.c.RemoteAddr()),
			slog.String("conn", s.id), slog.String("peer", peer))
		return ""
	}
	return "a live link to " + peer + " exists, and without a Secret nothing proves this one should replace it"
}

// linkUp reports whether a link to peer is up.
func (n *Node) linkUp(peer string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, found := slices.BinarySearchFunc(n.links, peer, func(l *link, p string) int { return strings.Compare(l.peer, p) })
	return found
}

// refusePeer answers a handshake line with "? ", counts a peer link
// refused by protected mode or the replacement rule, and logs it (once a
// minute per source); it returns the reason for the connection log.
func (s *session) refusePeer(peer string, line []byte, why string) string {
	n := s.n
	n.stats.handshakeFails.Add(1)
	n.stats.peersRefused.Add(1)
	n.offence("peer refused", sourceOf(s.c.RemoteAddr()), slog.String("conn", s.id), slog.String("peer", peer), slog.String("why", why))
	s.reply(appendInvalid(s.out, line))
	s.flush()
	return "peer refused: " + why
}
