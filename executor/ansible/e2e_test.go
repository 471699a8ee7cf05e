//go:build e2e

package ansible

// End-to-end: the real ansible-playbook over real SSH to real test hosts (systemd as PID 1), started by
// `hack/testhosts up 3`. Run with `make e2e`. Each test run uses its own service name and port, and
// removes it from the hosts afterwards.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/testbed"
)

type e2eEnv struct {
	hosts    testbed.Hosts
	exec     *Executor
	svc      *testbed.Service
	service  string
	port     int
	nodes    []executor.Node
	releases map[string]testbed.Release
	baseURL  string
	repo     string
	workDir  string
	// config is the executor's: executorWith starts from it.
	config Config
}

// setupE2E makes a service of the test's own with a release per version (true: one that fails its
// health check), and an executor that reaches the test hosts.
func setupE2E(t *testing.T, versions map[string]bool) *e2eEnv {
	t.Helper()
	if os.Getenv("NODEEXEC_E2E") != "1" {
		t.Skip("set NODEEXEC_E2E=1 and run `hack/testhosts up 3` (or `make e2e`)")
	}
	hosts, err := testbed.LoadHosts()
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts.Addrs) < 3 {
		t.Fatalf("need 3 test hosts, have %d: run `hack/testhosts up 3`", len(hosts.Addrs))
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	env := &e2eEnv{hosts: hosts, repo: repo, workDir: t.TempDir()}
	svc := testbed.NewService(t, hosts, "e2e", versions)
	env.svc = svc
	env.service, env.port, env.releases, env.baseURL = svc.Name, svc.Port, svc.Releases, svc.BaseURL
	for _, a := range hosts.Addrs[:3] {
		env.nodes = append(env.nodes, executor.Node{Host: a})
	}
	off := false
	log := logrus.New()
	log.SetOutput(testWriter{t})
	env.config = Config{
		PlaybookDir: repo, WorkDir: env.workDir, KillGrace: 3 * time.Second, Logger: log,
		SSH: SSH{User: hosts.SSHUser, PrivateKeyFile: hosts.SSHKey, HostKeyChecking: &off, ConnectTimeout: 5 * time.Second},
	}
	env.exec = env.executorWith(t, func(*Config) {})
	return env
}

// executorWith is an executor with the test's configuration, changed by change.
func (env *e2eEnv) executorWith(t *testing.T, change func(*Config)) *Executor {
	t.Helper()
	cfg := env.config
	change(&cfg)
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (env *e2eEnv) deployRequest(version string) executor.DeployRequest {
	rel := env.releases[version]
	return executor.DeployRequest{
		DeploymentID:   "e2e-" + version,
		Service:        env.service,
		Version:        version,
		PhysicalDeploy: executor.PhysicalDeploy{Nodes: env.nodes, Package: executor.Package{URL: env.baseURL + "/" + filepath.Base(rel.Path), SHA256: rel.SHA256}, Health: executor.HealthCheck{HTTPPort: env.port, HTTPPath: "/health", Retries: 5, Delay: time.Second}, Unit: executor.Unit{Args: fmt.Sprintf("-addr :%d", env.port)}},
	}
}

// serving asks a node's service which version answers its health check ("" when none does).
func (env *e2eEnv) serving(t *testing.T, host string) string {
	t.Helper()
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://%s:%d/health", host, env.port))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct{ Version string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return ""
	}
	return body.Version
}

func (env *e2eEnv) ssh(t *testing.T, i int, cmd string) string {
	t.Helper()
	out, err := env.hosts.SSH(context.Background(), i, cmd)
	if err != nil {
		t.Fatalf("ssh host %d %q: %v\n%s", i, cmd, err, out)
	}
	return strings.TrimSpace(out)
}

func (env *e2eEnv) mainPID(t *testing.T, i int) string {
	return env.ssh(t, i, "systemctl show -p MainPID --value "+env.service+".service")
}

