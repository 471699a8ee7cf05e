package main

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// historyCluster has one Deployment, shop/web, at revision 2 of two; a rollback to revision 1 takes
// it to v1. The real history is proven by the e2e tests.
type historyCluster struct{ scriptedExecutor }

func (historyCluster) Revisions(context.Context, executor.Workload) ([]executor.Revision, error) {
	return []executor.Revision{
		{Revision: 2, Image: "web:v2", Version: "v2", Created: time.Now(), Current: true},
		{Revision: 1, Image: "web:v1", Version: "v1", ChangeCause: "first deploy", Created: time.Now()},
	}, nil
}

func (historyCluster) Rollback(_ context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	if req.ToRevision != 1 || req.ToVersion != "" {
		return nil, fmt.Errorf("asked for revision %d, version %q", req.ToRevision, req.ToVersion)
	}
	return []executor.NodeResult{{NodeStatus: executor.NodeStatus{Host: req.Workloads[0].Host(), Service: req.Service,
		CurrentVersion: "v1", Platform: executor.PlatformK8s, State: executor.StateRolledBack}, Changed: true}}, nil
}

func TestHistoryPrintsTheRevisionsAndRollbackTakesAWorkloadToOne(t *testing.T) {
	st := storetest.Open(t)
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := server.New(server.Config{Executor: &scriptedExecutor{}, K8s: &historyCluster{}, Store: st, Logger: log})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); srv.Shutdown() })

	code, out, _ := runCaptured(t, []string{"history", "--server", hs.URL, "-w", "shop/Deployment/web"})
	if code != 0 || !strings.Contains(out, "REVISION  IMAGE   CHANGE-CAUSE  CREATED") || !strings.Contains(out, "1         web:v1  first deploy") ||
		!strings.Contains(out, "2         web:v2  -") {
		t.Errorf("history: exit %d\n%s", code, out)
	}
	code, _, errOut := runCaptured(t, []string{"history", "--server", hs.URL, "-w", "shop/web"})
	if code == 0 || !strings.Contains(errOut, "namespace/Kind/name") {
		t.Errorf("history of a workload that is not namespace/Kind/name: exit %d\n%s", code, errOut)
	}
	code, out, errOut = runCaptured(t, []string{"rollback", "--server", hs.URL, "--workload", "shop/Deployment/web", "--to-revision", "99", "--service", "web"})
	if code == 0 || !strings.Contains(out+errOut, "no revision 99 (there are [2 1])") {
		t.Errorf("rollback to revision 99: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCaptured(t, []string{"rollback", "--server", hs.URL, "--workload", "shop/Deployment/web", "--to-revision", "1", "--service", "web"})
	if code != 0 || !strings.Contains(out, "rolled_back") {
		t.Errorf("rollback to revision 1: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut = runCaptured(t, []string{"rollback", "--server", hs.URL, "--workload", "shop/Deployment/web", "--service", "web"})
	if code == 0 || !strings.Contains(errOut, "to-revision") {
		t.Errorf("rollback --workload without --to-revision: exit %d\n%s", code, errOut)
	}
}
