package cleanup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/ansible"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// The tests run passes on the real embedded database; Ansible is a fake that records what it was asked
// (real cleanups on real hosts: cmd/nodeexec's e2e suite).

var t0 = time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)

// deployed records that deployment id put version on host (platform physical unless k8s).
func deployed(t *testing.T, s *store.Store, service, host, id, version string, platform executor.Platform) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Claim(ctx, service, host, platform, id, version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, id, executor.NodeStatus{Service: service, Host: host, State: executor.StateSuccess, CurrentVersion: version, PrevVersion: "v1"}); err != nil {
		t.Fatal(err)
	}
}

// fakeCleaner stands in for the Ansible executor: each node "removes" every release but the newest
// Keep of v1..v6. Hosts in fail fail; while it runs, it checks that a deploy cannot take the nodes.
type fakeCleaner struct {
	st   *store.Store
	fail map[string]bool
	// hold, when set, keeps a cleanup running until it is closed or its context ends.
	hold    chan struct{}
	running chan struct{} // told when a cleanup starts (when set)

	mu       sync.Mutex
	calls    []string // "service keep=N h1,h2"
	intruded []error  // what a deploy's claim got while the cleanup ran
}

func (f *fakeCleaner) Cleanup(ctx context.Context, req ansible.CleanupRequest) ([]ansible.CleanupResult, error) {
	var hosts []string
	for _, n := range req.Nodes {
		hosts = append(hosts, n.Host)
		_, err := f.st.Claim(ctx, req.Service, n.Host, executor.PlatformPhysical, "d-intruder", "v9")
		f.mu.Lock()
		f.intruded = append(f.intruded, err)
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf("%s keep=%d %s", req.Service, req.Keep, strings.Join(hosts, ",")))
	f.mu.Unlock()
	if f.running != nil {
		f.running <- struct{}{}
	}
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			var out []ansible.CleanupResult
			for _, n := range req.Nodes {
				out = append(out, ansible.CleanupResult{NodeResult: executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host}},
					Error: "cancelled (" + context.Cause(ctx).Error() + "); the node runs v6"})
			}
			return out, nil
		}
	}
	releases := []string{"v1", "v2", "v3", "v4", "v5", "v6"}
	var out []ansible.CleanupResult
	for _, n := range req.Nodes {
		r := ansible.CleanupResult{NodeResult: executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service}}}
		if f.fail[n.Host] {
			r.Error = "host unreachable: no route to host"
		} else {
			r.Kept, r.Removed = releases[len(releases)-req.Keep:], releases[:len(releases)-req.Keep]
		}
		out = append(out, r)
	}
	return out, nil
}

func newRunner(st *store.Store, c Cleaner, holder string, opts ...func(*Config)) *Runner {
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg := Config{Store: st, Cleaner: c, Keep: 5, BatchSize: 2, Holder: holder, Logger: log, Now: func() time.Time { return t0 }}
	for _, o := range opts {
		o(&cfg)
	}
	return New(cfg)
}

func nodeOf(c *store.Cleanup, service, host string) *store.CleanupNode {
	for i := range c.Nodes {
		if c.Nodes[i].Service == service && c.Nodes[i].Host == host {
			return &c.Nodes[i]
		}
	}
	return nil
}

