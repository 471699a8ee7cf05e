package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/nodeexec/nodeexec/executor"
)

// The tests run on the real MongoDB wire protocol: the embedded FerretDB server, through the driver,
// as nodeexec serve opens it (with the node cache, so every read after a write proves it is invalidated).
// With NODEEXEC_TEST_STORE_PG_URL set, on FerretDB over that PostgreSQL instead (shared_test.go).
func openTestStore(t testing.TB) *Store {
	t.Helper()
	if u := sharedTestURL(); u != "" {
		return openSharedTestStore(t, u)
	}
	ctx := context.Background()
	e, err := StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	s, err := e.Open(ctx, "nodeexec_test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestClaimThenFinishRecordsTheOutcome(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	before, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d1", "v2")
	if err != nil {
		t.Fatal(err)
	}
	if before.State != "" || before.ID != "demo/h1" {
		t.Fatalf("a new node's prior record = %+v", before)
	}
	n, err := s.Node(ctx, "demo", "h1")
	if err != nil {
		t.Fatal(err)
	}
	if n.State != executor.StateDeploying || n.DeployingVersion != "v2" || n.DeploymentID != "d1" {
		t.Fatalf("claimed node = %+v", n)
	}
	done, err := s.Finish(ctx, "d1", executor.NodeStatus{Service: "demo", Host: "h1", State: executor.StateSuccess, CurrentVersion: "v2", PrevVersion: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Node(ctx, "demo", "h1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != executor.StateSuccess || got.CurrentVersion != "v2" || got.PrevVersion != "v1" || got.DeployingVersion != "" || *got != *done {
		t.Fatalf("node after finish = %+v", got)
	}
}

func TestOnlyOneOfConcurrentClaimsWins(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	// The node exists and is free: the contenders race on the conditional update, not on the insert.
	runsV1(t, s, "h1")
	const contenders = 8
	var wg sync.WaitGroup
	errs := make([]error, contenders)
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, fmt.Sprintf("d%d", i), "v2")
		}()
	}
	wg.Wait()
	winners := 0
	var busy *BusyError
	for _, err := range errs {
		switch {
		case err == nil:
			winners++
		case errors.As(err, &busy):
			if busy.DeploymentID == "" || busy.Node != "demo/h1" {
				t.Errorf("busy error does not name the holder: %v", err)
			}
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d claims won, want exactly 1", winners)
	}
	holder, _ := s.Node(ctx, "demo", "h1")
	if busy != nil && busy.DeploymentID != holder.DeploymentID {
		t.Errorf("busy names %s, the node is held by %s", busy.DeploymentID, holder.DeploymentID)
	}
}

func TestClaimRules(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d1", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d1", "v1"); err != nil {
		t.Errorf("the holder's retry was refused: %v", err)
	}
	var busy *BusyError
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d9", "v2"); !errors.As(err, &busy) || busy.DeploymentID != "d1" {
		t.Errorf("a second deployment claimed a held node: %v", err)
	}
	if _, err := s.Claim(ctx, "demo", "h2", executor.PlatformPhysical, "d2", "v1"); err != nil {
		t.Errorf("another node of the same service was refused: %v", err)
	}
	if _, err := s.Finish(ctx, "d2", executor.NodeStatus{Service: "demo", Host: "h1", State: executor.StateSuccess}); err == nil {
		t.Error("a deployment that does not hold the node finished it")
	}
	if _, err := s.Finish(ctx, "d1", executor.NodeStatus{Service: "demo", Host: "h1", State: executor.StatePending}); err == nil {
		t.Error("deploying -> pending was accepted")
	}
	if _, err := s.Finish(ctx, "d1", executor.NodeStatus{Service: "demo", Host: "h1", State: executor.StateRolledBack, CurrentVersion: "v0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d3", "v2"); err != nil {
		t.Errorf("a finished node could not be claimed again: %v", err)
	}
	if _, err := s.Node(ctx, "demo", "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing node: %v", err)
	}
}

func TestClaimAllIsAllOrNothing(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	runsV1(t, s, "h1")
	if _, err := s.Claim(ctx, "demo", "h3", executor.PlatformPhysical, "other", "v9"); err != nil {
		t.Fatal(err)
	}
	d := &Deployment{ID: "d1", Service: "demo", Platform: executor.PlatformPhysical}
	for _, h := range []string{"h1", "h2", "h3"} {
		d.Nodes = append(d.Nodes, DeploymentNode{Host: h, TargetVersion: "v2"})
	}
	_, err := s.ClaimAll(ctx, d)
	var busy *BusyError
	if !errors.As(err, &busy) || busy.DeploymentID != "other" {
		t.Fatalf("err = %v, want busy, held by other", err)
	}
	// h1 is back as it was; h2, which the claim created, is gone again.
	if n, _ := s.Node(ctx, "demo", "h1"); n.State != executor.StateSuccess || n.DeploymentID != "d0" || n.CurrentVersion != "v1" {
		t.Errorf("h1 after the failed claim = %+v", n)
	}
	if _, err := s.Node(ctx, "demo", "h2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("h2 left behind: %v", err)
	}
}

