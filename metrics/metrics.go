// Package metrics is what nodeexec tells Prometheus about the deployments it runs: the metrics, their
// labels and help, and the registry /metrics serves. The engine records into it at the points where a
// deployment is queued, runs, calls its executor, reports a step and ends; nothing here decides anything
// about a deployment. docs/metrics.md documents every metric.
//
// Labels stay bounded: platform, kind, state, trigger, check, result and phase take a few fixed values,
// and service is a validated service name. Nothing is labelled by host, version or deployment id.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/buildinfo"
	"github.com/nodeexec/nodeexec/store"
)

// durationBuckets suit deploys: seconds for a Kubernetes rollout or one host, up to an hour for many
// hosts in batches.
var durationBuckets = []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600}

// Metrics holds nodeexec's metrics in a registry of their own (not Prometheus' global one), with the Go
// runtime's and the process's.
type Metrics struct {
	reg          *prometheus.Registry
	deployments  *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	rollbacks    *prometheus.CounterVec
	checks       *prometheus.CounterVec
	inFlight     *prometheus.GaugeVec
	executorRuns *prometheus.HistogramVec
	drifted      *prometheus.GaugeVec
}

// New registers the metrics in a new registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		deployments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodeexec_deployments_total",
			Help: "Deployments that ended, by kind (deploy, rollback, scale) and final state (success, failed; rolled_back for a rollback that reached every node). Cancelled and never-started ones end failed.",
		}, []string{"platform", "service", "kind", "state"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nodeexec_deployment_duration_seconds",
			Help:    "Time from a deployment's start (it got a run slot) to its recorded end, by kind and final state. Deployments that never started are not observed.",
			Buckets: durationBuckets,
		}, []string{"platform", "service", "kind", "state"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodeexec_node_rollbacks_total",
			Help: "Nodes rolled back: trigger=automatic counts nodes a deploy ended rolled_back (the new release failed verification and the node was switched back in the same run); trigger=explicit counts nodes a rollback request took back (ended rolled_back).",
		}, []string{"platform", "service", "trigger"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodeexec_health_checks_total",
			Help: "Health checks the executor ran on a node during a deploy, rollback or scale, by check and result (pass, fail); skipped checks are not counted. A check is one verification step: physical unit_active, http, tcp (the roles' verify tasks); k8s rollout, replicas, steady (blue-green's hold). The on-demand /internal/v1/deploy/health probes are not counted.",
		}, []string{"platform", "service", "check", "result"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nodeexec_deployments_in_flight",
			Help: "Deployments this process carries out now: phase=queued waits for a run slot (--max-concurrent), phase=running has one.",
		}, []string{"platform", "service", "phase"}),
		executorRuns: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nodeexec_executor_run_duration_seconds",
			Help:    "Time of each executor call, by kind. On platform physical a call is one ansible-playbook run (one batch, or one retry of its unreachable nodes); on k8s, the rollout of a group of workloads.",
			Buckets: durationBuckets,
		}, []string{"platform", "service", "kind"}),
		drifted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nodeexec_nodes_drifted",
			Help: "Nodes the last drift pass found differing from their record, by service and kind (version, unit_inactive, image_changed, unreachable). Set from each pass's result.",
		}, []string{"service", "kind"}),
	}
	// Which build serves, the way Prometheus' own exporters say it: one series at 1, the build in its labels.
	build := buildinfo.Read()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "nodeexec_build_info",
		Help: "The build of nodeexec this process runs (as GET /api/v1/version and `nodeexec version` say): always 1, the build in the labels.",
	}, []string{"version", "commit", "go_version"})
	buildInfo.WithLabelValues(build.Version, build.Commit, build.GoVersion).Set(1)
	m.reg.MustRegister(m.deployments, m.duration, m.rollbacks, m.checks, m.inFlight, m.executorRuns, m.drifted, buildInfo,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in Prometheus' exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Ended records a deployment's end from its final record: its outcome, how long it ran, and the nodes
// it rolled back.
func (m *Metrics) Ended(d *store.Deployment) {
	if m == nil {
		return
	}
	p := platform(d.Platform)
	m.deployments.WithLabelValues(p, d.Service, d.Kind, string(d.State)).Inc()
	if d.StartedAt != nil && d.FinishedAt != nil {
		m.duration.WithLabelValues(p, d.Service, d.Kind, string(d.State)).Observe(d.FinishedAt.Sub(*d.StartedAt).Seconds())
	}
	trigger := map[string]string{store.KindDeploy: "automatic", store.KindRollback: "explicit"}[d.Kind]
	if trigger == "" {
		return
	}
	for _, n := range d.Nodes {
		if n.State == executor.StateRolledBack {
			m.rollbacks.WithLabelValues(p, d.Service, trigger).Inc()
		}
	}
}

// Step counts a step a node reported, when it is a health check.
func (m *Metrics) Step(p executor.Platform, service string, st executor.Step) {
	if m == nil {
		return
	}
	check, ok := HealthCheck(p, st.Name)
	if !ok || st.Skipped {
		return
	}
	result := "pass"
	if st.Failed {
		result = "fail"
	}
	m.checks.WithLabelValues(platform(p), service, check, result).Inc()
}

// ExecutorRun records how long one executor call of a deployment of kind took.
func (m *Metrics) ExecutorRun(p executor.Platform, service, kind string, took time.Duration) {
	if m == nil {
		return
	}
	m.executorRuns.WithLabelValues(platform(p), service, kind).Observe(took.Seconds())
}

// Flight is one deployment's place in the in-flight gauge: queued until it runs, running until it ends.
type Flight struct {
	mu              sync.Mutex
	queued, running prometheus.Gauge
	phase           int // 0 queued, 1 running, 2 ended
}

// Queued counts a deployment that waits for a run slot.
func (m *Metrics) Queued(p executor.Platform, service string) *Flight {
	if m == nil {
		return nil
	}
	f := &Flight{queued: m.inFlight.WithLabelValues(platform(p), service, "queued"),
		running: m.inFlight.WithLabelValues(platform(p), service, "running")}
	f.queued.Inc()
	return f
}

// Running moves the deployment from queued to running.
func (f *Flight) Running() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.phase == 0 {
		f.queued.Dec()
		f.running.Inc()
		f.phase = 1
	}
}

// Done takes the deployment out of the gauge; calling it again does nothing.
func (f *Flight) Done() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.phase {
	case 0:
		f.queued.Dec()
	case 1:
		f.running.Dec()
	}
	f.phase = 2
}

// platform is the label of a deployment's platform; records from before platforms existed are physical.
func platform(p executor.Platform) string {
	if p == "" {
		return string(executor.PlatformPhysical)
	}
	return string(p)
}

// Drifted sets nodeexec_nodes_drifted from a drift pass's result: the nodes of each service it read,
// by kind of drift (0 for the kinds it did not find). A pass over every service (service "") replaces
// every count; one over a service replaces that service's.
func (m *Metrics) Drifted(service string, nodes []store.DriftNode) {
	if m == nil {
		return
	}
	if service == "" {
		m.drifted.Reset()
	} else {
		m.drifted.DeletePartialMatch(prometheus.Labels{"service": service})
	}
	for _, n := range nodes {
		for _, kind := range store.DriftKinds {
			g := m.drifted.WithLabelValues(n.Service, kind)
			if n.Drift != nil && n.Drift.Kind == kind {
				g.Inc()
			}
		}
	}
}
