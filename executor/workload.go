package executor

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Workload is a Kubernetes Deployment or StatefulSet, and the container whose image a deploy sets. Its
// NodeStatus has Host "namespace/name" and Platform k8s: one status per workload, as for a node.
type Workload struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"` // Deployment or StatefulSet
	Name      string `json:"name"`
	// Container is the container whose image changes; default: the pod's only (or first) container.
	Container string `json:"container,omitempty"`
}

// Workload kinds.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
)

// Host is the workload's name as a node: "namespace/name".
func (w Workload) Host() string { return w.Namespace + "/" + w.Name }

var (
	// DNS-1123 label (namespace, container) and subdomain (workload name), as Kubernetes requires.
	dnsLabelRe     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomainRe = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	// An image reference: [registry[:port]/]path[:tag][@digest]; no spaces, quotes or shell characters.
	imageRe = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$`)
)

// ValidateReplicas checks the replicas a scale asks for.
func ValidateReplicas(n int32) error {
	if n < 0 || n > MaxReplicas {
		return invalid("replicas", "must be between 0 and %d", MaxReplicas)
	}
	return nil
}

// ValidateWorkloads checks the workloads of a request.
func ValidateWorkloads(ws []Workload) error {
	if len(ws) == 0 {
		return invalid("workloads", "at least one workload is required")
	}
	seen := map[string]bool{}
	for i, w := range ws {
		field := fmt.Sprintf("workloads[%d]", i)
		if !dnsLabelRe.MatchString(w.Namespace) {
			return invalid(field+".namespace", "%q is not a namespace name (lower-case letters, digits, '-')", w.Namespace)
		}
		if w.Kind != KindDeployment && w.Kind != KindStatefulSet {
			return invalid(field+".kind", "%q is not Deployment or StatefulSet", w.Kind)
		}
		if !dnsSubdomainRe.MatchString(w.Name) {
			return invalid(field+".name", "%q is not a workload name (lower-case letters, digits, '-', '.')", w.Name)
		}
		if w.Container != "" && !dnsLabelRe.MatchString(w.Container) {
			return invalid(field+".container", "%q is not a container name", w.Container)
		}
		if seen[w.Host()] {
			return invalid(field, "%s is listed twice", w.Host())
		}
		seen[w.Host()] = true
	}
	return nil
}

// ValidateImage checks an image reference.
func ValidateImage(image string) error {
	if image == "" {
		return invalid("image", "is required")
	}
	if len(image) > 512 || !imageRe.MatchString(image) || strings.Contains(image, "..") {
		return invalid("image", "%q is not an image reference like registry.example/team/app:v2", image)
	}
	return nil
}

// SplitWorkloadHost splits "namespace/name" back into its parts.
func SplitWorkloadHost(host string) (namespace, name string, ok bool) {
	namespace, name, ok = strings.Cut(host, "/")
	return namespace, name, ok && dnsLabelRe.MatchString(namespace) && dnsSubdomainRe.MatchString(name)
}

// Strategy types for Kubernetes workloads.
const (
	StrategyRolling   = "rolling"
	StrategyBlueGreen = "blue-green"
)

// Strategy says how a Kubernetes workload moves to a new image. The zero value is a rolling update as
// the workload is configured today.
type Strategy struct {
	// Type is "rolling" (the default) or "blue-green".
	Type string `json:"type,omitempty"`
	// Rolling update settings, applied with the new image in the same rollout; empty keeps the
	// workload's own. Surge and unavailable are a count ("1") or a percentage ("25%"); a StatefulSet
	// takes only MinReadySeconds.
	MaxSurge                string `json:"max_surge,omitempty"`
	MaxUnavailable          string `json:"max_unavailable,omitempty"`
	MinReadySeconds         *int32 `json:"min_ready_seconds,omitempty" bson:",omitempty"`
	ProgressDeadlineSeconds *int32 `json:"progress_deadline_seconds,omitempty" bson:",omitempty"`
	// Blue-green (Deployments only): the Service whose selector is switched (default: the workload's
	// name), and how long the new pods must stay ready, with no restart, before they get the traffic.
	Service       string `json:"service,omitempty"`
	VerifySeconds int32  `json:"verify_seconds,omitempty"`
}

// DefaultVerifySeconds is how long a blue-green deploy watches the new pods when the request does not say.
const DefaultVerifySeconds = 10

var countOrPercentRe = regexp.MustCompile(`^(0|[1-9][0-9]{0,5})%?$`)

// ValidateStrategy checks a strategy against the workloads it applies to.
func ValidateStrategy(s Strategy, ws []Workload) error {
	switch s.Type {
	case "", StrategyRolling:
		if s.Service != "" || s.VerifySeconds != 0 {
			return invalid("strategy", "service and verify_seconds belong to the blue-green strategy")
		}
	case StrategyBlueGreen:
		for i, w := range ws {
			if w.Kind != KindDeployment {
				return invalid(fmt.Sprintf("workloads[%d].kind", i), "blue-green deploys Deployments, not %s", w.Kind)
			}
		}
		if s.MaxSurge != "" || s.MaxUnavailable != "" || s.ProgressDeadlineSeconds != nil {
			return invalid("strategy", "max_surge, max_unavailable and progress_deadline_seconds belong to the rolling strategy")
		}
		if s.Service != "" && !dnsLabelRe.MatchString(s.Service) {
			return invalid("strategy.service", "%q is not a Service name", s.Service)
		}
		if s.VerifySeconds < 0 || s.VerifySeconds > 3600 {
			return invalid("strategy.verify_seconds", "must be between 0 and 3600")
		}
	default:
		return invalid("strategy.type", "%q is not rolling or blue-green", s.Type)
	}
	for field, v := range map[string]string{"strategy.max_surge": s.MaxSurge, "strategy.max_unavailable": s.MaxUnavailable} {
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSuffix(v, "%"))
		if !countOrPercentRe.MatchString(v) || err != nil || (strings.HasSuffix(v, "%") && n > 100) {
			return invalid(field, "%q is not a count (\"1\") or a percentage up to 100%% (\"25%%\")", v)
		}
	}
	if s.MaxSurge != "" && s.MaxUnavailable != "" && strings.TrimSuffix(s.MaxSurge, "%") == "0" && strings.TrimSuffix(s.MaxUnavailable, "%") == "0" {
		return invalid("strategy.max_surge", "max_surge and max_unavailable cannot both be 0: the rollout could never start")
	}
	if p := s.MinReadySeconds; p != nil && (*p < 0 || *p > 3600) {
		return invalid("strategy.min_ready_seconds", "must be between 0 and 3600")
	}
	if p := s.ProgressDeadlineSeconds; p != nil {
		if *p < 1 || *p > 86400 {
			return invalid("strategy.progress_deadline_seconds", "must be between 1 and 86400")
		}
		if m := s.MinReadySeconds; m != nil && *p <= *m {
			return invalid("strategy.progress_deadline_seconds", "must be greater than min_ready_seconds")
		}
	}
	if s.Type != StrategyBlueGreen && (s.MaxSurge != "" || s.MaxUnavailable != "" || s.ProgressDeadlineSeconds != nil) {
		for i, w := range ws {
			if w.Kind == KindStatefulSet {
				return invalid(fmt.Sprintf("workloads[%d]", i), "a StatefulSet takes only min_ready_seconds of the rolling settings")
			}
		}
	}
	return nil
}

// Pod is one pod of a workload, as the management endpoints report it.
type Pod struct {
	Name     string    `json:"name"`
	Phase    string    `json:"phase"`
	Ready    bool      `json:"ready"`
	Restarts int32     `json:"restarts"`
	Node     string    `json:"node,omitempty"`
	Image    string    `json:"image,omitempty"`
	Created  time.Time `json:"created"`
	// Color is the pod's blue-green color, when it has one.
	Color string `json:"color,omitempty"`
}

// LiveWorkload is a workload as the cluster has it now, whatever nodeexec recorded of it.
type LiveWorkload struct {
	Kind  string `json:"kind"`
	Image string `json:"image"`
	// Version is read from the image (its tag or short digest), or nodeexec's own annotation when the
	// image is still the one nodeexec set.
	Version       string `json:"version"`
	Replicas      int32  `json:"replicas"`
	ReadyReplicas int32  `json:"ready_replicas"`
	// RolloutDone: every replica runs the current template and is ready (executor/k8s's rollout rule).
	RolloutDone bool `json:"rollout_done"`
}

// ErrNoWorkload means the cluster has no such workload (LiveReader.Live wraps it, naming the workload).
var ErrNoWorkload = errors.New("no such workload in the cluster")

// LiveReader is an executor that can read a workload as the cluster has it now, by namespace and name
// (kind "": a Deployment of that name, else a StatefulSet).
type LiveReader interface {
	Live(ctx context.Context, namespace, name, kind string) (LiveWorkload, error)
}
