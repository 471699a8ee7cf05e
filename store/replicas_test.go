package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/nodeexec/nodeexec/executor"
)

// openReplicas opens n stores on one database, each with a client of its own and none of the others'
// in-process state (locks, cache), as n nodeexec replicas do: on the embedded server, or with
// NODEEXEC_TEST_STORE_PG_URL on FerretDB over that PostgreSQL, through one front end (as replicas share
// one, docs/shared-database.md).
func openReplicas(t *testing.T, n int) []*Store {
	t.Helper()
	ctx := context.Background()
	uri, name := "", "nodeexec_test"
	if u := sharedTestURL(); u != "" {
		fe, err := StartFrontend(ctx, u, "127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fe.Stop)
		uri, name = fe.URI, fmt.Sprintf("t_replicas_%d", time.Now().UnixNano())
	} else {
		e, err := StartEmbedded(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Stop)
		uri = e.URI
	}
	out := make([]*Store, n)
	for i := range out {
		s, err := Open(ctx, uri, name)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	t.Cleanup(func() {
		_ = out[0].client.Database(name).Drop(context.Background())
		for _, s := range out {
			_ = s.Close(context.Background())
		}
	})
	return out
}

// Many replicas ask for the cleanup lease for one scheduled tick at the same moment, 20 ticks running:
// each tick is taken by exactly one of them, and the others are told it was taken.
func TestEachTickIsTakenByExactlyOneReplica(t *testing.T) {
	replicas := openReplicas(t, 6)
	ctx := context.Background()
	for i := range 20 {
		tick := t0.Add(time.Duration(i) * time.Hour)
		var won sync.Map
		var wg sync.WaitGroup
		errs := make([]error, len(replicas))
		for r, s := range replicas {
			wg.Go(func() {
				holder := fmt.Sprintf("replica-%d", r)
				if _, err := s.TakeLease(ctx, CleanupLease, holder, fmt.Sprintf("p%d-%d", i, r), tick, tick.Add(time.Second), time.Minute); err == nil {
					won.Store(holder, true)
				} else {
					errs[r] = err
				}
			})
		}
		wg.Wait()
		var winners []string
		won.Range(func(k, _ any) bool { winners = append(winners, k.(string)); return true })
		if len(winners) != 1 {
			t.Fatalf("tick %d taken by %v, want exactly one replica", i, winners)
		}
		for r, err := range errs {
			var held *LeaseHeldError
			if err != nil && (!errors.As(err, &held) || held.Lease.Holder != winners[0]) {
				t.Errorf("tick %d, replica-%d: %v; want the lease held by %s", i, r, err, winners[0])
			}
		}
		l, err := replicas[0].Lease(ctx, CleanupLease)
		if err != nil || l.Holder != winners[0] || !l.Tick.Equal(tick) {
			t.Fatalf("tick %d: the lease reads %+v %v, want %s's", i, l, err, winners[0])
		}
		if err := replicas[0].ReleaseLease(ctx, CleanupLease, winners[0], l.Pass, tick.Add(2*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

// A stale holder (its lease expired and another replica took it) can neither renew nor give back the
// lease: its generation is no longer the newest, whatever it writes on its own.
func TestAStaleHolderCannotRenewOrGiveBackANewerLease(t *testing.T) {
	replicas := openReplicas(t, 2)
	a, b := replicas[0], replicas[1]
	ctx := context.Background()
	if _, err := a.TakeLease(ctx, "l", "a", "p1", time.Time{}, t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	taken, err := b.TakeLease(ctx, "l", "b", "p2", time.Time{}, t0.Add(2*time.Minute), time.Minute)
	if err != nil || taken.Generation != 2 {
		t.Fatalf("b takes the expired lease: %+v %v", taken, err)
	}
	if err := a.RenewLease(ctx, "l", "a", "p1", t0.Add(2*time.Minute), time.Hour); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("the stale holder renews: %v, want ErrLeaseLost", err)
	}
	if err := a.ReleaseLease(ctx, "l", "a", "p1", t0.Add(2*time.Minute)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("the stale holder gives back: %v, want ErrLeaseLost", err)
	}
	if l, err := a.Lease(ctx, "l"); err != nil || l.Holder != "b" || !l.Expires.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("the lease after the stale holder's tries = %+v %v, want b's, untouched", l, err)
	}
}

// Replicas that take over one orphaned idempotency key at once (its request recorded no deployment)
// agree on one new owner, and the key says so.
func TestOneReplicaTakesOverAnOrphanedKey(t *testing.T) {
	replicas := openReplicas(t, 6)
	ctx := context.Background()
	if _, err := replicas[0].ReserveKey(ctx, "k1", "d-orphan", "f0", t0); err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(replicas))
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for r, s := range replicas {
		wg.Go(func() {
			got[r], errs[r] = s.TakeOverKey(ctx, "k1", "d-orphan", fmt.Sprintf("d-%d", r), "f1", t0.Add(time.Hour), t0.Add(2*time.Hour))
		})
	}
	wg.Wait()
	for r := range replicas {
		if errs[r] != nil || got[r] != got[0] {
			t.Fatalf("owners after the takeovers = %v (errors %v), want one", got, errs)
		}
	}
	if k, err := replicas[0].keyOwner(ctx, "k1"); err != nil || k.DeploymentID != got[0] || !k.CreatedAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("the key = %+v %v, want owned by %s", k, err, got[0])
	}
	// Taken over, it is no orphan of d-orphan any more.
	if owner, err := replicas[1].TakeOverKey(ctx, "k1", "d-orphan", "d-late", "f2", t0.Add(time.Hour), t0.Add(3*time.Hour)); err != nil || owner != got[0] {
		t.Errorf("a late takeover = %s %v, want %s", owner, err, got[0])
	}
}

// Replicas claim overlapping nodes over and over, each claim a deployment of its own: no two ever hold
// one node at once. Occupancy is this test's own record, taken while the claim is held, not the store's.
// (With claims made atomic by a lock inside each process, replicas on PostgreSQL shared nodes.)
func TestNoTwoReplicasEverHoldOneNode(t *testing.T) {
	replicas := openReplicas(t, 4)
	ctx := context.Background()
	const nodes, workers, rounds = 6, 3, 25
	type stay struct {
		id         string
		start, end time.Time
	}
	var mu sync.Mutex
	stays := map[string][]stay{} // host -> who held it when, as this test saw it
	var won, busy atomicCount
	var wg sync.WaitGroup
	for r, s := range replicas {
		for w := range workers {
			wg.Go(func() {
				for i := range rounds {
					host := fmt.Sprintf("h%d", (r+w+i)%nodes)
					id := fmt.Sprintf("d-%d-%d-%d", r, w, i)
					if _, err := s.Claim(ctx, "demo", host, executor.PlatformPhysical, id, "v1"); err != nil {
						if b := (*BusyError)(nil); !errors.As(err, &b) {
							t.Errorf("claim %s: %v", host, err)
						}
						busy.add()
						continue
					}
					won.add()
					start := time.Now()
					_, _ = s.Node(ctx, "demo", host) // hold it a read's time
					end := time.Now()
					if _, err := s.Finish(ctx, id, executor.NodeStatus{Host: host, Service: "demo", State: executor.StateSuccess, CurrentVersion: "v1"}); err != nil {
						t.Errorf("finish %s on %s: %v", id, host, err)
					}
					mu.Lock()
					stays[host] = append(stays[host], stay{id, start, end})
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	overlaps := 0
	for host, ss := range stays {
		sort.Slice(ss, func(i, j int) bool { return ss[i].start.Before(ss[j].start) })
		for i := 1; i < len(ss); i++ {
			if ss[i].start.Before(ss[i-1].end) {
				overlaps++
				t.Errorf("%s held %s while %s did", ss[i].id, host, ss[i-1].id)
			}
		}
	}
	t.Logf("%d claims won, %d refused as busy, %d overlaps", won.get(), busy.get(), overlaps)
	if won.get() == 0 || busy.get() == 0 {
		t.Errorf("the replicas did not contend: %d won, %d busy", won.get(), busy.get())
	}
	for h := range nodes {
		if n, err := replicas[0].Node(ctx, "demo", fmt.Sprintf("h%d", h)); err == nil && n.State == executor.StateDeploying {
			t.Errorf("h%d is left deploying: %+v", h, n)
		}
	}
}

// Replicas that take over one orphaned claim at once: one gets the node, the others are told it holds it.
func TestOneReplicaTakesOverAnOrphanedClaim(t *testing.T) {
	replicas := openReplicas(t, 6)
	ctx := context.Background()
	if _, err := replicas[0].Claim(ctx, "demo", "h1", executor.PlatformPhysical, "ghost", "v1"); err != nil {
		t.Fatal(err)
	}
	ageClaim(t, replicas[0], "demo/h1", time.Now().UTC().Add(-2*OrphanGrace))
	errs := make([]error, len(replicas))
	var wg sync.WaitGroup
	for r, s := range replicas {
		wg.Go(func() {
			_, errs[r] = s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, fmt.Sprintf("d-%d", r), "v2")
		})
	}
	wg.Wait()
	var winners []string
	for r, err := range errs {
		var b *BusyError
		switch {
		case err == nil:
			winners = append(winners, fmt.Sprintf("d-%d", r))
		case !errors.As(err, &b):
			t.Errorf("d-%d: %v", r, err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("the orphan was taken over by %v, want exactly one", winners)
	}
	if n, err := replicas[1].Node(ctx, "demo", "h1"); err != nil || n.DeploymentID != winners[0] {
		t.Errorf("node = %+v %v, want held by %s", n, err, winners[0])
	}
	// The ghost is a stale holder now: it can neither finish nor give back the node.
	if _, err := replicas[2].Finish(ctx, "ghost", executor.NodeStatus{Host: "h1", Service: "demo", State: executor.StateFailed}); !errors.Is(err, ErrNotHeld) {
		t.Errorf("the stale holder finishes: %v, want ErrNotHeld", err)
	}
	if err := replicas[2].Release(ctx, "ghost", &Node{ID: "demo/h1", State: executor.StateSuccess}); err != nil {
		t.Fatal(err)
	}
	if n, _ := replicas[1].Node(ctx, "demo", "h1"); n == nil || n.DeploymentID != winners[0] || n.State != executor.StateDeploying {
		t.Errorf("after the stale holder's tries, node = %+v, want still held by %s", n, winners[0])
	}
}

type atomicCount struct{ n atomic.Int64 }

func (c *atomicCount) add()       { c.n.Add(1) }
func (c *atomicCount) get() int64 { return c.n.Load() }

// A node's newest claim ticket is found by _id from its head hint, also when the hint has fallen behind
// the chain (a slow writer raced it back) or below what was pruned: the claim after it still collides
// with, or follows, the real newest generation.
func TestTheNewestClaimIsFoundWhateverItsHintSays(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	id := NodeID("demo", "h1")
	for i := range 40 { // 80 generations: the first ones pruned
		dep := fmt.Sprintf("d-%d", i)
		if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, dep, "v1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Finish(ctx, dep, executor.NodeStatus{Service: "demo", Host: "h1", State: executor.StateSuccess, CurrentVersion: "v1"}); err != nil {
			t.Fatal(err)
		}
	}
	if first, _ := s.ticket(ctx, id, 1); first != nil {
		t.Fatalf("generation 1 is still there after 80: not pruned")
	}
	for _, hint := range []int64{80, 70, 5} {
		if _, err := s.claimHeads().UpdateOne(ctx, bson.M{"_id": id}, bson.M{"$set": bson.M{"generation": hint}}); err != nil {
			t.Fatal(err)
		}
		newest, err := s.holding(ctx, id)
		if err != nil || newest.Generation != 80 || newest.Holder != "" {
			t.Errorf("with the hint at %d: newest = %+v, %v; want generation 80, free", hint, newest, err)
		}
	}
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d-next", "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d-other", "v2"); !errors.As(err, new(*BusyError)) {
		t.Errorf("a second claim while d-next holds h1 = %v; want busy", err)
	}
}
