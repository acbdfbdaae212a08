package main

import (
	"context"
	"flag"
	"time"

	"github.com/proxyherd/herd/client"
	"github.com/proxyherd/herd/internal/cli"
)

// DefaultTimeout bounds a client subcommand's whole exchange by default.
// A WHATSAT may wait for the server's Places provider (10s by default).
const DefaultTimeout = 30 * time.Second

func init() {
	register(&command{
		name:    "iamat",
		args:    "[-addr HOST:PORT] [-timeout D] [-tls-ca FILE] CLIENT LOCATION [TIME]",
		summary: "report where a client is (IAMAT) and print the server's AT reply",
		flags:   iamatFlags,
	})
}

func iamatFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	addr := fs.String("addr", cli.DefaultAddr, "server `address`")
	timeout := fs.Duration("timeout", DefaultTimeout, "give up after this `duration`")
	dialer := clientTLSFlags(fs)
	return func(ctx context.Context, e *env, args []string) int {
		c := lookup("iamat")
		if len(args) < 2 || len(args) > 3 {
			return usageError(e, c, "want CLIENT LOCATION [TIME], got %d arguments", len(args))
		}
		d, err := dialer()
		if err != nil {
			return usageError(e, c, "%v", err)
		}
		// TIME defaults to now, with nanoseconds: 1520023934.918963997.
		t := client.FormatTime(e.now())
		if len(args) == 3 {
			t = args[2]
		}
		return exchangeWith(ctx, e, c, d, *addr, *timeout, func(ctx context.Context, conn *client.Conn) (string, error) {
			at, err := conn.IAMATText(ctx, args[0], args[1], t)
			return at.Line + "\n", err
		})
	}
}
