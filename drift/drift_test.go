package drift

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// The tests run passes on the real embedded database; the executors are fakes that answer what each
// node runs (real nodes and a real control plane: cmd/nodeexec's e2e suite).

// deployed records that deployment id put version on host and succeeded, with the deployment's record
// naming its targets (a workload's kind, for platform k8s).
func deployed(t *testing.T, s *store.Store, service, host, id, version string, platform executor.Platform) {
	t.Helper()
	ctx := context.Background()
	req := &executor.DeployRequest{DeploymentID: id, Service: service, Version: version}
	if platform == executor.PlatformK8s {
		ns, name, _ := strings.Cut(host, "/")
		req.Workloads = []executor.Workload{{Namespace: ns, Kind: executor.KindDeployment, Name: name}}
	} else {
		req.Nodes = []executor.Node{{Host: host}}
	}
	if _, _, err := s.CreateDeployment(ctx, &store.Deployment{ID: id, Kind: store.KindDeploy, Service: service, Version: version,
		Platform: platform, Deploy: req, State: executor.StateSuccess, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(ctx, service, host, platform, id, version); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, id, executor.NodeStatus{Service: service, Host: host, State: executor.StateSuccess, CurrentVersion: version, PrevVersion: "v0"}); err != nil {
		t.Fatal(err)
	}
}

// fakeNodes answers ServiceStatus from what each host "runs"; while it reads, it checks that a deploy
// cannot take the nodes. hold, when set, keeps a read running until it is closed.
type fakeNodes struct {
	st   *store.Store
	runs map[string]executor.ServiceStatus // by host
	hold chan struct{}
	// running is told when a read starts (when set).
	running chan struct{}

	mu       sync.Mutex
	intruded []error
	requests []executor.StatusRequest
}

func (f *fakeNodes) ServiceStatus(ctx context.Context, req executor.StatusRequest) ([]executor.ServiceStatus, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	var out []executor.ServiceStatus
	for _, n := range req.Nodes {
		_, err := f.st.Claim(ctx, req.Service, n.Host, executor.PlatformPhysical, "d-intruder", "v9")
		f.mu.Lock()
		f.intruded = append(f.intruded, err)
		f.mu.Unlock()
		s, ok := f.runs[n.Host]
		if !ok {
			continue // says nothing of it
		}
		s.Host, s.Service = n.Host, req.Service
		out = append(out, s)
	}
	if f.running != nil {
		f.running <- struct{}{}
	}
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// fakeWorkloads answers Status with each workload's live version.
type fakeWorkloads struct {
	live  map[string]string // by "namespace/name"
	kinds []string
}

func (f *fakeWorkloads) Status(_ context.Context, req executor.StatusRequest) ([]executor.NodeResult, error) {
	var out []executor.NodeResult
	for _, w := range req.Workloads {
		f.kinds = append(f.kinds, w.Kind)
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: w.Host(), Service: req.Service,
			Platform: executor.PlatformK8s, CurrentVersion: f.live[w.Host()], State: executor.StateSuccess}, RunningVersion: f.live[w.Host()]})
	}
	return out, nil
}

type seen struct {
	mu      sync.Mutex
	events  []string // "service host kind"
	metrics map[string]int
}

func (s *seen) NodeDrifted(_ string, n store.DriftNode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, n.Service+" "+n.Host+" "+n.Drift.Kind)
}

