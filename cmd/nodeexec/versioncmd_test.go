package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/internal/buildinfo"
)

func TestVersionPrintsThisBuildAndTheServersWhenAsked(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	want := buildinfo.Read()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, stdout, stderr := runCaptured(t, args)
		if code != 0 || !strings.Contains(stdout, "client  "+want.Version) || !strings.Contains(stdout, runtime.Version()) || strings.Contains(stdout, "server") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	code, stdout, stderr := runCaptured(t, []string{"version", "--remote", "--server", url, "--json"})
	var got versions
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || code != 0 {
		t.Fatalf("version --remote --json: exit %d, %v, stdout %q, stderr %q", code, err, stdout, stderr)
	}
	if got.Client != want || got.Server == nil || *got.Server != want {
		t.Errorf("version --remote --json = %+v, want client and server %+v", got, want)
	}
}