func expectAll(t *testing.T, results []executor.NodeResult, err error, state executor.State, current, prev string) {
	t.Helper()
	if err != nil {
		t.Fatalf("run error: %v", err)
	}
	for _, r := range results {
		if r.State != state || r.CurrentVersion != current || r.PrevVersion != prev {
			t.Errorf("%s: state=%s current=%q prev=%q error=%q; want %s, %q, %q", r.Host, r.State, r.CurrentVersion, r.PrevVersion, r.LastError, state, current, prev)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func TestE2EPhysicalLifecycle(t *testing.T) {
	env := setupE2E(t, map[string]bool{"v1": false, "v2": false, "v3-broken": true})
	ctx := context.Background()

	t.Run("deploy v1 to three hosts", func(t *testing.T) {
		res, err := env.exec.Deploy(ctx, env.deployRequest("v1"))
		expectAll(t, res, err, executor.StateSuccess, "v1", "")
		for _, n := range env.nodes {
			if got := env.serving(t, n.Host); got != "v1" {
				t.Errorf("%s serves %q, want v1", n.Host, got)
			}
		}
	})

	t.Run("a run leaves no SSH master connection open", func(t *testing.T) {
		if procs := processesWith("nx-cp-"); len(procs) > 0 {
			t.Errorf("SSH masters still open after the run: %v", procs)
		}
	})

	t.Run("deploy v2 records v1 as previous, on the node itself", func(t *testing.T) {
		res, err := env.exec.Deploy(ctx, env.deployRequest("v2"))
		expectAll(t, res, err, executor.StateSuccess, "v2", "v1")
		st, err := env.exec.Status(ctx, executor.StatusRequest{Service: env.service, Nodes: env.nodes})
		expectAll(t, st, err, executor.StateSuccess, "v2", "v1")
		for _, r := range st {
			if r.RunningVersion != "v2" || env.serving(t, r.Host) != "v2" {
				t.Errorf("%s: running %q, serving %q; want v2", r.Host, r.RunningVersion, env.serving(t, r.Host))
			}
		}
	})

	t.Run("wrong sha256 fails and leaves the node untouched", func(t *testing.T) {
		pids := []string{env.mainPID(t, 0), env.mainPID(t, 1), env.mainPID(t, 2)}
		req := env.deployRequest("v1")
		req.Version = "v9"
		req.Package.SHA256 = strings.Repeat("0", 64)
		res, err := env.exec.Deploy(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.State != executor.StateFailed || !strings.Contains(strings.ToLower(r.LastError), "checksum") {
				t.Errorf("%s: state=%s error=%q; want failed naming the checksum", r.Host, r.State, r.LastError)
			}
			if r.CurrentVersion != "v2" || env.serving(t, r.Host) != "v2" || env.mainPID(t, i) != pids[i] {
				t.Errorf("%s: the node changed (current %q, serving %q)", r.Host, r.CurrentVersion, env.serving(t, r.Host))
			}
			if out := env.ssh(t, i, "ls /opt/"+env.service+"/releases"); strings.Contains(out, "v9") {
				t.Errorf("%s: a release dir for the bad package exists: %s", r.Host, out)
			}
		}
	})

	t.Run("broken version fails verification and is rolled back automatically", func(t *testing.T) {
		res, err := env.exec.Deploy(ctx, env.deployRequest("v3-broken"))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			// The run reports what the node kept: the journal excerpt captured before the rollback.
			if e := r.Evidence; e == nil || e.Version != "v3-broken" || !slices.ContainsFunc(e.Journal, func(l string) bool {
				return strings.Contains(l, "demo v3-broken (broken=true) listening")
			}) || len(e.UnitStatus) == 0 {
				t.Errorf("%s: evidence %+v; want v3-broken's journal excerpt and unit status", r.Host, r.Evidence)
			}
			if r.State != executor.StateRolledBack || r.CurrentVersion != "v2" || r.LastError == "" {
				t.Errorf("%s: state=%s current=%q error=%q; want rolled_back to v2 with a reason", r.Host, r.State, r.CurrentVersion, r.LastError)
			}
			if got := env.serving(t, r.Host); got != "v2" {
				t.Errorf("%s serves %q after the automatic rollback, want v2", r.Host, got)
			}
		}
	})

	t.Run("the failed release and its journal excerpt stay on the node and in the results", func(t *testing.T) {
		res, err := env.exec.Status(ctx, executor.StatusRequest{Service: env.service, Nodes: env.nodes})
		if err != nil {
			t.Fatal(err)
		}
		dir := "/opt/" + env.service + "/.nodeexec/failed/v3-broken"
		for i, r := range res {
			// Status reads the node's own record: the failed entry, without the journal (that is on disk).
			if r.Failed == nil || r.Failed.Version != "v3-broken" || r.Failed.Dir != dir || !strings.Contains(r.Failed.Reason, "Check the HTTP health endpoint") {
				t.Errorf("%s: status reports the failed release %+v", r.Host, r.Failed)
			}
			if r.Evidence != nil {
				t.Errorf("%s: a status run kept evidence: %+v", r.Host, r.Evidence)
			}
			if out := env.ssh(t, i, "ls /opt/"+env.service+"/releases"); !strings.Contains(out, "v3-broken") {
				t.Errorf("%s: the failed release is gone: %s", r.Host, out)
			}
			if j := env.ssh(t, i, "cat "+dir+"/journal.txt"); !strings.Contains(j, "demo v3-broken (broken=true) listening") {
				t.Errorf("%s: journal.txt lacks the failed release's own lines:\n%s", r.Host, j)
			}
			if st := env.ssh(t, i, "cat "+dir+"/unit-status.txt"); !strings.Contains(st, env.service+".service") {
				t.Errorf("%s: unit-status.txt = %q", r.Host, st)
			}
		}
	})

	t.Run("deploying the current version again changes nothing and restarts nothing", func(t *testing.T) {
		pids := []string{env.mainPID(t, 0), env.mainPID(t, 1), env.mainPID(t, 2)}
		res, err := env.exec.Deploy(ctx, env.deployRequest("v2"))
		expectAll(t, res, err, executor.StateSuccess, "v2", "v1")
		for i, r := range res {
			if r.Changed {
				for _, s := range r.Steps {
					if s.Changed {
						t.Logf("%s: changed by %q", r.Host, s.Name)
					}
				}
				t.Errorf("%s: redeploying the current version changed the node", r.Host)
			}
			if pid := env.mainPID(t, i); pid != pids[i] {
				t.Errorf("%s: restarted (MainPID %s -> %s)", r.Host, pids[i], pid)
			}
		}
	})

	t.Run("explicit rollback to v1", func(t *testing.T) {
		res, err := env.exec.Rollback(ctx, executor.RollbackRequest{
			DeploymentID:     "e2e-rb",
			Service:          env.service,
			ToVersion:        "v1",
			PhysicalRollback: executor.PhysicalRollback{Nodes: env.nodes, Health: executor.HealthCheck{HTTPPort: env.port, HTTPPath: "/health"}},
		})
		expectAll(t, res, err, executor.StateRolledBack, "v1", "v2")
		for _, n := range env.nodes {
			if got := env.serving(t, n.Host); got != "v1" {
				t.Errorf("%s serves %q, want v1", n.Host, got)
			}
		}
	})

	t.Run("rollback to a version not on the node is a clear error", func(t *testing.T) {
		res, err := env.exec.Rollback(ctx, executor.RollbackRequest{Service: env.service, ToVersion: "v7", PhysicalRollback: executor.PhysicalRollback{Nodes: env.nodes[:1]}})
		if err != nil {
			t.Fatal(err)
		}
		if r := res[0]; r.State != executor.StateFailed || !strings.Contains(r.LastError, "v7") || r.CurrentVersion != "v1" {
			t.Errorf("state=%s current=%q error=%q", r.State, r.CurrentVersion, r.LastError)
		}
	})

	t.Run("cleanup keeping two leaves current, previous and the failed release no successful deploy followed", func(t *testing.T) {
		res, err := env.exec.Cleanup(ctx, CleanupRequest{Service: env.service, Keep: 2, Nodes: env.nodes})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.LastError != "" {
				t.Errorf("%s: %s", r.Host, r.LastError)
			}
			got := strings.Fields(env.ssh(t, i, "ls /opt/"+env.service+"/releases"))
			sort.Strings(got)
			if strings.Join(got, ",") != "v1,v2,v3-broken" {
				t.Errorf("%s: releases left %v, want [v1 v2 v3-broken]", r.Host, got)
			}
		}
	})

	t.Run("one unreachable host fails alone", func(t *testing.T) {
		testhosts(t, env.repo, "stop-host", "3")
		defer testhosts(t, env.repo, "start-host", "3")
		res, err := env.exec.Deploy(ctx, env.deployRequest("v2"))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if i < 2 && (r.State != executor.StateSuccess || r.CurrentVersion != "v2") {
				t.Errorf("%s: state=%s current=%q error=%q; want success on v2", r.Host, r.State, r.CurrentVersion, r.LastError)
			}
			if i == 2 && (r.State != executor.StateFailed || !strings.Contains(r.LastError, "unreachable")) {
				t.Errorf("%s: state=%s error=%q; want failed, unreachable", r.Host, r.State, r.LastError)
			}
		}
	})

	t.Run("an operator's run holding a node's lock makes nodeexec fail fast on that node only", func(t *testing.T) {
		// The operator deploys the broken version to host 1 by hand: it holds the lock while its
		// health check retries, then rolls back.
		rel := env.releases["v3-broken"]
		varsFile := filepath.Join(env.workDir, "operator-vars.json")
		vars, _ := json.Marshal(map[string]any{
			"nodeexec_service": env.service, "nodeexec_version": "v3-broken",
			"nodeexec_package_url": env.baseURL + "/" + filepath.Base(rel.Path), "nodeexec_package_sha256": rel.SHA256,
			"nodeexec_health_http_port": env.port, "nodeexec_health_retries": 20, "nodeexec_health_delay": 1,
			"nodeexec_exec_args": fmt.Sprintf("-addr :%d", env.port),
		})
		if err := os.WriteFile(varsFile, vars, 0o600); err != nil {
			t.Fatal(err)
		}
		op := osexec.Command("ansible-playbook", "-i", env.nodes[0].Host+",", "-u", env.hosts.SSHUser, "--private-key", env.hosts.SSHKey,
			"-e", "@"+varsFile, "playbooks/deploy.yml")
		op.Dir = env.repo
		op.Env = append(os.Environ(), "ANSIBLE_HOST_KEY_CHECKING=False")
		op.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out := &strings.Builder{}
		op.Stdout, op.Stderr = out, out
		if err := op.Start(); err != nil {
			t.Fatal(err)
		}
		opDone := make(chan struct{})
		var opErr error
		go func() { opErr = op.Wait(); close(opDone) }()
		defer func() {
			_ = syscall.Kill(-op.Process.Pid, syscall.SIGKILL)
			<-opDone
			t.Logf("operator run:\n%s", out.String())
		}()
		lockInfo := "/opt/" + env.service + "/.nodeexec/lock.holder.json"
		waitFor(t, 60*time.Second, func() bool {
			o, _ := env.hosts.SSH(ctx, 0, "cat "+lockInfo+" 2>/dev/null")
			return strings.Contains(o, "ansible-playbook by")
		})
		res, err := env.exec.Deploy(ctx, env.deployRequest("v2"))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-opDone:
			t.Fatal("the operator's run ended before nodeexec's deploy returned: nodeexec waited for the lock instead of failing fast")
		default:
		}
		if r := res[0]; r.State != executor.StateFailed || !strings.Contains(r.LastError, "locked by ansible-playbook by") {
			t.Errorf("%s: state=%s error=%q; want failed, locked by the operator", r.Host, r.State, r.LastError)
		}
		for _, r := range res[1:] {
			if r.State != executor.StateSuccess {
				t.Errorf("%s: state=%s error=%q; want success", r.Host, r.State, r.LastError)
			}
		}
		<-opDone
		if opErr == nil {
			t.Error("the operator's deploy of a broken version exited 0")
		}
		if got := env.serving(t, env.nodes[0].Host); got != "v2" {
			t.Errorf("after the operator's rolled-back deploy host 1 serves %q, want v2", got)
		}
	})

	t.Run("cancel mid-run stops everything and every node serves a release it names", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req := env.deployRequest("v1")
		// The run must hold the nodes long enough to be seen mid-run: the checks must keep passing for 5 s
		// (Delay no longer waits: verification watches the unit, and this deploy used to end within a
		// second, sometimes before the lock holder was ever read).
		req.Health.Stable = 5 * time.Second
		type outcome struct {
			res []executor.NodeResult
			err error
		}
		done := make(chan outcome, 1)
		go func() {
			res, err := env.exec.Deploy(cctx, req)
			done <- outcome{res, err}
		}()
		// Cancel once the run holds a node's lock: it is then really mid-run on the nodes.
		lockInfo := "/opt/" + env.service + "/.nodeexec/lock.holder.json"
		waitFor(t, 60*time.Second, func() bool {
			o, _ := env.hosts.SSH(ctx, 0, "cat "+lockInfo+" 2>/dev/null")
			return strings.Contains(o, "nodeexec deployment e2e-v1")
		})
		cancel()
		var o outcome
		select {
		case o = <-done:
		case <-time.After(3 * time.Minute):
			t.Fatal("Deploy did not return after cancel")
		}
		if o.err == nil || !strings.Contains(o.err.Error(), "cancel") {
			t.Fatalf("err = %v, want a cancellation", o.err)
		}
		if procs := processesWith(env.workDir); len(procs) > 0 {
			t.Errorf("processes of the cancelled run are still alive: %v", procs)
		}
		// Its SSH masters too: they leave the process group (ControlPersist), and one kept open would
		// keep serving a module the run no longer waits for.
		if procs := processesWith("nx-cp-"); len(procs) > 0 {
			t.Errorf("SSH master connections of the cancelled run are still open: %v", procs)
		}
		for i, r := range o.res {
			if r.RunningVersion != "v1" && r.RunningVersion != "v2" {
				t.Errorf("%s: runs %q, want v1 or v2 (%s)", r.Host, r.RunningVersion, r.LastError)
			}
			if got := env.serving(t, r.Host); got != r.RunningVersion {
				t.Errorf("%s: serves %q but reports running %q", r.Host, got, r.RunningVersion)
			}
			if !strings.Contains(r.LastError, "runs "+r.RunningVersion) {
				t.Errorf("%s: error %q does not say which release runs", r.Host, r.LastError)
			}
			// No task of the run may keep running on the node (modules run as python3; the lock holder
			// is nodeexec-lock), and its lock must be free. A module that was mid-flight may finish.
			busy := ""
			waitFor(t, 30*time.Second, func() bool {
				busy, _ = env.hosts.SSH(ctx, i, "pgrep -a -x python3; pgrep -a -x nodeexec-lock; true")
				return strings.TrimSpace(busy) == ""
			}, func() string { return r.Host + " still runs: " + busy })
			if o := env.ssh(t, i, "cat "+lockInfo+" 2>/dev/null || true"); strings.Contains(o, "e2e-v1") {
				t.Errorf("%s: the cancelled run still holds the lock: %s", r.Host, o)
			}
		}
	})
}

// testhosts runs hack/testhosts with args.
func testhosts(t *testing.T, repo string, args ...string) {
	t.Helper()
	out, err := osexec.Command(filepath.Join(repo, "hack", "testhosts"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("hack/testhosts %v: %v\n%s", args, err, out)
	}
}
