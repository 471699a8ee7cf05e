//go:build e2e

package ansible

// End-to-end, on the real test hosts: restart, service status, push delivery and allow-listed commands,
// through the executor (the API drives the same calls: cmd/nodeexec/operations_e2e_test.go).

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/testbed"
)

// stateFile is the node's own record, byte for byte.
func (env *e2eEnv) stateFile(t *testing.T, i int) string {
	return env.ssh(t, i, "cat /opt/"+env.service+"/.nodeexec/state.json")
}

// A restart gives each node a new main process of the same release, verified by the health check, and
// leaves the node's record as it was; status reads the true PID and the record's version. A restart whose
// check fails says which check, and still changes no version.
func TestE2ERestartAndServiceStatus(t *testing.T) {
	env := setupE2E(t, map[string]bool{"v1": false, "v2": false})
	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		res, err := env.exec.Deploy(ctx, env.deployRequest(v))
		expectAll(t, res, err, executor.StateSuccess, v, map[string]string{"v1": "", "v2": "v1"}[v])
	}
	pids, records := map[string]string{}, map[string]string{}
	for i, n := range env.nodes {
		pids[n.Host], records[n.Host] = env.mainPID(t, i), env.stateFile(t, i)
	}

	statusReads := func(t *testing.T, want map[string]string) {
		t.Helper()
		start := time.Now()
		st, err := env.exec.ServiceStatus(ctx, executor.StatusRequest{Service: env.service, Nodes: env.nodes})
		t.Logf("service status of %d nodes: %s", len(env.nodes), time.Since(start).Round(time.Millisecond))
		if err != nil || len(st) != len(env.nodes) {
			t.Fatalf("status = %+v, %v", st, err)
		}
		for _, s := range st {
			if s.Error != "" || !s.Running || s.ActiveState != "active" || strconv.Itoa(s.MainPID) != want[s.Host] {
				t.Errorf("%s: %+v; want running, main PID %s", s.Host, s, want[s.Host])
			}
			if s.CurrentVersion != "v2" || s.PrevVersion != "v1" || s.RunningVersion != "v2" || s.State != executor.StateSuccess {
				t.Errorf("%s: versions %q/%q running %q state %q; want v2/v1 running v2, success", s.Host, s.CurrentVersion, s.PrevVersion, s.RunningVersion, s.State)
			}
			if s.Since == nil || s.Since.After(time.Now()) || time.Since(*s.Since) > 10*time.Minute || s.UptimeSeconds < 0 ||
				time.Since(*s.Since)-time.Duration(s.UptimeSeconds)*time.Second > 5*time.Second {
				t.Errorf("%s: since %v, uptime %ds: not when the unit started", s.Host, s.Since, s.UptimeSeconds)
			}
			// What systemd accounts of the unit, when it does: the demo service is a Go HTTP server with a
			// few threads. Where systemd accounts nothing (the test hosts on a cgroup v1 machine) the status
			// must say nothing rather than zeros.
			accounts, err := env.hosts.AccountsTasks(ctx, slices.IndexFunc(env.nodes, func(n executor.Node) bool { return n.Host == s.Host }), env.service+".service")
			if err != nil {
				t.Fatal(err)
			}
			if r := s.Resources; accounts && (r == nil || r.Tasks < 1) || !accounts && r != nil {
				t.Errorf("%s: resources %+v; systemd accounts the unit: %v", s.Host, r, accounts)
			}
		}
	}

	t.Run("service status reads the true main PID and the node's own version", func(t *testing.T) {
		statusReads(t, pids)
	})

	t.Run("restart: new main process, same version, health verified, record untouched", func(t *testing.T) {
		start := time.Now()
		res, err := env.exec.Restart(ctx, executor.RestartRequest{DeploymentID: "e2e-restart", Service: env.service, Nodes: env.nodes,
			Health: executor.HealthCheck{HTTPPort: env.port, HTTPPath: "/health", Retries: 5, Delay: time.Second}})
		t.Logf("restart of %d nodes: %s", len(env.nodes), time.Since(start).Round(time.Millisecond))
		expectAll(t, res, err, executor.StateSuccess, "v2", "v1")
		after := map[string]string{}
		for i, r := range res {
			after[r.Host] = env.mainPID(t, i)
			if after[r.Host] == pids[r.Host] || after[r.Host] == "0" {
				t.Errorf("%s: main PID %s before and %s after the restart", r.Host, pids[r.Host], after[r.Host])
			}
			if !slices.ContainsFunc(r.Steps, func(s executor.Step) bool {
				return s.Name == "Check the HTTP health endpoint" && !s.Skipped && !s.Failed
			}) {
				t.Errorf("%s: no passed health check among the steps %+v", r.Host, r.Steps)
			}
			if got := env.stateFile(t, i); got != records[r.Host] {
				t.Errorf("%s: the node's record changed:\n%s\nwas\n%s", r.Host, got, records[r.Host])
			}
			if got := env.serving(t, r.Host); got != "v2" {
				t.Errorf("%s serves %q after the restart", r.Host, got)
			}
		}
		statusReads(t, after)
	})

	t.Run("a restart whose health check fails names the check and changes no version", func(t *testing.T) {
		res, err := env.exec.Restart(ctx, executor.RestartRequest{Service: env.service, Nodes: env.nodes[:1],
			Health: executor.HealthCheck{HTTPPort: env.port, HTTPPath: "/health", HTTPStatus: 418, Retries: 1, Delay: time.Second}})
		if err != nil || len(res) != 1 {
			t.Fatalf("restart = %+v, %v", res, err)
		}
		r := res[0]
		if r.State != executor.StateFailed || !strings.Contains(r.LastError, "Check the HTTP health endpoint") || r.CurrentVersion != "v2" || r.PrevVersion != "v1" {
			t.Errorf("restart with a failing check = %s %q, versions %q/%q", r.State, r.LastError, r.CurrentVersion, r.PrevVersion)
		}
		if got := env.stateFile(t, 0); got != records[r.Host] {
			t.Errorf("the node's record changed after a failed restart:\n%s", got)
		}
	})

	t.Run("a service that was never deployed is not restarted", func(t *testing.T) {
		t.Cleanup(func() { env.ssh(t, 0, "rm -rf /opt/"+env.service+"-none") }) // its lock's directory
		res, err := env.exec.Restart(ctx, executor.RestartRequest{Service: env.service + "-none", Nodes: env.nodes[:1]})
		if err != nil || len(res) != 1 || res[0].State != executor.StateFailed || !strings.Contains(res[0].LastError, "no release of") {
			t.Errorf("restart of a service never deployed = %+v, %v", res, err)
		}
	})
}

