package main

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// opsExecutor is scriptedExecutor with the physical operations, keeping what it was asked. Node
// "10.0.0.9" has its unit stopped; the command "fails" exits 3.
type opsExecutor struct {
	scriptedExecutor
	mu       sync.Mutex
	deploys  []executor.DeployRequest
	restarts []executor.RestartRequest
}

func (e *opsExecutor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	e.mu.Lock()
	e.deploys = append(e.deploys, req)
	e.mu.Unlock()
	return e.scriptedExecutor.Deploy(ctx, req)
}

func (e *opsExecutor) Restart(_ context.Context, req executor.RestartRequest) ([]executor.NodeResult, error) {
	e.mu.Lock()
	e.restarts = append(e.restarts, req)
	e.mu.Unlock()
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		req.Progress(n.Host, executor.Step{Name: "Restart the service", Changed: true})
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service, CurrentVersion: "v1",
			State: executor.StateSuccess}, Changed: true})
	}
	return out, nil
}

func (e *opsExecutor) ServiceStatus(_ context.Context, req executor.StatusRequest) ([]executor.ServiceStatus, error) {
	var out []executor.ServiceStatus
	since := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, n := range req.Nodes {
		s := executor.ServiceStatus{Host: n.Host, Service: req.Service, Running: true, ActiveState: "active", MainPID: 4242,
			Since: &since, UptimeSeconds: 90, CurrentVersion: "v1", RunningVersion: "v1", State: executor.StateSuccess}
		if n.Host == "10.0.0.9" {
			s.Running, s.ActiveState, s.MainPID, s.Since, s.UptimeSeconds, s.RunningVersion = false, "failed", 0, nil, 0, ""
		}
		out = append(out, s)
	}
	return out, nil
}

func (e *opsExecutor) RunCommand(_ context.Context, req executor.CommandRequest) ([]executor.CommandResult, error) {
	var out []executor.CommandResult
	for _, n := range req.Nodes {
		r := executor.CommandResult{Host: n.Host, Stdout: strings.Join(req.Argv, " ") + "\nline 2 on " + n.Host}
		if req.Name == "fails" {
			r.RC, r.Stderr = 3, "it failed"
		}
		out = append(out, r)
	}
	return out, nil
}

// opsServer runs the real server on the embedded database with an allow-list and an admin token.
func opsServer(t *testing.T, exec executor.Executor) (url, adminTokenFile string) {
	t.Helper()
	st := storetest.Open(t)
	log := logrus.New()
	log.SetOutput(io.Discard)
	const admin, deploy = "admin-token-0123456789", "deploy-token-0123456789"
	srv := server.New(server.Config{Executor: exec, Store: st, Logger: log,
		Tokens: []server.Token{{Name: "ops", Token: admin, Scopes: []server.Scope{server.ScopeAdmin}},
			{Name: "plan", Token: deploy, Scopes: []server.Scope{server.ScopeDeploy}}},
		Commands: executor.AllowList{"disk": {"df", "-h"}, "fails": {"false"}, "journal": {"journalctl", "-u", executor.PlaceholderService}}})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Shutdown()
	})
	adminTokenFile = filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(adminTokenFile, []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NODEEXEC_TOKEN", deploy)
	return hs.URL, adminTokenFile
}

func TestRestartCommandFollowsTheRestartToItsEnd(t *testing.T) {
	exec := &opsExecutor{}
	url, _ := opsServer(t, exec)
	code, out, errOut := runCaptured(t, []string{"restart", "--server", url, "--service", "demo", "--nodes", "10.0.0.1,10.0.0.2",
		"--health-port", "18080", "--batch-size", "1"})
	if code != 0 || !strings.Contains(out, "10.0.0.1 step Restart the service: changed") || !strings.Contains(out, "restart of demo") ||
		!strings.Contains(out, ": success") {
		t.Fatalf("restart: exit %d\n%s\n%s", code, out, errOut)
	}
	if len(exec.restarts) != 2 || exec.restarts[0].Health.HTTPPort != 18080 || len(exec.restarts[0].Nodes) != 1 {
		t.Errorf("the executor was asked %+v; want two batches of one node, checked on port 18080", exec.restarts)
	}
	if code, _, errOut := runCaptured(t, []string{"restart", "--server", url, "--service", "de;mo", "--nodes", "10.0.0.1"}); code != 2 ||
		!strings.Contains(errOut, "invalid input: service") {
		t.Errorf("restart of a bad service name: exit %d %s", code, errOut)
	}
}

