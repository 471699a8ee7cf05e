//go:build e2e

package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/k8s"
)

// benchReplicas is every Deployment's size: small enough that K = 50 (100 pods, plus one surge pod
// each during a rollout) fits the 330 pods the 3 KWOK nodes of hack/kube take.
const benchReplicas = 2

// settle is the quiet time before each side's rollout, not timed, so that neither starts while the
// controllers still work through the tail of the other's (events, the old ReplicaSets' status). With
// kube-controller-manager's default client limits (20 requests/s, bursts of 30), a side that started
// the moment the other's rollout ended found those bursts spent, and a 2-replica rollout that takes
// 0.1-0.3 s took up to 1.3 s; hack/kube now lifts those limits, and the pause costs little.
const settle = 3 * time.Second

// BenchmarkK8sRollout rolls out K = 1, 10, 50 Deployments at once through the K8sExecutor (set the image,
// wait with a watch) and through a plain client-go loop per Deployment that polls (patch the image, then
// Get the Deployment every interval until it is done, as Helm's --wait does; `kubectl rollout status`
// watches), on a real API server with real controllers (hack/kube up). The two take turns on the same
// Deployments, each iteration a new version, and which goes first alternates. Both sides use the same
// done-rule (k8s.DeploymentRollout) and have their own client, without client-side rate limit, whose
// HTTP requests are counted. Run: eval "$(hack/kube env)"; go test -tags e2e -run '^$' -bench K8s ./bench/
func BenchmarkK8sRollout(b *testing.B) {
	cfg, admin := controlPlane(b)
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	for _, k := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("K=%d", k), func(b *testing.B) {
			f := newFleet(b, admin, k, log)
			// Every 1 s, and every 2 s as Helm's --wait polls (helm.sh/helm pkg/kube wait.go).
			for _, every := range []time.Duration{time.Second, 2 * time.Second} {
				b.Run("poll="+every.String(), func(b *testing.B) {
					var execCalls, pollCalls atomic.Int64
					// MaxParallel = K: at its default (10) the executor would roll K = 50 out in 5 waves.
					exec, err := k8s.New(k8s.Config{Client: clientset(b, cfg, &execCalls), Logger: log,
						MaxParallel: k, RolloutTimeout: 5 * time.Minute})
					if err != nil {
						b.Fatal(err)
					}
					poller := clientset(b, cfg, &pollCalls)
					var execTime, pollTime time.Duration
					var execReqs, pollReqs int64
					n := 0
					for ; b.Loop(); n++ {
						viaExecutor := func() {
							time.Sleep(settle)
							t, r := f.viaExecutor(b, exec, &execCalls)
							execTime, execReqs = execTime+t, execReqs+r
							b.Logf("executor: %.2f s, %d requests", t.Seconds(), r)
						}
						viaPolling := func() {
							time.Sleep(settle)
							t, r := f.viaPolling(b, poller, &pollCalls, every)
							pollTime, pollReqs = pollTime+t, pollReqs+r
							b.Logf("polling:  %.2f s, %d requests", t.Seconds(), r)
						}
						if n%2 == 0 {
							viaExecutor()
							viaPolling()
						} else {
							viaPolling()
							viaExecutor()
						}
					}
					rollouts := float64(n * k)
					b.ReportMetric(execTime.Seconds()/float64(n), "executor-s/rollout-batch")
					b.ReportMetric(pollTime.Seconds()/float64(n), "baseline-s/rollout-batch")
					b.ReportMetric(float64(execTime)/float64(pollTime), "ratio")
					b.ReportMetric(float64(execReqs)/rollouts, "executor-requests/rollout")
					b.ReportMetric(float64(pollReqs)/rollouts, "baseline-requests/rollout")
				})
			}
		})
	}
}

// controlPlane is hack/kube's control plane: its client configuration and an admin client (skipped
// when it is not up).
func controlPlane(b *testing.B) (*rest.Config, kubernetes.Interface) {
	b.Helper()
	path := os.Getenv("NODEEXEC_TEST_KUBECONFIG")
	if path == "" {
		b.Skip("set NODEEXEC_TEST_KUBECONFIG (eval \"$(hack/kube env)\" after hack/kube up)")
	}
	_, cfg, err := k8s.NewClient(path)
	if err != nil {
		b.Fatal(err)
	}
	return cfg, clientset(b, cfg, nil)
}

// clientset is a client of its own for one side, its HTTP requests counted in calls (nil: not counted;
// a watch is one request), with a client-side rate limit too high to throttle either side (client-go's
// default, 5 QPS with bursts of 10, would throttle the polling loop first).
func clientset(b *testing.B, cfg *rest.Config, calls *atomic.Int64) kubernetes.Interface {
	b.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1000, 2000
	if calls != nil {
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, calls: calls} })
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

type countingTransport struct {
	next  http.RoundTripper
	calls *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.calls.Add(1)
	return t.next.RoundTrip(r)
}

// fleet is K Deployments in a namespace of their own, and the version they were last rolled out to.
type fleet struct {
	admin     kubernetes.Interface // setup and checks, not counted
	ns        string
	workloads []executor.Workload
	version   int
}

func image(version int) string { return fmt.Sprintf("registry.example/bench:v%d", version) }