// A pass cleans every physical node of every service, a service's nodes in batches, each with its
// service's keep; it holds each node from deploys while it cleans it, skips a node a deployment holds
// (naming it), records what every node kept and removed or why it failed, and gives the nodes back as
// they were.
func TestPassCleansEveryPhysicalNodeInBatchesAndGivesThemBack(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	for _, h := range []string{"h1", "h2", "h3", "h4", "h5"} {
		deployed(t, st, "web", h, "d-web", "v6", executor.PlatformPhysical)
	}
	deployed(t, st, "api", "a1", "d-api", "v6", executor.PlatformPhysical)
	deployed(t, st, "api", "a2", "d-api", "v6", executor.PlatformPhysical)
	deployed(t, st, "kube", "prod/web", "d-k8s", "v6", executor.PlatformK8s)
	if _, err := st.Claim(ctx, "web", "h6", executor.PlatformPhysical, "d-busy", "v7"); err != nil {
		t.Fatal(err)
	}
	fake := &fakeCleaner{st: st, fail: map[string]bool{"h4": true}}
	r := newRunner(st, fake, "r1", func(c *Config) { c.PerService = map[string]int{"api": 3} })

	tick := t0.Add(time.Hour)
	c, err := r.RunTick(ctx, tick)
	if err != nil || c == nil {
		t.Fatalf("RunTick = %v, %v", c, err)
	}
	if want := "[api keep=3 a1,a2 web keep=5 h1,h2 web keep=5 h3,h4 web keep=5 h5]"; fmt.Sprint(fake.calls) != want {
		t.Errorf("cleanup runs %v\nwant %s (batches of 2 per service; the k8s node and the busy one not asked)", fake.calls, want)
	}
	var busy *store.BusyError
	for _, err := range fake.intruded {
		if !errors.As(err, &busy) || busy.DeploymentID != c.ID {
			t.Errorf("a deploy's claim during the cleanup got %v; want refused, held by %s", err, c.ID)
		}
	}

	got, err := st.Cleanup(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.CleanupFailed || !strings.Contains(got.Error, "1 of 8 nodes failed") || got.Trigger != store.TriggerSchedule ||
		got.Tick == nil || !got.Tick.Equal(tick) || got.Runner != "r1" || got.FinishedAt == nil {
		t.Errorf("pass = %+v", got)
	}
	if len(got.Nodes) != 8 {
		t.Errorf("the pass lists %d nodes, want the 8 physical ones", len(got.Nodes))
	}
	for _, w := range []struct {
		service, host, state, kept, removed, err string
	}{
		{"api", "a1", store.NodeCleaned, "v4 v5 v6", "v1 v2 v3", ""},
		{"web", "h1", store.NodeCleaned, "v2 v3 v4 v5 v6", "v1", ""},
		{"web", "h4", store.NodeFailed, "", "", "host unreachable"},
		{"web", "h6", store.NodeSkipped, "", "", "held by deployment d-busy"},
	} {
		n := nodeOf(got, w.service, w.host)
		if n == nil {
			t.Errorf("%s/%s is not in the pass", w.service, w.host)
			continue
		}
		if n.State != w.state || strings.Join(n.Kept, " ") != w.kept || strings.Join(n.Removed, " ") != w.removed ||
			!strings.Contains(n.Error, w.err) || (w.err == "") != (n.Error == "") || n.Prior != nil {
			t.Errorf("%s/%s = %+v, want %+v", w.service, w.host, *n, w)
		}
	}
	// Every node is as it was: the cleaned ones free, the busy one still its deployment's.
	for _, h := range []string{"h1", "h4", "h5"} {
		n, err := st.Node(ctx, "web", h)
		if err != nil || n.State != executor.StateSuccess || n.DeploymentID != "d-web" || n.CurrentVersion != "v6" {
			t.Errorf("web/%s after the pass = %+v %v", h, n, err)
		}
	}
	if n, _ := st.Node(ctx, "web", "h6"); n.State != executor.StateDeploying || n.DeploymentID != "d-busy" {
		t.Errorf("web/h6 after the pass = %+v", n)
	}
	// The lease was given back: a pass can start at once.
	if _, err := r.Start(ctx, ""); err != nil {
		t.Errorf("a pass after the tick's: %v", err)
	}
	r.Wait()
}

// Two replicas' schedulers on one database fire for the same tick at the same moment: exactly one
// pass runs and is recorded; neither runs it again; the next tick runs once more.
func TestTwoSchedulersOnOneDatabaseRunEachTickOnce(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "web", "h1", "d-web", "v6", executor.PlatformPhysical)
	fakes := []*fakeCleaner{{st: st}, {st: st}}
	runners := []*Runner{newRunner(st, fakes[0], "replica-a"), newRunner(st, fakes[1], "replica-b")}
	tick := t0.Add(time.Hour)

	passes := make([]*store.Cleanup, 2)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := r.RunTick(ctx, tick)
			if err != nil {
				t.Errorf("%s: %v", r.cfg.Holder, err)
			}
			passes[i] = c
		}()
	}
	close(start)
	wg.Wait()
	ran := 0
	for i, c := range passes {
		if c != nil {
			ran++
			if c.Runner != runners[i].cfg.Holder || len(fakes[i].calls) != 1 || len(fakes[1-i].calls) != 0 {
				t.Errorf("the pass %+v ran on %s; cleanups a=%v b=%v", c, runners[i].cfg.Holder, fakes[0].calls, fakes[1].calls)
			}
		}
	}
	if ran != 1 {
		t.Fatalf("%d passes ran for one tick, want 1", ran)
	}
	// Either replica waking late for the same tick runs nothing.
	for _, r := range runners {
		if c, err := r.RunTick(ctx, tick); c != nil || err != nil {
			t.Errorf("%s ran the tick again: %+v %v", r.cfg.Holder, c, err)
		}
	}
	list, _, err := st.ListCleanups(ctx, 10, "")
	if err != nil || len(list) != 1 || list[0].State != store.CleanupSuccess {
		t.Fatalf("recorded passes = %+v %v; want exactly one, success", list, err)
	}
	if c, err := runners[1].RunTick(ctx, tick.Add(24*time.Hour)); c == nil || err != nil {
		t.Errorf("the next tick: %+v %v", c, err)
	}
	if list, _, _ := st.ListCleanups(ctx, 10, ""); len(list) != 2 {
		t.Errorf("after the next tick %d passes are recorded, want 2", len(list))
	}
}

