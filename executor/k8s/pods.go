package k8s

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

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
	return e.tailLog(ctx, namespace, pod, container, lines, false)
}

// PodLogLines is PodLogs with each line's time, as the kubelet stamped it when the line arrived, and
// the container it came from (the pod's first when container is "").
func (e *Executor) PodLogLines(ctx context.Context, namespace, pod, container string, lines int) ([]executor.JournalLine, error) {
	if container == "" {
		p, err := e.c.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return nil, e.logsErr(ctx, namespace, pod, err)
		}
		if len(p.Spec.Containers) > 0 {
			container = p.Spec.Containers[0].Name
		}
	}
	raw, err := e.tailLog(ctx, namespace, pod, container, lines, true)
	out := make([]executor.JournalLine, 0, len(raw))
	for _, l := range raw {
		out = append(out, stampedLine(l, container))
	}
	return out, err
}

// stampedLine splits a line the kubelet stamped ("<RFC3339Nano> <message>"). A line without a stamp
// it can read (the API server always sends one) keeps its whole text and no time.
func stampedLine(line, container string) executor.JournalLine {
	stamp, msg, ok := strings.Cut(line, " ")
	if t, err := time.Parse(time.RFC3339Nano, stamp); ok && err == nil {
		return executor.JournalLine{Time: t.UTC(), Unit: container, Message: msg}
	}
	return executor.JournalLine{Unit: container, Message: line}
}

// tailLog reads the last lines of a pod's container log, each stamped with its time when asked.
func (e *Executor) tailLog(ctx context.Context, namespace, pod, container string, lines int, timestamps bool) ([]string, error) {
	if lines < 1 || lines > executor.MaxLogLines {
		return nil, fmt.Errorf("lines must be between 1 and %d", executor.MaxLogLines)
	}
	ctx, cancel := context.WithTimeout(ctx, LogsTimeout)
	defer cancel()
	tail := int64(lines)
	limit := int64(4 << 20)
	opts := &corev1.PodLogOptions{Container: container, TailLines: &tail, LimitBytes: &limit, Timestamps: timestamps}
	stream, err := e.c.CoreV1().Pods(namespace).GetLogs(pod, opts).Stream(ctx)
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

// holdsSteady watches the pods of sel for d: want of them must be ready at the start, and none may stop
// being ready, restart, be replaced or go away before d has passed. It says what it saw.
func (e *Executor) holdsSteady(ctx context.Context, namespace string, sel labels.Selector, want int32, d time.Duration) (string, error) {
	pods := e.c.CoreV1().Pods(namespace)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", err
	}
	restarts := map[string]int32{}
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		if !podReady(p) {
			return "", fmt.Errorf("pod %s is not ready", p.Name)
		}
		restarts[p.Name] = podRestarts(p)
	}
	if int32(len(restarts)) < want {
		return "", fmt.Errorf("%d of %d pods ready", len(restarts), want)
	}
	watcher, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: sel.String(), ResourceVersion: list.ResourceVersion})
	if err != nil {
		return "", err
	}
	defer watcher.Stop()
	window := time.NewTimer(d)
	defer window.Stop()
	for {
		select {
		case <-window.C:
			return fmt.Sprintf("%d pods ready with no restart for %s", len(restarts), d), nil
		case <-ctx.Done():
			return "", fmt.Errorf("cancelled while verifying: %w", ctx.Err())
		case ev, ok := <-watcher.ResultChan():
			if !ok {
				return "", errors.New("the watch of the pods ended before the verification did")
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			before, known := restarts[p.Name]
			switch {
			case ev.Type == watch.Deleted || p.DeletionTimestamp != nil:
				return "", fmt.Errorf("pod %s went away while being verified", p.Name)
			case !known:
				return "", fmt.Errorf("pod %s appeared while being verified: a pod was replaced", p.Name)
			case podRestarts(p) > before:
				return "", fmt.Errorf("pod %s restarted while being verified", p.Name)
			case !podReady(p):
				return "", fmt.Errorf("pod %s stopped being ready while being verified", p.Name)
			}
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podRestarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}
