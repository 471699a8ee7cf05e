package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeexec/nodeexec/executor"
)

// changeCauseAnnotation is where `kubectl --record` (and people by hand) say why a revision was made.
const changeCauseAnnotation = "kubernetes.io/change-cause"

// Revisions lists w's revisions newest first, as `kubectl rollout history` does: a Deployment's from
// its ReplicaSets, a StatefulSet's from its ControllerRevisions.
func (e *Executor) Revisions(ctx context.Context, w executor.Workload) ([]executor.Revision, error) {
	if err := executor.ValidateWorkloads([]executor.Workload{w}); err != nil {
		return nil, err
	}
	var revs []executor.Revision
	var err error
	switch w.Kind {
	case executor.KindDeployment:
		revs, err = e.deploymentRevisions(ctx, w)
	default:
		revs, err = e.statefulSetRevisions(ctx, w)
	}
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s %s: %w", w.Kind, w.Host(), executor.ErrNoSuchWorkload)
	}
	if err != nil {
		return nil, err
	}
	for i := range revs {
		revs[i].Version = imageVersionOr(revs[i].Image)
	}
	sort.Slice(revs, func(i, j int) bool { return revs[i].Revision > revs[j].Revision })
	return revs, nil
}

func (e *Executor) deploymentRevisions(ctx context.Context, w executor.Workload) ([]executor.Revision, error) {
	d, err := e.c.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if _, err := revisionImage(&d.Spec.Template, w.Container); err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	list, err := e.c.AppsV1().ReplicaSets(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list the ReplicaSets of %s: %w", w.Host(), err)
	}
	current := d.Annotations[revisionAnnotation]
	out := []executor.Revision{}
	for i := range list.Items {
		rs := &list.Items[i]
		n, err := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
		if !metav1.IsControlledBy(rs, d) || err != nil {
			continue
		}
		// An old template may lack a container added since: its image is then just unknown.
		image, _ := revisionImage(&rs.Spec.Template, w.Container)
		out = append(out, executor.Revision{Revision: n, Image: image, ChangeCause: rs.Annotations[changeCauseAnnotation],
			Created: rs.CreationTimestamp.UTC(), Current: rs.Annotations[revisionAnnotation] == current})
	}
	return out, nil
}

func (e *Executor) statefulSetRevisions(ctx context.Context, w executor.Workload) ([]executor.Revision, error) {
	s, err := e.c.AppsV1().StatefulSets(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if _, err := revisionImage(&s.Spec.Template, w.Container); err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(s.Spec.Selector)
	if err != nil {
		return nil, err
	}
	list, err := e.c.AppsV1().ControllerRevisions(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list the ControllerRevisions of %s: %w", w.Host(), err)
	}
	out := []executor.Revision{}
	for i := range list.Items {
		cr := &list.Items[i]
		if !metav1.IsControlledBy(cr, s) {
			continue
		}
		out = append(out, executor.Revision{Revision: cr.Revision, Image: controllerRevisionImage(cr, w.Container),
			ChangeCause: cr.Annotations[changeCauseAnnotation], Created: cr.CreationTimestamp.UTC(), Current: cr.Name == s.Status.UpdateRevision})
	}
	return out, nil
}

// controllerRevisionImage reads the image out of a ControllerRevision's data, which is the patch the
// StatefulSet controller would apply: {"spec":{"template":{...}}}. "" when it cannot be read.
func controllerRevisionImage(cr *appsv1.ControllerRevision, container string) string {
	var data struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &data); err != nil {
		return ""
	}
	image, _ := revisionImage(&data.Spec.Template, container)
	return image
}

// revisionImage is the image of the named container of a template (of its first when ""); a
// ValidationError when the template has no such container.
func revisionImage(t *corev1.PodTemplateSpec, container string) (string, error) {
	ci, err := containerIndex(&t.Spec, container)
	if err != nil {
		return "", &executor.ValidationError{Field: "container", Reason: err.Error()}
	}
	return t.Spec.Containers[ci].Image, nil
}
