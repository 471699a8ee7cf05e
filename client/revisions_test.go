package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/server"
)

// historyCluster has one Deployment, prod/web, at revision 2 of two, with containers app and sidecar;
// a rollback takes it to v1. The real history is proven by the e2e tests.
type historyCluster struct{ fleetExecutor }

func (k *historyCluster) Revisions(_ context.Context, w executor.Workload) ([]executor.Revision, error) {
	image := "web"
	if w.Container == "sidecar" {
		image = "proxy"
	}
	return []executor.Revision{
		{Revision: 2, Image: image + ":v2", Version: "v2", Created: time.Unix(200, 0).UTC(), Current: true},
		{Revision: 1, Image: image + ":v1", Version: "v1", Created: time.Unix(100, 0).UTC()},
	}, nil
}

func (k *historyCluster) Rollback(_ context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	if req.ToRevision != 1 || req.ToVersion != "" {
		return nil, fmt.Errorf("asked for revision %d, version %q", req.ToRevision, req.ToVersion)
	}
	return []executor.NodeResult{{NodeStatus: executor.NodeStatus{Host: req.Workloads[0].Host(), Service: req.Service,
		CurrentVersion: "v1", Platform: executor.PlatformK8s, State: executor.StateRolledBack}, Changed: true}}, nil
}

func TestRevisionsAndARollbackToOneGoThroughTheClient(t *testing.T) {
	ts, err := startServerWith(server.Config{Executor: &fleetExecutor{}, K8s: &historyCluster{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Close)
	c, ctx := newClient(t, ts.URL), testCtx(t)
	web := api.Workload{Namespace: "prod", Kind: "Deployment", Name: "web"}

	list, err := c.Revisions(ctx, api.Workload{Namespace: "prod", Kind: "Deployment", Name: "web", Container: "sidecar"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Revisions) != 2 || list.Revisions[0].Image != "proxy:v2" || !list.Revisions[0].Current || list.Workload.Container != "sidecar" {
		t.Errorf("Revisions = %+v, want the sidecar's two, the newest current", list)
	}

	_, err = c.RollbackWorkload(ctx, web, api.WorkloadRollbackRequest{Service: "web", ToRevision: 99})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict || apiErr.Code != "no_such_revision" {
		t.Errorf("a rollback to revision 99 = %v, want 409 no_such_revision", err)
	}

	acc, err := c.RollbackWorkload(ctx, web, api.WorkloadRollbackRequest{Service: "web", ToRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Wait(ctx, acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != api.KindRollback || d.State != api.StateRolledBack || d.Version != "v1" || d.IdempotencyKey == "" {
		t.Errorf("rollback = %+v, want a keyed rollback to v1, rolled_back", d)
	}
}
