package main

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
	"strings"
)

func init() {
	register(&command{
		name:    "version",
		args:    "",
		summary: "print herd's version: module version, VCS revision and time, Go version",
		flags:   versionFlags,
	})
}

func versionFlags(fs *flag.FlagSet) func(context.Context, *env, []string) int {
	return func(_ context.Context, e *env, args []string) int {
		if len(args) > 0 {
			return usageError(e, lookup("version"), "unexpected arguments %q", args)
		}
		info, ok := debug.ReadBuildInfo()
		if !ok {
			fmt.Fprintln(e.stdout, "herd (no build information)")
			return exitOK
		}
		fmt.Fprintln(e.stdout, versionLine(info))
		return exitOK
	}
}

// versionLine describes a build in one line, for bug reports:
//
//	herd v1.2.0 (revision 0123456789ab, 2026-11-29T15:04:05Z, modified) go1.26.8 linux/amd64
//
// The module version is "(devel)" for a build from a checkout; the
// revision, its commit time and whether the tree had uncommitted changes
// are there when the go command stamped them (a build inside a git
// checkout).
func versionLine(info *debug.BuildInfo) string {
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	var vcs []string
	if rev := settings["vcs.revision"]; rev != "" {
		vcs = append(vcs, "revision "+rev[:min(12, len(rev))])
	}
	if t := settings["vcs.time"]; t != "" {
		vcs = append(vcs, t)
	}
	if settings["vcs.modified"] == "true" {
		vcs = append(vcs, "modified")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "herd %s", version)
	if len(vcs) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(vcs, ", "))
	}
	fmt.Fprintf(&b, " %s", info.GoVersion)
	if goos, goarch := settings["GOOS"], settings["GOARCH"]; goos != "" && goarch != "" {
		fmt.Fprintf(&b, " %s/%s", goos, goarch)
	}
	return b.String()
}
