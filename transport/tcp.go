// Package transport holds the real transports of herd: byte streams over
// TCP, optionally wrapped in TLS.
package transport

import (
	"context"
	"crypto/tls"
	"net"
)

// TCP listens and dials over TCP. The zero value is plain TCP with the
// standard library's defaults (TCP keep-alive on, Nagle off). With TLS set,
// every listener and connection is wrapped in crypto/tls: the same config
// serves as server config for Listen and client config for Dial, so set
// Certificates, and RootCAs/ClientCAs plus ClientAuth for mutual TLS.
//
// TCP is safe for concurrent use; Listen and Dial block until done or until
// ctx is.
type TCP struct {
	// Dialer configures outgoing connections; its zero value is fine.
	Dialer net.Dialer
	// ListenConfig configures listeners; its zero value is fine.
	ListenConfig net.ListenConfig
	// TLS, when non-nil, wraps every connection in TLS.
	TLS *tls.Config
}

// Listen announces on the TCP address addr.
func (t *TCP) Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := t.ListenConfig.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if t.TLS != nil {
		ln = tls.NewListener(ln, t.TLS)
	}
	return ln, nil
}

// Dial connects to the TCP address addr, completing the TLS handshake
// when TLS is set.
func (t *TCP) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if t.TLS == nil {
		return t.Dialer.DialContext(ctx, "tcp", addr)
	}
	d := tls.Dialer{NetDialer: &t.Dialer, Config: t.TLS}
	return d.DialContext(ctx, "tcp", addr)
}