// newFleet creates K Deployments at v1 and waits until every one is ready; the namespace is deleted
// when the benchmark ends.
func newFleet(b *testing.B, admin kubernetes.Interface, k int, log logrus.FieldLogger) *fleet {
	b.Helper()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	f := &fleet{admin: admin, ns: "bench-" + hex.EncodeToString(suffix), version: 1}
	ctx := context.Background()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { deleteNamespace(b, admin, f.ns) })
	replicas := int32(benchReplicas)
	for i := range k {
		name := fmt.Sprintf("web-%02d", i)
		labels := map[string]string{"app": name}
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
				// The default rolling update: 25% surge, 25% unavailable, which for 2 replicas is one new pod
				// at a time, and no old one down before its replacement is ready.
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						NodeSelector: map[string]string{"type": "kwok"},
						Tolerations:  []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
						Containers:   []corev1.Container{{Name: "app", Image: image(1)}},
					},
				},
			},
		}
		if _, err := admin.AppsV1().Deployments(f.ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		f.workloads = append(f.workloads, executor.Workload{Namespace: f.ns, Kind: executor.KindDeployment, Name: name, Container: "app"})
	}
	// Deploying the image they already run changes nothing and waits (with a watch) until they are ready.
	setup, err := k8s.New(k8s.Config{Client: admin, Logger: log, MaxParallel: k, RolloutTimeout: 5 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	res, err := setup.Deploy(ctx, executor.DeployRequest{
		DeploymentID: "bench-setup",
		Service:      "bench",
		Version:      "v1",
		K8sDeploy:    executor.K8sDeploy{Image: image(1), Workloads: f.workloads},
	})
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		if r.State != executor.StateSuccess {
			b.Fatalf("%s never became ready at v1: %s %s", r.Host, r.State, r.LastError)
		}
	}
	f.checkPods(b, 1)
	return f
}

// viaExecutor rolls every Deployment out to the next version in one Deploy, and returns how long it
// took and how many requests it made.
func (f *fleet) viaExecutor(b *testing.B, exec *k8s.Executor, calls *atomic.Int64) (time.Duration, int64) {
	b.Helper()
	f.version++
	v := fmt.Sprintf("v%d", f.version)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	before, start := calls.Load(), time.Now()
	res, err := exec.Deploy(ctx, executor.DeployRequest{
		DeploymentID: "bench-" + v,
		Service:      "bench",
		Version:      v,
		K8sDeploy:    executor.K8sDeploy{Image: image(f.version), Workloads: f.workloads},
	})
	took, requests := time.Since(start), calls.Load()-before
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		if r.State != executor.StateSuccess || r.CurrentVersion != v {
			b.Fatalf("executor: %s: %s at %s, want success at %s: %s", r.Host, r.State, r.CurrentVersion, v, r.LastError)
		}
	}
	f.checkPods(b, f.version)
	return took, requests
}

// viaPolling rolls every Deployment out to the next version with one polling loop each, all at once.
func (f *fleet) viaPolling(b *testing.B, c kubernetes.Interface, calls *atomic.Int64, every time.Duration) (time.Duration, int64) {
	b.Helper()
	f.version++
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errs := make([]error, len(f.workloads))
	var wg sync.WaitGroup
	before, start := calls.Load(), time.Now()
	for i, w := range f.workloads {
		wg.Go(func() { errs[i] = pollRollout(ctx, c, w, image(f.version), every) })
	}
	wg.Wait()
	took, requests := time.Since(start), calls.Load()-before
	for i, err := range errs {
		if err != nil {
			b.Fatalf("polling: %s: %v", f.workloads[i].Host(), err)
		}
	}
	f.checkPods(b, f.version)
	return took, requests
}

// pollRollout is the baseline: patch the container's image (a strategic merge by container name), then
// read the Deployment at once and on every tick until the rollout is done, as
// wait.PollUntilContextCancel(ctx, every, true, ...) would.
func pollRollout(ctx context.Context, c kubernetes.Interface, w executor.Workload, img string, every time.Duration) error {
	deployments := c.AppsV1().Deployments(w.Namespace)
	if _, err := deployments.Patch(ctx, w.Name, types.StrategicMergePatchType, imagePatch(w.Container, img), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("set the image: %w", err)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		d, err := deployments.Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("read the rollout: %w", err)
		}
		r := k8s.DeploymentRollout(d)
		switch {
		case r.Done:
			return nil
		case r.Failed:
			return fmt.Errorf("rollout failed: %s", r.Message)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done: %w (%s)", ctx.Err(), r.Message)
		case <-tick.C:
		}
	}
}

// imagePatch is a strategic merge patch of one container's image (by container name).
func imagePatch(container, img string) []byte {
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"containers": []map[string]any{{"name": container, "image": img}}}}}})
	return patch
}

// checkPods fails the benchmark unless every Deployment has exactly its replicas as pods of version
// that are Ready (pods on their way out not counted): what "the rollout is done" promised.
func (f *fleet) checkPods(b *testing.B, version int) {
	b.Helper()
	pods, err := f.admin.CoreV1().Pods(f.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ready := map[string]int{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil || p.Spec.Containers[0].Image != image(version) {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready[p.Labels["app"]]++
			}
		}
	}
	for _, w := range f.workloads {
		if ready[w.Name] != benchReplicas {
			b.Fatalf("%s: %d pods of %s Ready when its rollout was reported done, want %d", w.Host(), ready[w.Name], image(version), benchReplicas)
		}
	}
}

// deleteNamespace deletes the benchmark's namespace and waits until it is gone, so that the next
// benchmark does not share the controllers with its garbage collection. It tries again while the API
// server does not answer (the retry tests restart it): a namespace left behind keeps its pods.
func deleteNamespace(b *testing.B, c kubernetes.Interface, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	deleted := false
	err := wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if !deleted {
			if err := c.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return false, nil
			}
			deleted = true
		}
		_, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		b.Errorf("namespace %s still there after 3 minutes: %v (kubectl delete namespace %s)", ns, err, ns)
	}
}
