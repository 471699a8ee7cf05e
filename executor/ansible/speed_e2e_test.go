//go:build e2e

package ansible

// End-to-end on the real test hosts: what issue 15 asks of the deploy path. A crash-looping release is
// rolled back within 5 s of its first crash; a redeploy of the current version is one task per node; a
// killed run leaves no lock behind.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

func TestE2EVerificationWatchesTheProcess(t *testing.T) {
	env := setupE2E(t, map[string]bool{"v1": false, "v2": false})
	ctx := context.Background()

	res, err := env.exec.Deploy(ctx, env.deployRequest("v1"))
	expectAll(t, res, err, executor.StateSuccess, "v1", "")

	t.Run("a crash-looping release is rolled back within 5 s of its first crash", func(t *testing.T) {
		req := env.deployRequest("v2")
		req.DeploymentID = "e2e-crash"
		// The process exits at once; systemd restarts it every second (Restart=on-failure). The health
		// window is 60 s: only watching the process can end this early.
		req.Unit.Args += " -crash"
		req.Health.Retries, req.Health.Delay = 60, time.Second
		unitBefore := env.unitFileStamps(t)
		res, err := env.exec.Deploy(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		// The arguments travel in the release's environment file: neither the switch to the crashing
		// release nor the rollback rewrote the unit (no daemon-reload on the way).
		if after := env.unitFileStamps(t); !slices.Equal(after, unitBefore) {
			t.Errorf("the unit file changed: %q -> %q", unitBefore, after)
		}
		for i, r := range res {
			if r.State != executor.StateRolledBack || r.CurrentVersion != "v1" || !strings.Contains(r.LastError, "main process") {
				t.Errorf("%s: state=%s current=%q error=%q; want rolled_back to v1, naming the main process", r.Host, r.State, r.CurrentVersion, r.LastError)
			}
			restarted, ok := stepEnd(r.Steps, "Restart on the new release")
			recorded, ok2 := stepEnd(r.Steps, "Record the automatic rollback on the node")
			if !ok || !ok2 {
				t.Fatalf("%s: steps lack the restart or the rollback record (or their times): %+v", r.Host, r.Steps)
			}
			// The first crash comes after the restart: from the restart to the rollback recorded is an
			// upper bound on "from the first crash".
			if took := recorded.Sub(restarted); took > 5*time.Second {
				t.Errorf("%s: rolled back %s after the restart of the crashing release, want within 5s", r.Host, took)
			}
			if r.Evidence == nil || !strings.Contains(strings.Join(r.Evidence.Journal, "\n"), "crashing at start") {
				t.Errorf("%s: the evidence has no journal line of the crash: %+v", r.Host, r.Evidence)
			}
			if got := env.serving(t, r.Host); got != "v1" {
				t.Errorf("%s serves %q after the rollback, want v1", r.Host, got)
			}
			if busy := env.ssh(t, i, "pgrep -a nodeexec-lock || true"); busy != "" {
				t.Errorf("%s: a lock holder is still running after the run: %s", r.Host, busy)
			}
		}
	})

	t.Run("a release must hold steady when asked to", func(t *testing.T) {
		req := env.deployRequest("v2")
		req.DeploymentID = "e2e-steady"
		req.Health.Stable = 2 * time.Second
		res, err := env.exec.Deploy(ctx, req)
		expectAll(t, res, err, executor.StateSuccess, "v2", "v1")
		for _, r := range res {
			st, ok := findStep(r.Steps, "Check the release holds steady")
			if !ok || st.Failed || st.Duration < 2*time.Second {
				t.Errorf("%s: steady step %+v (found %v), want a passed step of at least 2s", r.Host, st, ok)
			}
		}
	})

	t.Run("a redeploy of the current version is one task per node and restarts nothing", func(t *testing.T) {
		pids := make([]string, len(env.nodes))
		for i := range env.nodes {
			pids[i] = env.mainPID(t, i)
		}
		out := env.handRunJSON(t, "playbooks/deploy.yml", map[string]any{"nodeexec_version": "v2",
			"nodeexec_package_url":    env.baseURL + "/" + filepath.Base(env.releases["v2"].Path),
			"nodeexec_package_sha256": env.releases["v2"].SHA256, "nodeexec_health_http_port": env.port})
		tasks := tasksPerHost(t, out)
		for i, n := range env.nodes {
			if len(tasks[n.Host]) != 1 {
				t.Errorf("%s: ran %d tasks %v, want 1", n.Host, len(tasks[n.Host]), tasks[n.Host])
			}
			if pid := env.mainPID(t, i); pid != pids[i] {
				t.Errorf("%s: main PID %s -> %s: the redeploy restarted the service", n.Host, pids[i], pid)
			}
		}
	})

	t.Run("a version-switching deploy is two tasks per node", func(t *testing.T) {
		// Quoted arguments keep systemd's own quoting: they are written into the unit as given.
		args := fmt.Sprintf(`-addr ":%d"`, env.port)
		out := env.handRunJSON(t, "playbooks/deploy.yml", map[string]any{"nodeexec_version": "v1",
			"nodeexec_package_url":    env.baseURL + "/" + filepath.Base(env.releases["v1"].Path),
			"nodeexec_package_sha256": env.releases["v1"].SHA256, "nodeexec_health_http_port": env.port,
			"nodeexec_exec_args": args})
		for i, n := range env.nodes {
			if got := tasksPerHost(t, out)[n.Host]; len(got) != 2 {
				t.Errorf("%s: ran %d tasks %v, want 2 (prepare, activate)", n.Host, len(got), got)
			}
			if unit := env.ssh(t, i, "cat /etc/systemd/system/"+env.service+".service"); !strings.Contains(unit, args) {
				t.Errorf("%s: the unit does not carry the quoted arguments %s as given:\n%s", n.Host, args, unit)
			}
			if v := env.serving(t, n.Host); v != "v1" {
				t.Errorf("%s serves %q, want v1", n.Host, v)
			}
		}
	})

	t.Run("a killed run leaves no lock behind", func(t *testing.T) {
		// A hand run whose verification waits on a port nothing answers, killed mid-verification with its
		// whole process group (what Ctrl-C or a dying controller does); nobody runs unlock.yml.
		cp, err := os.MkdirTemp("", "nx-kill-")
		if err != nil {
			t.Fatal(err)
		}
		defer CloseMasters(cp)
		cmd := env.handRun(t, "playbooks/deploy.yml", map[string]any{"nodeexec_version": "v2",
			"nodeexec_package_url":    env.baseURL + "/" + filepath.Base(env.releases["v2"].Path),
			"nodeexec_package_sha256": env.releases["v2"].SHA256, "nodeexec_health_tcp_port": 1,
			"nodeexec_health_retries": 120, "nodeexec_lock_holder": "e2e killed run",
			"nodeexec_exec_args": fmt.Sprintf("-addr :%d", env.port)}, "ANSIBLE_SSH_CONTROL_PATH_DIR="+cp)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lockInfo := "/opt/" + env.service + "/.nodeexec/lock.holder.json"
		waitFor(t, 60*time.Second, func() bool {
			o, _ := env.hosts.SSH(ctx, 0, "cat "+lockInfo+" 2>/dev/null; systemctl show -p MainPID --value "+env.service)
			return strings.Contains(o, "e2e killed run") && env.serving(t, env.nodes[0].Host) == "v2"
		})
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		for i, n := range env.nodes {
			busy := ""
			waitFor(t, 10*time.Second, func() bool {
				busy, _ = env.hosts.SSH(ctx, i, "pgrep -a nodeexec-lock; cat "+lockInfo+" 2>/dev/null; true")
				return strings.TrimSpace(busy) == ""
			}, func() string { return n.Host + " still locked: " + busy })
		}
		// The nodes are free: the next deploy takes them.
		res, err := env.exec.Deploy(ctx, env.deployRequest("v1"))
		expectAll(t, res, err, executor.StateSuccess, "v1", "v2")
	})

	t.Run("systemd's start limit never refuses a deliberate restart", func(t *testing.T) {
		// A crash loop, its rollback and the next deploy can start a unit more often than systemd's
		// StartLimitBurst allows (5 in 10 s by default); made small here so that it is reached for sure.
		dropIn := "/etc/systemd/system/" + env.service + ".service.d"
		for i := range env.nodes {
			env.ssh(t, i, "mkdir -p "+dropIn+" && printf '[Unit]\\nStartLimitIntervalSec=600\\nStartLimitBurst=2\\n' > "+dropIn+"/limit.conf && systemctl daemon-reload")
		}
		defer func() {
			for i := range env.nodes {
				env.ssh(t, i, "rm -rf "+dropIn+" && systemctl daemon-reload")
			}
		}()
		for round := 1; round <= 3; round++ {
			res, err := env.exec.Restart(ctx, executor.RestartRequest{Service: env.service, Nodes: env.nodes,
				Health: executor.HealthCheck{HTTPPort: env.port}})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.State != executor.StateSuccess {
					t.Fatalf("restart %d on %s: %s (%s), want success", round, r.Host, r.State, r.LastError)
				}
			}
		}
	})
}