// A pass prunes what finished before the retention period: old finished deployments go with their
// events, running and recent ones stay; the pass records the counts.
func TestPassPrunesRecordsPastTheRetention(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	now := t0
	old, recent := now.Add(-31*24*time.Hour), now.Add(-time.Hour)
	for _, d := range []struct {
		id       string
		state    executor.State
		finished *time.Time
	}{
		{"d-old", executor.StateSuccess, &old},
		{"d-old-running", executor.StateDeploying, nil},
		{"d-recent", executor.StateFailed, &recent},
	} {
		rec := &store.Deployment{ID: d.id, Kind: store.KindDeploy, Service: "web", State: d.state, FinishedAt: d.finished,
			CreatedAt: old.Add(-time.Hour), Nodes: []store.DeploymentNode{}}
		if _, _, err := st.CreateDeployment(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := st.AppendEvents(ctx, []store.Event{{DeploymentID: d.id, Seq: 1, Type: store.EventDeployment, Time: old}}); err != nil {
			t.Fatal(err)
		}
	}
	r := newRunner(st, &fakeCleaner{st: st}, "r1", func(c *Config) { c.Retention = 30 * 24 * time.Hour })
	c, err := r.RunTick(ctx, now)
	if err != nil || c == nil {
		t.Fatalf("RunTick = %v %v", c, err)
	}
	if c.State != store.CleanupSuccess || c.Pruned.Deployments != 1 || c.Pruned.EventChunks != 1 || c.Pruned.Before == nil ||
		!c.Pruned.Before.Equal(now.Add(-30*24*time.Hour)) {
		t.Errorf("pass = %+v, pruned %+v; want 1 deployment and its events, before %s", c, c.Pruned, now.Add(-30*24*time.Hour))
	}
	for id, kept := range map[string]bool{"d-old": false, "d-old-running": true, "d-recent": true} {
		_, err := st.Deployment(ctx, id)
		evs, _ := st.Events(ctx, id, 0, 10)
		if (err == nil) != kept || (len(evs) == 1) != kept {
			t.Errorf("%s: kept=%v with %d events, want kept=%v", id, err == nil, len(evs), kept)
		}
	}
	// Without a retention nothing is pruned.
	r = newRunner(st, &fakeCleaner{st: st}, "r1")
	if c, _ := r.RunTick(ctx, now.Add(time.Hour)); c == nil || c.Pruned.Before != nil || c.Pruned.Deployments != 0 {
		t.Errorf("a pass without retention pruned: %+v", c)
	}
}

// A pass on request runs in the background; while it runs no other pass starts, on this replica or
// another, and the refusal names it.
func TestOnePassAtATime(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "web", "h1", "d-web", "v6", executor.PlatformPhysical)
	fake := &fakeCleaner{st: st, hold: make(chan struct{}), running: make(chan struct{}, 1)}
	r := newRunner(st, fake, "replica-a")
	c, err := r.Start(ctx, "plan-layer")
	if err != nil {
		t.Fatal(err)
	}
	if c.State != store.CleanupRunning || c.Trigger != store.TriggerAPI || c.Token != "plan-layer" {
		t.Errorf("started pass = %+v", c)
	}
	<-fake.running
	var held *store.LeaseHeldError
	if _, err := r.Start(ctx, ""); !errors.As(err, &held) || held.Lease.Pass != c.ID {
		t.Errorf("a second pass on the same replica: %v; want refused naming %s", err, c.ID)
	}
	other := newRunner(st, &fakeCleaner{st: st}, "replica-b")
	if _, err := other.Start(ctx, ""); !errors.As(err, &held) || held.Lease.Holder != "replica-a" {
		t.Errorf("a pass on another replica: %v; want refused naming replica-a", err)
	}
	if p, err := other.RunTick(ctx, t0.Add(time.Hour)); p != nil || err != nil {
		t.Errorf("a tick on another replica while the pass runs: %+v %v", p, err)
	}
	close(fake.hold)
	r.Wait()
	got, err := st.Cleanup(ctx, c.ID)
	if err != nil || got.State != store.CleanupSuccess || nodeOf(got, "web", "h1").State != store.NodeCleaned {
		t.Errorf("the pass after it ran = %+v %v", got, err)
	}
}

