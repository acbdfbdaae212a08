// Command herd runs herd servers and talks to them.
//
//	herd serve -config herd.json -name Goloman
//	herd serve -preset 2018 -port 12000 -name Goloman
//	herd iamat -addr 127.0.0.1:12000 kiwi.cs.ucla.edu +34.068930-118.445127
//	herd whatsat -addr 127.0.0.1:12001 kiwi.cs.ucla.edu 10 5
//
// "herd help" lists the subcommands and "herd help <command>" (or
// "herd <command> -h") describes one. docs/running.md describes the config
// file and walks through a session.
//
// Exit status: 0 on success (and after a clean shutdown on SIGINT or
// SIGTERM), 1 when the command fails or the server answers "? ", 2 for a
// usage or configuration error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/proxyherd/herd/internal/cli"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// env is what a subcommand may touch outside its arguments, so that tests
// run subcommands in-process.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// hangup, if set, starts delivering SIGHUP (which then no longer
	// ends the process) and returns the channel and a function that
	// stops it; servers reopen their logs on it.
	hangup func() (<-chan os.Signal, func())
}

// command is one subcommand. Each lives in its own file and registers
// itself from an init function.
type command struct {
	name    string
	args    string // synopsis of flags and arguments, for usage lines
	summary string // one line for "herd help"
	long    string // more for "herd help <command>", if any
	// flags declares the subcommand's flags on fs and returns the
	// function that runs it with the parsed flags and the remaining
	// arguments. It returns an exit status.
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) int
}

var commands []*command

// register adds a subcommand; called from init functions.
func register(c *command) {
	commands = append(commands, c)
	slices.SortFunc(commands, func(a, b *command) int { return strings.Compare(a.name, b.name) })
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process as usual.
	context.AfterFunc(ctx, stop)
	e := &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, now: time.Now, hangup: cli.NotifyHangup}
	code := run(ctx, e, os.Args[1:])
	stop()
	os.Exit(code)
}

// run dispatches args to a subcommand and returns the exit status.
func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		usage(e.stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			usage(e.stdout)
			return exitOK
		}
		c := lookup(rest[0])
		if c == nil {
			fmt.Fprintf(e.stderr, "herd help: unknown command %q\n", rest[0])
			usage(e.stderr)
			return exitUsage
		}
		fs, _ := newFlagSet(c, e.stdout)
		fs.Usage()
		return exitOK
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(e.stderr, "herd: unknown command %q\n", name)
		usage(e.stderr)
		return exitUsage
	}
	fs, do := newFlagSet(c, e.stderr)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage // the flag package has printed the error and usage
	}
	return do(ctx, e, fs.Args())
}

// newFlagSet declares c's flags on a fresh flag set whose usage goes to w.
func newFlagSet(c *command, w io.Writer) (*flag.FlagSet, func(context.Context, *env, []string) int) {
	fs := flag.NewFlagSet("herd "+c.name, flag.ContinueOnError)
	fs.SetOutput(w)
	do := c.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: herd %s %s\n\n", c.name, c.args)
		if c.long != "" {
			fmt.Fprintf(w, "%s\n", c.long)
		} else {
			fmt.Fprintf(w, "%s.\n", strings.ToUpper(c.summary[:1])+c.summary[1:])
		}
		var any bool
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprintf(w, "\nFlags (before the arguments):\n")
			fs.PrintDefaults()
		}
	}
	return fs, do
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "herd runs herd servers and talks to them.\n\nUsage:\n  herd <command> [flags] [arguments]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-9s %s\n", "help", "show this list, or a command's flags: herd help <command>")
	fmt.Fprintf(w, "\nFlags come before arguments; put -- before an argument that starts with '-'\n(a client ID; locations like -33.86+151.20 are fine after the first argument).\n")
}

// usageError prints msg and the command's usage line, and returns
// exitUsage.
func usageError(e *env, c *command, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "herd %s: %s\nusage: herd %s %s\n", c.name, fmt.Sprintf(format, args...), c.name, c.args)
	return exitUsage
}
