package k8s

// A Deployment and a StatefulSet differ in their typed API, in how their rollout is judged and in
// where their history lives; everything nodeexec does with them is otherwise the same. kindOf picks
// what differs once, from the request's kind, and the rest of the package calls workloadKind instead
// of asking the kind again.

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeexec/nodeexec/executor"
)

// workloadKind is one workload, seen through the API of its kind.
type workloadKind interface {
	workload() executor.Workload
	// named is the workload of the same kind called name, in the same namespace.
	named(name string) workloadKind
	get(ctx context.Context) (snapshot, error)
	// watch follows the workload's changes after resourceVersion; rolloutOf judges what it sends
	// (false: not an object of this kind).
	watch(ctx context.Context, resourceVersion string) (watch.Interface, error)
	rolloutOf(obj runtime.Object) (Rollout, bool)
	// patch changes the workload as nodeexec (its field manager).
	patch(ctx context.Context, pt types.PatchType, data []byte) error
	replicas(ctx context.Context) (int32, error)
	scaleTo(ctx context.Context, n int32) error
	// toRevision puts back an earlier revision of the template, as `kubectl rollout undo` does, and
	// says what it did; image and from are what runs now.
	toRevision(ctx context.Context, req executor.RollbackRequest, image, from string) (string, error)
	// pods is the pods client of the workload's namespace; newestPods picks the workload's pods of its
	// newest revision (the one a rollout brings in), nil while the controller has not seen the spec.
	pods() podAPI
	newestPods(ctx context.Context) (func(*corev1.Pod) bool, error)
}

// snapshot is what one read of a workload says.
type snapshot struct {
	template        *corev1.PodTemplateSpec
	annotations     map[string]string // the workload's own
	selector        *metav1.LabelSelector
	rollout         Rollout
	resourceVersion string
}

// kindOf chooses w's kind: the one place that asks.
func (e *Executor) kindOf(w executor.Workload) (workloadKind, error) {
	switch w.Kind {
	case executor.KindDeployment:
		return e.deployment(w), nil
	case executor.KindStatefulSet:
		return &kind[*appsv1.StatefulSet]{w: w, c: e.c, api: e.c.AppsV1().StatefulSets(w.Namespace), read: statefulSetSnapshot, history: undoStatefulSet, newest: newestStatefulSetPods}, nil
	}
	return nil, fmt.Errorf("unknown kind %q: the Kubernetes executor works on a %s or a %s", w.Kind, executor.KindDeployment, executor.KindStatefulSet)
}

// deployment is w as a Deployment, for blue-green, which only Deployments are deployed with.
func (e *Executor) deployment(w executor.Workload) *kind[*appsv1.Deployment] {
	return &kind[*appsv1.Deployment]{w: w, c: e.c, api: e.c.AppsV1().Deployments(w.Namespace), read: deploymentSnapshot, history: undoDeployment, newest: newestDeploymentPods}
}

// read chooses w's kind and reads the workload: where every operation on a named workload starts.
func (e *Executor) read(ctx context.Context, w executor.Workload) (workloadKind, snapshot, error) {
	k, err := e.kindOf(w)
	if err != nil {
		return nil, snapshot{}, err
	}
	s, err := k.get(ctx)
	return k, s, err
}

func deploymentSnapshot(d *appsv1.Deployment) snapshot {
	return snapshot{template: &d.Spec.Template, annotations: d.Annotations, selector: d.Spec.Selector, rollout: DeploymentRollout(d), resourceVersion: d.ResourceVersion}
}

func statefulSetSnapshot(s *appsv1.StatefulSet) snapshot {
	return snapshot{template: &s.Spec.Template, annotations: s.Annotations, selector: s.Spec.Selector, rollout: StatefulSetRollout(s), resourceVersion: s.ResourceVersion}
}

// typedAPI is what the typed clients of Deployments and StatefulSets have in common.
type typedAPI[T runtime.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
	GetScale(ctx context.Context, name string, opts metav1.GetOptions) (*autoscalingv1.Scale, error)
	UpdateScale(ctx context.Context, name string, scale *autoscalingv1.Scale, opts metav1.UpdateOptions) (*autoscalingv1.Scale, error)
}

// kind is a workloadKind over one typed API; read, history and newest are what its kind does its own
// way.
type kind[T runtime.Object] struct {
	w       executor.Workload
	c       kubernetes.Interface // for the history (ReplicaSets, ControllerRevisions) and the pods
	api     typedAPI[T]
	read    func(T) snapshot
	history func(ctx context.Context, k *kind[T], obj T, req executor.RollbackRequest, image, from string) (string, error)
	newest  func(ctx context.Context, k *kind[T], obj T) (func(*corev1.Pod) bool, error)
}

func (k *kind[T]) workload() executor.Workload { return k.w }

func (k *kind[T]) named(name string) workloadKind {
	o := *k
	o.w.Name = name
	return &o
}

func (k *kind[T]) get(ctx context.Context) (snapshot, error) {
	obj, err := k.api.Get(ctx, k.w.Name, metav1.GetOptions{})
	if err != nil {
		return snapshot{}, notFoundHint(err, k.w)
	}
	return k.read(obj), nil
}

func (k *kind[T]) watch(ctx context.Context, resourceVersion string) (watch.Interface, error) {
	return k.api.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", k.w.Name).String(), ResourceVersion: resourceVersion})
}

func (k *kind[T]) rolloutOf(obj runtime.Object) (Rollout, bool) {
	o, ok := obj.(T)
	if !ok {
		return Rollout{}, false
	}
	return k.read(o).rollout, true
}

func (k *kind[T]) patch(ctx context.Context, pt types.PatchType, data []byte) error {
	_, err := k.api.Patch(ctx, k.w.Name, pt, data, metav1.PatchOptions{FieldManager: fieldManager})
	return err
}

func (k *kind[T]) replicas(ctx context.Context) (int32, error) {
	s, err := k.api.GetScale(ctx, k.w.Name, metav1.GetOptions{})
	if err != nil {
		return 0, notFoundHint(err, k.w)
	}
	return s.Spec.Replicas, nil
}

// scaleTo writes the replicas through the scale subresource (what `kubectl scale` does), leaving the
// pod template and so the version alone.
func (k *kind[T]) scaleTo(ctx context.Context, n int32) error {
	s := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: k.w.Name, Namespace: k.w.Namespace}, Spec: autoscalingv1.ScaleSpec{Replicas: n}}
	_, err := k.api.UpdateScale(ctx, k.w.Name, s, metav1.UpdateOptions{FieldManager: fieldManager})
	return notFoundHint(err, k.w)
}

func (k *kind[T]) toRevision(ctx context.Context, req executor.RollbackRequest, image, from string) (string, error) {
	obj, err := k.api.Get(ctx, k.w.Name, metav1.GetOptions{})
	if err != nil {
		return "", notFoundHint(err, k.w)
	}
	return k.history(ctx, k, obj, req, image, from)
}

func (k *kind[T]) pods() podAPI { return k.c.CoreV1().Pods(k.w.Namespace) }

func (k *kind[T]) newestPods(ctx context.Context) (func(*corev1.Pod) bool, error) {
	obj, err := k.api.Get(ctx, k.w.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return k.newest(ctx, k, obj)
}
