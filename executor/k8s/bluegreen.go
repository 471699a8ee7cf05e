package k8s

// Blue-green: two Deployments side by side, and a Service whose selector picks one of them by the pod
// label nodeexec.io/color. Blue is the Deployment the request names; green is "<name>-green". A deploy
// brings the new image up on the idle color, watches it hold steady for a while, then switches the
// Service's selector to it. The color that served before keeps running, so a rollback is one switch
// of the selector back.

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/nodeexec/nodeexec/executor"
)

const (
	labelColor = "nodeexec.io/color"
	// annAbandoned marks a color a deploy created and gave up on before it served: never switched to.
	annAbandoned = "nodeexec.io/abandoned"
	colorBlue    = "blue"
	colorGreen   = "green"
)

// colorName is the Deployment of a color.
func colorName(w executor.Workload, color string) string {
	if color == colorGreen {
		return w.Name + "-green"
	}
	return w.Name
}

func otherColor(c string) string {
	if c == colorGreen {
		return colorBlue
	}
	return colorGreen
}

// blueGreenService is the Service a blue-green deploy switches: the request's, else the one recorded
// on the workload by an earlier blue-green deploy, else the workload's own name.
func blueGreenService(s executor.Strategy, w executor.Workload, ann map[string]string) string {
	switch {
	case s.Service != "":
		return s.Service
	case ann[annBlueGreenService] != "":
		return ann[annBlueGreenService]
	}
	return w.Name
}

// blueGreen is one blue-green workload as one deploy, rollback or status read sees it: its two
// Deployments, the Service that switches between them, and what the operation has learned so far, so
// that its steps share it rather than pass it along.
type blueGreen struct {
	e       *Executor
	t       *tracker          // nil for a status read
	w       executor.Workload // the Deployment the request names: blue
	service string            // the Service that is switched

	active      string // the color the Service selects
	liveVersion string // the version active runs
	// A deploy's new color, and how to take it back if it is given up before the switch.
	idle    string
	before  *appsv1.Deployment // the idle color as it was; nil when this deploy created it
	version string             // the version this deploy brings up
}

func (e *Executor) blueGreen(w executor.Workload, service string, t *tracker) *blueGreen {
	return &blueGreen{e: e, t: t, w: w, service: service}
}

// color is the Deployment of a color.
func (g *blueGreen) color(c string) executor.Workload {
	return executor.Workload{Namespace: g.w.Namespace, Kind: executor.KindDeployment, Name: colorName(g.w, c), Container: g.w.Container}
}

// serving reads the Service and the color it selects ("" before the first blue-green deploy).
func (g *blueGreen) serving(ctx context.Context) (*corev1.Service, string, error) {
	svc, err := g.e.c.CoreV1().Services(g.w.Namespace).Get(ctx, g.service, metav1.GetOptions{})
	if err != nil {
		return nil, "", serviceNotFoundHint(err, g.w.Namespace, g.service)
	}
	return svc, svc.Spec.Selector[labelColor], nil
}

func (e *Executor) deployBlueGreen(ctx context.Context, req executor.DeployRequest, w executor.Workload, t *tracker) executor.NodeResult {
	blue, err := e.c.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		return t.fail("Read the workload", notFoundHint(err, w))
	}
	return e.blueGreen(w, blueGreenService(req.Strategy, w, blue.Annotations), t).deploy(ctx, req, blue)
}

