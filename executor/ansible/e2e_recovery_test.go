//go:build e2e

package ansible

// End-to-end failure and recovery paths on the test hosts: what a node runs and what it records about
// itself after a failed redeploy, an automatic rollback, a failed rollback, and a cleanup. Each subtest
// starts where the one before left the nodes.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// nodeRecord is a node's own deploy record, <base>/<service>/.nodeexec/state.json (docs/node-contract.md).
type nodeRecord struct {
	Current   string `json:"current"`
	Previous  string `json:"previous"`
	State     string `json:"state"`
	LastError string `json:"last_error"`
	History   []struct {
		Version string `json:"version"`
		Result  string `json:"result"`
	} `json:"history"`
	// Failed is the newest failed release the node keeps for inspection until a later successful deploy.
	Failed executor.FailedRelease `json:"failed"`
}

func (env *e2eEnv) record(t *testing.T, i int) nodeRecord {
	t.Helper()
	out := env.ssh(t, i, "cat /opt/"+env.service+"/.nodeexec/state.json")
	var rec nodeRecord
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("%s: state.json: %v\n%s", env.nodes[i].Host, err, out)
	}
	return rec
}

// expectRecorded checks what every node says about itself: its state.json, and Status, which reads
// nothing but the node.
func (env *e2eEnv) expectRecorded(t *testing.T, state executor.State, current, prev string) {
	t.Helper()
	for i, n := range env.nodes {
		if rec := env.record(t, i); rec.State != string(state) || rec.Current != current || rec.Previous != prev {
			t.Errorf("%s: state.json has state=%q current=%q previous=%q; want %q, %q, %q", n.Host, rec.State, rec.Current, rec.Previous, state, current, prev)
		}
	}
	st, err := env.exec.Status(context.Background(), executor.StatusRequest{Service: env.service, Nodes: env.nodes})
	expectAll(t, st, err, state, current, prev)
}

// expectLastHistory checks the newest entry of every node's deploy history.
func (env *e2eEnv) expectLastHistory(t *testing.T, version, result string) {
	t.Helper()
	for i, n := range env.nodes {
		h := env.record(t, i).History
		if len(h) == 0 || h[len(h)-1].Version != version || h[len(h)-1].Result != result {
			t.Errorf("%s: history %+v; want it to end with %s %s", n.Host, h, version, result)
		}
	}
}

func (env *e2eEnv) expectServing(t *testing.T, version string) {
	t.Helper()
	for _, n := range env.nodes {
		if got := env.serving(t, n.Host); got != version {
			t.Errorf("%s serves %q, want %s", n.Host, got, version)
		}
	}
}

