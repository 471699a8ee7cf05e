package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/server"
)

// objectsCluster applies every manifest as one ConfigMap "cfg" and counts the applies; it lists one
// pod. Real applies are proven by the e2e tests.
type objectsCluster struct {
	fleetExecutor
	applies atomic.Int32
}

func (k *objectsCluster) PlanManifest(_ context.Context, ns, _ string) ([]executor.Object, error) {
	return []executor.Object{{Kind: "ConfigMap", Namespace: ns, Name: "cfg", Outcome: executor.ObjectPending}}, nil
}

func (k *objectsCluster) ApplyManifest(_ context.Context, req executor.ApplyRequest) ([]executor.Object, error) {
	k.applies.Add(1)
	return []executor.Object{{Kind: "ConfigMap", Namespace: req.Namespace, Name: "cfg", Outcome: executor.ObjectCreated}}, nil
}

func (k *objectsCluster) DeleteSelected(_ context.Context, req executor.DeleteRequest) ([]executor.Object, error) {
	return []executor.Object{{Kind: "ConfigMap", Namespace: req.Namespace, Name: "cfg", Outcome: executor.ObjectWouldDelete}}, nil
}

func (k *objectsCluster) Pods(context.Context, string, string) ([]executor.Pod, error) {
	return []executor.Pod{{Name: "web-1", Phase: "Running", Ready: true, Node: "kwok-1", Created: time.Unix(0, 0)}}, nil
}

// An apply whose answer is lost is sent again with the key the client gave it: the cluster sees one
// apply, and the retry answers the first record.
func TestAnApplyRetriedAfterADroppedAnswerAppliesOnce(t *testing.T) {
	k := &objectsCluster{}
	ts, err := startServerWith(server.Config{Executor: &fleetExecutor{}, K8s: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Close)
	var posts atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && posts.Add(1) == 1 {
			ts.srv.Handler().ServeHTTP(httptest.NewRecorder(), r)
			panic(http.ErrAbortHandler) // the connection drops with no answer
		}
		ts.srv.Handler().ServeHTTP(w, r)
	}))
	defer front.Close()
	c, ctx := newClient(t, front.URL, client.WithRetry(retry.Policy{MaxRetries: 2, InitialDelay: 10 * time.Millisecond, Factor: 1})), testCtx(t)
	d, err := c.Apply(ctx, api.ApplyRequest{Namespace: "shop", Manifest: "kind: ConfigMap"})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if posts.Load() != 2 || k.applies.Load() != 1 {
		t.Errorf("%d POSTs and %d applies, want the dropped one and its retry, and one apply", posts.Load(), k.applies.Load())
	}
	if d.Kind != api.KindApply || d.State != "success" || len(d.Objects) != 1 || d.Objects[0].Outcome != api.ObjectCreated || d.IdempotencyKey == "" {
		t.Errorf("record = %+v", d)
	}

	del, err := c.DeleteResources(ctx, api.DeleteRequest{Namespace: "shop", Selector: "app=web", DryRun: true})
	if err != nil || !del.DryRun || del.Kind != api.KindDelete || del.Objects[0].Outcome != api.ObjectWouldDelete {
		t.Errorf("DeleteResources = %+v, %v", del, err)
	}
	_, err = c.DeleteResources(ctx, api.DeleteRequest{Namespace: "shop"})
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Field != "selector" {
		t.Errorf("a delete without a selector = %v, want a 400 on selector", err)
	}
	pods, err := c.PodStatus(ctx, "shop", "app=web")
	if err != nil || len(pods.Pods) != 1 || pods.Pods[0].Node != "kwok-1" || pods.Selector != "app=web" {
		t.Errorf("PodStatus = %+v, %v", pods, err)
	}
}
