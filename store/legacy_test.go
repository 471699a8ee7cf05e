package store

import (
	"context"
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/nodeexec/nodeexec/executor"
)

// Documents as the code before the tagged document wrote them (bson.MarshalExtJSON of what it
// recorded for each kind): one "request" for every kind, a scale's "replicas" beside it.
var oldForm = []string{
	`{"_id":"d-1","kind":"deploy","service":"demo","version":"v2","platform":"physical",` +
		`"request":{"deploymentid":"d-1","service":"demo","version":"v2","nodes":[{"host":"h1","address":"10.0.0.1","port":0}],` +
		`"package":{"url":"http://p/demo.tgz","sha256":"ab"},"health":{"httpport":8080,"httppath":"/health","httpstatus":0,"tcpport":0,"retries":0,"delay":0},` +
		`"unit":{"exec":"","args":"","env":null},"strategy":{"type":"","maxsurge":"","maxunavailable":"","service":"","verifyseconds":0}},` +
		`"batch":{"size":2,"stop_on_failure":false},"state":"success",` +
		`"nodes":[{"host":"h1","state":"success","target_version":"v2","from_version":"v1","current_version":"v2","changed":true}],` +
		`"created_at":{"$date":"2026-01-01T00:00:04Z"}}`,
	`{"_id":"d-2","kind":"restart","service":"demo","version":"","platform":"physical",` +
		`"request":{"deploymentid":"d-2","service":"demo","version":"","nodes":[{"host":"h1","address":"","port":0}],` +
		`"package":{"url":"","sha256":""},"health":{"httpport":8080,"httppath":"/health","httpstatus":0,"tcpport":0,"retries":0,"delay":0},` +
		`"unit":{"exec":"","args":"","env":null},"strategy":{"type":"","maxsurge":"","maxunavailable":"","service":"","verifyseconds":0}},` +
		`"batch":{"size":0,"stop_on_failure":false},"state":"success",` +
		`"nodes":[{"host":"h1","state":"success","target_version":"v2","from_version":"v2","changed":false}],` +
		`"created_at":{"$date":"2026-01-01T00:00:03Z"}}`,
	`{"_id":"d-3","kind":"scale","service":"web","version":"","platform":"k8s",` +
		`"request":{"deploymentid":"d-3","service":"web","version":"","nodes":null,"package":{"url":"","sha256":""},` +
		`"health":{"httpport":0,"httppath":"","httpstatus":0,"tcpport":0,"retries":0,"delay":0},"unit":{"exec":"","args":"","env":null},` +
		`"workloads":[{"namespace":"prod","kind":"Deployment","name":"web","container":""}],` +
		`"strategy":{"type":"","maxsurge":"","maxunavailable":"","service":"","verifyseconds":0}},` +
		`"batch":{"size":0,"stop_on_failure":false},"replicas":3,"state":"success",` +
		`"nodes":[{"host":"prod/web","state":"success","target_version":"","changed":false}],` +
		`"created_at":{"$date":"2026-01-01T00:00:02Z"}}`,
	`{"_id":"d-4","kind":"rollback","rollback_of":"d-1","service":"demo","version":"v2","platform":"physical",` +
		`"request":{"deploymentid":"d-4","service":"demo","version":"","nodes":[{"host":"h1","address":"10.0.0.1","port":0}],` +
		`"package":{"url":"","sha256":""},"health":{"httpport":8080,"httppath":"/health","httpstatus":0,"tcpport":0,"retries":0,"delay":0},` +
		`"unit":{"exec":"","args":"","env":null},"strategy":{"type":"","maxsurge":"","maxunavailable":"","service":"","verifyseconds":0}},` +
		`"batch":{"size":0,"stop_on_failure":false},"state":"deploying",` +
		`"nodes":[{"host":"h1","state":"deploying","target_version":"v1","changed":false}],` +
		`"created_at":{"$date":"2026-01-01T00:00:01Z"}}`,
}