func (g *blueGreen) deploy(ctx context.Context, req executor.DeployRequest, blue *appsv1.Deployment) executor.NodeResult {
	t, w := g.t, g.w
	g.version = req.Version
	verify := time.Duration(req.Strategy.VerifySeconds) * time.Second
	if verify == 0 {
		verify = executor.DefaultVerifySeconds * time.Second
	}
	svc, active, err := g.serving(ctx)
	if err != nil {
		return t.fail("Read the Service", err)
	}
	if len(svc.Spec.Selector) == 0 {
		return t.fail("Read the Service", fmt.Errorf("Service %s/%s has no selector to switch", w.Namespace, g.service))
	}
	if active == "" {
		// The first blue-green deploy: the named Deployment, which the Service selects today, becomes blue.
		if err := g.adoptBlue(ctx, blue, svc); err != nil {
			return t.fail("Make the running Deployment blue", err)
		}
		active = colorBlue
	}
	g.active = active
	live, err := g.e.c.AppsV1().Deployments(w.Namespace).Get(ctx, colorName(w, active), metav1.GetOptions{})
	if err != nil {
		return t.fail("Read the serving color", fmt.Errorf("the Service points at %s, but its Deployment %s: %w", active, colorName(w, active), err))
	}
	ci, err := containerIndex(&live.Spec.Template.Spec, w.Container)
	if err != nil {
		return t.fail("Find the container", err)
	}
	liveImage := live.Spec.Template.Spec.Containers[ci].Image
	g.liveVersion = versionOf(liveImage, live.Annotations)
	t.res.CurrentVersion = g.liveVersion
	if liveImage == req.Image {
		t.step("Check the serving color", false, fmt.Sprintf("%s already serves %s", active, req.Image))
		t.res.State, t.res.RunningVersion, t.res.PrevVersion = executor.StateSuccess, g.liveVersion, g.colorVersion(ctx, otherColor(active))
		return t.res
	}
	g.idle = otherColor(active)
	idle := g.idle
	if err := g.bringUp(ctx, live, ci, req); err != nil {
		return t.fail("Bring up "+idle, err)
	}
	t.step("Bring up "+idle, true, fmt.Sprintf("%s runs %s beside %s (%s)", colorName(w, idle), req.Image, colorName(w, active), liveImage))
	r, err := awaitRollout(ctx, g.e.deployment(g.color(idle)), g.e.cfg.RolloutTimeout)
	if err != nil {
		return g.abandon(ctx, "Wait for "+idle, err)
	}
	t.step("Wait for "+idle, false, r.Message)
	sel := labels.SelectorFromSet(labels.Merge(live.Spec.Template.Labels, labels.Set{labelColor: idle}))
	msg, err := g.e.holdsSteady(ctx, w.Namespace, sel, replicas(live.Spec.Replicas), verify)
	if err != nil {
		return g.abandon(ctx, fmt.Sprintf("Verify %s for %s", idle, verify), err)
	}
	t.step(fmt.Sprintf("Verify %s for %s", idle, verify), false, msg)
	if err := g.switchTo(ctx, idle, active); err != nil {
		return t.fail("Switch the Service to "+idle, err)
	}
	t.step("Switch the Service to "+idle, true, fmt.Sprintf("Service %s now selects %s (%s); %s keeps running for a rollback", g.service, idle, req.Version, active))
	t.res.State, t.res.CurrentVersion, t.res.PrevVersion, t.res.RunningVersion = executor.StateSuccess, req.Version, g.liveVersion, req.Version
	t.log.WithField("color", idle).Info("blue-green switch done")
	return t.res
}

// adoptBlue labels the named Deployment's pods blue (one rollout of the same image) and narrows the
// Service to them, which changes no traffic: from then on a second color can come up beside it unseen.
func (g *blueGreen) adoptBlue(ctx context.Context, blue *appsv1.Deployment, svc *corev1.Service) error {
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(blue.Spec.Template.Labels)) {
		return fmt.Errorf("Service %s/%s (selector %v) does not select the pods of Deployment %s", svc.Namespace, svc.Name, svc.Spec.Selector, g.w.Host())
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{annBlueGreenService: svc.Name}},
		"spec":     map[string]any{"template": map[string]any{"metadata": map[string]any{"labels": map[string]string{labelColor: colorBlue}}}},
	})
	k := g.e.deployment(g.w)
	if err := k.patch(ctx, types.StrategicMergePatchType, patch); err != nil {
		return err
	}
	if _, err := awaitRollout(ctx, k, g.e.cfg.RolloutTimeout); err != nil {
		return fmt.Errorf("labelling its pods blue: %w", err)
	}
	if err := g.switchTo(ctx, colorBlue, ""); err != nil {
		return err
	}
	g.t.step("Make the running Deployment blue", true, fmt.Sprintf("%s's pods are labelled %s=blue and Service %s selects only them", g.w.Host(), labelColor, svc.Name))
	return nil
}

