package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/engine"
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
