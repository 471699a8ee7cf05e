package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/nodeexec/nodeexec/api"
)

func TestDescribeReadsTheToolchainsRecordAndLetsTheBuildSetTheVersion(t *testing.T) {
	recorded := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "4298a0fdeadbeef"}, {Key: "vcs.time", Value: "2026-12-07T01:02:03Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	released := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.4.0"}}
	cases := []struct {
		name string
		bi   *debug.BuildInfo
		set  api.BuildInfo
		want api.BuildInfo
	}{
		{"a work tree build is devel, with its commit", recorded, api.BuildInfo{},
			api.BuildInfo{Version: "devel", Commit: "4298a0fdeadbeef", Modified: true, BuildDate: "2026-12-07T01:02:03Z", GoVersion: "go1.99.1"}},
		{"-ldflags -X wins", recorded, api.BuildInfo{Version: "v2.0.0-3-g4298a0f", Commit: "ignored", BuildDate: "ignored"},
			api.BuildInfo{Version: "v2.0.0-3-g4298a0f", Commit: "4298a0fdeadbeef", Modified: true, BuildDate: "2026-12-07T01:02:03Z", GoVersion: "go1.99.1"}},
		{"go install module@v1.4.0 is that version", released, api.BuildInfo{}, api.BuildInfo{Version: "v1.4.0", GoVersion: "go1.99.1"}},
		{"no VCS information: the build's commit and date stand in", released, api.BuildInfo{Commit: "abc123", BuildDate: "2026-12-07T01:02:03Z"},
			api.BuildInfo{Version: "v1.4.0", Commit: "abc123", BuildDate: "2026-12-07T01:02:03Z", GoVersion: "go1.99.1"}},
		{"no build info at all", nil, api.BuildInfo{}, api.BuildInfo{Version: "devel"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := describe(c.bi, c.set); got != c.want {
				t.Errorf("describe = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestReadNamesTheRunningGoVersion(t *testing.T) {
	if got := Read(); got.GoVersion != runtime.Version() || got.Version == "" {
		t.Errorf("Read() = %+v, want go_version %s and a version", got, runtime.Version())
	}
}
