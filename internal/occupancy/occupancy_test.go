package occupancy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/ansible"
)

func readFile(t *testing.T, path string) ([]Interval, []Line) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	closed, open, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return closed, open
}

func nodes(hosts ...string) []executor.Node {
	out := make([]executor.Node, len(hosts))
	for i, h := range hosts {
		out[i] = executor.Node{Host: h}
	}
	return out
}

// Two executors (as two processes would) writing one file from many goroutines: every line is whole,
// every start has its end, and each run held its node at least the hold.
func TestLinesOfSeveralWritersNeverInterleaveAndEachRunHoldsItsNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "occupancy")
	hold := 5 * time.Millisecond
	var execs []*Executor
	for range 2 {
		e, err := Open(path, hold)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Close() })
		execs = append(execs, e)
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := execs[i%2]
			host := fmt.Sprintf("h%02d", i)
			res, err := e.Deploy(context.Background(), executor.DeployRequest{DeploymentID: fmt.Sprintf("d-%d", i), Service: "svc",
				Version: "v1", PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodes(host, host+"-b")}})
			if err != nil || len(res) != 2 || res[0].State != executor.StateSuccess || res[0].CurrentVersion != "v1" {
				t.Errorf("deploy %d: %v %+v", i, err, res)
			}
		}()
	}
	wg.Wait()
	closed, open := readFile(t, path)
	if len(closed) != 80 || len(open) != 0 {
		t.Fatalf("%d intervals, %d open; want 80 and 0", len(closed), len(open))
	}
	for _, iv := range closed {
		if iv.End-iv.Start < hold.Nanoseconds() || iv.PID != os.Getpid() || iv.Kind != "deploy" || !strings.HasPrefix(iv.Deployment, "d-") {
			t.Errorf("interval %+v: want a deploy of this process held at least %s", iv, hold)
		}
	}
	if o := Overlaps(closed); len(o) != 0 {
		t.Errorf("distinct nodes overlap: %v", o)
	}
}

func TestStatusIsWhatTheLastRunSetAndRollbackGoesBack(t *testing.T) {
	e, err := Open(filepath.Join(t.TempDir(), "occupancy"), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	status := func() executor.NodeStatus {
		res, err := e.Status(ctx, executor.StatusRequest{Service: "svc", Nodes: nodes("h1")})
		if err != nil || len(res) != 1 {
			t.Fatalf("status: %v %v", err, res)
		}
		return res[0].NodeStatus
	}
	if st := status(); st.State != executor.StatePending || st.CurrentVersion != "" {
		t.Errorf("before any deploy: %+v", st)
	}
	for _, v := range []string{"v1", "v2"} {
		if _, err := e.Deploy(ctx, executor.DeployRequest{DeploymentID: "d-" + v, Service: "svc", Version: v,
			PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodes("h1")}}); err != nil {
			t.Fatal(err)
		}
	}
	if st := status(); st.CurrentVersion != "v2" || st.PrevVersion != "v1" || st.State != executor.StateSuccess {
		t.Errorf("after v1, v2: %+v", st)
	}
	res, err := e.Rollback(ctx, executor.RollbackRequest{DeploymentID: "d-rb", Service: "svc", PhysicalRollback: executor.PhysicalRollback{Nodes: nodes("h1")}})
	if err != nil || res[0].State != executor.StateRolledBack || res[0].CurrentVersion != "v1" {
		t.Errorf("rollback: %v %+v", err, res)
	}
	if st := status(); st.CurrentVersion != "v1" || st.PrevVersion != "v2" {
		t.Errorf("after the rollback: %+v", st)
	}
	clean, err := e.Cleanup(ctx, ansible.CleanupRequest{ID: "c-1", Service: "svc", Keep: 2, Nodes: nodes("h1")})
	if err != nil || len(clean) != 1 || clean[0].Error != "" || len(clean[0].Kept) != 1 || clean[0].Kept[0] != "v1" {
		t.Errorf("cleanup: %v %+v", err, clean)
	}
}

// A cancelled run stops holding at once, records its end, fails its nodes and changes nothing.
func TestACancelledRunEndsItsHoldAndChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "occupancy")
	e, err := Open(path, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan []executor.NodeResult)
	go func() {
		res, _ := e.Deploy(ctx, executor.DeployRequest{DeploymentID: "d-1", Service: "svc", Version: "v1",
			PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodes("h1")}})
		done <- res
	}()
	cancel(errors.New("operator cancelled"))
	select {
	case res := <-done:
		if res[0].State != executor.StateFailed || !strings.Contains(res[0].LastError, "operator cancelled") {
			t.Errorf("cancelled deploy: %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deploy still holds its node after its context was cancelled")
	}
	closed, open := readFile(t, path)
	if len(closed) != 1 || len(open) != 0 {
		t.Errorf("%d intervals, %d open: want the cancelled run's one, closed", len(closed), len(open))
	}
	if res, _ := e.Status(context.Background(), executor.StatusRequest{Service: "svc", Nodes: nodes("h1")}); res[0].CurrentVersion != "" {
		t.Errorf("a cancelled deploy set the version: %+v", res)
	}
}

func TestOpenRefusesANegativeHoldAndAFileItCannotCreate(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "o"), -time.Second); err == nil {
		t.Error("a negative hold was accepted")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir"), 0); err == nil {
		t.Error("a file in a missing directory was accepted")
	}
}
