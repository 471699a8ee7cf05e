package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/store"
)

// A cancel asked of a replica that does not run the deployment reaches, through the database, the
// replica that does, which cancels it at its next heartbeat.
func TestACancelAskedOfAnotherReplicaStopsTheRun(t *testing.T) {
	short := withEngine(func(c *engine.Config) { c.Replica = engine.ReplicaConfig{Name: "a", Lease: 600 * time.Millisecond} })
	a := newFixture(t, short)
	a.srv.WatchReplicas()
	log := logrus.New()
	log.SetOutput(testWriter{t})
	b := New(Config{Executor: &gatedExecutor{gate: make(chan struct{}), started: make(chan string, 1)}, Store: a.st, Logger: log,
		Replica: engine.ReplicaConfig{Name: "b"}})
	bHTTP := httptest.NewServer(b.Handler())
	t.Cleanup(func() { bHTTP.Close(); b.Shutdown() })

	_, running := a.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	id := running["id"].(string)
	<-a.exec.started
	resp, err := http.Post(bHTTP.URL+"/api/v1/deployments/"+id+"/cancel", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel on replica b of a's deployment = %d, want 202", resp.StatusCode)
	}
	end := a.waitState(t, id)
	if end["state"] != "failed" || !strings.Contains(end["error"].(string), "cancelled on request") {
		t.Errorf("the deployment after a cancel asked of b = %v", end)
	}
}

// GET /api/v1/replicas lists the replicas by their heartbeats: which answers, which is alive, and the
// deployment says which replica runs it.
func TestTheReplicasAreListedByTheirHeartbeats(t *testing.T) {
	a := newFixture(t, withEngine(func(c *engine.Config) { c.Replica = engine.ReplicaConfig{Name: "a", Lease: time.Minute} }))
	b := New(Config{Executor: &gatedExecutor{gate: make(chan struct{}), started: make(chan string, 1)}, Store: a.st, Logger: logrus.New(),
		Replica: engine.ReplicaConfig{Name: "b", Lease: time.Minute}})
	t.Cleanup(b.Shutdown)
	ctx := context.Background()
	for _, s := range []*Server{a.srv, b} {
		if err := s.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().UTC().Add(-time.Hour)
	if err := a.st.Heartbeat(ctx, store.Replica{Name: "c", Incarnation: "1", StartedAt: past, HeartbeatAt: past}); err != nil {
		t.Fatal(err)
	}
	code, out := a.do(t, "GET", "/api/v1/replicas", "")
	if code != http.StatusOK || out["lease_seconds"] != 60.0 {
		t.Fatalf("GET /api/v1/replicas = %d %v", code, out)
	}
	var seen []string
	for _, r := range out["replicas"].([]any) {
		r := r.(map[string]any)
		seen = append(seen, fmt.Sprintf("%s alive=%v this=%v", r["name"], r["alive"], r["this"]))
	}
	if want := []string{"a alive=true this=true", "b alive=true this=false", "c alive=false this=false"}; !slices.Equal(seen, want) {
		t.Errorf("replicas = %v, want %v", seen, want)
	}
	_, accepted := a.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	<-a.exec.started
	_, d := a.do(t, "GET", "/api/v1/deployments/"+accepted["id"].(string), "")
	if r, _ := d["replica"].(string); !strings.HasPrefix(r, "a@") {
		t.Errorf("the deployment's replica = %q, want a@<incarnation>", r)
	}
}
