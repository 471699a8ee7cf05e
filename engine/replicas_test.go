package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// inFlight records a deployment some replica runs (owner), holding its nodes, as a run leaves it.
func inFlight(t *testing.T, records *store.Store, id, owner string, hosts ...string) {
	t.Helper()
	ctx := context.Background()
	d := &store.Deployment{ID: id, Kind: store.KindDeploy, Service: "demo", Version: "v2", Platform: executor.PlatformPhysical,
		State: executor.StateDeploying, CreatedAt: time.Now().UTC(), Deploy: &executor.DeployRequest{}, Owner: owner}
	for _, h := range hosts {
		d.Nodes = append(d.Nodes, store.DeploymentNode{Host: h, State: executor.StateDeploying, TargetVersion: "v2", FromVersion: "v1"})
		d.Deploy.Nodes = append(d.Deploy.Nodes, executor.Node{Host: h})
	}
	if _, err := records.ClaimAll(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, _, err := records.CreateDeployment(ctx, d); err != nil {
		t.Fatal(err)
	}
}

// A live replica's deployment is left to it; once its heartbeat is older than the lease, the replicas
// that notice at once take it over once between them, read its nodes and end it. What an earlier
// incarnation of a replica left is finished at its start, without waiting for the lease.
func TestADeadReplicasDeploymentIsTakenOverOnceAndALiveOnesIsLeftAlone(t *testing.T) {
	records := storetest.OpenReplicas(t, 1)[0]
	ctx := context.Background()
	now := time.Now().UTC()
	if err := records.Heartbeat(ctx, store.Replica{Name: "a", Incarnation: "1", StartedAt: now, HeartbeatAt: now}); err != nil {
		t.Fatal(err)
	}
	inFlight(t, records, "d-of-a", "a@1", "10.0.0.1", "10.0.0.2")
	inFlight(t, records, "d-of-b-before", "b@0", "10.0.0.3")

	engines := make([]*Engine, 3)
	execs := make([]*recoveringExecutor, 3)
	for i := range engines {
		execs[i] = &recoveringExecutor{runs: map[string]string{"10.0.0.1": "v2", "10.0.0.2": "v2", "10.0.0.3": "v2"}}
		engines[i] = New(Config{Executor: execs[i], Store: records, Logger: quietLogger(), Replica: ReplicaConfig{Name: fmt.Sprintf("b%d", i), Lease: time.Minute}})
		defer engines[i].Shutdown()
	}
	engines[0].cfg.Replica.Name, engines[0].self.Name = "b", "b" // the restart of b
	// Each heartbeats at its start, before it adopts anything.
	for _, e := range engines[1:] {
		if err := e.heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := engines[0].Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _ := records.Deployment(ctx, "d-of-b-before"); d.State != executor.StateSuccess || !strings.Contains(d.Error, "nodeexec stopped") || d.Owner != engines[0].Owner() {
		t.Errorf("what b's earlier incarnation left = %+v; want it ended at b's start, owned by %s", d, engines[0].Owner())
	}
	if d, _ := records.Deployment(ctx, "d-of-a"); d.State != executor.StateDeploying || d.Owner != "a@1" {
		t.Fatalf("a's deployment while a heartbeats = %+v; want left to a", d)
	}

	// a dies: its last heartbeat ages past the lease. Every replica notices at once.
	if err := records.Heartbeat(ctx, store.Replica{Name: "a", Incarnation: "1", StartedAt: now, HeartbeatAt: now.Add(-2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, e := range engines {
		wg.Go(func() {
			if err := e.adopt(ctx, errReplicaDied); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var readers []string
	for i, x := range execs {
		for _, r := range x.recovered {
			if r.DeploymentID == "d-of-a" {
				readers = append(readers, engines[i].Owner())
			}
		}
	}
	d, err := records.Deployment(ctx, "d-of-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(readers) != 1 || d.Owner != readers[0] {
		t.Fatalf("a's deployment was read by %v and is owned by %s; want one replica, its owner", readers, d.Owner)
	}
	if d.State != executor.StateSuccess || d.Error != errReplicaDied {
		t.Errorf("a's deployment after the takeover = %s %q", d.State, d.Error)
	}
	for _, h := range []string{"10.0.0.1", "10.0.0.2"} {
		if n, err := records.Node(ctx, "demo", h); err != nil || n.State != executor.StateSuccess || n.CurrentVersion != "v2" {
			t.Errorf("%s = %+v %v", h, n, err)
		}
		if _, err := records.Claim(ctx, "demo", h, executor.PlatformPhysical, "d-next", "v3"); err != nil {
			t.Errorf("the next deploy to %s: %v", h, err)
		}
	}
}

// On the embedded database this process is the only user: whatever another process left in flight is
// finished at start, however fresh that process's last heartbeat (it was killed a moment ago).
func TestTheEmbeddedDatabasesOnlyUserFinishesEverythingLeftInFlightAtStart(t *testing.T) {
	records := storetest.Open(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if err := records.Heartbeat(ctx, store.Replica{Name: "killed", Incarnation: "1", StartedAt: now, HeartbeatAt: now}); err != nil {
		t.Fatal(err)
	}
	inFlight(t, records, "d-left", "killed@1", "10.0.0.1")
	rex := &recoveringExecutor{runs: map[string]string{"10.0.0.1": "v1"}}
	e := New(Config{Executor: rex, Store: records, Logger: quietLogger(), Replica: ReplicaConfig{Name: "restarted"}})
	defer e.Shutdown()
	if err := e.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _ := records.Deployment(ctx, "d-left"); d.State != executor.StateFailed || d.Error != errInterrupted {
		t.Errorf("left in flight by the killed process = %+v; want ended at start", d)
	}
}

// heldExecutor holds every deploy until its context ends: the deployment stays in flight.
type heldExecutor struct{ noExecutor }

func (heldExecutor) Deploy(ctx context.Context, _ executor.DeployRequest) ([]executor.NodeResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Two replicas admit deployments of one service at once, each with max_unavailable 2 over 2 nodes of
// its own: with one in flight, the other must be refused, whichever replica it reaches. (A lock inside
// each process let both in.)
func TestMaxUnavailableHoldsAcrossReplicas(t *testing.T) {
	stores := storetest.OpenReplicas(t, 2)
	ctx := context.Background()
	const rounds = 8
	for round := range rounds {
		var accepted atomicCounter
		var wg sync.WaitGroup
		engines := make([]*Engine, len(stores))
		for i, st := range stores {
			engines[i] = New(Config{Executor: heldExecutor{}, Store: st, Logger: quietLogger(), Replica: ReplicaConfig{Name: fmt.Sprintf("r%d", i)}})
			wg.Go(func() {
				hosts := []string{fmt.Sprintf("10.%d.%d.1", round, i), fmt.Sprintf("10.%d.%d.2", round, i)}
				d := &store.Deployment{ID: fmt.Sprintf("d-%d-%d", round, i), Kind: store.KindDeploy, Service: fmt.Sprintf("svc%d", round),
					Version: "v2", Platform: executor.PlatformPhysical, State: executor.StatePending, CreatedAt: time.Now().UTC(),
					Batch: store.Batch{MaxUnavailable: 2}, Deploy: &executor.DeployRequest{}}
				for _, h := range hosts {
					d.Nodes = append(d.Nodes, store.DeploymentNode{Host: h, State: executor.StatePending, TargetVersion: "v2"})
					d.Deploy.Nodes = append(d.Deploy.Nodes, executor.Node{Host: h})
				}
				_, err := engines[i].Submit(ctx, d)
				var refused *UnavailableError
				switch {
				case err == nil:
					accepted.add()
				case !errors.As(err, &refused):
					t.Errorf("round %d, replica %d: %v", round, i, err)
				}
			})
		}
		wg.Wait()
		for _, e := range engines {
			e.Shutdown()
		}
		if n := accepted.get(); n != 1 {
			t.Fatalf("round %d: %d deployments admitted at once under max_unavailable 2 (2 nodes each); want 1", round, n)
		}
	}
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add()       { c.n.Add(1) }
func (c *atomicCounter) get() int64 { return c.n.Load() }