// Push: the package is served on the controller's loopback, which the nodes cannot reach (a pull from it
// fails on every node); pushed, it reaches every node, which checks it again before unpacking; the
// controller's copy is gone after the run.
func TestE2EPushDeliversWhereNodesCannotPull(t *testing.T) {
	env := setupE2E(t, map[string]bool{"v1": false})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rel := env.releases["v1"]
	base, stop, err := testbed.Serve(ctx, "127.0.0.1", filepath.Dir(rel.Path))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	req := env.deployRequest("v1")
	req.Package.URL = base + "/" + filepath.Base(rel.Path)

	t.Run("pull from the controller's loopback fails on every node", func(t *testing.T) {
		res, err := env.exec.Deploy(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.State != executor.StateFailed || !strings.Contains(r.LastError, "Download the package") || r.CurrentVersion != "" {
				t.Errorf("%s: %s %q; want failed at the download, nothing deployed", r.Host, r.State, r.LastError)
			}
		}
	})

	t.Run("push reaches every node", func(t *testing.T) {
		push := req
		push.Delivery = executor.DeliveryPush
		start := time.Now()
		res, err := env.exec.Deploy(ctx, push)
		t.Logf("push deploy to %d nodes: %s", len(env.nodes), time.Since(start).Round(time.Millisecond))
		expectAll(t, res, err, executor.StateSuccess, "v1", "")
		for i, r := range res {
			if got := env.serving(t, r.Host); got != "v1" {
				t.Errorf("%s serves %q", r.Host, got)
			}
			if !slices.ContainsFunc(r.Steps, func(s executor.Step) bool { return s.Name == "Check the SHA256 of the copied package" && !s.Skipped }) ||
				slices.ContainsFunc(r.Steps, func(s executor.Step) bool { return s.Name == "Download the package and check its SHA256" && !s.Skipped }) {
				t.Errorf("%s: steps %+v; want the copy checked on the node, no download", r.Host, r.Steps)
			}
			if sum := env.ssh(t, i, "sha256sum /opt/"+env.service+"/.nodeexec/package-v1.tar.gz"); !strings.HasPrefix(sum, rel.SHA256) {
				t.Errorf("%s: the package on the node: %s", r.Host, sum)
			}
		}
		if left, _ := filepath.Glob(filepath.Join(env.workDir, "nodeexec-push-*")); len(left) > 0 {
			t.Errorf("the controller's copy of the package was left: %v", left)
		}
	})

	t.Run("a package whose SHA256 differs is refused on the controller, before any node", func(t *testing.T) {
		push := req
		push.Delivery, push.Version, push.Package.SHA256 = executor.DeliveryPush, "v2", strings.Repeat("0", 64)
		res, err := env.exec.Deploy(ctx, push)
		if err == nil || !strings.Contains(err.Error(), "SHA256") || res != nil {
			t.Errorf("push of a package with the wrong SHA256 = %+v, %v", res, err)
		}
		if left, _ := filepath.Glob(filepath.Join(env.workDir, "nodeexec-push-*")); len(left) > 0 {
			t.Errorf("the refused package was left on the controller: %v", left)
		}
	})

	t.Run("the node checks the copied package again before unpacking", func(t *testing.T) {
		// Straight to the playbook, as a hand run could: a file whose SHA256 is not the one given.
		other := filepath.Join(t.TempDir(), "other.tar.gz")
		if err := os.WriteFile(other, []byte("not the package"), 0o600); err != nil {
			t.Fatal(err)
		}
		vars := env.exec.commonVars(env.service, "e2e-push-check")
		vars["nodeexec_version"], vars["nodeexec_package_sha256"] = "v3", rel.SHA256
		vars["nodeexec_delivery"], vars["nodeexec_package_file"] = "push", other
		out, stderr, err := env.exec.run(ctx, []string{"deploy.yml"}, vars, env.nodes[:1], nil)
		if out == nil {
			t.Fatalf("run: %v", err)
		}
		r := nodeResults(out, opDeploy, env.service, env.nodes[:1], stderr)[0]
		if r.State != executor.StateFailed || !strings.Contains(r.LastError, "the package on the node has SHA256") || r.CurrentVersion != "v1" {
			t.Errorf("deploy of a copied package with another SHA256 = %s %q current %q", r.State, r.LastError, r.CurrentVersion)
		}
		if ls := env.ssh(t, 0, "ls /opt/"+env.service+"/releases"); strings.Contains(ls, "v3") {
			t.Errorf("the bad package was unpacked: %s", ls)
		}
	})
}

