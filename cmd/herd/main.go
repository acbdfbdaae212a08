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
	args, err := parseFlags(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage // the flag package has printed the error and usage
	}
	return do(ctx, e, args)
}

// parseFlags parses args on fs and returns the arguments, accepting flags
// after them too ("herd iamat kiwi +34-118 -addr X"): after the first
// argument, an argument is a flag only if it names one of fs's flags, so
// that locations ("-33.86+151.20") and other arguments that start with
// '-' stay arguments. Everything after "--" is an argument.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	rest := fs.Args()
	if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
		return rest, nil // fs.Parse stopped at "--"
	}
	var pos, flags []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i+1:]...)
			break
		}
		f := namedFlag(fs, a)
		if f == nil {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !strings.Contains(a, "=") && (!ok || !b.IsBoolFlag()) && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i]) // the flag's value, whatever it looks like
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

// namedFlag returns the flag of fs that arg ("-name", "--name",
// "-name=value") names, or nil when arg names none.
func namedFlag(fs *flag.FlagSet, arg string) *flag.Flag {
	name, ok := strings.CutPrefix(arg, "-")
	if !ok {
		return nil
	}
	name = strings.TrimPrefix(name, "-")
	name, _, _ = strings.Cut(name, "=")
	if name == "" {
		return nil
	}
	return fs.Lookup(name)
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
			fmt.Fprintf(w, "\nFlags (before or after the arguments):\n")
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
	fmt.Fprintf(w, "\nFlags may come before or after the arguments; put -- before an argument that\nstarts with '-' (a client ID; locations like -33.86+151.20 are fine after the\nfirst argument).\n")
}

// usageError prints msg and the command's usage line, and returns
// exitUsage.
func usageError(e *env, c *command, format string, args ...any) int {
	fmt.Fprintf(e.stderr, "herd %s: %s\nusage: herd %s %s\n", c.name, fmt.Sprintf(format, args...), c.name, c.args)
	return exitUsage
}