func (s *seen) Drifted(_ string, nodes []store.DriftNode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics = map[string]int{}
	for _, n := range nodes {
		if n.Drift != nil {
			s.metrics[n.Service+" "+n.Drift.Kind]++
		}
	}
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func running(v string) executor.ServiceStatus {
	return executor.ServiceStatus{Running: true, ActiveState: "active", CurrentVersion: v, PrevVersion: "v1", RunningVersion: v, State: executor.StateSuccess}
}

// runPass starts a pass and waits for its end.
func runPass(t *testing.T, r *Runner, service string) *store.DriftPass {
	t.Helper()
	p, err := r.Start(context.Background(), "", service)
	if err != nil {
		t.Fatal(err)
	}
	r.Wait()
	got, err := r.cfg.Store.DriftPass(context.Background(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func nodeOf(p *store.DriftPass, host string) store.DriftNode {
	for _, n := range p.Nodes {
		if n.Host == host {
			return n
		}
	}
	return store.DriftNode{}
}

func TestAPassHealsVersionDriftFlagsAStoppedUnitAndLeavesAnUnreachableNodesVersions(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	for _, h := range []string{"h1", "h2", "h3", "h4"} {
		deployed(t, st, "web", h, "d-"+h, "v1", executor.PlatformPhysical)
	}
	nodes := &fakeNodes{st: st, runs: map[string]executor.ServiceStatus{
		"h1": running("v2"), // deployed by hand
		"h2": {ActiveState: "inactive", CurrentVersion: "v1", PrevVersion: "v0", State: executor.StateSuccess},
		"h3": {Error: "ssh: connect to host h3 port 22: No route to host"},
		"h4": running("v1"),
	}}
	obs := &seen{}
	r := New(Config{Store: st, Nodes: nodes, Metrics: obs, Notify: obs, Logger: quiet()})
	defer r.Stop()
	p := runPass(t, r, "")
	if p.State != store.DriftSuccess || len(p.Nodes) != 4 {
		t.Fatalf("pass %s with %d nodes (%s), want success with 4", p.State, len(p.Nodes), p.Error)
	}
	want := map[string]string{"h1": store.DriftVersion, "h2": store.DriftUnitInactive, "h3": store.DriftUnreachable, "h4": ""}
	for host, kind := range want {
		n, err := st.Node(ctx, "web", host)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if n.Drift != nil {
			got = n.Drift.Kind
		}
		if got != kind {
			t.Errorf("%s: drift %q, want %q", host, got, kind)
		}
		if n.State == executor.StateDeploying || n.DeploymentID != "d-"+host {
			t.Errorf("%s not given back as it was: state %s, deployment %s", host, n.State, n.DeploymentID)
		}
		if pn := nodeOf(p, host); pn.State != store.DriftNodeRead {
			t.Errorf("%s: pass says %s (%s), want read", host, pn.State, pn.Error)
		}
	}
	if h1, _ := st.Node(ctx, "web", "h1"); h1.CurrentVersion != "v2" || h1.PrevVersion != "v1" {
		t.Errorf("h1's record says %s (prev %s), want the node's v2 (prev v1)", h1.CurrentVersion, h1.PrevVersion)
	}
	if u := nodeOf(p, "h1").Updated; u == nil || u.FromCurrent != "v1" || u.Current != "v2" {
		t.Errorf("the pass does not say h1's record went from v1 to v2: %+v", u)
	}
	if h3, _ := st.Node(ctx, "web", "h3"); h3.CurrentVersion != "v1" || h3.Drift.Recorded != "v1" {
		t.Errorf("unreachable h3's record changed: %+v", h3)
	}
	if len(obs.events) != 3 || obs.metrics["web version"] != 1 || obs.metrics["web unit_inactive"] != 1 || obs.metrics["web unreachable"] != 1 {
		t.Errorf("webhook events %v, metrics %v: want one of each kind", obs.events, obs.metrics)
	}
	for _, err := range nodes.intruded {
		var busy *store.BusyError
		if !errors.As(err, &busy) || busy.DeploymentID != p.ID || !strings.Contains(err.Error(), "drift pass") {
			t.Errorf("a deploy during the read got %v, want the node busy with drift pass %s", err, p.ID)
		}
	}

	// The next pass: the node deployed by hand is in step now (cleared), the stopped unit stays stopped
	// (kept, since unchanged, no second event), the unreachable node answers (cleared).
	first, _ := st.Node(ctx, "web", "h2")
	nodes.runs["h3"] = running("v1")
	p2 := runPass(t, r, "")
	for host, change := range map[string]string{"h1": store.DriftCleared, "h2": store.DriftKept, "h3": store.DriftCleared, "h4": ""} {
		if got := nodeOf(p2, host).Change; got != change {
			t.Errorf("second pass, %s: change %q, want %q", host, got, change)
		}
	}
	h2, _ := st.Node(ctx, "web", "h2")
	if h2.Drift == nil || !h2.Drift.Since.Equal(first.Drift.Since) {
		t.Errorf("h2's drift %+v, want it kept since %s", h2.Drift, first.Drift.Since)
	}
	drifted, _, err := st.ListNodes(ctx, store.NodeFilter{Drifted: true, Limit: 10})
	if err != nil || len(drifted) != 1 || drifted[0].Host != "h2" {
		t.Errorf("drifted nodes %v (%v), want h2 alone", drifted, err)
	}
	if len(obs.events) != 3 || obs.metrics["web unit_inactive"] != 1 || len(obs.metrics) != 1 {
		t.Errorf("after the second pass: events %v, metrics %v", obs.events, obs.metrics)
	}
}

func TestANodeHeldByADeploymentIsSkippedAndNamedAndANodeTheReadMissedIsUnreachable(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "web", "h1", "d-1", "v1", executor.PlatformPhysical)
	deployed(t, st, "web", "h2", "d-2", "v1", executor.PlatformPhysical)
	if _, err := st.Claim(ctx, "web", "h1", executor.PlatformPhysical, "d-busy", "v3"); err != nil {
		t.Fatal(err)
	}
	nodes := &fakeNodes{st: st, runs: map[string]executor.ServiceStatus{}}
	r := New(Config{Store: st, Nodes: nodes, Logger: quiet()})
	defer r.Stop()
	p := runPass(t, r, "web")
	h1 := nodeOf(p, "h1")
	if h1.State != store.DriftNodeSkipped || !strings.Contains(h1.Error, "deployment d-busy") {
		t.Errorf("h1: %s (%s), want skipped naming deployment d-busy", h1.State, h1.Error)
	}
	if n, _ := st.Node(ctx, "web", "h1"); n.DeploymentID != "d-busy" || n.State != executor.StateDeploying {
		t.Errorf("the deployment lost h1: %+v", n)
	}
	if h2 := nodeOf(p, "h2"); h2.Drift == nil || h2.Drift.Kind != store.DriftUnreachable {
		t.Errorf("h2, which the read said nothing of: %+v, want unreachable", h2)
	}
	for _, req := range nodes.requests {
		for _, n := range req.Nodes {
			if n.Host == "h1" {
				t.Error("the held node was read")
			}
		}
	}
}

func TestAWorkloadWhoseImageWasChangedTakesTheLiveVersion(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "api", "drift-ns/api", "d-k", "v1", executor.PlatformK8s)
	deployed(t, st, "web", "h1", "d-p", "v1", executor.PlatformPhysical)
	wl := &fakeWorkloads{live: map[string]string{"drift-ns/api": "v2"}}
	// No reader of physical nodes: those are skipped, saying why.
	r := New(Config{Store: st, Workloads: wl, Logger: quiet()})
	defer r.Stop()
	p := runPass(t, r, "")
	n, err := st.Node(ctx, "api", "drift-ns/api")
	if err != nil {
		t.Fatal(err)
	}
	if n.Drift == nil || n.Drift.Kind != store.DriftImageChanged || n.CurrentVersion != "v2" || n.PrevVersion != "v1" {
		t.Errorf("workload record %+v (drift %+v), want v2 (prev v1) with an image_changed drift", n, n.Drift)
	}
	if len(wl.kinds) != 1 || wl.kinds[0] != executor.KindDeployment {
		t.Errorf("workload read as kinds %v, want the deployment's Deployment", wl.kinds)
	}
	if h1 := nodeOf(p, "h1"); h1.State != store.DriftNodeSkipped || !strings.Contains(h1.Error, "physical") {
		t.Errorf("h1: %+v, want skipped: no physical executor", h1)
	}
}

func TestOnlyOnePassRunsAtATime(t *testing.T) {
	st := storetest.Open(t)
	deployed(t, st, "web", "h1", "d-1", "v1", executor.PlatformPhysical)
	nodes := &fakeNodes{st: st, runs: map[string]executor.ServiceStatus{"h1": running("v1")}, hold: make(chan struct{}), running: make(chan struct{}, 1)}
	r := New(Config{Store: st, Nodes: nodes, Logger: quiet()})
	other := New(Config{Store: st, Nodes: nodes, Logger: quiet()}) // another replica
	defer r.Stop()
	defer other.Stop()
	first, err := r.Start(context.Background(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	<-nodes.running
	for _, runner := range []*Runner{r, other} {
		_, err := runner.Start(context.Background(), "", "")
		var held *store.LeaseHeldError
		if !errors.As(err, &held) || held.Lease.Pass != first.ID {
			t.Errorf("a second pass while %s runs: %v, want the lease held by it", first.ID, err)
		}
	}
	close(nodes.hold)
	r.Wait()
	if _, err := other.Start(context.Background(), "", ""); err != nil {
		t.Errorf("a pass after the first ended: %v", err)
	}
	other.Wait()
}

func TestASuccessfulDeployClearsTheDrift(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "web", "h1", "d-1", "v1", executor.PlatformPhysical)
	nodes := &fakeNodes{st: st, runs: map[string]executor.ServiceStatus{"h1": running("v2")}}
	r := New(Config{Store: st, Nodes: nodes, Logger: quiet()})
	defer r.Stop()
	runPass(t, r, "")
	if n, _ := st.Node(ctx, "web", "h1"); n.Drift == nil {
		t.Fatal("no drift recorded")
	}
	deployed(t, st, "web", "h1", "d-2", "v3", executor.PlatformPhysical)
	n, _ := st.Node(ctx, "web", "h1")
	if n.Drift != nil {
		t.Errorf("drift %+v after a successful deploy, want none", *n.Drift)
	}
}

// A scheduled tick runs on one replica only: the second to wake for it runs nothing.
func TestAScheduledTickRunsOnceAcrossReplicas(t *testing.T) {
	st := storetest.Open(t)
	deployed(t, st, "web", "h1", "d-1", "v1", executor.PlatformPhysical)
	nodes := &fakeNodes{st: st, runs: map[string]executor.ServiceStatus{"h1": running("v1")}}
	a := New(Config{Store: st, Nodes: nodes, Logger: quiet(), Holder: "a"})
	b := New(Config{Store: st, Nodes: nodes, Logger: quiet(), Holder: "b"})
	defer a.Stop()
	defer b.Stop()
	tick := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	p, err := a.RunTick(context.Background(), tick)
	if err != nil || p == nil || p.Tick == nil || !p.Tick.Equal(tick) || p.Trigger != store.TriggerSchedule || p.State != store.DriftSuccess {
		t.Fatalf("replica a's pass for the tick = %+v, %v", p, err)
	}
	if p, err := b.RunTick(context.Background(), tick); p != nil || err != nil {
		t.Errorf("replica b ran the same tick again: %+v, %v", p, err)
	}
}

// A pass a stopped nodeexec left running is ended by the next one, which gives back the node it held
// as it was (its drift too) and then reads it itself.
func TestTheNextPassEndsAnAbandonedOneAndGivesItsNodeBack(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	deployed(t, st, "web", "h1", "d-1", "v1", executor.PlatformPhysical)
	gone := store.NewDriftID()
	prior, err := st.Claim(ctx, "web", "h1", executor.PlatformPhysical, gone, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDriftPass(ctx, &store.DriftPass{ID: gone, Trigger: store.TriggerAPI, Runner: "dead-replica", State: store.DriftRunning,
		StartedAt: time.Now().UTC(), Nodes: []store.DriftNode{{Service: "web", Host: "h1", Platform: executor.PlatformPhysical, State: store.DriftNodeReading, Prior: prior}}}); err != nil {
		t.Fatal(err)
	}
	r := New(Config{Store: st, Nodes: &fakeNodes{st: st, runs: map[string]executor.ServiceStatus{"h1": running("v1")}}, Logger: quiet()})
	defer r.Stop()
	p := runPass(t, r, "")
	if n := nodeOf(p, "h1"); n.State != store.DriftNodeRead {
		t.Errorf("h1 in the new pass: %+v, want read", n)
	}
	old, err := st.DriftPass(ctx, gone)
	if err != nil || old.State != store.DriftFailed || !strings.Contains(old.Error, "dead-replica") || old.Nodes[0].State != store.DriftNodeSkipped {
		t.Errorf("the abandoned pass: %+v %v, want failed naming its runner", old, err)
	}
	if n, _ := st.Node(ctx, "web", "h1"); n.DeploymentID != "d-1" || n.State != executor.StateSuccess {
		t.Errorf("h1 not given back: %+v", n)
	}
}
