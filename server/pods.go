package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// A Kubernetes deployment's pods, read live from the cluster for the management endpoints.

// podsTimeout bounds reading the pods of one deployment's workloads.
const podsTimeout = 10 * time.Second

// maxParallelPodReads bounds the cluster reads one management request makes at once.
const maxParallelPodReads = 8

type workloadPods struct {
	w    executor.Workload
	pods []executor.Pod
	err  error
}

// livePods reads the pods of each workload of a Kubernetes deployment, keyed by node name
// ("namespace/name"); nil for a physical one or when the server has no cluster.
func (s *Server) livePods(ctx context.Context, d *store.Deployment) map[string]workloadPods {
	insp, ok := s.cfg.K8s.(executor.PodInspector)
	if d.Platform != executor.PlatformK8s || !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, podsTimeout)
	defer cancel()
	workloads := d.Targets().Workloads
	out := make(map[string]workloadPods, len(workloads))
	var mu sync.Mutex
	each(workloads, func(w executor.Workload) {
		pods, err := insp.WorkloadPods(ctx, w)
		mu.Lock()
		out[w.Host()] = workloadPods{w: w, pods: pods, err: err}
		mu.Unlock()
	})
	return out
}

// each runs fn for every item, a bounded number at a time, and waits for all.
func each[T any](items []T, fn func(T)) {
	slots := make(chan struct{}, maxParallelPodReads)
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			fn(it)
		})
	}
	wg.Wait()
}

// podChecks are the health checks of a workload's pods: each passes when it runs and is ready.
func podChecks(node string, p workloadPods) []api.Check {
	if p.err != nil {
		return []api.Check{{Name: node, Type: "pod", Status: "unknown", Message: "cannot read the pods: " + p.err.Error()}}
	}
	if len(p.pods) == 0 {
		return []api.Check{{Name: node, Type: "pod", Status: "fail", Message: "the workload has no pods"}}
	}
	out := make([]api.Check, 0, len(p.pods))
	for _, pod := range p.pods {
		ch := api.Check{Name: pod.Name, Type: "pod", Status: "fail",
			Message: fmt.Sprintf("%s, ready %v, %d restarts, node %s, image %s", pod.Phase, pod.Ready, pod.Restarts, engine.OrNothing(pod.Node), pod.Image)}
		if pod.Phase == "Running" && pod.Ready {
			ch.Status = "pass"
		}
		out = append(out, ch)
	}
	return out
}

// podRef is one pod of one of a deployment's workloads.
type podRef struct {
	w   executor.Workload
	pod string
}

func findPod(pods map[string]workloadPods, name string) *podRef {
	for _, p := range pods {
		for _, pod := range p.pods {
			if pod.Name == name {
				return &podRef{w: p.w, pod: name}
			}
		}
	}
	return nil
}

// allPods lists the pods of a deployment's workloads, in the deployment's order.
func allPods(d *store.Deployment, pods map[string]workloadPods) []podRef {
	var out []podRef
	for _, n := range d.Nodes {
		for _, pod := range pods[n.Host].pods {
			out = append(out, podRef{w: pods[n.Host].w, pod: pod.Name})
		}
	}
	return out
}

// readPodLogs reads each pod's newest lines; a pod whose log cannot be read is named with the reason.
func (s *Server) readPodLogs(ctx context.Context, refs []podRef, lines int) ([]api.LogEntry, []api.LogReadError) {
	insp, ok := s.cfg.K8s.(executor.PodInspector)
	if !ok || len(refs) == 0 {
		return []api.LogEntry{}, nil
	}
	got := make([][]api.LogEntry, len(refs))
	errs := make([]error, len(refs))
	idx := make([]int, len(refs))
	for i := range idx {
		idx[i] = i
	}
	each(idx, func(i int) {
		l, err := podLogLines(ctx, insp, refs[i], lines)
		got[i], errs[i] = podEntries(refs[i].pod, l), err
	})
	entries := []api.LogEntry{}
	var failed []api.LogReadError
	for i, r := range refs {
		entries = append(entries, got[i]...)
		if errs[i] != nil {
			failed = append(failed, api.LogReadError{PodName: r.pod, Error: errs[i].Error()})
		}
	}
	return entries, failed
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
