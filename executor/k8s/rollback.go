package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodeexec/nodeexec/executor"
)

// revisionAnnotation is where the deployment controller numbers a Deployment's ReplicaSets.
const revisionAnnotation = "deployment.kubernetes.io/revision"

// Rollback takes every workload back, as `kubectl rollout undo` does: to the revision before the
// current one, or to req.ToRevision; with req.ToVersion, to that version of the current image instead.
// It waits for each rollout; a workload that got there is rolled_back.
func (e *Executor) Rollback(ctx context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return e.each(req.Workloads, func(w executor.Workload) executor.NodeResult {
		return e.rollbackOne(ctx, req, w)
	}), nil
}

func (e *Executor) rollbackOne(ctx context.Context, req executor.RollbackRequest, w executor.Workload) executor.NodeResult {
	t := e.track(w, req.Service, req.DeploymentID, "", req.Progress)
	k, cur, err := e.read(ctx, w)
	if err != nil {
		return t.fail("Read the workload", err)
	}
	tmpl, ann := cur.template, cur.annotations
	if svc := ann[annBlueGreenService]; svc != "" {
		return e.blueGreen(w, svc, t).rollback(ctx, req)
	}
	ci, err := containerIndex(&tmpl.Spec, w.Container)
	if err != nil {
		return t.fail("Find the container", err)
	}
	from := versionOf(tmpl.Spec.Containers[ci].Image, ann)
	t.res.CurrentVersion = from
	what, err := undo(ctx, k, req, tmpl.Spec.Containers[ci].Name, tmpl.Spec.Containers[ci].Image, from)
	if err != nil {
		return t.fail("Roll back", err)
	}
	t.step("Roll back", true, what)
	r, err := awaitRollout(ctx, k, e.cfg.RolloutTimeout)
	if now, rerr := k.get(context.WithoutCancel(ctx)); rerr == nil && ci < len(now.template.Spec.Containers) {
		t.res.CurrentVersion = versionOf(now.template.Spec.Containers[ci].Image, now.annotations)
	}
	t.res.PrevVersion = from
	if err != nil {
		return t.fail("Wait for the rollout", err)
	}
	t.step("Wait for the rollout", false, r.Message)
	t.res.State, t.res.RunningVersion = executor.StateRolledBack, t.res.CurrentVersion
	t.log.WithField("version", t.res.CurrentVersion).Info("rolled back")
	return t.res
}

// undo changes the workload's template to the rollback's target and says what it did. A version goes
// back as its exact image when the request knows it, else as its tag on the current image.
func undo(ctx context.Context, k workloadKind, req executor.RollbackRequest, container, image, from string) (string, error) {
	if req.ToVersion != "" {
		target := withTag(image, req.ToVersion)
		if req.ToImage != "" {
			target = req.ToImage
		}
		if err := setImage(ctx, k, containerChange{name: container, image: target}, map[string]string{annDeployment: req.DeploymentID, annVersion: req.ToVersion, annPreviousImage: image}, nil); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: %s -> %s", container, image, target), nil
	}
	return k.toRevision(ctx, req, image, from)
}

