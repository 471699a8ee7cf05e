package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
)

// logs of a deployment that failed shows each failed node's block: its failed tasks with their output,
// with the service's log (the failures come from the events) as with the events.
func TestLogsShowTheFailureBlockOfEachFailedNode(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	id := strings.TrimSpace(mustRun(t, deployArgs(url, "v-bad", "--detach")...))
	mustRun(t, "status", id, "--watch", "--server", url)
	for _, source := range []string{"service", "events"} {
		_, out, _ := runCaptured(t, []string{"logs", id, "--server", url, "--source", source})
		for _, want := range []string{"!! 10.0.0.1 rolled_back: Check health: health check failed", `failed task "Check health"`, "!! 10.0.0.2 rolled_back"} {
			if !strings.Contains(out, want) {
				t.Errorf("logs --source %s lacks %q:\n%s", source, want, out)
			}
		}
	}
}

func TestFailureBlockShowsTasksOutputAndTheJournalExcerpt(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	printFailure(&buf, api.NodeFailure{PodName: "h1", State: api.StateRolledBack, Error: "v2 failed verification",
		FailedTasks: []api.FailedTask{{Time: at, Name: "Check the HTTP health endpoint", Action: "uri", Message: "Status code was 503", Stdout: "out line\n", Stderr: "err 1\nerr 2"}},
		Evidence: &api.FailedRelease{Version: "v2", At: "2026-12-07T10:00:01Z", Reason: "health check failed", Dir: "/opt/demo/.nodeexec/failed/v2",
			Journal: []string{"demo[1]: panic: no config"}, UnitStatus: []string{"Active: failed"}}})
	want := `
!! h1 rolled_back: v2 failed verification
   failed task "Check the HTTP health endpoint" (uri) at 2026-12-07T10:00:00Z: Status code was 503
     stdout:
       out line
     stderr:
       err 1
       err 2
   evidence of v2, failed at 2026-12-07T10:00:01Z: health check failed (kept on the node in /opt/demo/.nodeexec/failed/v2)
     journal:
       demo[1]: panic: no config
     unit status:
       Active: failed
`
	if buf.String() != want {
		t.Errorf("failure block:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCaptured(t, args)
	if code != 0 && !(len(args) > 1 && args[0] == "status") {
		t.Fatalf("nodeexec %v: exit %d\n%s\n%s", args, code, out, errOut)
	}
	return out
}