func TestIdempotencyKeyReturnsTheFirstDeployment(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	first := &Deployment{ID: "d1", Service: "demo", Version: "v1", IdempotencyKey: "k", State: executor.StatePending, Nodes: []DeploymentNode{}}
	got, created, err := s.CreateDeployment(ctx, first)
	if err != nil || !created || got.ID != "d1" {
		t.Fatalf("first: %v %v %v", got, created, err)
	}
	again, created, err := s.CreateDeployment(ctx, &Deployment{ID: "d2", Service: "demo", Version: "v1", IdempotencyKey: "k", Nodes: []DeploymentNode{}})
	if err != nil || created || again.ID != "d1" {
		t.Fatalf("retry: %+v created=%v err=%v; want d1, not created", again, created, err)
	}
	if _, err := s.Deployment(ctx, "d2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the retry recorded a second deployment: %v", err)
	}
}

func TestListDeploymentsPagesNewestFirst(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 7 {
		d := &Deployment{ID: fmt.Sprintf("d%d", i), Kind: "deploy", Service: "demo", State: executor.StateSuccess,
			Nodes: []DeploymentNode{}, CreatedAt: base.Add(time.Duration(i/2) * time.Second)} // pairs share a time
		if i == 3 {
			d.Service, d.State = "other", executor.StateFailed
		}
		if _, _, err := s.CreateDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, next, err := s.ListDeployments(ctx, DeploymentFilter{Service: "demo", Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page {
			seen = append(seen, d.ID)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
	if got, want := strings.Join(seen, ","), "d6,d5,d4,d2,d1,d0"; got != want {
		t.Errorf("pages = %s, want %s", got, want)
	}
	failed, _, err := s.ListDeployments(ctx, DeploymentFilter{State: executor.StateFailed, Limit: 10})
	if err != nil || len(failed) != 1 || failed[0].ID != "d3" {
		t.Errorf("state filter = %v, %v", failed, err)
	}
	if _, _, err := s.ListDeployments(ctx, DeploymentFilter{Limit: 2, Cursor: "not-a-cursor"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}
}

func TestEventsAreReadInOrderAfterASeq(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	mk := func(id string, from, to int64) []Event {
		var evs []Event
		for i := from; i <= to; i++ {
			evs = append(evs, Event{DeploymentID: id, Seq: i, Type: EventStep, Message: fmt.Sprint(i)})
		}
		return evs
	}
	// Batches that straddle chunk boundaries; another deployment whose id sorts right after.
	for _, batch := range [][]Event{mk("d1", 1, 50), mk("d10", 1, 3), mk("d1", 51, 70), mk("d1", 71, 128), mk("d1", 129, 150)} {
		if err := s.AppendEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func(evs []Event) string {
		if len(evs) == 0 {
			return "none"
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Seq != evs[i-1].Seq+1 || evs[i].DeploymentID != "d1" {
				return fmt.Sprintf("not consecutive at %d: %+v", i, evs[i])
			}
		}
		return fmt.Sprintf("%d..%d", evs[0].Seq, evs[len(evs)-1].Seq)
	}
	for _, c := range []struct {
		after, limit int64
		want         string
	}{
		{0, 1000, "1..150"}, {60, 1000, "61..150"}, {60, 10, "61..70"}, {64, 64, "65..128"}, {150, 10, "none"},
	} {
		got, err := s.Events(ctx, "d1", c.after, c.limit)
		if err != nil {
			t.Fatal(err)
		}
		if seqs(got) != c.want {
			t.Errorf("events after %d, limit %d = %s, want %s", c.after, c.limit, seqs(got), c.want)
		}
	}
	for id, want := range map[string]int64{"d1": 150, "d10": 3, "none": 0} {
		if last, err := s.LastEventSeq(ctx, id); err != nil || last != want {
			t.Errorf("last seq of %s = %d, %v; want %d", id, last, err, want)
		}
	}
	// A deployment whose events fill whole chunks exactly.
	if err := s.AppendEvents(ctx, mk("d2", 1, 128)); err != nil {
		t.Fatal(err)
	}
	if last, _ := s.LastEventSeq(ctx, "d2"); last != 128 {
		t.Errorf("last seq of d2 = %d", last)
	}
}

// A claim left by a request that failed before recording its deployment (and could not give the claim
// back) blocks the node only for OrphanGrace; then the next deploy takes it over, keeping the versions.
func TestOrphanedClaimIsTakenOverAfterTheGrace(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	runsV1(t, s, "h1")
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "ghost", "v2"); err != nil {
		t.Fatal(err)
	}
	var busy *BusyError
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d2", "v3"); !errors.As(err, &busy) || busy.DeploymentID != "ghost" {
		t.Fatalf("a fresh claim must hold: %v", err)
	}
	old := time.Now().UTC().Add(-2 * OrphanGrace)
	ageClaim(t, s, "demo/h1", old)
	before, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d2", "v3")
	if err != nil {
		t.Fatalf("claim over the orphan: %v", err)
	}
	if before.CurrentVersion != "v1" || before.State != executor.StateFailed {
		t.Errorf("before = %+v", before)
	}
	if n, _ := s.Node(ctx, "demo", "h1"); n.DeploymentID != "d2" || n.DeployingVersion != "v3" {
		t.Errorf("node = %+v", n)
	}
	// A claim whose deployment exists is never taken over, however old.
	if _, _, err := s.CreateDeployment(ctx, &Deployment{ID: "d2", Kind: KindDeploy, Service: "demo", Nodes: []DeploymentNode{}}); err != nil {
		t.Fatal(err)
	}
	ageClaim(t, s, "demo/h1", old)
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d3", "v4"); !errors.As(err, &busy) || busy.DeploymentID != "d2" {
		t.Errorf("claim over a recorded deployment: %v", err)
	}
}

func TestInsertNodesSeedsInChunksAndRefusesDuplicates(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	var nodes []Node
	for i := range 2500 {
		nodes = append(nodes, Node{Service: "bulk", Host: fmt.Sprintf("10.1.%d.%d", i/256, i%256), State: executor.StateSuccess, CurrentVersion: "v1"})
	}
	if err := s.InsertNodes(ctx, nodes); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"10.1.0.0", "10.1.9.195"} {
		if n, err := s.Node(ctx, "bulk", h); err != nil || n.CurrentVersion != "v1" {
			t.Errorf("%s: %+v %v", h, n, err)
		}
	}
	if all, _ := s.Nodes(ctx, "bulk"); len(all) != 2500 {
		t.Errorf("%d nodes stored", len(all))
	}
	if err := s.InsertNodes(ctx, nodes[:1]); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("duplicate insert: %v", err)
	}
}

// runsV1 records demo v1 deployed to host by deployment d0, the way a deployment does: claim, finish.
func runsV1(t *testing.T, s *Store, host string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Claim(ctx, "demo", host, executor.PlatformPhysical, "d0", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, "d0", executor.NodeStatus{Service: "demo", Host: host, State: executor.StateSuccess, CurrentVersion: "v1"}); err != nil {
		t.Fatal(err)
	}
}

// Readers hammering a node while it is claimed and finished again and again never see a record older
// than the last write that completed before their read began.
func TestCachedReadsNeverGoBackInTime(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	runsV1(t, s, "h1")
	var done atomic.Int64 // how many versions have been finished
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := done.Load()
				n, err := s.Node(ctx, "demo", "h1")
				if err != nil {
					t.Error(err)
					return
				}
				var v int64
				if n.CurrentVersion != "v1" {
					fmt.Sscanf(n.CurrentVersion, "v1.%d", &v)
				}
				if v < floor {
					t.Errorf("read %s after v1.%d was recorded", n.CurrentVersion, floor)
					return
				}
			}
		})
	}
	for i := int64(1); i <= 30; i++ {
		id := fmt.Sprintf("d%d", i)
		if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, id, "x"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Finish(ctx, id, executor.NodeStatus{Service: "demo", Host: "h1", State: executor.StateSuccess, CurrentVersion: fmt.Sprintf("v1.%d", i)}); err != nil {
			t.Fatal(err)
		}
		done.Store(i)
	}
	close(stop)
	wg.Wait()
}

// ageClaim makes node id's claim look taken at at, as if it had been left that long ago.
func ageClaim(t *testing.T, s *Store, id string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	cur, err := s.holding(ctx, id)
	if err != nil || cur.ID == "" {
		t.Fatalf("no claim ticket on %s: %v", id, err)
	}
	if _, err := s.claimTickets().UpdateOne(ctx, bson.M{"_id": cur.ID}, bson.M{"$set": bson.M{"at": at}}); err != nil {
		t.Fatal(err)
	}
}
