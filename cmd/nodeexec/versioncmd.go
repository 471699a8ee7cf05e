package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/internal/buildinfo"
)

// versionCmd prints this binary's build and, with --remote, the server's (GET /api/v1/version).
func versionCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("version", &o)
	remote := fs.Bool("remote", false, "also ask the server (--server) which build it runs")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	builds := versions{Client: buildinfo.Read()}
	if *remote {
		c, err := o.client()
		if err != nil {
			return false, err
		}
		if builds.Server, err = c.Version(ctx); err != nil {
			return false, err
		}
	}
	if o.json() {
		return true, writeJSON(o.out, builds)
	}
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\tVERSION\tCOMMIT\tBUILD DATE\tGO")
	row := func(who string, b api.BuildInfo) {
		commit := dash(b.Commit)
		if b.Modified {
			commit += " (modified)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", who, b.Version, commit, dash(b.BuildDate), dash(b.GoVersion))
	}
	row("client", builds.Client)
	if builds.Server != nil {
		row("server", *builds.Server)
	}
	return true, tw.Flush()
}

// versions is `nodeexec version -o json`: this binary's build, and the server's when asked for.
type versions struct {
	Client api.BuildInfo  `json:"client"`
	Server *api.BuildInfo `json:"server,omitempty"`
}
