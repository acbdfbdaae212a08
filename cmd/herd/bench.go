package main

// bench.go: "herd bench", the measuring kit of package internal/bench,
// which parses its own mode and flags.

import (
	"context"
	"flag"

	"github.com/proxyherd/herd/internal/bench"
)

func init() {
	register(&command{
		name:    "bench",
		args:    bench.Args,
		summary: bench.Summary,
		long:    bench.Help,
		flags: func(*flag.FlagSet) func(context.Context, *env, []string) int {
			return func(ctx context.Context, e *env, args []string) int {
				return bench.Run(ctx, bench.Env{Stdout: e.stdout, Stderr: e.stderr}, args)
			}
		},
	})
}