func TestServiceStatusCommandShowsEachNodeAndExitsByWhetherAllRun(t *testing.T) {
	url, _ := opsServer(t, &opsExecutor{})
	code, out, errOut := runCaptured(t, []string{"service-status", "--server", url, "--service", "demo", "--nodes", "10.0.0.1,10.0.0.2"})
	if code != 0 || !strings.Contains(out, "NODE      RUNNING  UNIT") || !strings.Contains(out, "4242") || !strings.Contains(out, "1m30s") ||
		strings.Count(out, "v1") != 4 {
		t.Errorf("service-status: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runCaptured(t, []string{"service-status", "--server", url, "--service", "demo", "--nodes", "10.0.0.1,10.0.0.9"})
	if code != 1 || !strings.Contains(out, "10.0.0.9  false    failed") {
		t.Errorf("service-status with a stopped unit: exit %d\n%s", code, out)
	}
}

func TestAdhocCommandRunsAnAllowListedNameWithAnAdminToken(t *testing.T) {
	url, adminToken := opsServer(t, &opsExecutor{})
	args := func(extra ...string) []string {
		return append([]string{"adhoc", "--server", url, "--token-file", adminToken}, extra...)
	}
	code, out, errOut := runCaptured(t, args("--name", "journal", "--service", "demo", "--nodes", "10.0.0.1,10.0.0.2"))
	if code != 0 || !strings.Contains(out, "== 10.0.0.2: exit 0\njournalctl -u demo\nline 2 on 10.0.0.2\n") {
		t.Errorf("adhoc journal: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := runCaptured(t, args("--name", "fails", "--nodes", "10.0.0.1")); code != 1 || !strings.Contains(out, "== 10.0.0.1: exit 3") ||
		!strings.Contains(out, "stderr: it failed") {
		t.Errorf("adhoc of a command that exits 3: exit %d\n%s", code, out)
	}
	if code, out, _ := runCaptured(t, args("--list")); code != 0 || !strings.Contains(out, `journal  true     ["journalctl" "-u" "{service}"]`) {
		t.Errorf("adhoc --list: exit %d\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{args("--name", "nope", "--nodes", "10.0.0.1"), 1, `no command "nope" on the allow-list`},
		{args("--name", "rm -rf /", "--nodes", "10.0.0.1"), 2, "invalid input: name"},
		{args("--name", "journal", "--nodes", "10.0.0.1"), 2, "invalid input: service"},
		{[]string{"adhoc", "--server", url, "--name", "disk", "--nodes", "10.0.0.1"}, 1, `token "plan" lacks the admin scope`},
	} {
		if code, _, errOut := runCaptured(t, c.args); code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d %s; want %d and %q", c.args, code, errOut, c.code, c.want)
		}
	}
}

func TestDeployDeliveryFlagReachesTheExecutor(t *testing.T) {
	exec := &opsExecutor{}
	url, _ := opsServer(t, exec)
	if code, out, errOut := runCaptured(t, deployArgs(url, "v1", "--delivery", "push")); code != 0 {
		t.Fatalf("deploy --delivery push: exit %d\n%s\n%s", code, out, errOut)
	}
	if len(exec.deploys) != 1 || exec.deploys[0].Delivery != executor.DeliveryPush {
		t.Errorf("the executor was asked %+v", exec.deploys)
	}
	if code, _, errOut := runCaptured(t, deployArgs(url, "v1", "--delivery", "scp")); code != 2 || !strings.Contains(errOut, "not pull or push") {
		t.Errorf("deploy --delivery scp: exit %d %s", code, errOut)
	}
}