// Allow-listed commands: each node's own output; arguments reach the program as they are (no shell);
// exit statuses, a missing program and output over the bound are each reported as such.
func TestE2EAllowListedCommands(t *testing.T) {
	env := setupE2E(t, map[string]bool{"v1": false})
	ctx := context.Background()
	res, err := env.exec.Deploy(ctx, env.deployRequest("v1"))
	expectAll(t, res, err, executor.StateSuccess, "v1", "")
	allow := executor.AllowList{
		"hostname": {"cat", "/proc/sys/kernel/hostname"},
		"active":   {"systemctl", "is-active", executor.PlaceholderService},
		"literal":  {"echo", "$(touch /tmp/nodeexec-e2e-pwned)", ";", "rm -rf /", "*"},
		"fails":    {"sh", "-c", "echo out; echo err >&2; exit 3"},
		"missing":  {"nodeexec-e2e-no-such-program"},
		"long":     {"seq", "1", "100000"},
	}
	if problems := allow.Check(); len(problems) > 0 {
		t.Fatal(problems)
	}
	run := func(name string, limit int) []executor.CommandResult {
		t.Helper()
		argv, err := allow.Resolve(name, env.service)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out, err := env.exec.RunCommand(ctx, executor.CommandRequest{Name: name, Argv: argv, Nodes: env.nodes, MaxOutput: limit})
		t.Logf("%s on %d nodes: %s", name, len(env.nodes), time.Since(start).Round(time.Millisecond))
		if err != nil || len(out) != len(env.nodes) {
			t.Fatalf("%s = %+v, %v", name, out, err)
		}
		return out
	}

	for i, r := range run("hostname", 0) {
		if want := env.ssh(t, i, "cat /proc/sys/kernel/hostname"); r.RC != 0 || strings.TrimSpace(r.Stdout) != want || r.Error != "" {
			t.Errorf("%s: hostname = %+v, want %q", r.Host, r, want)
		}
	}
	for _, r := range run("active", 0) {
		if r.RC != 0 || strings.TrimSpace(r.Stdout) != "active" {
			t.Errorf("%s: systemctl is-active <service> = %+v", r.Host, r)
		}
	}
	for i, r := range run("literal", 0) {
		if r.RC != 0 || strings.TrimSpace(r.Stdout) != "$(touch /tmp/nodeexec-e2e-pwned) ; rm -rf / *" {
			t.Errorf("%s: echo of shell text = %+v; want it printed as it is", r.Host, r)
		}
		if out := env.ssh(t, i, "ls /tmp/nodeexec-e2e-pwned 2>&1 || true"); !strings.Contains(out, "No such file") {
			t.Errorf("%s: a shell ran the argument: %s", r.Host, out)
		}
	}
	for _, r := range run("fails", 0) {
		if r.RC != 3 || r.Stdout != "out" || r.Stderr != "err" || r.Error != "" {
			t.Errorf("%s: a command that exits 3 = %+v", r.Host, r)
		}
	}
	for _, r := range run("missing", 0) {
		if r.RC != -1 || !strings.Contains(r.Error, "No such file") {
			t.Errorf("%s: a missing program = %+v", r.Host, r)
		}
	}
	for _, r := range run("long", 1024) {
		if r.RC != 0 || !r.Truncated || len(r.Stdout) != 1024 || !strings.HasPrefix(r.Stdout, "1\n2\n3\n") {
			t.Errorf("%s: long output = rc %d truncated %v, %d bytes", r.Host, r.RC, r.Truncated, len(r.Stdout))
		}
	}
}
