package k8s

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeexec/nodeexec/executor"
)

// LogsTimeout bounds one pod log read: the API server proxies it to the node's kubelet, which may
// never answer.
const LogsTimeout = 10 * time.Second

// ErrLogsUnavailable means the cluster could not serve a pod's log (no kubelet answered for its node).
var ErrLogsUnavailable = errors.New("pod logs unavailable")

// WorkloadPods lists a workload's pods (for a blue-green one, both colors'), oldest first.
func (e *Executor) WorkloadPods(ctx context.Context, w executor.Workload) ([]executor.Pod, error) {
	if err := executor.ValidateWorkloads([]executor.Workload{w}); err != nil {
		return nil, err
	}
	_, cur, err := e.read(ctx, w)
	if err != nil {
		return nil, err
	}
	selector, err := metav1.LabelSelectorAsSelector(cur.selector)
	if err != nil {
		return nil, err
	}
	return e.Pods(ctx, w.Namespace, selector.String())
}

// Pods lists the pods of a namespace that a label selector picks, oldest first.
func (e *Executor) Pods(ctx context.Context, namespace, selector string) ([]executor.Pod, error) {
	list, err := e.c.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s (%s): %w", namespace, selector, err)
	}
	out := make([]executor.Pod, 0, len(list.Items))
	for i := range list.Items {
		out = append(out, podOf(&list.Items[i]))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// podOf is what the management endpoints show of a pod.
func podOf(p *corev1.Pod) executor.Pod {
	out := executor.Pod{Name: p.Name, Phase: string(p.Status.Phase), Ready: podReady(p), Restarts: podRestarts(p),
		Node: p.Spec.NodeName, Created: p.CreationTimestamp.UTC(), Color: p.Labels[labelColor]}
	if p.DeletionTimestamp != nil {
		out.Phase = "Terminating"
	}
	if len(p.Spec.Containers) > 0 {
		out.Image = p.Spec.Containers[0].Image
	}
	return out
}

// PodLogs reads the last lines of a pod's container log (container "" = the pod's only or first). A
// cluster that cannot serve it answers with ErrLogsUnavailable and the reason, within LogsTimeout.
func (e *Executor) PodLogs(ctx context.Context, namespace, pod, container string, lines int) ([]string, error) {
	if lines < 1 || lines > executor.MaxLogLines {
		return nil, fmt.Errorf("lines must be between 1 and %d", executor.MaxLogLines)
	}
	ctx, cancel := context.WithTimeout(ctx, LogsTimeout)
	defer cancel()
	tail := int64(lines)
	limit := int64(4 << 20)
	stream, err := e.c.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, TailLines: &tail, LimitBytes: &limit}).Stream(ctx)
	if err != nil {
		return nil, e.logsErr(ctx, namespace, pod, err)
	}
	defer stream.Close()
	var out []string
	sc := bufio.NewScanner(stream)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return out, e.logsErr(ctx, namespace, pod, err)
	}
	if len(out) > lines {
		out = out[len(out)-lines:]
	}
	return out, nil
}

// logsErr says why a pod's log could not be read, in words an operator can act on.
func (e *Executor) logsErr(ctx context.Context, namespace, pod string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: the log of pod %s/%s did not arrive within %s (the node's kubelet does not answer)", ErrLogsUnavailable, namespace, pod, LogsTimeout)
	}
	if apierrors.IsNotFound(err) {
		p, gerr := e.c.CoreV1().Pods(namespace).Get(context.WithoutCancel(ctx), pod, metav1.GetOptions{})
		if apierrors.IsNotFound(gerr) {
			return fmt.Errorf("pod %s/%s not found", namespace, pod)
		}
		node := "its node"
		if p != nil && p.Spec.NodeName != "" {
			node = "node " + p.Spec.NodeName
		}
		return fmt.Errorf("%w: the API server has no kubelet serving the logs of pod %s/%s on %s (%v)", ErrLogsUnavailable, namespace, pod, node, err)
	}
	return fmt.Errorf("%w: pod %s/%s: %v", ErrLogsUnavailable, namespace, pod, err)
}
