// Package buildinfo says which build of nodeexec is running: the version, commit and build date the Go
// toolchain records in the binary (runtime/debug.ReadBuildInfo), and a version the build may set. The
// command line prints it (`nodeexec version`), the server serves it (GET /api/v1/version) and exports it
// as the nodeexec_build_info metric: all three read it here.
package buildinfo

import (
	"runtime/debug"

	"github.com/nodeexec/nodeexec/api"
)

// Set at build time, for a release or from git (the Makefile does):
//
//	go build -ldflags "-X github.com/nodeexec/nodeexec/internal/buildinfo.version=v1.2.3" ./cmd/nodeexec
//
// commit and buildDate stand in when the toolchain recorded no VCS information: it records none with
// -buildvcs=false, outside a repository (a container build), or from a git worktree.
var version, commit, buildDate string

// Read is this binary's build.
func Read() api.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return describe(bi, api.BuildInfo{Version: version, Commit: commit, BuildDate: buildDate})
}

// describe is a build as the toolchain recorded it (bi, nil when it recorded nothing), with what was
// set at build time (set): its version wins over the module's own; its commit and date fill in for
// VCS information the toolchain did not record.
func describe(bi *debug.BuildInfo, set api.BuildInfo) api.BuildInfo {
	v := set
	if bi == nil {
		if v.Version == "" {
			v.Version = "devel"
		}
		return v
	}
	v.GoVersion = bi.GoVersion
	if v.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	if v.Version == "" {
		v.Version = "devel"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.BuildDate = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}
