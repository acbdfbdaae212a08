package main

import (
	"crypto/tls"
	"flag"

	"github.com/proxyherd/herd/client"
	"github.com/proxyherd/herd/internal/cli"
)

// clientTLSFlags declares the TLS flags of the client subcommands (herd
// iamat, herd whatsat) on fs and returns a function that builds their
// dialer once the flags are parsed: plain TCP unless a TLS flag is set.
func clientTLSFlags(fs *flag.FlagSet) func() (*client.Dialer, error) {
	useTLS := fs.Bool("tls", false, "connect with TLS (implied by the other -tls flags), verifying the server against the system's roots unless -tls-ca is set")
	ca := fs.String("tls-ca", "", "CA bundle (PEM `file`) to verify the server's certificate with")
	cert := fs.String("tls-cert", "", "client certificate (PEM `file`), for servers that require one")
	key := fs.String("tls-key", "", "private key (PEM `file`) of -tls-cert")
	serverName := fs.String("tls-server-name", "", "`name` to verify in the server's certificate (default: the host of -addr)")
	return func() (*client.Dialer, error) {
		if !*useTLS && *ca == "" && *cert == "" && *key == "" && *serverName == "" {
			return &client.Dialer{}, nil
		}
		cfg, err := cli.ClientTLS(*ca, *cert, *key, *serverName)
		if err != nil {
			return nil, err
		}
		d := &tls.Dialer{Config: cfg}
		return &client.Dialer{DialContext: d.DialContext}, nil
	}
}
