package executor

import (
	"fmt"
	"regexp"
	"strings"
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
