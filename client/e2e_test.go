//go:build e2e

package client_test

// The Plan Layer's flow through the client against the real executor: nodeexec's API served in the
// test (internal/testbed/testapi: the embedded database, ansible-playbook over SSH to the test hosts of
// `hack/testhosts up 3`). Run with NODEEXEC_E2E=1 go test -tags e2e ./client/ (or `make e2e`).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/internal/testbed"
	"github.com/nodeexec/nodeexec/internal/testbed/testapi"
)

// unreachable is a node in the batch that no one answers for (TEST-NET-1, RFC 5737): the batch fails
// on it while the real hosts move to the new version, so the Plan Layer's rollback has real work.
const unreachable = "192.0.2.1"

// The Plan Layer releases a batch, sees it fail, rolls it back automatically, and reads the status:
// every real host is back on the version it ran, running and healthy.
func TestPlanLayerRollsBackAFailedBatchOnTheTestHosts(t *testing.T) {
	if os.Getenv("NODEEXEC_E2E") != "1" {
		t.Skip("set NODEEXEC_E2E=1 and run `hack/testhosts up 3` (or `make e2e`)")
	}
	hosts, err := testbed.LoadHosts()
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts.Addrs) < 2 {
		t.Skipf("want 2 test hosts, have %d (`hack/testhosts up 3`)", len(hosts.Addrs))
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	srv := testapi.Start(t, hosts, repo)
	svc := testbed.NewService(t, hosts, "client", map[string]bool{"v1": false, "v2": false})
	up := hosts.Addrs[:2]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	release := func(version string, nodes []string) api.DeployRequest {
		return api.DeployRequest{Service: svc.Name, Version: version, Platform: api.PlatformPhysical, Nodes: nodes,
			PackageURL: svc.URL(version), SHA256: svc.Releases[version].SHA256,
			Health: &api.HealthCheck{HTTPPort: svc.Port, HTTPPath: "/health", Retries: 5, DelaySeconds: 1},
			Unit:   api.Unit{Args: fmt.Sprintf("-addr :%d", svc.Port)}}
	}
	wait := func(acc *api.Accepted, err error) *api.Deployment {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.Wait(ctx, acc.ID)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := wait(c.Deploy(ctx, release("v1", up))); d.State != api.StateSuccess {
		t.Fatalf("v1 = %s (%s)", d.State, d.Error)
	}

	// The batch: v2 to the real hosts and one nobody answers for.
	d := wait(c.Deploy(ctx, release("v2", append(append([]string{}, up...), unreachable))))
	if d.State != api.StateFailed {
		t.Fatalf("the batch = %s, want failed on %s", d.State, unreachable)
	}
	for _, n := range d.Nodes {
		if n.Host != unreachable && (n.State != api.StateSuccess || n.CurrentVersion != "v2") {
			t.Errorf("%s: %s on %q (%s), want success on v2", n.Host, n.State, n.CurrentVersion, n.LastError)
		}
	}
	rb := wait(c.Rollback(ctx, d.ID, api.RollbackRequest{RequestedBy: "plan-layer"}))
	if rb.State != api.StateRolledBack || len(rb.Nodes) != len(up) {
		t.Fatalf("the rollback = %s with %d nodes (%s), want rolled_back on the %d real hosts", rb.State, len(rb.Nodes), rb.Error, len(up))
	}

	info, err := c.Info(ctx, d.ID)
	if err != nil || info.Status != api.StatusFailed {
		t.Errorf("Info of the batch = %+v, %v", info, err)
	}
	for _, host := range up {
		n, err := c.Node(ctx, svc.Name, host)
		if err != nil || n.CurrentVersion != "v1" || n.State != api.StateRolledBack {
			t.Errorf("node %s = %+v, %v; want rolled_back to v1", host, n, err)
		}
	}
	h, err := c.Health(ctx, rb.ID)
	if err != nil || !h.Healthy {
		t.Errorf("the rolled-back service's health = %+v, %v", h, err)
	}
	logs, err := c.Logs(ctx, d.ID, client.LogsOptions{PodName: unreachable, Source: api.LogSourceEvents})
	if err != nil || len(logs.Logs) == 0 {
		t.Errorf("the unreachable node's events = %+v, %v", logs, err)
	}
	for _, l := range logs.Logs {
		if l.PodName != unreachable {
			t.Errorf("the unreachable node's events hold a line of %s: %+v", l.PodName, l)
		}
	}
}
