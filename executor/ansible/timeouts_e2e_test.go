//go:build e2e

package ansible

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/testbed"
)

// Each step's timeout, against a real fault on the real test hosts: a package server that stops
// sending mid-body (the download timeout; the deploy timeout when the download's own is longer), and a
// release whose health endpoint never answers in time (the health check timeout). Every node says which
// timeout ended it, and every node still serves the release it had.
func TestE2EStepTimeouts(t *testing.T) {
	env := setupE2E(t, map[string]bool{"v1": false, "v2": false})
	ctx := context.Background()
	res, err := env.exec.Deploy(ctx, env.deployRequest("v1"))
	expectAll(t, res, err, executor.StateSuccess, "v1", "")

	stalled := env.deployRequest("v2")
	stalled.Package.URL = testbed.ServeStalled(t, env.hosts.ControllerIP)

	stillServesV1 := func(t *testing.T, res []executor.NodeResult) {
		t.Helper()
		for _, r := range res {
			if r.CurrentVersion != "v1" {
				t.Errorf("%s: current %q after the timeout, want v1 untouched", r.Host, r.CurrentVersion)
			}
			if v := env.serving(t, r.Host); v != "v1" {
				t.Errorf("%s serves %q, want v1", r.Host, v)
			}
		}
	}

	t.Run("a download that stalls ends at the download timeout, before the node changes", func(t *testing.T) {
		e := env.executorWith(t, func(c *Config) { c.DownloadTimeout = 2 * time.Second })
		res, err := e.Deploy(ctx, stalled)
		if err != nil || len(res) != 3 {
			t.Fatalf("deploy = %v, %v", res, err)
		}
		for _, r := range res {
			if r.State != executor.StateFailed || !strings.Contains(r.LastError, "Download the package") || !strings.Contains(strings.ToLower(r.LastError), "timed out") {
				t.Errorf("%s: state %s, error %q; want failed at the download, timed out", r.Host, r.State, r.LastError)
			}
		}
		stillServesV1(t, res)
	})

	t.Run("the deploy timeout cuts a longer download short, and each node says why and what it runs", func(t *testing.T) {
		cause := errors.New("the deploy timeout (4s) was reached") // what the server's deploy timeout says
		dctx, cancel := context.WithTimeoutCause(ctx, 4*time.Second, cause)
		defer cancel()
		var mu sync.Mutex
		streamed := map[string][]string{} // each node's finished steps, as they streamed
		withProgress := stalled
		withProgress.Progress = func(host string, st executor.Step) {
			if !st.Running {
				mu.Lock()
				streamed[host] = append(streamed[host], st.Name)
				mu.Unlock()
			}
		}
		res, err := env.exec.Deploy(dctx, withProgress) // its download timeout is the default, 60s
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), cause.Error()) || len(res) != 3 {
			t.Fatalf("deploy = %v, %v; want the deadline, named by its cause", res, err)
		}
		// The run after the cancel (unlock, read back) streams its steps marked as such, after the
		// cancelled run's own, and leaves none in the results to be counted against those.
		mu.Lock()
		for _, r := range res {
			steps := streamed[r.Host]
			first := slices.IndexFunc(steps, func(n string) bool { return strings.HasPrefix(n, afterCancelStep) })
			if first < 0 || slices.ContainsFunc(steps[first:], func(n string) bool { return !strings.HasPrefix(n, afterCancelStep) }) {
				t.Errorf("%s: steps %q; want the read-back's marked %q, after the cancelled run's", r.Host, steps, afterCancelStep)
			}
			if len(r.Steps) != 0 {
				t.Errorf("%s: the result still carries streamed steps: %v", r.Host, r.Steps)
			}
		}
		mu.Unlock()
		for _, r := range res {
			if want := "cancelled (" + cause.Error() + "); the node runs v1"; r.State != executor.StateFailed || !strings.Contains(r.LastError, want) {
				t.Errorf("%s: state %s, error %q; want failed: %q", r.Host, r.State, r.LastError, want)
			}
		}
		stillServesV1(t, res)
		// The cancelled run gave its locks back: the next deploy goes through.
		res, err = env.exec.Deploy(ctx, env.deployRequest("v1"))
		expectAll(t, res, err, executor.StateSuccess, "v1", "")
	})

	t.Run("a health endpoint that answers too late fails at the health check timeout and is rolled back", func(t *testing.T) {
		e := env.executorWith(t, func(c *Config) { c.HealthTimeout = time.Second })
		req := env.deployRequest("v2")
		req.Unit.Env = map[string]string{"DEMO_HEALTH_DELAY": "30s"}
		req.Health.Retries, req.Health.Delay = 2, time.Second
		res, err := e.Deploy(ctx, req)
		if err != nil || len(res) != 3 {
			t.Fatalf("deploy = %v, %v", res, err)
		}
		for _, r := range res {
			if r.State != executor.StateRolledBack || !strings.Contains(r.LastError, "Check the HTTP health endpoint") || !strings.Contains(strings.ToLower(r.LastError), "timed out") {
				t.Errorf("%s: state %s, error %q; want rolled back after the health check timed out", r.Host, r.State, r.LastError)
			}
		}
		stillServesV1(t, res)
	})
}
