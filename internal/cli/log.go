package cli

// log.go: how herd serve and the demo log, and the flags they share.

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/proxyherd/herd/internal/logging"
)

// LogConfig is how a server logs. Its zero value is the default of both
// herd serve and the demo: connection and peer link events and problems
// (level info), not each line, in the text format, to stderr. Lines
// turns on the course's full I/O log (every line in and out).
type LogConfig struct {
	// Path is the log file; "" or "-" means stderr.
	Path string
	// Level is debug, info (the default), warn or error.
	Level string
	// Lines logs every line in and out, whatever Level says.
	Lines bool
	// Format is text (the default) or json.
	Format string
	// MaxMB is the size in megabytes at which a file rotates (default
	// 100), Keep how many rotated files are kept (default 10).
	MaxMB, Keep int
}

// Check reports the first invalid field, naming it with name (a flag or
// a config key: "Level", "Format", "MaxMB" or "Keep" in, the user's
// name out).
func (c LogConfig) Check(name func(field string) string) error {
	if _, err := ParseLevel(c.Level); err != nil {
		return fmt.Errorf("%s: %v", name("Level"), err)
	}
	if _, err := logging.ParseFormat(c.Format); err != nil {
		return fmt.Errorf("%s: %v", name("Format"), err)
	}
	if c.MaxMB < 0 {
		return fmt.Errorf("%s: %d: want 0 (the default, %d) or more", name("MaxMB"), c.MaxMB, logging.DefaultMaxSizeMB)
	}
	if c.Keep < 0 {
		return fmt.Errorf("%s: %d: want 0 (the default, %d) or more", name("Keep"), c.Keep, logging.DefaultKeep)
	}
	return nil
}

// Open opens the log; stderr is where it goes without a file. Check it
// first: Open reports an invalid field without naming it.
func (c LogConfig) Open(stderr io.Writer) (*logging.Log, error) {
	level, err := ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	format, err := logging.ParseFormat(c.Format)
	if err != nil {
		return nil, err
	}
	return logging.Open(logging.Options{
		Path: c.Path, Stderr: stderr, Level: level, Lines: c.Lines, Format: format,
		MaxSizeMB: c.MaxMB, Keep: c.Keep,
	})
}

// LogFlags are the logging flags herd serve and the demo share: -log-level,
// -log-lines, -log-format, -log-max-mb and -log-keep (where the log goes
// is each command's own flag).
type LogFlags struct {
	fs     *flag.FlagSet
	values LogConfig
}

// AddLogFlags declares the logging flags on fs.
func AddLogFlags(fs *flag.FlagSet) *LogFlags {
	f := &LogFlags{fs: fs}
	fs.StringVar(&f.values.Level, "log-level", "", "log `level`: debug, info, warn or error (default info: connection and peer link events)")
	fs.BoolVar(&f.values.Lines, "log-lines", false, "log every line in and out (the full I/O log), whatever the level")
	fs.StringVar(&f.values.Format, "log-format", "", "log `format`: text or json (default text)")
	fs.IntVar(&f.values.MaxMB, "log-max-mb", 0, fmt.Sprintf("rotate a log file at this size in `megabytes` (default %d)", logging.DefaultMaxSizeMB))
	fs.IntVar(&f.values.Keep, "log-keep", 0, fmt.Sprintf("rotated log `files` kept (default %d)", logging.DefaultKeep))
	return f
}

// Apply sets the fields of c whose flags were given on the command line.
func (f *LogFlags) Apply(c *LogConfig) {
	f.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "log-level":
			c.Level = f.values.Level
		case "log-lines":
			c.Lines = f.values.Lines
		case "log-format":
			c.Format = f.values.Format
		case "log-max-mb":
			c.MaxMB = f.values.MaxMB
		case "log-keep":
			c.Keep = f.values.Keep
		}
	})
}

// LogFlagNames names LogConfig's fields as flags, for Check.
func LogFlagNames(field string) string {
	switch field {
	case "Level":
		return "-log-level"
	case "Format":
		return "-log-format"
	case "MaxMB":
		return "-log-max-mb"
	case "Keep":
		return "-log-keep"
	}
	return field
}

// NotifyHangup returns a channel that receives SIGHUP, which from now on
// no longer ends the process, and a function that restores that. Servers
// reopen their log files on it, for logrotate.
func NotifyHangup() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// ReopenOnHangup reopens the file logs among logs each time hup
// receives, until done is closed. A reopened log says so in its first
// line; a log that cannot be reopened is reported to failed.
func ReopenOnHangup(hup <-chan os.Signal, done <-chan struct{}, failed func(error), logs ...*logging.Log) {
	for {
		select {
		case <-hup:
			for _, l := range logs {
				if l.Path() == "" {
					continue
				}
				if err := l.Reopen(); err != nil {
					failed(fmt.Errorf("reopening log file %s: %w", l.Path(), err))
					continue
				}
				l.Logger.Info("log file reopened (SIGHUP)")
			}
		case <-done:
			return
		}
	}
}