// A pass records its end, then gives its lease back: a pass asked for by someone who saw the end, in
// between, runs (it takes the lease over); one asked for while a pass is recorded running does not.
func TestAPassMayStartOnceTheLastOneIsRecordedEnded(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "web", "h1", "d-web", "v6", executor.PlatformPhysical)
	// replica-a's pass p-last, recorded running, its lease not given back.
	last := &store.Cleanup{ID: "p-last", Trigger: store.TriggerAPI, Runner: "replica-a", State: store.CleanupRunning, Nodes: []store.CleanupNode{}, StartedAt: t0}
	if _, err := st.TakeLease(ctx, store.CleanupLease, "replica-a", last.ID, time.Time{}, t0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateCleanup(ctx, last); err != nil {
		t.Fatal(err)
	}
	r := newRunner(st, &fakeCleaner{st: st}, "replica-b")
	var held *store.LeaseHeldError
	if _, err := r.Start(ctx, ""); !errors.As(err, &held) || held.Lease.Pass != last.ID {
		t.Fatalf("a pass while p-last is recorded running: %v; want refused naming it", err)
	}
	end := t0.Add(time.Minute)
	last.State, last.FinishedAt = store.CleanupSuccess, &end
	if err := st.SaveCleanup(ctx, last); err != nil {
		t.Fatal(err)
	}
	c, err := r.Start(ctx, "")
	if err != nil {
		t.Fatalf("a pass once p-last is recorded ended, its lease not yet given back: %v", err)
	}
	r.Wait()
	if got, err := st.Cleanup(ctx, c.ID); err != nil || got.State != store.CleanupSuccess || nodeOf(got, "web", "h1").State != store.NodeCleaned {
		t.Errorf("the pass that took the lease over = %+v %v", got, err)
	}
	if got, err := st.Cleanup(ctx, last.ID); err != nil || got.State != store.CleanupSuccess || got.Error != "" {
		t.Errorf("p-last after the next pass (it was not abandoned) = %+v %v", got, err)
	}
}

