//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/testbed"
	"github.com/nodeexec/nodeexec/store"
)

// The physical operations through `nodeexec serve` and the CLI, on the real test hosts: service status,
// a restart, a push deploy from a package server the nodes cannot reach, and allow-listed commands.
func TestAPIRestartStatusPushAndAdhocOnTheHosts(t *testing.T) {
	// serve reads its allow-list from the configuration file, and downloads pushed packages under $TMPDIR.
	conf := filepath.Join(t.TempDir(), "nodeexec.yaml")
	if err := os.WriteFile(conf, []byte(`adhoc:
  commands:
    hostname: [cat, /proc/sys/kernel/hostname]
    active: [systemctl, is-active, "{service}"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NODEEXEC_CONFIG", conf)
	tmp, err := os.MkdirTemp("", "nodeexec-e2e-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	t.Setenv("TMPDIR", tmp)
	env := setupAPI(t)
	hosts := env.hosts.Addrs[:3]
	nodes := strings.Join(hosts, ",")
	cli := func(args ...string) (int, []byte) {
		t.Helper()
		start := time.Now()
		cmd := osexec.Command(env.bin, append([]string{args[0], "--server", env.base, "--json"}, args[1:]...)...)
		out, err := cmd.Output()
		t.Logf("nodeexec %s: %s", args[0], time.Since(start).Round(time.Millisecond))
		if exit, ok := err.(*osexec.ExitError); ok {
			t.Logf("stderr: %s", exit.Stderr)
			return exit.ExitCode(), out
		} else if err != nil {
			t.Fatalf("nodeexec %v: %v", args, err)
		}
		return 0, out
	}
	mainPIDs := func() map[string]int {
		out := map[string]int{}
		for i, h := range hosts {
			s, err := env.hosts.SSH(context.Background(), i, "systemctl show -p MainPID --value "+env.svc.Name+".service")
			if err != nil {
				t.Fatalf("%s: %v %s", h, err, s)
			}
			out[h], _ = strconv.Atoi(strings.TrimSpace(s))
		}
		return out
	}
	status := func(current, prev string, pids map[string]int) {
		t.Helper()
		code, out := cli("service-status", "--service", env.svc.Name, "--nodes", nodes)
		var got struct{ Nodes []executor.ServiceStatus }
		if err := json.Unmarshal(out, &got); err != nil || code != 0 || len(got.Nodes) != 3 {
			t.Fatalf("service-status: exit %d %v\n%s", code, err, out)
		}
		for _, n := range got.Nodes {
			if !n.Running || n.MainPID != pids[n.Host] || n.CurrentVersion != current || n.PrevVersion != prev || n.RunningVersion != current || n.Since == nil {
				t.Errorf("%s: %+v; want running with main PID %d, on %s (previous %q)", n.Host, n, pids[n.Host], current, prev)
			}
		}
	}

	start := time.Now()
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	t.Logf("deploy v1 to 3 hosts: %s", time.Since(start).Round(time.Millisecond))
	before := mainPIDs()
	status("v1", "", before)

	// Restart: recorded as a deployment of kind restart; each node gets a new main process of v1.
	code, out := cli("restart", "--service", env.svc.Name, "--nodes", nodes, "--health-port", strconv.Itoa(env.svc.Port))
	var d store.Deployment
	if err := json.Unmarshal(lastJSON(out), &d); err != nil || code != 0 || d.Kind != store.KindRestart || d.State != executor.StateSuccess {
		t.Fatalf("restart: exit %d %v, deployment %+v\n%s", code, err, d, out)
	}
	after := mainPIDs()
	for _, n := range d.Nodes {
		if n.TargetVersion != "v1" || n.CurrentVersion != "v1" || after[n.Host] == before[n.Host] || after[n.Host] == 0 {
			t.Errorf("%s: %+v; main PID %d before, %d after", n.Host, n, before[n.Host], after[n.Host])
		}
		if v := env.serving(n.Host); v != "v1" {
			t.Errorf("%s serves %q after the restart", n.Host, v)
		}
	}
	status("v1", "", after)

	// Push: v2 served on the controller's loopback only. A pull from there fails on every node, which
	// keeps v1; the push deploy brings v2 to all three, and leaves no copy under $TMPDIR.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rel := env.svc.Releases["v2"]
	base, stop, err := testbed.Serve(ctx, "127.0.0.1", filepath.Dir(rel.Path))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	body := env.deployBody("v2")
	body["package_url"] = base + "/" + filepath.Base(rel.Path)
	code, pulled := env.call("POST", "/api/v1/deployments", body)
	if code != 202 {
		t.Fatalf("pull deploy = %d %v", code, pulled)
	}
	if _, end := env.follow(pulled["id"].(string), nil); end["state"] != "failed" {
		t.Fatalf("pull from the controller's loopback = %v; want failed", end)
	}
	body["delivery"] = "push"
	start = time.Now()
	code, pushed := env.call("POST", "/api/v1/deployments", body)
	if code != 202 {
		t.Fatalf("push deploy = %d %v", code, pushed)
	}
	if _, end := env.follow(pushed["id"].(string), nil); end["state"] != "success" {
		t.Fatalf("push deploy = %v", end)
	}
	t.Logf("push deploy of v2 to 3 hosts: %s", time.Since(start).Round(time.Millisecond))
	for _, h := range hosts {
		if v := env.serving(h); v != "v2" {
			t.Errorf("%s serves %q after the push deploy", h, v)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "nodeexec-push-*")); len(left) > 0 {
		t.Errorf("the pushed package was left under $TMPDIR: %v", left)
	}
	status("v2", "v1", mainPIDs())

	// Allow-listed commands, by name: each node's own output.
	code, out = cli("adhoc", "--name", "hostname", "--nodes", nodes)
	var run struct{ Nodes []executor.CommandResult }
	if err := json.Unmarshal(out, &run); err != nil || code != 0 || len(run.Nodes) != 3 {
		t.Fatalf("adhoc hostname: exit %d %v\n%s", code, err, out)
	}
	for i, r := range run.Nodes {
		want, _ := env.hosts.SSH(context.Background(), i, "cat /proc/sys/kernel/hostname")
		if r.Host != hosts[i] || r.RC != 0 || strings.TrimSpace(r.Stdout) != strings.TrimSpace(want) {
			t.Errorf("%s: %+v; want %q", hosts[i], r, want)
		}
	}
	code, out = cli("adhoc", "--name", "active", "--service", env.svc.Name, "--nodes", nodes)
	if err := json.Unmarshal(out, &run); err != nil || code != 0 {
		t.Fatalf("adhoc active: exit %d %v\n%s", code, err, out)
	}
	for _, r := range run.Nodes {
		if r.RC != 0 || strings.TrimSpace(r.Stdout) != "active" {
			t.Errorf("%s: systemctl is-active = %+v", r.Host, r)
		}
	}
	if code, out := cli("adhoc", "--name", "reboot", "--nodes", nodes); code != 1 || len(out) != 0 {
		t.Errorf("adhoc of a name not on the list: exit %d %s", code, out)
	}
}

// lastJSON is the final deployment the CLI prints with --json: the last line, after the events' NDJSON.
func lastJSON(out []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return []byte(lines[len(lines)-1])
}
