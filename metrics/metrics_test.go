package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/buildinfo"
	"github.com/nodeexec/nodeexec/store"
)

func TestMetricsFollowPrometheusConventions(t *testing.T) {
	m := New()
	// Give every vector a series, so the linter sees them all.
	started, finished := time.Now(), time.Now().Add(time.Minute)
	m.Ended(&store.Deployment{Kind: store.KindDeploy, Service: "demo", State: executor.StateFailed, StartedAt: &started, FinishedAt: &finished,
		Nodes: []store.DeploymentNode{{State: executor.StateRolledBack}}})
	m.Step(executor.PlatformPhysical, "demo", executor.Step{Name: "Check the TCP port"})
	m.ExecutorRun(executor.PlatformPhysical, "demo", store.KindDeploy, time.Second)
	m.Queued(executor.PlatformPhysical, "demo")
	problems, err := testutil.GatherAndLint(m.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "nodeexec_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}

func TestEndedCountsOutcomeDurationAndRollbacks(t *testing.T) {
	started := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	finished := started.Add(90 * time.Second)
	nodes := func(states ...executor.State) []store.DeploymentNode {
		var out []store.DeploymentNode
		for _, s := range states {
			out = append(out, store.DeploymentNode{State: s})
		}
		return out
	}
	for _, c := range []struct {
		name                string
		d                   store.Deployment
		automatic, explicit float64
		observed            int
	}{
		{"a deploy with a node switched back counts an automatic rollback",
			store.Deployment{Kind: store.KindDeploy, State: executor.StateFailed, StartedAt: &started, FinishedAt: &finished,
				Nodes: nodes(executor.StateSuccess, executor.StateRolledBack, executor.StateFailed)}, 1, 0, 1},
		{"a rollback counts the nodes it took back",
			store.Deployment{Kind: store.KindRollback, State: executor.StateRolledBack, StartedAt: &started, FinishedAt: &finished,
				Nodes: nodes(executor.StateRolledBack, executor.StateRolledBack)}, 0, 2, 1},
		{"a failed rollback counts only the nodes it took back",
			store.Deployment{Kind: store.KindRollback, State: executor.StateFailed, StartedAt: &started, FinishedAt: &finished,
				Nodes: nodes(executor.StateRolledBack, executor.StateFailed)}, 0, 1, 1},
		{"a deployment that never started has no duration",
			store.Deployment{Kind: store.KindDeploy, State: executor.StateFailed, FinishedAt: &finished,
				Nodes: nodes(executor.StateFailed)}, 0, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := New()
			c.d.Service = "demo"
			m.Ended(&c.d)
			if got := testutil.ToFloat64(m.deployments.WithLabelValues("physical", "demo", c.d.Kind, string(c.d.State))); got != 1 {
				t.Errorf("deployments_total = %v, want 1", got)
			}
			if got := testutil.ToFloat64(m.rollbacks.WithLabelValues("physical", "demo", "automatic")); got != c.automatic {
				t.Errorf("automatic rollbacks = %v, want %v", got, c.automatic)
			}
			if got := testutil.ToFloat64(m.rollbacks.WithLabelValues("physical", "demo", "explicit")); got != c.explicit {
				t.Errorf("explicit rollbacks = %v, want %v", got, c.explicit)
			}
			if got := testutil.CollectAndCount(m.duration); got != c.observed {
				t.Errorf("duration series = %d, want %d", got, c.observed)
			}
		})
	}
}

func TestFlightMovesFromQueuedToRunningAndOutOnce(t *testing.T) {
	m := New()
	gauge := func(phase string) float64 {
		return testutil.ToFloat64(m.inFlight.WithLabelValues("k8s", "demo", phase))
	}
	a, b := m.Queued(executor.PlatformK8s, "demo"), m.Queued(executor.PlatformK8s, "demo")
	if gauge("queued") != 2 || gauge("running") != 0 {
		t.Fatalf("two queued: queued %v running %v", gauge("queued"), gauge("running"))
	}
	a.Running()
	a.Running()
	if gauge("queued") != 1 || gauge("running") != 1 {
		t.Fatalf("one running: queued %v running %v", gauge("queued"), gauge("running"))
	}
	a.Done()
	a.Done()
	b.Done() // cancelled while it waited
	b.Running()
	if gauge("queued") != 0 || gauge("running") != 0 {
		t.Fatalf("all done: queued %v running %v", gauge("queued"), gauge("running"))
	}
	var none *Metrics // a run without metrics (reconcile) records nothing and does not fail
	none.Queued(executor.PlatformK8s, "demo").Done()
	none.Ended(&store.Deployment{})
}

func TestBuildInfoIsOneSeriesNamingThisBuild(t *testing.T) {
	m := New()
	b := buildinfo.Read()
	want := fmt.Sprintf(`
# HELP nodeexec_build_info The build of nodeexec this process runs (as GET /api/v1/version and `+"`nodeexec version`"+` say): always 1, the build in the labels.
# TYPE nodeexec_build_info gauge
nodeexec_build_info{commit=%q,go_version=%q,version=%q} 1
`, b.Commit, b.GoVersion, b.Version)
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "nodeexec_build_info"); err != nil {
		t.Error(err)
	}
}
