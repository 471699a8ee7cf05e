//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/notify"
	"github.com/nodeexec/nodeexec/store"
)

// driftHooks is a webhook receiver that keeps the node.drifted events it got.
type driftHooks struct {
	mu     sync.Mutex
	events []notify.Event
	// arrived is told of each delivery.
	arrived chan struct{}
}

// await waits (bounded) until host has had a drift event of kind.
func (h *driftHooks) await(host, kind string, within time.Duration) {
	timeout := time.After(within)
	for !strings.Contains(strings.Join(h.kinds(host), " "), kind) {
		select {
		case <-h.arrived:
		case <-timeout:
			return
		}
	}
}

func (h *driftHooks) kinds(host string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ev := range h.events {
		if ev.Drift != nil && ev.Drift.Host == host {
			out = append(out, ev.Drift.Kind)
		}
	}
	return out
}

// withDriftWebhook restarts serve with a webhook that wants node.drifted, received by the test.
func (env *apiEnv) withDriftWebhook() *driftHooks {
	t := env.t
	hooks := &driftHooks{arrived: make(chan struct{}, 64)}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev notify.Event
		if json.Unmarshal(body, &ev) == nil {
			hooks.mu.Lock()
			hooks.events = append(hooks.events, ev)
			hooks.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
		select {
		case hooks.arrived <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(recv.Close)
	dir := t.TempDir()
	secret := filepath.Join(dir, "hook.secret")
	cfg := filepath.Join(dir, "nodeexec.yaml")
	if err := os.WriteFile(secret, []byte("drift-e2e-secret-0123456789abcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf("webhooks:\n  - {url: %q, events: [drifted], secret_file: %q}\n", recv.URL, secret)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env.stop(syscall.SIGTERM)
	env.serveArgs = []string{"--config", cfg}
	env.start()
	return hooks
}

// deployByHand runs deploy.yml with ansible-playbook on hosts, as an operator would, behind nodeexec's back.
func (env *apiEnv) deployByHand(version string, hosts ...string) {
	t := env.t
	t.Helper()
	dir := t.TempDir()
	inv := filepath.Join(dir, "hosts.ini")
	var lines []string
	for _, h := range hosts {
		lines = append(lines, fmt.Sprintf("%s ansible_user=%s ansible_ssh_private_key_file=%s", h, env.hosts.SSHUser, env.hosts.SSHKey))
	}
	if err := os.WriteFile(inv, []byte("[all]\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars, _ := json.Marshal(map[string]any{
		"nodeexec_service": env.svc.Name, "nodeexec_version": version,
		"nodeexec_package_url": env.svc.URL(version), "nodeexec_package_sha256": env.svc.Releases[version].SHA256,
		"nodeexec_exec_args": fmt.Sprintf("-addr :%d", env.svc.Port), "nodeexec_health_http_port": env.svc.Port,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := osexec.CommandContext(ctx, "ansible-playbook", "-i", inv, "playbooks/deploy.yml", "-e", string(vars))
	cmd.Dir = env.repo
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(env.repo, "ansible.cfg"), "ANSIBLE_HOST_KEY_CHECKING=False")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ansible-playbook deploy.yml %s by hand: %v\n%s", version, err, out)
	}
	t.Logf("deployed %s by hand to %v with ansible-playbook: %s", version, hosts, time.Since(start).Round(time.Millisecond))
}

// driftPass runs `nodeexec drift --json` against serve and returns the pass at its end.
func (env *apiEnv) driftPass() store.DriftPass {
	t := env.t
	t.Helper()
	start := time.Now()
	out, err := osexec.Command(env.bin, "drift", "--server", env.base, "--service", env.svc.Name, "--json").Output()
	if err != nil {
		t.Fatalf("nodeexec drift: %v\n%s", err, out)
	}
	var pass store.DriftPass
	if err := json.Unmarshal(out, &pass); err != nil {
		t.Fatalf("nodeexec drift --json: %v\n%s", err, out)
	}
	t.Logf("drift pass %s: %s, %s", pass.ID, pass.State, time.Since(start).Round(time.Millisecond))
	if pass.State != store.DriftSuccess || len(pass.Nodes) != 3 {
		t.Fatalf("drift pass = %+v", pass)
	}
	return pass
}

func driftOf(p store.DriftPass, host string) store.DriftNode {
	for _, n := range p.Nodes {
		if n.Host == host {
			return n
		}
	}
	return store.DriftNode{}
}

func (env *apiEnv) drifted() []string {
	env.t.Helper()
	code, list := env.call("GET", "/api/v1/nodes?drifted=true&service="+env.svc.Name, nil)
	if code != http.StatusOK {
		env.t.Fatalf("GET /api/v1/nodes?drifted=true = %d %v", code, list)
	}
	var hosts []string
	for _, n := range list["nodes"].([]any) {
		hosts = append(hosts, n.(map[string]any)["host"].(string))
	}
	return hosts
}

func (env *apiEnv) driftMetric(kind string) string {
	env.t.Helper()
	code, body := env.rawGet("/metrics")
	if code != http.StatusOK {
		env.t.Fatalf("GET /metrics = %d", code)
	}
	prefix := fmt.Sprintf(`nodeexec_nodes_drifted{kind=%q,service=%q} `, kind, env.svc.Name)
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimPrefix(l, prefix)
		}
	}
	return ""
}

// Drift on the real test hosts through the real `nodeexec serve`: v1 deployed through nodeexec, v2 by
// hand with ansible-playbook on two hosts; a pass finds the version drift there, the records take v2;
// a unit stopped over SSH is flagged unit_inactive (metric, webhook); started again, cleared; and a
// deploy through nodeexec works from the nodes' truth.
func TestDriftFoundShownAndHealedOnTheHosts(t *testing.T) {
	env := setupAPIAs(t, "drift")
	hooks := env.withDriftWebhook()
	hosts := env.hosts.Addrs[:3]
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	env.deployByHand("v2", hosts[0], hosts[1])

	pass := env.driftPass()
	for _, h := range hosts[:2] {
		n := driftOf(pass, h)
		if n.Drift == nil || n.Drift.Kind != store.DriftVersion || n.Drift.Recorded != "v1" || n.Drift.Observed != "v2" || n.Change != store.DriftFound || n.Updated == nil {
			t.Errorf("%s in the pass = %+v (drift %+v), want a version drift v1 -> v2, found, record updated", h, n, n.Drift)
		}
		code, rec := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+h, nil)
		if code != 200 || rec["current_version"] != "v2" || rec["prev_version"] != "v1" || rec["state"] != "success" || rec["drift"] == nil {
			t.Errorf("node %s after the pass = %d %v, want the node's truth v2 (prev v1) with its drift", h, code, rec)
		}
		if v := env.serving(h); v != "v2" {
			t.Errorf("%s serves %q", h, v)
		}
	}
	if n := driftOf(pass, hosts[2]); n.State != store.DriftNodeRead || n.Drift != nil {
		t.Errorf("%s (left on v1) in the pass = %+v, want read, no drift", hosts[2], n)
	}
	if got := env.drifted(); len(got) != 2 {
		t.Errorf("drifted nodes %v, want %v", got, hosts[:2])
	}
	if m := env.driftMetric(store.DriftVersion); m != "2" {
		t.Errorf("nodeexec_nodes_drifted{kind=version} = %q, want 2", m)
	}

	if out, err := env.hosts.SSH(context.Background(), 0, "systemctl stop "+env.svc.Name); err != nil {
		t.Fatalf("systemctl stop: %v: %s", err, out)
	}
	pass = env.driftPass()
	if n := driftOf(pass, hosts[0]); n.Drift == nil || n.Drift.Kind != store.DriftUnitInactive || n.Change != store.DriftFound {
		t.Errorf("%s with its unit stopped = %+v (drift %+v), want unit_inactive found", hosts[0], n, n.Drift)
	}
	if n := driftOf(pass, hosts[1]); n.Drift != nil || n.Change != store.DriftCleared {
		t.Errorf("%s, whose record took v2 = %+v, want its drift cleared", hosts[1], n)
	}
	if got := env.drifted(); len(got) != 1 || got[0] != hosts[0] {
		t.Errorf("drifted nodes %v, want %s alone", got, hosts[0])
	}
	if m := env.driftMetric(store.DriftUnitInactive); m != "1" {
		t.Errorf("nodeexec_nodes_drifted{kind=unit_inactive} = %q, want 1", m)
	}
	// The webhook is delivered in the background: wait for its delivery (bounded).
	hooks.await(hosts[0], store.DriftUnitInactive, 30*time.Second)
	if got := hooks.kinds(hosts[0]); strings.Join(got, " ") != "version unit_inactive" {
		t.Errorf("node.drifted webhooks for %s: %v, want version then unit_inactive", hosts[0], got)
	}

	if out, err := env.hosts.SSH(context.Background(), 0, "systemctl start "+env.svc.Name); err != nil {
		t.Fatalf("systemctl start: %v: %s", err, out)
	}
	pass = env.driftPass()
	if n := driftOf(pass, hosts[0]); n.Drift != nil || n.Change != store.DriftCleared {
		t.Errorf("%s with its unit started again = %+v, want its drift cleared", hosts[0], n)
	}
	if got := env.drifted(); len(got) != 0 {
		t.Errorf("drifted nodes %v after the unit started again, want none", got)
	}
	if m := env.driftMetric(store.DriftUnitInactive); m != "0" {
		t.Errorf("nodeexec_nodes_drifted{kind=unit_inactive} = %q, want 0", m)
	}

	// A deploy through nodeexec starts from the nodes' truth: v1 goes back on, previous v2 where v2 ran.
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 after the drift = %v", end)
	}
	for i, h := range hosts {
		code, rec := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+h, nil)
		if code != 200 || rec["current_version"] != "v1" || (i < 2 && rec["prev_version"] != "v2") || rec["drift"] != nil {
			t.Errorf("node %s after deploying v1 again = %v", h, rec)
		}
	}
}
