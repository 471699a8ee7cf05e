package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

var t0 = time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)

func TestLeaseIsHeldUntilItExpiresOrIsGivenBack(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.TakeLease(ctx, "l", "a", "p1", time.Time{}, t0, time.Minute); err != nil {
		t.Fatalf("take a free lease: %v", err)
	}
	var held *LeaseHeldError
	for _, c := range []struct {
		holder string
		at     time.Time
	}{{"b", t0.Add(59 * time.Second)}, {"a", t0.Add(30 * time.Second)}} {
		if _, err := s.TakeLease(ctx, "l", c.holder, "p2", time.Time{}, c.at, time.Minute); !errors.As(err, &held) || held.Lease.Holder != "a" || held.Lease.Pass != "p1" {
			t.Errorf("%s takes a held lease: %v; want a LeaseHeldError naming a/p1 (a holder does not overlap itself either)", c.holder, err)
		}
	}
	// Renewed, it outlives its first expiry; renewing someone else's is refused.
	if err := s.RenewLease(ctx, "l", "a", "p1", t0.Add(50*time.Second), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.RenewLease(ctx, "l", "b", "p1", t0, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("b renews a's lease: %v", err)
	}
	if _, err := s.TakeLease(ctx, "l", "b", "p2", time.Time{}, t0.Add(90*time.Second), time.Minute); !errors.As(err, &held) {
		t.Errorf("b takes a renewed lease: %v", err)
	}
	// Expired (its holder stopped renewing), anyone takes it; the old holder has lost it.
	if _, err := s.TakeLease(ctx, "l", "b", "p2", time.Time{}, t0.Add(111*time.Second), time.Minute); err != nil {
		t.Fatalf("take an expired lease: %v", err)
	}
	if err := s.ReleaseLease(ctx, "l", "a", "p1", t0.Add(112*time.Second)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("the old holder gives back a lease it lost: %v", err)
	}
	// Given back, it is free at once.
	if err := s.ReleaseLease(ctx, "l", "b", "p2", t0.Add(113*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeLease(ctx, "l", "a", "p3", time.Time{}, t0.Add(114*time.Second), time.Minute); err != nil {
		t.Errorf("take a lease given back: %v", err)
	}
}

// A lease still held for a pass that ended is taken over by naming that pass, and by nothing else; its
// old holder then finds it lost.
func TestAnEndedPassesLeaseIsTakenOverByName(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.TakeLease(ctx, "l", "a", "p1", time.Time{}, t0, time.Minute); err != nil {
		t.Fatal(err)
	}
	var held *LeaseHeldError
	if _, err := s.TakeEndedLease(ctx, "l", "b", "p2", "p0", time.Time{}, t0.Add(time.Second), time.Minute); !errors.As(err, &held) || held.Lease.Pass != "p1" {
		t.Errorf("take over naming another pass: %v; want held by p1", err)
	}
	got, err := s.TakeEndedLease(ctx, "l", "b", "p2", "p1", time.Time{}, t0.Add(time.Second), time.Minute)
	if err != nil || got.Holder != "b" || got.Pass != "p2" || !got.Expires.Equal(t0.Add(61*time.Second)) {
		t.Fatalf("take over from the ended p1: %+v %v", got, err)
	}
	if _, err := s.TakeEndedLease(ctx, "l", "c", "p3", "p1", time.Time{}, t0.Add(2*time.Second), time.Minute); !errors.As(err, &held) || held.Lease.Pass != "p2" {
		t.Errorf("a second take over from p1: %v; want held by p2", err)
	}
	if err := s.ReleaseLease(ctx, "l", "a", "p1", t0.Add(3*time.Second)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("p1's holder gives back a lease taken over: %v; want ErrLeaseLost", err)
	}
}

func TestEachTickIsTakenOnce(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	tick := t0
	if _, err := s.TakeLease(ctx, CleanupLease, "a", "p1", tick, t0.Add(time.Second), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(ctx, CleanupLease, "a", "p1", t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The lease is free, but the tick ran: a replica that wakes late does not run it again.
	var held *LeaseHeldError
	if _, err := s.TakeLease(ctx, CleanupLease, "b", "p2", tick, t0.Add(3*time.Second), time.Minute); !errors.As(err, &held) || !held.TickTaken {
		t.Errorf("a late replica takes the same tick: %v", err)
	}
	// A pass on request takes no tick and leaves the tick as it was.
	if _, err := s.TakeLease(ctx, CleanupLease, "b", "p3", time.Time{}, t0.Add(4*time.Second), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(ctx, CleanupLease, "b", "p3", t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeLease(ctx, CleanupLease, "b", "p4", tick, t0.Add(6*time.Second), time.Minute); !errors.As(err, &held) || !held.TickTaken {
		t.Errorf("after a pass on request, the tick is taken again: %v", err)
	}
	if _, err := s.TakeLease(ctx, CleanupLease, "b", "p5", tick.Add(24*time.Hour), t0.Add(24*time.Hour), time.Minute); err != nil {
		t.Errorf("the next tick: %v", err)
	}
}

// Many replicas' takes of one tick at the same moment: exactly one wins.
func TestOnlyOneOfConcurrentTakesOfATickWins(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	wins := make(chan string, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("r%d", i)
			_, err := s.TakeLease(ctx, CleanupLease, holder, "p-"+holder, t0, t0, time.Minute)
			var held *LeaseHeldError
			switch {
			case err == nil:
				wins <- holder
			case !errors.As(err, &held):
				t.Errorf("%s: %v", holder, err)
			}
		}()
	}
	wg.Wait()
	close(wins)
	var winners []string
	for w := range wins {
		winners = append(winners, w)
	}
	if len(winners) != 1 {
		t.Fatalf("winners %v, want exactly one", winners)
	}
	if l, err := s.Lease(ctx, CleanupLease); err != nil || l.Holder != winners[0] {
		t.Errorf("lease = %+v %v, want held by %s", l, err, winners[0])
	}
}

// Prune deletes what finished before the cutoff (deployments, their events and keys, keys of requests
// that never recorded one, cleanup passes) and nothing else: not a deployment still running however
// old, not one that finished after the cutoff.
func TestPruneDeletesOnlyWhatFinishedBeforeTheCutoff(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	cutoff := t0
	old, recent := cutoff.Add(-48*time.Hour), cutoff.Add(time.Hour)
	deployments := []struct {
		id       string
		state    executor.State
		finished *time.Time
		pruned   bool
	}{
		{"d-old-ok", executor.StateSuccess, &old, true},
		{"d-old-failed", executor.StateFailed, &old, true},
		{"d-old-running", executor.StateDeploying, nil, false},
		{"d-old-pending", executor.StatePending, nil, false},
		{"d-recent", executor.StateSuccess, &recent, false},
	}
	for _, d := range deployments {
		// Created long ago, all of them, with 70 events (two chunks) and an idempotency key each.
		rec := &Deployment{ID: d.id, Kind: KindDeploy, Service: "demo", State: d.state, FinishedAt: d.finished,
			IdempotencyKey: "key-" + d.id, CreatedAt: old.Add(-time.Hour), Nodes: []DeploymentNode{}}
		if _, created, err := s.CreateDeployment(ctx, rec); err != nil || !created {
			t.Fatalf("%s: %v", d.id, err)
		}
		var evs []Event
		for seq := int64(1); seq <= 70; seq++ {
			evs = append(evs, Event{DeploymentID: d.id, Seq: seq, Type: EventStep, Time: old})
		}
		if err := s.AppendEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	// Keys whose request never recorded a deployment: an old one goes, a fresh one (in flight) stays.
	if _, err := s.ReserveKey(ctx, "key-orphan-old", "d-never", "", old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReserveKey(ctx, "key-orphan-new", "d-inflight", "", recent); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Cleanup{
		{ID: "c-old", State: CleanupSuccess, StartedAt: old, FinishedAt: &old, Nodes: []CleanupNode{}},
		{ID: "c-old-running", State: CleanupRunning, StartedAt: old, Nodes: []CleanupNode{}},
		{ID: "c-recent", State: CleanupFailed, StartedAt: recent, FinishedAt: &recent, Nodes: []CleanupNode{}},
	} {
		if err := s.CreateCleanup(ctx, &c); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []DriftPass{
		{ID: "r-old", State: DriftSuccess, StartedAt: old, FinishedAt: &old, Nodes: []DriftNode{}},
		{ID: "r-old-running", State: DriftRunning, StartedAt: old, Nodes: []DriftNode{}},
		{ID: "r-recent", State: DriftSuccess, StartedAt: recent, FinishedAt: &recent, Nodes: []DriftNode{}},
	} {
		if err := s.CreateDriftPass(ctx, &d); err != nil {
			t.Fatal(err)
		}
	}

	p, err := s.Prune(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if p.Deployments != 2 || p.EventChunks != 4 || p.IdempotencyKeys != 3 || p.Cleanups != 1 || p.DriftPasses != 1 || p.Before == nil || !p.Before.Equal(cutoff) {
		t.Errorf("pruned %+v; want 2 deployments, 4 event chunks, 3 keys (2 + 1 orphan), 1 cleanup pass, 1 drift pass, before %s", p, cutoff)
	}
	for _, d := range deployments {
		_, err := s.Deployment(ctx, d.id)
		evs, evErr := s.Events(ctx, d.id, 0, 1000)
		_, keyErr := s.keyOwner(ctx, "key-"+d.id)
		if evErr != nil {
			t.Fatal(evErr)
		}
		if gone := errors.Is(err, ErrNotFound); gone != d.pruned {
			t.Errorf("%s: pruned=%v, want %v (%v)", d.id, gone, d.pruned, err)
		}
		if want := map[bool]int{true: 0, false: 70}[d.pruned]; len(evs) != want {
			t.Errorf("%s: %d events left, want %d", d.id, len(evs), want)
		}
		if gone := errors.Is(keyErr, ErrNotFound); gone != d.pruned {
			t.Errorf("%s: its idempotency key pruned=%v, want %v", d.id, gone, d.pruned)
		}
	}
	if _, err := s.keyOwner(ctx, "key-orphan-old"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an old key without a deployment is kept: %v", err)
	}
	if _, err := s.keyOwner(ctx, "key-orphan-new"); err != nil {
		t.Errorf("a fresh key without a deployment (its request in flight) is pruned: %v", err)
	}
	for id, kept := range map[string]bool{"c-old": false, "c-old-running": true, "c-recent": true} {
		if _, err := s.Cleanup(ctx, id); (err == nil) != kept {
			t.Errorf("cleanup pass %s kept=%v, want %v", id, err == nil, kept)
		}
	}
	for id, kept := range map[string]bool{"r-old": false, "r-old-running": true, "r-recent": true} {
		if _, err := s.DriftPass(ctx, id); (err == nil) != kept {
			t.Errorf("drift pass %s kept=%v, want %v", id, err == nil, kept)
		}
	}
	// Pruning again finds nothing more.
	if p, err := s.Prune(ctx, cutoff); err != nil || p.Deployments+p.EventChunks+p.IdempotencyKeys+p.Cleanups+p.DriftPasses != 0 {
		t.Errorf("second prune = %+v %v", p, err)
	}
}

func TestListCleanupsPagesNewestFirst(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	for i := range 5 {
		if err := s.CreateCleanup(ctx, &Cleanup{ID: fmt.Sprintf("c-%d", i), State: CleanupSuccess, StartedAt: t0.Add(time.Duration(i) * time.Hour), Nodes: []CleanupNode{}}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		page, next, err := s.ListCleanups(ctx, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page {
			got = append(got, c.ID)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
	if fmt.Sprint(got) != "[c-4 c-3 c-2 c-1 c-0]" {
		t.Errorf("listed %v", got)
	}
	if _, _, err := s.ListCleanups(ctx, 2, "garbage!"); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}
}

// A node a cleanup pass holds is refused to deploys, naming the pass; once the pass no longer runs
// (its record ended, or its runner's lease expired), its claim is an orphan a deploy takes over.
func TestACleanupPassHoldsNodesWhileItRuns(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	runsV1(t, s, "h1")
	now := time.Now().UTC()
	pass := &Cleanup{ID: NewCleanupID(), Runner: "r1", State: CleanupRunning, StartedAt: now, Nodes: []CleanupNode{}}
	if err := s.CreateCleanup(ctx, pass); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeLease(ctx, CleanupLease, "r1", pass.ID, time.Time{}, now, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, pass.ID, ""); err != nil {
		t.Fatal(err)
	}
	age := func() { // the claim is older than the orphan grace
		ageClaim(t, s, "demo/h1", now.Add(-2*OrphanGrace))
	}
	age()
	var busy *BusyError
	_, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d2", "v2")
	if !errors.As(err, &busy) || busy.DeploymentID != pass.ID {
		t.Fatalf("deploy over a running pass's node: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "cleanup pass "+pass.ID) {
		t.Errorf("the refusal says %q; want it to name the cleanup pass", msg)
	}
	// The runner died: its lease expires.
	if err := s.ReleaseLease(ctx, CleanupLease, "r1", pass.ID, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	before, err := s.Claim(ctx, "demo", "h1", executor.PlatformPhysical, "d2", "v2")
	if err != nil {
		t.Fatalf("deploy over a dead pass's node: %v", err)
	}
	if before.CurrentVersion != "v1" || !strings.Contains(before.LastError, pass.ID) {
		t.Errorf("the record before the take-over = %+v", before)
	}
}