func TestE2EPhysicalLifecycleRecovery(t *testing.T) {
	env := setupE2E(t, map[string]bool{"v1": false, "v2": false, "v3-broken": true, "v5": false})
	ctx := context.Background()
	unitFile := "/etc/systemd/system/" + env.service + ".service"
	// v4-unit ships its own unit. It listens on env.port only by that unit: the deploy request asks the
	// role's own unit for another port, so the health check passes only if the shipped unit runs.
	shippedEnv := "NODEEXEC_E2E_UNIT=shipped"
	env.svc.AddRelease(t, "v4-unit", false, map[string]string{
		"deploy/" + env.service + ".service": fmt.Sprintf(`[Unit]
Description=%[1]s, with the unit its package ships
[Service]
ExecStart=/opt/%[1]s/current/bin/%[1]s -addr :%[2]d
Environment=%[3]s
Restart=on-failure
[Install]
WantedBy=multi-user.target
`, env.service, env.port, shippedEnv)})
	quick := func(h executor.HealthCheck) executor.HealthCheck {
		h.Retries, h.Delay = 3, time.Second
		return h
	}

	t.Run("deploy v1 then v2", func(t *testing.T) {
		res, err := env.exec.Deploy(ctx, env.deployRequest("v1"))
		expectAll(t, res, err, executor.StateSuccess, "v1", "")
		res, err = env.exec.Deploy(ctx, env.deployRequest("v2"))
		expectAll(t, res, err, executor.StateSuccess, "v2", "v1")
	})

	t.Run("a redeploy of the current version that fails verification keeps the node's record", func(t *testing.T) {
		// The unit is down: deploying v2 again is how it is repaired. Here the repair fails its check.
		for i := range env.nodes {
			env.ssh(t, i, "systemctl stop "+env.service)
		}
		req := env.deployRequest("v2")
		req.Health = quick(executor.HealthCheck{TCPPort: env.port + 1})
		res, err := env.exec.Deploy(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.State != executor.StateFailed || !strings.Contains(r.LastError, "Check the TCP port") || !strings.Contains(r.LastError, "roll back to v1") {
				t.Errorf("%s: state=%s error=%q; want failed at the TCP check, pointing at v1 to roll back to", r.Host, r.State, r.LastError)
			}
		}
		// current still points at v2, and v1 is still the version to roll back to.
		env.expectRecorded(t, executor.StateFailed, "v2", "v1")
		env.expectLastHistory(t, "v2", "failed")
		for i, n := range env.nodes {
			if link := env.ssh(t, i, "readlink /opt/"+env.service+"/current"); link != "releases/v2" {
				t.Errorf("%s: current -> %q, want releases/v2", n.Host, link)
			}
			if active := env.ssh(t, i, "systemctl is-active "+env.service+" || true"); active != "inactive" {
				t.Errorf("%s: the release that failed verification is %q, want stopped (inactive)", n.Host, active)
			}
		}
	})

	t.Run("rollback without a version goes to the node's previous version", func(t *testing.T) {
		res, err := env.exec.Rollback(ctx, executor.RollbackRequest{
			DeploymentID:     "e2e-rb-prev",
			Service:          env.service,
			PhysicalRollback: executor.PhysicalRollback{Nodes: env.nodes, Health: quick(executor.HealthCheck{HTTPPort: env.port})},
		})
		expectAll(t, res, err, executor.StateRolledBack, "v1", "v2")
		env.expectServing(t, "v1")
		env.expectRecorded(t, executor.StateRolledBack, "v1", "v2")
	})

	t.Run("the TCP port check passes when the service listens", func(t *testing.T) {
		req := env.deployRequest("v5")
		req.Health = executor.HealthCheck{TCPPort: env.port}
		res, err := env.exec.Deploy(ctx, req)
		expectAll(t, res, err, executor.StateSuccess, "v5", "v1")
		for _, r := range res {
			ran := map[string]bool{}
			for _, s := range r.Steps {
				ran[s.Name] = !s.Skipped
			}
			if !ran["Check the TCP port"] || ran["Check the HTTP health endpoint"] {
				t.Errorf("%s: TCP check ran=%v, HTTP check ran=%v; want only the TCP check", r.Host, ran["Check the TCP port"], ran["Check the HTTP health endpoint"])
			}
		}
		env.expectServing(t, "v5")
	})

	t.Run("a package that ships its own unit runs with it", func(t *testing.T) {
		req := env.deployRequest("v4-unit")
		req.Unit.Args = fmt.Sprintf("-addr :%d", env.port+2)
		res, err := env.exec.Deploy(ctx, req)
		expectAll(t, res, err, executor.StateSuccess, "v4-unit", "v5")
		env.expectServing(t, "v4-unit")
		for i, n := range env.nodes {
			if unit := env.ssh(t, i, "cat "+unitFile); !strings.Contains(unit, "with the unit its package ships") {
				t.Errorf("%s: installed unit is not the package's:\n%s", n.Host, unit)
			}
		}
	})

	t.Run("an automatic rollback records the release it went back to", func(t *testing.T) {
		req := env.deployRequest("v3-broken")
		req.Health = quick(req.Health)
		res, err := env.exec.Deploy(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.State != executor.StateRolledBack || r.CurrentVersion != "v4-unit" || r.PrevVersion != "v5" {
				t.Errorf("%s: state=%s current=%q prev=%q error=%q; want rolled_back to v4-unit, previous v5", r.Host, r.State, r.CurrentVersion, r.PrevVersion, r.LastError)
			}
		}
		env.expectRecorded(t, executor.StateRolledBack, "v4-unit", "v5")
		env.expectLastHistory(t, "v3-broken", "failed")
		env.expectServing(t, "v4-unit")
	})

	t.Run("a rollback that fails verification puts back the unit of the release it returns to", func(t *testing.T) {
		// v3-broken's release is still on the nodes, with the role's own unit for it.
		res, err := env.exec.Rollback(ctx, executor.RollbackRequest{
			DeploymentID:     "e2e-rb-broken",
			Service:          env.service,
			ToVersion:        "v3-broken",
			PhysicalRollback: executor.PhysicalRollback{Nodes: env.nodes, Health: quick(executor.HealthCheck{HTTPPort: env.port})},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.State != executor.StateFailed || r.CurrentVersion != "v4-unit" || !strings.Contains(r.LastError, "put back on v4-unit") {
				t.Errorf("%s: state=%s current=%q error=%q; want failed, put back on v4-unit", r.Host, r.State, r.CurrentVersion, r.LastError)
			}
		}
		for i, n := range env.nodes {
			if out, err := env.hosts.SSH(ctx, i, "cmp "+unitFile+" /opt/"+env.service+"/releases/v4-unit/.nodeexec.service"); err != nil {
				t.Errorf("%s: the installed unit is not v4-unit's own: %v %s", n.Host, err, out)
			}
			if got := env.ssh(t, i, "systemctl show -p Environment --value "+env.service); !strings.Contains(got, shippedEnv) {
				t.Errorf("%s: the running unit's environment is %q, want v4-unit's (%s)", n.Host, got, shippedEnv)
			}
		}
		env.expectServing(t, "v4-unit")
		env.expectRecorded(t, executor.StateRolledBack, "v4-unit", "v5")
	})

	t.Run("cleanup keeps current, previous and the newest good release by the node's history, not by file times", func(t *testing.T) {
		// History: v1 v2 v2(failed) v1(rollback) v5 v4-unit v3-broken(failed); current v4-unit, previous v5.
		// The third slot goes to v1, the newest good release after those two. The release directories'
		// times say otherwise: v3-broken (failed) newest, then v2, with v1 the oldest. v3-broken is the
		// newest failed release and no successful deploy followed it (the failed rollback to it is not
		// one): it stays for inspection, on top of the three.
		for i, n := range env.nodes {
			if f := env.record(t, i).Failed; f.Version != "v3-broken" {
				t.Errorf("%s: state.json's failed release = %+v, want v3-broken", n.Host, f)
			}
		}
		dir := "/opt/" + env.service + "/releases/"
		for i := range env.nodes {
			env.ssh(t, i, fmt.Sprintf("touch -d 2001-01-01 %[1]sv1; touch -d 2010-01-01 %[1]sv5; touch -d 2011-01-01 %[1]sv4-unit; "+
				"touch -d 2020-01-01 %[1]sv2; touch -d 2021-01-01 %[1]sv3-broken", dir))
		}
		res, err := env.exec.Cleanup(ctx, CleanupRequest{Service: env.service, Keep: 3, Nodes: env.nodes})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			// A cleanup's result is the node's status afterwards, last_error of the v3-broken deploy and all:
			// whether the cleanup itself went through is in its steps.
			for _, s := range r.Steps {
				if s.Failed {
					t.Errorf("%s: cleanup step %q failed: %s", r.Host, s.Name, s.Message)
				}
			}
			kept := strings.Fields(env.ssh(t, i, "ls -A "+dir))
			slices.Sort(kept)
			if strings.Join(kept, " ") != "v1 v3-broken v4-unit v5" {
				t.Errorf("%s: releases left %v, want [v1 v3-broken v4-unit v5]", r.Host, kept)
			}
			packages := strings.Fields(env.ssh(t, i, "cd /opt/"+env.service+"/.nodeexec && ls package-*"))
			slices.Sort(packages)
			if strings.Join(packages, " ") != "package-v1.tar.gz package-v3-broken.tar.gz package-v4-unit.tar.gz package-v5.tar.gz" {
				t.Errorf("%s: downloaded packages left %v, want those of v1, v3-broken, v4-unit and v5", r.Host, packages)
			}
			// Only the kept failure's evidence is left: the failed repair of v2 was followed by good deploys.
			if ev := env.ssh(t, i, "ls /opt/"+env.service+"/.nodeexec/failed"); ev != "v3-broken" {
				t.Errorf("%s: evidence left for %q, want v3-broken only", r.Host, ev)
			}
		}
		env.expectRecorded(t, executor.StateRolledBack, "v4-unit", "v5")
	})
}