// A deployment recorded in the old form reads as if it had been recorded in the tagged one: its
// request lands in the field of its kind (a scale's replicas in its scale request), whether it is
// read alone, listed, or found in flight at start.
func TestADeploymentRecordedInTheOldFormReadsIntoTheFieldOfItsKind(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	for _, doc := range oldForm {
		var raw bson.D
		if err := bson.UnmarshalExtJSON([]byte(doc), false, &raw); err != nil {
			t.Fatal(err)
		}
		if _, err := s.deployments().InsertOne(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	h1 := []executor.Node{{Host: "h1", Address: "10.0.0.1"}}
	health := executor.HealthCheck{HTTPPort: 8080, HTTPPath: "/health"}
	want := map[string]Deployment{
		"d-1": {Deploy: &executor.DeployRequest{
			DeploymentID:   "d-1",
			Service:        "demo",
			Version:        "v2",
			PhysicalDeploy: executor.PhysicalDeploy{Nodes: h1, Package: executor.Package{URL: "http://p/demo.tgz", SHA256: "ab"}, Health: health},
		}},
		"d-2": {Restart: &executor.RestartRequest{DeploymentID: "d-2", Service: "demo", Nodes: []executor.Node{{Host: "h1"}}, Health: health}},
		"d-3": {Scale: &executor.ScaleRequest{DeploymentID: "d-3", Service: "web", Replicas: 3,
			Workloads: []executor.Workload{{Namespace: "prod", Kind: "Deployment", Name: "web"}}}},
		// The old code left a rollback's request Version empty: each node's target is its TargetVersion.
		"d-4": {Rollback: &executor.RollbackRequest{DeploymentID: "d-4", Service: "demo", ToVersion: "", PhysicalRollback: executor.PhysicalRollback{Nodes: h1, Health: health}}},
	}
	check := func(how string, d Deployment) {
		t.Helper()
		w, ok := want[d.ID]
		if !ok {
			t.Errorf("%s: unexpected deployment %s", how, d.ID)
			return
		}
		got := []any{d.Deploy, d.Rollback, d.Scale, d.Restart}
		for i, exp := range []any{w.Deploy, w.Rollback, w.Scale, w.Restart} {
			if !reflect.DeepEqual(got[i], exp) {
				t.Errorf("%s %s (%s): request %d = %+v, want %+v", how, d.ID, d.Kind, i, got[i], exp)
			}
		}
		if len(d.Nodes) != 1 || d.CreatedAt.IsZero() || d.Service == "" {
			t.Errorf("%s %s: the fields beside the request were not read: %+v", how, d.ID, d)
		}
	}
	for id := range want {
		d, err := s.Deployment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		check("read", *d)
	}
	page, _, err := s.ListDeployments(ctx, DeploymentFilter{Limit: 10})
	if err != nil || len(page) != len(want) {
		t.Fatalf("list = %d deployments, %v", len(page), err)
	}
	for _, d := range page {
		check("listed", d)
	}
	if err := s.indexInFlight(ctx); err != nil { // as the start of the nodeexec that finds them does
		t.Fatal(err)
	}
	inFlight, err := s.InFlight(ctx)
	if err != nil || len(inFlight) != 1 || inFlight[0].ID != "d-4" {
		t.Fatalf("in flight = %+v, %v", inFlight, err)
	}
	check("in flight", inFlight[0])

	// What the engine reads of every kind comes through as well.
	d1, _ := s.Deployment(ctx, "d-1")
	d3, _ := s.Deployment(ctx, "d-3")
	if d1.Targets().Address("h1") != "10.0.0.1" || d1.Health() != health || d3.Targets().Hosts()[0] != "prod/web" {
		t.Errorf("targets and health of old documents: %+v %+v, %+v", d1.Targets(), d1.Health(), d3.Targets())
	}
	// An old document in flight is ended in the old form's place: its state is updated, its request kept.
	d4 := inFlight[0]
	now := time.Now().UTC()
	d4.State, d4.FinishedAt = executor.StateRolledBack, &now
	if err := s.UpdateDeployment(ctx, &d4); err != nil {
		t.Fatal(err)
	}
	again, err := s.Deployment(ctx, "d-4")
	if err != nil || again.State != executor.StateRolledBack {
		t.Fatalf("ended old document = %+v, %v", again, err)
	}
	check("ended", *again)
}