// Stopping nodeexec cancels a running pass: the cleanup is cancelled, the nodes given back, the pass
// recorded failed, saying why.
func TestStopCancelsARunningPassAndRecordsWhy(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "web", "h1", "d-web", "v6", executor.PlatformPhysical)
	deployed(t, st, "web", "h2", "d-web", "v6", executor.PlatformPhysical)
	deployed(t, st, "web", "h3", "d-web", "v6", executor.PlatformPhysical)
	fake := &fakeCleaner{st: st, hold: make(chan struct{}), running: make(chan struct{}, 1)}
	r := newRunner(st, fake, "r1")
	c, err := r.Start(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	<-fake.running
	r.Stop()
	got, err := st.Cleanup(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.CleanupFailed || !strings.Contains(got.Error, "shutting down") {
		t.Errorf("pass after Stop = %+v", got)
	}
	if n := nodeOf(got, "web", "h1"); n.State != store.NodeFailed || !strings.Contains(n.Error, "cancelled") {
		t.Errorf("the node being cleaned = %+v", n)
	}
	if n := nodeOf(got, "web", "h3"); n.State != store.NodeSkipped || !strings.Contains(n.Error, "not cleaned: cleanup: nodeexec is shutting down") {
		t.Errorf("the node of the next batch = %+v", n)
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if n, _ := st.Node(ctx, "web", h); n.State != executor.StateSuccess || n.DeploymentID != "d-web" {
			t.Errorf("web/%s after the cancelled pass = %+v", h, n)
		}
	}
	if _, err := r.Start(ctx, ""); !errors.Is(err, ErrStopped) {
		t.Errorf("Start after Stop: %v", err)
	}
}

// A pass whose nodeexec died mid-cleanup is ended by the next pass: the nodes it held are given back
// as they were (and then cleaned), and it says it was interrupted.
func TestTheNextPassEndsOneItsNodeexecAbandoned(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "web", "h1", "d-web", "v6", executor.PlatformPhysical)
	deployed(t, st, "web", "h2", "d-web", "v6", executor.PlatformPhysical)
	// The dead pass: it took the lease, held h1 and recorded it, then its process died.
	dead := &store.Cleanup{ID: store.NewCleanupID(), Runner: "dead-replica", State: store.CleanupRunning, StartedAt: t0.Add(-time.Hour)}
	if _, err := st.TakeLease(ctx, store.CleanupLease, "dead-replica", dead.ID, time.Time{}, t0.Add(-time.Hour), time.Minute); err != nil {
		t.Fatal(err)
	}
	prior, err := st.Claim(ctx, "web", "h1", executor.PlatformPhysical, dead.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	dead.Nodes = []store.CleanupNode{{Service: "web", Host: "h1", State: store.NodeCleaning, Prior: prior}, {Service: "web", Host: "h2", State: store.NodePending}}
	if err := st.CreateCleanup(ctx, dead); err != nil {
		t.Fatal(err)
	}

	r := newRunner(st, &fakeCleaner{st: st}, "r1")
	c, err := r.RunTick(ctx, t0)
	if err != nil || c == nil {
		t.Fatalf("the next pass: %+v %v (the dead one's lease expired long ago)", c, err)
	}
	if c.State != store.CleanupSuccess || nodeOf(c, "web", "h1").State != store.NodeCleaned {
		t.Errorf("the next pass = %+v", c)
	}
	got, _ := st.Cleanup(ctx, dead.ID)
	if got.State != store.CleanupFailed || !strings.Contains(got.Error, "interrupted") || !strings.Contains(got.Error, "dead-replica") ||
		nodeOf(got, "web", "h1").State != store.NodeFailed || nodeOf(got, "web", "h2").State != store.NodeSkipped {
		t.Errorf("the abandoned pass = %+v", got)
	}
	if n, _ := st.Node(ctx, "web", "h1"); n.State != executor.StateSuccess || n.DeploymentID != "d-web" {
		t.Errorf("web/h1 = %+v; want given back as it was", n)
	}
}

// The schedule runs each tick at the schedule's time, with that time as the pass's tick.
func TestScheduleRunsATickAtItsTime(t *testing.T) {
	st := storetest.Open(t)
	deployed(t, st, "web", "h1", "d-web", "v6", executor.PlatformPhysical)
	sched, err := cron.ParseStandard("CRON_TZ=UTC 0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	r := newRunner(st, &fakeCleaner{st: st}, "r1", func(c *Config) { c.Schedule = sched })
	var waited []time.Time
	r.wait = func(_ context.Context, until time.Time) bool {
		waited = append(waited, until)
		return len(waited) == 1 // the first tick comes; then nodeexec stops
	}
	r.loop(context.Background())
	want := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	if len(waited) != 2 || !waited[0].Equal(want) {
		t.Fatalf("waited for %v; want %s, then the next", waited, want)
	}
	list, _, err := st.ListCleanups(context.Background(), 10, "")
	if err != nil || len(list) != 1 || list[0].Tick == nil || !list[0].Tick.Equal(want) || list[0].State != store.CleanupSuccess {
		t.Errorf("passes = %+v %v; want one, for the 03:00 tick", list, err)
	}
}

// A node that never got a release (its only deploy failed before, say, the host existed) is not
// connected to: the pass says there is nothing to clean there, and does not fail for it.
func TestANodeThatNeverGotAReleaseHasNothingToClean(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "web", "h1", "d-web", "v6", executor.PlatformPhysical)
	for _, h := range []string{"gone-1", "gone-2"} {
		if _, err := st.Claim(ctx, "web", h, executor.PlatformPhysical, "d-failed", "v6"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Finish(ctx, "d-failed", executor.NodeStatus{Service: "web", Host: h, State: executor.StateFailed, LastError: "host unreachable"}); err != nil {
			t.Fatal(err)
		}
	}
	fake := &fakeCleaner{st: st, fail: map[string]bool{"gone-1": true, "gone-2": true}}
	c, err := newRunner(st, fake, "r1").RunTick(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != store.CleanupSuccess || c.Error != "" {
		t.Errorf("pass = %s %q", c.State, c.Error)
	}
	if got := strings.Join(fake.calls, "; "); got != "web keep=5 h1" {
		t.Errorf("cleanups run = %q; the nodes that never got a release must not be asked", got)
	}
	for _, h := range []string{"gone-1", "gone-2"} {
		if n := nodeOf(c, "web", h); n.State != store.NodeSkipped || !strings.Contains(n.Error, "nothing to clean") {
			t.Errorf("%s = %+v", h, n)
		}
	}
}