// bringUp makes the idle color's Deployment a copy of the live one with the new image and the idle
// color, at the live one's size. It keeps how to take that back in g.before: the idle color's earlier
// template and annotations, or nil when this created it.
func (g *blueGreen) bringUp(ctx context.Context, live *appsv1.Deployment, ci int, req executor.DeployRequest) error {
	idle, ns := g.idle, g.w.Namespace
	tmpl := live.Spec.Template.DeepCopy()
	tmpl.Labels[labelColor] = idle
	tmpl.Spec.Containers[ci].Image = req.Image
	ann := map[string]string{annBlueGreenService: g.service, annDeployment: req.DeploymentID, annVersion: req.Version}
	name := colorName(g.w, idle)
	deps := g.e.c.AppsV1().Deployments(ns)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := deps.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			sel := live.Spec.Selector.DeepCopy()
			if sel.MatchLabels == nil {
				sel.MatchLabels = map[string]string{}
			}
			sel.MatchLabels[labelColor] = idle
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: live.Labels, Annotations: ann},
				Spec:       *live.Spec.DeepCopy(),
			}
			d.Spec.Selector, d.Spec.Template = sel, *tmpl
			_, err = deps.Create(ctx, d, metav1.CreateOptions{FieldManager: fieldManager})
			return err
		}
		if err != nil {
			return err
		}
		if !labels.SelectorFromSet(cur.Spec.Selector.MatchLabels).Matches(labels.Set(tmpl.Labels)) {
			return fmt.Errorf("Deployment %s/%s exists but its selector %v does not match the %s pods: it is not nodeexec's %s color", ns, name, cur.Spec.Selector.MatchLabels, idle, idle)
		}
		g.before = cur.DeepCopy()
		cur.Spec.Template, cur.Spec.Replicas = *tmpl, live.Spec.Replicas
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		delete(cur.Annotations, annAbandoned)
		for k, v := range ann {
			cur.Annotations[k] = v
		}
		_, err = deps.Update(ctx, cur, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
}

