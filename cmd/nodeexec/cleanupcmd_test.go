package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/cleanup"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/ansible"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// scriptedCleaner stands in for Ansible's cleanup: each node removes v1 and keeps v2 and v3; hosts in
// fail are unreachable; with hold set, a cleanup waits for it to be closed.
type scriptedCleaner struct {
	mu   sync.Mutex
	fail map[string]bool
	hold chan struct{}
}

func (s *scriptedCleaner) Cleanup(ctx context.Context, req ansible.CleanupRequest) ([]ansible.CleanupResult, error) {
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ansible.CleanupResult
	for _, n := range req.Nodes {
		r := ansible.CleanupResult{NodeResult: executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service}}}
		if s.fail[n.Host] {
			r.Error = "host unreachable: no route to host"
		} else {
			r.Kept, r.Removed = []string{"v2", "v3"}, []string{"v1"}
		}
		out = append(out, r)
	}
	return out, nil
}

// cleanupServer runs the real server with a cleanup runner on the embedded database, with two nodes
// of demo deployed.
func cleanupServer(t *testing.T, cl cleanup.Cleaner) (string, *cleanup.Runner) {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t)
	for _, h := range []string{"10.0.0.1", "10.0.0.2"} {
		if _, err := st.Claim(ctx, "demo", h, executor.PlatformPhysical, "d-1", "v3"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Finish(ctx, "d-1", executor.NodeStatus{Service: "demo", Host: h, State: executor.StateSuccess, CurrentVersion: "v3", PrevVersion: "v2"}); err != nil {
			t.Fatal(err)
		}
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	runner := cleanup.New(cleanup.Config{Store: st, Cleaner: cl, Keep: 2, Logger: log, Holder: "replica-a"})
	srv := server.New(server.Config{Executor: &scriptedExecutor{}, Store: st, Logger: log, Cleanups: runner})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		runner.Stop()
		srv.Shutdown()
	})
	return hs.URL, runner
}

// nodeexec cleanup runs a pass, prints each node as it is done and then the whole pass, and exits by
// its outcome.
func TestCleanupRunsAPassAndExitsByItsOutcome(t *testing.T) {
	defer func(d time.Duration) { cleanupPoll = d }(cleanupPoll)
	cleanupPoll = 10 * time.Millisecond
	cl := &scriptedCleaner{fail: map[string]bool{}}
	url, _ := cleanupServer(t, cl)

	code, out, errOut := runCaptured(t, []string{"cleanup", "--server", url})
	if code != 0 {
		t.Fatalf("cleanup: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"demo 10.0.0.1 cleaned: removed v1; kept v2 v3", "demo 10.0.0.2 cleaned", "(api, on replica-a): success",
		"SERVICE  NODE      STATE    KEEP  KEPT   REMOVED"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "started; following it") {
		t.Errorf("stderr: %q", errOut)
	}

	cl.mu.Lock()
	cl.fail["10.0.0.2"] = true
	cl.mu.Unlock()
	code, out, _ = runCaptured(t, []string{"cleanup", "--server", url})
	if code != 1 || !strings.Contains(out, "demo 10.0.0.2 failed: host unreachable") || !strings.Contains(out, "): failed (1 of 2 nodes failed") {
		t.Errorf("a pass with a failed node: exit %d\n%s", code, out)
	}
	id := strings.Fields(out[strings.Index(out, "cleanup pass "):])[2]

	// --follow shows a pass already run; --json prints it as the API does.
	code, out, _ = runCaptured(t, []string{"cleanup", "--server", url, "--follow", id, "--json"})
	var pass store.Cleanup
	if err := json.Unmarshal([]byte(out), &pass); err != nil || code != 1 || pass.ID != id || pass.State != store.CleanupFailed || len(pass.Nodes) != 2 {
		t.Errorf("--follow %s --json: exit %d, %+v %v\n%s", id, code, pass, err, out)
	}
}

// While a pass runs, another is refused, naming it; --detach prints the pass's id and returns at once.
func TestCleanupWhileOneRunsSaysWhichRuns(t *testing.T) {
	cl := &scriptedCleaner{hold: make(chan struct{})}
	url, runner := cleanupServer(t, cl)
	code, out, errOut := runCaptured(t, []string{"cleanup", "--server", url, "--detach"})
	id := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(id, "c-") {
		t.Fatalf("--detach: exit %d %q %s", code, out, errOut)
	}
	code, _, errOut = runCaptured(t, []string{"cleanup", "--server", url})
	if code != 1 || !strings.Contains(errOut, "cleanup pass "+id+" is running") || !strings.Contains(errOut, "HTTP 409") {
		t.Errorf("a second pass: exit %d, stderr %q", code, errOut)
	}
	close(cl.hold)
	runner.Wait()
}
