package api

import "time"

// ApplyRequest is POST /api/v1/apply: server-side apply of a manifest's Kubernetes objects.
type ApplyRequest struct {
	Namespace string `json:"namespace"`
	// Manifest is multi-document YAML, or JSON; objects that name no namespace go to Namespace.
	Manifest string `json:"manifest"`
	// DryRun asks the API server to check everything and store nothing (server-side dry run).
	DryRun bool `json:"dry_run,omitempty"`
	// Service names the record (GET /api/v1/deployments?service=); default: the namespace.
	Service        string `json:"service,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	RequestedBy    string `json:"requested_by,omitempty"`
}

// DeleteRequest is POST /api/v1/delete: the Deployments, StatefulSets, Services, ConfigMaps and Secrets
// of a namespace that a label selector picks.
type DeleteRequest struct {
	Namespace string `json:"namespace"`
	// Selector is a label selector that narrows: one that picks everything is refused.
	Selector       string `json:"selector"`
	DryRun         bool   `json:"dry_run,omitempty"`
	Service        string `json:"service,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	RequestedBy    string `json:"requested_by,omitempty"`
}

// Object outcomes: how one object of an apply or a delete ended.
const (
	ObjectCreated        = "created"
	ObjectConfigured     = "configured"
	ObjectUnchanged      = "unchanged"
	ObjectFailed         = "failed"
	ObjectNotApplied     = "not_applied"
	ObjectPending        = "pending"
	ObjectUnknown        = "unknown"
	ObjectWouldCreate    = "would_create"
	ObjectWouldConfigure = "would_configure"
	ObjectDeleted        = "deleted"
	ObjectWouldDelete    = "would_delete"
)

// Object is one Kubernetes object an apply or a delete touched, and how it ended there.
type Object struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Outcome   string `json:"outcome"`
	Error     string `json:"error,omitempty"`
}

// MaxPods bounds the pods GET /api/v1/pods answers with; past it the list is cut and Truncated set.
const MaxPods = 1000

// PodList is GET /api/v1/pods?namespace=&selector=: the pods the selector picks, oldest first.
type PodList struct {
	Namespace string      `json:"namespace"`
	Selector  string      `json:"selector"`
	Pods      []PodStatus `json:"pods"`
	Truncated bool        `json:"truncated,omitempty"`
}

// PodStatus is one pod as GET /api/v1/pods shows it.
type PodStatus struct {
	Name     string    `json:"name"`
	Phase    string    `json:"phase"`
	Ready    bool      `json:"ready"`
	Restarts int32     `json:"restarts"`
	Node     string    `json:"node"`
	Created  time.Time `json:"created"`
}
