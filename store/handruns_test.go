package store

import (
	"context"
	"errors"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// A hand run is recorded on a node as a deployment's end would be, creates a node nodeexec did not
// know, and never touches a node a deployment holds.
func TestRecordHandRunUpdatesFreeNodesOnly(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	landed(t, s, "api", "10.0.0.1", "v1")
	st := func(host string) executor.NodeStatus {
		return executor.NodeStatus{Host: host, Service: "api", Platform: executor.PlatformPhysical, CurrentVersion: "v2", PrevVersion: "v1",
			State: executor.StateSuccess}
	}
	before, err := s.RecordHandRun(ctx, "d-hand-1", st("10.0.0.1"))
	if err != nil || before == nil || before.CurrentVersion != "v1" {
		t.Fatalf("record on a known node: %v %v", before, err)
	}
	n, _ := s.Node(ctx, "api", "10.0.0.1")
	if n.CurrentVersion != "v2" || n.PrevVersion != "v1" || n.State != executor.StateSuccess || n.DeploymentID != "d-hand-1" {
		t.Errorf("known node = %+v", n)
	}
	if before, err := s.RecordHandRun(ctx, "d-hand-1", st("10.0.0.2")); err != nil || before != nil {
		t.Fatalf("record on a new node: %v %v", before, err)
	}
	if n, err := s.Node(ctx, "api", "10.0.0.2"); err != nil || n.CurrentVersion != "v2" || n.CreatedAt.IsZero() {
		t.Errorf("new node = %+v %v", n, err)
	}
	if _, err := s.Claim(ctx, "api", "10.0.0.3", executor.PlatformPhysical, "d-held", "v9"); err != nil {
		t.Fatal(err)
	}
	var busy *BusyError
	if _, err := s.RecordHandRun(ctx, "d-hand-1", st("10.0.0.3")); !errors.As(err, &busy) || busy.DeploymentID != "d-held" {
		t.Fatalf("record on a held node: %v", err)
	}
	if n, _ := s.Node(ctx, "api", "10.0.0.3"); n.State != executor.StateDeploying || n.DeploymentID != "d-held" || n.DeployingVersion != "v9" {
		t.Errorf("held node = %+v", n)
	}
}
