package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/proxyherd/herd/client"
	"github.com/proxyherd/herd/internal/cli"
)

func init() {
	register(&command{
		name:    "whatsat",
		args:    "[-addr HOST:PORT] [-timeout D] [-tls-ca FILE] CLIENT RADIUS BOUND",
		summary: "ask what is near a client (WHATSAT) and print the server's reply",
		flags:   whatsatFlags,
	})
}

func whatsatFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	addr := fs.String("addr", cli.DefaultAddr, "server `address`")
	timeout := fs.Duration("timeout", DefaultTimeout, "give up after this `duration`")
	dialer := clientTLSFlags(fs)
	return func(ctx context.Context, e *env, args []string) int {
		c := lookup("whatsat")
		if len(args) != 3 {
			return usageError(e, c, "want CLIENT RADIUS BOUND, got %d arguments", len(args))
		}
		d, err := dialer()
		if err != nil {
			return usageError(e, c, "%v", err)
		}
		return exchangeWith(ctx, e, c, d, *addr, *timeout, func(ctx context.Context, conn *client.Conn) (string, error) {
			nb, err := conn.WHATSATText(ctx, args[0], args[1], args[2])
			if err != nil {
				return "", err
			}
			return string(nb.Bytes()), nil
		})
	}
}

// exchangeWith connects to addr with d, runs do, and prints the reply
// exactly as the server sent it. A "? " answer is printed too (it is the
// reply) and makes the exit status 1, like any other failure; other
// errors go to stderr.
func exchangeWith(ctx context.Context, e *env, c *command, d *client.Dialer, addr string, timeout time.Duration, do func(context.Context, *client.Conn) (string, error)) int {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	conn, err := d.Dial(ctx, addr)
	if err != nil {
		fmt.Fprintf(e.stderr, "herd %s: %v\n", c.name, err)
		return exitFailure
	}
	defer conn.Close()
	reply, err := do(ctx, conn)
	var inv *client.InvalidError
	switch {
	case errors.As(err, &inv):
		io.WriteString(e.stdout, inv.Line+"\n")
		return exitFailure
	case errors.Is(err, client.ErrBadRequest):
		return usageError(e, c, "%v", err)
	case errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(e.stderr, "herd %s: no reply from %s within %v\n", c.name, addr, timeout)
		return exitFailure
	case err != nil:
		fmt.Fprintf(e.stderr, "herd %s: %v\n", c.name, err)
		return exitFailure
	}
	io.WriteString(e.stdout, reply)
	return exitOK
}