// undoDeployment puts the pod template of an earlier ReplicaSet back, as `kubectl rollout undo` does.
func undoDeployment(ctx context.Context, k *kind[*appsv1.Deployment], d *appsv1.Deployment, req executor.RollbackRequest, image, from string) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return "", err
	}
	list, err := k.c.AppsV1().ReplicaSets(k.w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", err
	}
	current, _ := strconv.ParseInt(d.Annotations[revisionAnnotation], 10, 64)
	byRevision := map[int64]*appsv1.ReplicaSet{}
	var revisions []int64
	for i := range list.Items {
		rs := &list.Items[i]
		if !metav1.IsControlledBy(rs, d) {
			continue
		}
		if n, err := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64); err == nil {
			byRevision[n] = rs
			revisions = append(revisions, n)
		}
	}
	target, err := pickRevision(revisions, current, req.ToRevision)
	if err != nil {
		return "", err
	}
	tmpl := byRevision[target].Spec.Template.DeepCopy()
	delete(tmpl.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	ci, _ := containerIndex(&tmpl.Spec, k.w.Container)
	back := tmpl.Spec.Containers[ci].Image
	patch, err := json.Marshal([]map[string]any{
		{"op": "replace", "path": "/spec/template", "value": tmpl},
		{"op": "add", "path": "/metadata/annotations/" + jsonPointer(annDeployment), "value": req.DeploymentID},
		{"op": "add", "path": "/metadata/annotations/" + jsonPointer(annVersion), "value": imageVersion(back)},
		{"op": "add", "path": "/metadata/annotations/" + jsonPointer(annPreviousImage), "value": image},
	})
	if err != nil {
		return "", err
	}
	if d.Annotations == nil {
		// JSON patch cannot add under a map that does not exist.
		if _, err := k.api.Patch(ctx, k.w.Name, types.MergePatchType, []byte(`{"metadata":{"annotations":{}}}`), metav1.PatchOptions{}); err != nil {
			return "", err
		}
	}
	if err := k.patch(ctx, types.JSONPatchType, patch); err != nil {
		return "", err
	}
	return fmt.Sprintf("revision %d -> %d (%s -> %s)", current, target, from, imageVersion(back)), nil
}

// undoStatefulSet applies an earlier ControllerRevision's template, as `kubectl rollout undo` does.
func undoStatefulSet(ctx context.Context, k *kind[*appsv1.StatefulSet], s *appsv1.StatefulSet, req executor.RollbackRequest, image, from string) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
	if err != nil {
		return "", err
	}
	list, err := k.c.AppsV1().ControllerRevisions(k.w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return "", err
	}
	byRevision := map[int64]*appsv1.ControllerRevision{}
	var revisions []int64
	var current int64
	for i := range list.Items {
		cr := &list.Items[i]
		if !metav1.IsControlledBy(cr, s) {
			continue
		}
		byRevision[cr.Revision] = cr
		revisions = append(revisions, cr.Revision)
		if cr.Name == s.Status.UpdateRevision {
			current = cr.Revision
		}
	}
	target, err := pickRevision(revisions, current, req.ToRevision)
	if err != nil {
		return "", err
	}
	// The revision's data is a patch of the template; apply it, then record who did it.
	if err := k.patch(ctx, types.StrategicMergePatchType, byRevision[target].Data.Raw); err != nil {
		return "", err
	}
	back := image
	if now, err := k.get(ctx); err == nil {
		if ci, err := containerIndex(&now.template.Spec, k.w.Container); err == nil {
			back = now.template.Spec.Containers[ci].Image
		}
	}
	ann, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		annDeployment: req.DeploymentID, annVersion: imageVersion(back), annPreviousImage: image}}})
	if err := k.patch(ctx, types.MergePatchType, ann); err != nil {
		return "", err
	}
	return fmt.Sprintf("revision %d -> %d (%s -> %s)", current, target, from, imageVersion(back)), nil
}

// pickRevision chooses the revision to go back to: want when given (it must exist and not be the
// current one), else the newest one before current.
func pickRevision(revisions []int64, current, want int64) (int64, error) {
	sort.Slice(revisions, func(i, j int) bool { return revisions[i] > revisions[j] })
	if want > 0 {
		for _, r := range revisions {
			if r == want {
				if r == current {
					return 0, fmt.Errorf("revision %d is the current one", want)
				}
				return r, nil
			}
		}
		return 0, fmt.Errorf("no revision %d (there are %v)", want, revisions)
	}
	for _, r := range revisions {
		if r < current {
			return r, nil
		}
	}
	return 0, fmt.Errorf("no revision before the current one (%d) to go back to", current)
}

// withTag replaces an image's tag (or digest) by tag.
func withTag(image, tag string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image + ":" + tag
}

// jsonPointer escapes a map key for a JSON patch path.
func jsonPointer(key string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}