// abandon gives up on the idle color before it got any traffic; the Service stays on the color that
// served all along. An idle color that existed gets its earlier template back, so it stays what a
// rollback switches to; one this deploy created is scaled to zero and marked, so no rollback picks it.
func (g *blueGreen) abandon(ctx context.Context, stepName string, reason error) executor.NodeResult {
	t, before := g.t, g.before
	t.emit(executor.Step{Name: stepName, Failed: true, Message: reason.Error()})
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.e.cfg.RollbackTimeout)
	defer cancel()
	name := colorName(g.w, g.idle)
	deps := g.e.c.AppsV1().Deployments(g.w.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := deps.Get(bctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		if before != nil {
			cur.Spec.Template, cur.Spec.Replicas = before.Spec.Template, before.Spec.Replicas
			for _, k := range []string{annDeployment, annVersion} {
				if v, ok := before.Annotations[k]; ok {
					cur.Annotations[k] = v
				} else {
					delete(cur.Annotations, k)
				}
			}
		} else {
			cur.Spec.Replicas = new(int32)
			cur.Annotations[annAbandoned] = fmt.Sprintf("%s: %v", g.version, reason)
		}
		_, err = deps.Update(bctx, cur, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	what := name + " scaled to 0"
	if before != nil {
		what = name + " put back to what it ran before"
	}
	if err != nil {
		return t.fail("Take the new color back", fmt.Errorf("after %v: %w", reason, err))
	}
	t.step("Take the new color back", true, what+"; the Service stayed on "+g.active)
	t.res.State, t.res.CurrentVersion, t.res.PrevVersion, t.res.RunningVersion = executor.StateRolledBack, g.liveVersion, g.version, g.liveVersion
	t.res.LastError = fmt.Sprintf("%s: %v; the Service stayed on %s (%s)", stepName, reason, g.active, g.liveVersion)
	t.log.WithField("reason", reason).Warn("blue-green deploy abandoned before the switch")
	return t.res
}

// rollback switches the Service back to the color that served before: instant, since that color kept
// running. If someone scaled it down meanwhile, it is scaled up and awaited first.
func (g *blueGreen) rollback(ctx context.Context, req executor.RollbackRequest) executor.NodeResult {
	t, w := g.t, g.w
	if req.ToRevision > 0 {
		return t.fail("Roll back", fmt.Errorf("%s is deployed blue-green: a rollback switches back to the other color; to_revision is for rolling updates", w.Host()))
	}
	_, active, err := g.serving(ctx)
	if err != nil {
		return t.fail("Read the Service", err)
	}
	if active == "" {
		return t.fail("Read the Service", fmt.Errorf("Service %s/%s selects no color yet: there is nothing to switch back to", w.Namespace, g.service))
	}
	g.active = active
	back := otherColor(active)
	bk := g.e.deployment(g.color(back))
	cur, err := bk.get(ctx)
	if err != nil {
		return t.fail("Read the "+back+" color", fmt.Errorf("no %s Deployment to switch back to: %w", back, err))
	}
	ci, err := containerIndex(&cur.template.Spec, w.Container)
	if err != nil {
		return t.fail("Find the container", err)
	}
	backVersion := versionOf(cur.template.Spec.Containers[ci].Image, cur.annotations)
	t.res.CurrentVersion = g.colorVersion(ctx, active)
	if why := cur.annotations[annAbandoned]; why != "" {
		return t.fail("Roll back", fmt.Errorf("%s never served, there is nothing to switch back to: its deploy was given up (%s)", back, why))
	}
	if req.ToVersion != "" && req.ToVersion != backVersion {
		return t.fail("Roll back", fmt.Errorf("blue-green switches back to %s, which runs %s, not %s", back, backVersion, req.ToVersion))
	}
	deps := g.e.c.AppsV1().Deployments(w.Namespace)
	d, err := deps.Get(ctx, colorName(w, back), metav1.GetOptions{})
	if err != nil {
		return t.fail("Read the "+back+" color", err)
	}
	if replicas(d.Spec.Replicas) == 0 {
		live, err := deps.Get(ctx, colorName(w, active), metav1.GetOptions{})
		if err != nil {
			return t.fail("Read the serving color", err)
		}
		if err := bk.scaleTo(ctx, max(1, replicas(live.Spec.Replicas))); err != nil {
			return t.fail("Scale "+back+" up", err)
		}
		t.step("Scale "+back+" up", true, fmt.Sprintf("%s was scaled to 0", d.Name))
	}
	if _, err := awaitRollout(ctx, bk, g.e.cfg.RolloutTimeout); err != nil {
		return t.fail("Check "+back, fmt.Errorf("%s is not ready to take the traffic: %w", back, err))
	}
	if err := g.switchTo(ctx, back, active); err != nil {
		return t.fail("Switch the Service back to "+back, err)
	}
	t.step("Switch the Service back to "+back, true, fmt.Sprintf("Service %s selects %s (%s) again; %s keeps running", g.service, back, backVersion, active))
	t.res.PrevVersion, t.res.CurrentVersion = t.res.CurrentVersion, backVersion
	t.res.State, t.res.RunningVersion = executor.StateRolledBack, backVersion
	t.log.WithField("color", back).Info("blue-green switched back")
	return t.res
}

// switchTo points the Service's selector at color, and records which color served before.
func (g *blueGreen) switchTo(ctx context.Context, color, from string) error {
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{"nodeexec.io/previous-color": from}},
		"spec":     map[string]any{"selector": map[string]string{labelColor: color}},
	})
	_, err := g.e.c.CoreV1().Services(g.w.Namespace).Patch(ctx, g.service, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager})
	return err
}

// colorVersion is the version a color's Deployment runs ("" if it has none).
func (g *blueGreen) colorVersion(ctx context.Context, color string) string {
	cur, err := g.e.deployment(g.color(color)).get(ctx)
	if err != nil {
		return ""
	}
	ci, err := containerIndex(&cur.template.Spec, g.w.Container)
	if err != nil {
		return ""
	}
	return versionOf(cur.template.Spec.Containers[ci].Image, cur.annotations)
}

// status reports a blue-green workload: the serving color's version and rollout, and the other
// color's version (what a rollback would go back to) as the previous one.
func (g *blueGreen) status(ctx context.Context, res *executor.NodeResult) error {
	_, active, err := g.serving(ctx)
	if err != nil {
		return err
	}
	if active == "" {
		active = colorBlue
	}
	res.CurrentVersion = g.colorVersion(ctx, active)
	res.PrevVersion = g.colorVersion(ctx, otherColor(active))
	cur, err := g.e.deployment(g.color(active)).get(ctx)
	if err != nil {
		return err
	}
	judge(cur.rollout, res)
	return nil
}

func serviceNotFoundHint(err error, namespace, name string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("Service %s/%s not found (blue-green switches a Service's selector: name it in strategy.service)", namespace, name)
	}
	return err
}
