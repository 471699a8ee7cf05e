//go:build e2e

package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/k8s"
)

// defaultDeadline is what the API server gives a Deployment that sets no progress deadline.
const defaultDeadline = 600 * time.Second

// BenchmarkK8sStuckRollout measures how long a failing rollout takes to be found failed, from the moment
// the image is set, on the real control plane (hack/kube up), whose simulated pods fail as the image's
// tag asks (hack/kwok-stages.yaml): a pull that backs off, a crash loop, pods that run but never get
// ready. Each with the Deployment's progress deadline at its default (600 s) and at 10 s.
//   - executor: the K8sExecutor's Deploy; the time until it reports the rollout's step failed (it then
//     rolls back, not timed).
//   - baseline: what `kubectl rollout status` does: set the image, watch the Deployment until the
//     controller says ProgressDeadlineExceeded.
//
// The two alternate on the same Deployment. A side that can only end at the 600 s default runs only
// with NODEEXEC_BENCH_LONG=1 (it is 600 s by construction otherwise, and would take CI's budget).
func BenchmarkK8sStuckRollout(b *testing.B) {
	_, admin := controlPlane(b)
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	long := os.Getenv("NODEEXEC_BENCH_LONG") == "1"
	for _, failure := range []string{"imagepullbackoff", "crashloopbackoff", "neverready"} {
		for _, deadline := range []time.Duration{defaultDeadline, 10 * time.Second} {
			name := fmt.Sprintf("failure=%s/deadline=%s", failure, deadline)
			b.Run(name, func(b *testing.B) {
				// Only a progress deadline ends a rollout whose pods run but never get ready, and the
				// baseline looks at nothing else.
				runExec := long || deadline < defaultDeadline || failure != "neverready"
				runBase := long || deadline < defaultDeadline
				exec, err := k8s.New(k8s.Config{Client: admin, Logger: log, RolloutTimeout: deadline + time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				s := newStuckBench(b, admin, exec, deadline)
				var execTime, baseTime time.Duration
				n := 0
				for ; b.Loop(); n++ {
					sides := []func(){
						func() {
							if runExec {
								execTime += s.viaExecutor(b, failure)
							}
						},
						func() {
							if runBase {
								baseTime += s.viaBaseline(b, failure)
							}
						},
					}
					sides[n%2]()
					sides[1-n%2]()
				}
				if runExec {
					b.ReportMetric(execTime.Seconds()/float64(n), "executor-s/detect")
				}
				if runBase {
					b.ReportMetric(baseTime.Seconds()/float64(n), "baseline-s/detect")
				}
				if runExec && runBase {
					b.ReportMetric(float64(execTime)/float64(baseTime), "ratio")
				}
			})
		}
	}
}

type stuckBench struct {
	c       kubernetes.Interface
	exec    *k8s.Executor
	w       executor.Workload
	version int
}

// newStuckBench makes one Deployment of benchReplicas at v1 with the given progress deadline, ready.
func newStuckBench(b *testing.B, c kubernetes.Interface, exec *k8s.Executor, deadline time.Duration) *stuckBench {
	b.Helper()
	f := newFleet(b, c, 1, logrus.StandardLogger())
	s := &stuckBench{c: c, exec: exec, w: f.workloads[0], version: 1}
	seconds := int32(deadline / time.Second)
	patch := fmt.Sprintf(`{"spec":{"progressDeadlineSeconds":%d}}`, seconds)
	if _, err := c.AppsV1().Deployments(s.w.Namespace).Patch(context.Background(), s.w.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		b.Fatal(err)
	}
	return s
}

// viaExecutor deploys a failing image; the time is until the rollout's wait failed.
func (s *stuckBench) viaExecutor(b *testing.B, failure string) time.Duration {
	b.Helper()
	s.version++
	v := fmt.Sprintf("v%d-%s", s.version, failure)
	var mu sync.Mutex
	var failedAt time.Time
	start := time.Now()
	res, err := s.exec.Deploy(context.Background(), executor.DeployRequest{
		DeploymentID: "bench-" + v, Service: "bench", Version: v,
		K8sDeploy: executor.K8sDeploy{Image: "registry.example/bench:" + v, Workloads: []executor.Workload{s.w}},
		Progress: func(_ string, st executor.Step) {
			if st.Name == "Wait for the rollout" && st.Failed {
				mu.Lock()
				failedAt = time.Now()
				mu.Unlock()
			}
		},
	})
	if err != nil || len(res) != 1 || res[0].State != executor.StateRolledBack {
		b.Fatalf("executor: deploy of %s = %+v %v, want rolled_back", v, res, err)
	}
	b.Logf("executor: %s", res[0].LastError)
	mu.Lock()
	defer mu.Unlock()
	return failedAt.Sub(start)
}

// viaBaseline sets a failing image and watches the Deployment until it says the deadline passed, as
// `kubectl rollout status` does; then puts the previous image back (not timed).
func (s *stuckBench) viaBaseline(b *testing.B, failure string) time.Duration {
	b.Helper()
	s.version++
	ctx := context.Background()
	deployments := s.c.AppsV1().Deployments(s.w.Namespace)
	d, err := deployments.Get(ctx, s.w.Name, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	before := d.Spec.Template.Spec.Containers[0].Image
	start := time.Now()
	setImage(b, deployments, s.w, fmt.Sprintf("registry.example/bench:v%d-%s", s.version, failure))
	r := watchRollout(b, s.c, s.w, func(r k8s.Rollout) bool { return r.Done || r.Failed })
	took := time.Since(start)
	if !r.Failed || !strings.Contains(r.Message, "progress deadline") {
		b.Fatalf("baseline: %+v, want the progress deadline exceeded", r)
	}
	setImage(b, deployments, s.w, before)
	watchRollout(b, s.c, s.w, func(r k8s.Rollout) bool { return r.Done })
	return took
}

type deploymentsAPI interface {
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*appsv1.Deployment, error)
}

func setImage(b *testing.B, d deploymentsAPI, w executor.Workload, img string) {
	b.Helper()
	if _, err := d.Patch(context.Background(), w.Name, types.StrategicMergePatchType, imagePatch(w.Container, img), metav1.PatchOptions{}); err != nil {
		b.Fatal(err)
	}
}

// watchRollout watches the Deployment until until says so of its rollout (k8s.DeploymentRollout).
func watchRollout(b *testing.B, c kubernetes.Interface, w executor.Workload, until func(k8s.Rollout) bool) k8s.Rollout {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), defaultDeadline+2*time.Minute)
	defer cancel()
	for {
		watcher, err := c.AppsV1().Deployments(w.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + w.Name})
		if err != nil {
			b.Fatal(err)
		}
		for ev := range watcher.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok {
				if r := k8s.DeploymentRollout(d); until(r) {
					watcher.Stop()
					return r
				}
			}
		}
		if ctx.Err() != nil {
			b.Fatalf("%s: the rollout never ended", w.Host())
		}
	}
}
