package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/drift"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// handRun stands in for status.yml: 10.0.0.1 runs v4 (deployed by hand), 10.0.0.2 what its record says.
type handRun struct{}

func (handRun) ServiceStatus(_ context.Context, req executor.StatusRequest) ([]executor.ServiceStatus, error) {
	var out []executor.ServiceStatus
	for _, n := range req.Nodes {
		v := "v3"
		if n.Host == "10.0.0.1" {
			v = "v4"
		}
		out = append(out, executor.ServiceStatus{Host: n.Host, Service: req.Service, Running: true, ActiveState: "active",
			CurrentVersion: v, PrevVersion: "v3", RunningVersion: v, State: executor.StateSuccess})
	}
	return out, nil
}

// nodeexec drift runs a pass, prints each node as it is read and then the pass; nodes --drifted lists
// the node found drifted; --service must be a service name (exit 2).
func TestDriftRunsAPassAndNodesListsTheDrifted(t *testing.T) {
	defer func(d time.Duration) { cleanupPoll = d }(cleanupPoll)
	cleanupPoll = 10 * time.Millisecond
	ctx := context.Background()
	st := storetest.Open(t)
	for _, h := range []string{"10.0.0.1", "10.0.0.2"} {
		if _, err := st.Claim(ctx, "demo", h, executor.PlatformPhysical, "d-1", "v3"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Finish(ctx, "d-1", executor.NodeStatus{Service: "demo", Host: h, State: executor.StateSuccess, CurrentVersion: "v3", PrevVersion: "v2"}); err != nil {
			t.Fatal(err)
		}
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	runner := drift.New(drift.Config{Store: st, Nodes: handRun{}, Logger: log, Holder: "replica-a"})
	srv := server.New(server.Config{Executor: &scriptedExecutor{}, Store: st, Logger: log, Drift: runner})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		runner.Stop()
		srv.Shutdown()
	})

	code, out, errOut := runCaptured(t, []string{"drift", "--server", hs.URL, "--service", "demo"})
	if code != 0 {
		t.Fatalf("drift: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"demo 10.0.0.1 read: version drift (found) v3 -> v4", "demo 10.0.0.2 read: no drift", "(api, on replica-a): success",
		"SERVICE  NODE      STATE  DRIFT"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCaptured(t, []string{"nodes", "--server", hs.URL, "--drifted", "--json"})
	var list struct{ Nodes []map[string]any } // the API's object, not a bare array
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 || len(list.Nodes) != 1 || list.Nodes[0]["host"] != "10.0.0.1" || list.Nodes[0]["current_version"] != "v4" {
		t.Errorf("nodes --drifted: exit %d %v\n%s", code, err, out)
	}
	if code, _, errOut := runCaptured(t, []string{"drift", "--server", hs.URL, "--service", "no such"}); code != 2 || !strings.Contains(errOut, "service") {
		t.Errorf("a bad --service: exit %d %s", code, errOut)
	}
	var pass store.DriftPass
	code, out, _ = runCaptured(t, []string{"drift", "--server", hs.URL, "--json"})
	if err := json.Unmarshal([]byte(out), &pass); err != nil || code != 0 || pass.Nodes[0].Change != store.DriftCleared {
		t.Errorf("a second pass --json: exit %d %v %+v", code, err, pass)
	}
}
