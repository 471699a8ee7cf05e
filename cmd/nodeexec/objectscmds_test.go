package main

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// scriptedCluster answers every apply with a created ConfigMap and a refused Deployment, every delete
// with one Service, and lists one pod. Real applies are proven by the e2e tests.
type scriptedCluster struct{ scriptedExecutor }

func (scriptedCluster) PlanManifest(_ context.Context, ns, _ string) ([]executor.Object, error) {
	return []executor.Object{{Kind: "ConfigMap", Namespace: ns, Name: "cfg"}, {Kind: "Deployment", Namespace: ns, Name: "web"}}, nil
}

func (scriptedCluster) ApplyManifest(_ context.Context, req executor.ApplyRequest) ([]executor.Object, error) {
	return []executor.Object{{Kind: "ConfigMap", Namespace: req.Namespace, Name: "cfg", Outcome: executor.ObjectCreated},
		{Kind: "Deployment", Namespace: req.Namespace, Name: "web", Outcome: executor.ObjectFailed, Error: "spec.replicas: Invalid value"}}, nil
}

func (scriptedCluster) DeleteSelected(_ context.Context, req executor.DeleteRequest) ([]executor.Object, error) {
	outcome := executor.ObjectDeleted
	if req.DryRun {
		outcome = executor.ObjectWouldDelete
	}
	return []executor.Object{{Kind: "Service", Namespace: req.Namespace, Name: "web", Outcome: outcome}}, nil
}

func (scriptedCluster) Pods(context.Context, string, string) ([]executor.Pod, error) {
	return []executor.Pod{{Name: "web-7d9f", Phase: "Running", Ready: true, Restarts: 1, Node: "kwok-2", Created: time.Now()}}, nil
}

func TestApplyDeleteAndPodsPrintTheirTablesAndExitByTheOutcome(t *testing.T) {
	st := storetest.Open(t)
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := server.New(server.Config{Executor: &scriptedExecutor{}, K8s: &scriptedCluster{}, Store: st, Logger: log})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Shutdown() })
	file := filepath.Join(t.TempDir(), "app.yaml")
	if err := os.WriteFile(file, []byte("kind: ConfigMap\n---\nkind: Deployment\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCaptured(t, []string{"apply", "--server", hs.URL, "-n", "shop", "-f", file})
	if code != 1 || !strings.Contains(out, "apply of shop: failed") || !strings.Contains(out, "ConfigMap   shop       cfg   created") ||
		!strings.Contains(out, "spec.replicas: Invalid value") {
		t.Errorf("apply with a refused object: exit %d\n%s", code, out)
	}
	code, out, _ = runCaptured(t, []string{"delete", "--server", hs.URL, "-n", "shop", "-l", "app=web", "--dry-run"})
	if code != 0 || !strings.Contains(out, "dry run: nothing was changed") || !strings.Contains(out, "would_delete") {
		t.Errorf("delete --dry-run: exit %d\n%s", code, out)
	}
	code, out, _ = runCaptured(t, []string{"pods", "--server", hs.URL, "-n", "shop", "-l", "app=web"})
	if code != 0 || !strings.Contains(out, "NAME      PHASE    READY  RESTARTS  NODE    CREATED") || !strings.Contains(out, "web-7d9f  Running  true   1         kwok-2") {
		t.Errorf("pods: exit %d\n%s", code, out)
	}
	code, out, _ = runCaptured(t, []string{"pods", "--server", hs.URL, "-n", "shop", "--json"})
	if code != 0 || !strings.Contains(out, `"pods":[{"name":"web-7d9f"`) {
		t.Errorf("pods --json: exit %d\n%s", code, out)
	}
}
