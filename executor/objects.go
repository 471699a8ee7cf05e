package executor

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
)

// Kubernetes objects by manifest and by label: what the Plan Layer applies and deletes beside the
// workloads it deploys. Each call names every object it touched and how that one ended, so a record
// of it says what went in even when the API server refused an object half-way.

// ObjectOutcome is how one object of an apply or a delete ended.
type ObjectOutcome string

const (
	ObjectCreated    ObjectOutcome = "created"
	ObjectConfigured ObjectOutcome = "configured"
	ObjectUnchanged  ObjectOutcome = "unchanged"
	// ObjectFailed is the object the API server refused (its Error says why); the run stopped there.
	ObjectFailed ObjectOutcome = "failed"
	// ObjectNotApplied is an object after a failed one: never sent.
	ObjectNotApplied ObjectOutcome = "not_applied"
	// ObjectPending is an object of a run still going; ObjectUnknown one of a run nodeexec lost.
	ObjectPending ObjectOutcome = "pending"
	ObjectUnknown ObjectOutcome = "unknown"
	// A dry run's words: what a real run would do (the API server's own dry run said so).
	ObjectWouldCreate    ObjectOutcome = "would_create"
	ObjectWouldConfigure ObjectOutcome = "would_configure"
	ObjectDeleted        ObjectOutcome = "deleted"
	ObjectWouldDelete    ObjectOutcome = "would_delete"
)

// Object is one Kubernetes object an apply or a delete touched, and how it ended there.
type Object struct {
	Kind      string        `json:"kind" bson:"kind"`
	Namespace string        `json:"namespace,omitempty" bson:"namespace,omitempty"`
	Name      string        `json:"name" bson:"name"`
	Outcome   ObjectOutcome `json:"outcome" bson:"outcome"`
	Error     string        `json:"error,omitempty" bson:"error,omitempty"`
}

func (o Object) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// ApplyRequest asks for every object of Manifest (multi-document YAML or JSON) to be applied in
// Namespace (the namespace of the objects that name none; those that name one must name it).
type ApplyRequest struct {
	Namespace string `bson:"namespace"`
	Manifest  string `bson:"manifest"`
	DryRun    bool   `bson:"dry_run"`
}

// DeleteRequest asks for the objects of Namespace that Selector picks to be deleted.
type DeleteRequest struct {
	Namespace string `bson:"namespace"`
	Selector  string `bson:"selector"`
	DryRun    bool   `bson:"dry_run"`
}

// ManifestApplier is an executor that can server-side apply manifests of any kind.
type ManifestApplier interface {
	// PlanManifest reads a manifest and finds each object's kind in the cluster, changing nothing: a
	// manifest that does not parse, or names a kind the cluster lacks, is a *ValidationError of field
	// "manifest" naming the document.
	PlanManifest(ctx context.Context, namespace, manifest string) ([]Object, error)
	// ApplyManifest applies the objects in order, each with its outcome; an object the API server
	// refuses is failed and the rest not applied (no error: the objects say it). The error is for a run
	// that could not start (the manifest, the cluster).
	ApplyManifest(ctx context.Context, req ApplyRequest) ([]Object, error)
}

// SelectorDeleter is an executor that can delete the objects a label selector picks (with DryRun:
// name them and delete nothing).
type SelectorDeleter interface {
	DeleteSelected(ctx context.Context, req DeleteRequest) ([]Object, error)
}

// PodLister is an executor that can list the pods a label selector picks in a namespace, oldest first.
type PodLister interface {
	Pods(ctx context.Context, namespace, selector string) ([]Pod, error)
}

// ValidateNamespace checks a Kubernetes namespace name (a DNS-1123 label).
func ValidateNamespace(ns string) error {
	if !dnsLabelRe.MatchString(ns) {
		return invalid("namespace", "%q is not a namespace name (lower-case letters, digits, '-', at most 63)", ns)
	}
	return nil
}

// ValidateSelector checks a label selector for reading: it must parse ("" picks everything).
func ValidateSelector(selector string) error {
	if _, err := labels.Parse(selector); err != nil {
		return invalid("selector", "%q is not a label selector: %v", selector, err)
	}
	return nil
}

// ValidateDeleteSelector checks a label selector for deleting: it must parse and must narrow, since one
// that picks everything would delete everything of its kinds in the namespace.
func ValidateDeleteSelector(selector string) error {
	sel, err := labels.Parse(selector)
	if err != nil {
		return invalid("selector", "%q is not a label selector: %v", selector, err)
	}
	if sel.Empty() {
		return invalid("selector", "%s would pick every object in the namespace: give one that names labels, e.g. app=web", describeSelector(selector))
	}
	return nil
}

func describeSelector(s string) string {
	if s == "" {
		return "an empty selector"
	}
	return fmt.Sprintf("selector %q", s)
}