// unitFileStamps is each node's unit file as "<mtime> <sha256>".
func (env *e2eEnv) unitFileStamps(t *testing.T) []string {
	var stamps []string
	for i := range env.nodes {
		unit := "/etc/systemd/system/" + env.service + ".service"
		stamps = append(stamps, env.ssh(t, i, "stat -c %y "+unit+" && sha256sum "+unit))
	}
	return stamps
}

func findStep(steps []executor.Step, name string) (executor.Step, bool) {
	for _, s := range steps {
		if s.Name == name {
			return s, true
		}
	}
	return executor.Step{}, false
}

// stepEnd is when a step of that name ended on the node.
func stepEnd(steps []executor.Step, name string) (time.Time, bool) {
	s, ok := findStep(steps, name)
	if !ok || s.Started.IsZero() {
		return time.Time{}, false
	}
	return s.Started.Add(s.Duration), true
}

// handRun is ansible-playbook as an operator runs it, on the test's service and hosts, with the JSON
// stdout callback.
func (env *e2eEnv) handRun(t *testing.T, book string, vars map[string]any, extraEnv ...string) *osexec.Cmd {
	t.Helper()
	vars["nodeexec_service"] = env.service
	data, err := json.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(t.TempDir(), "hosts.ini")
	lines := "[all]\n"
	for _, n := range env.nodes {
		lines += n.Host + "\n"
	}
	lines += fmt.Sprintf("[all:vars]\nansible_user=%s\nansible_ssh_private_key_file=%s\n", env.hosts.SSHUser, env.hosts.SSHKey)
	if err := os.WriteFile(inv, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command("ansible-playbook", "-i", inv, "-e", string(data), book)
	cmd.Dir = env.repo
	cmd.Env = append(os.Environ(), append([]string{"ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_STDOUT_CALLBACK=ansible.posix.json"}, extraEnv...)...)
	return cmd
}

func (env *e2eEnv) handRunJSON(t *testing.T, book string, vars map[string]any) []byte {
	t.Helper()
	out, err := env.handRun(t, book, vars).Output()
	if err != nil {
		t.Fatalf("ansible-playbook %s: %v\n%s", book, err, out)
	}
	return out
}

// tasksPerHost lists, per host, the tasks a run ran there: every result except meta tasks (end_host),
// which the controller evaluates itself without running anything on the node.
func tasksPerHost(t *testing.T, out []byte) map[string][]string {
	t.Helper()
	var run struct {
		Plays []struct {
			Tasks []struct {
				Task  struct{ Name string }
				Hosts map[string]struct {
					Action string `json:"action"`
				}
			}
		}
	}
	if err := json.Unmarshal(out, &run); err != nil {
		t.Fatalf("the JSON callback's output does not parse: %v\n%s", err, out)
	}
	tasks := map[string][]string{}
	for _, p := range run.Plays {
		for _, task := range p.Tasks {
			for host, r := range task.Hosts {
				if r.Action != "meta" && r.Action != "ansible.builtin.meta" {
					tasks[host] = append(tasks[host], task.Task.Name)
				}
			}
		}
	}
	return tasks
}
