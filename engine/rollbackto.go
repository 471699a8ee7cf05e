package engine

import (
	"fmt"
	"strings"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Why a rollback to a target deployment is refused (TargetRefusedError.Code, the API's error code).
const (
	TargetNotFinished    = "target_not_finished"
	TargetMismatch       = "target_mismatch"
	TargetVersionUnknown = "target_version_unknown"
)

// TargetRefusedError is a rollback to a target deployment that cannot be made: Code says why; Hosts
// names the nodes the target left on no known version (TargetVersionUnknown).
type TargetRefusedError struct {
	Code   string
	Hosts  []string
	Reason string
}

func (e *TargetRefusedError) Error() string { return e.Reason }

// RollbackTo is a new deployment, id, that takes the nodes of orig (ended) back to the version target
// (ended, of the same service and platform; a deploy or a rollback, older or newer) left each of them on:
// target's DeploymentNode.CurrentVersion. current is what each node runs now, by host, as its record
// says; a node already on its version is left alone and is not one of the rollback's nodes. A
// *TargetRefusedError when target cannot serve (another service or platform, not ended, a kind that
// sets no version, or some of orig's nodes it left on no known version); a *NothingToRollBackError
// when every node already runs the version target left it on.
func RollbackTo(orig, target *store.Deployment, current map[string]string, id string) (*store.Deployment, error) {
	if err := targetServes(orig, target); err != nil {
		return nil, err
	}
	if why := operationOf(orig.Kind).irreversible(orig); why != "" {
		return nil, &NothingToRollBackError{Reason: why}
	}
	d := &store.Deployment{ID: id, Kind: store.KindRollback, RollbackOf: orig.ID, TargetDeploymentID: target.ID,
		Service: orig.Service, Version: orig.Version, Platform: orig.Platform, State: executor.StatePending, CreatedAt: time.Now().UTC()}
	var hosts, unknown, alone []string
	for _, n := range orig.Nodes {
		tn := target.Node(n.Host)
		switch now, recorded := current[n.Host]; {
		case tn == nil || tn.CurrentVersion == "":
			unknown = append(unknown, n.Host)
		case recorded && now == tn.CurrentVersion:
			alone = append(alone, n.Host+" "+now)
		default:
			d.Nodes = append(d.Nodes, store.DeploymentNode{Host: n.Host, State: executor.StatePending, TargetVersion: tn.CurrentVersion})
			hosts = append(hosts, n.Host)
		}
	}
	if len(unknown) > 0 {
		return nil, &TargetRefusedError{Code: TargetVersionUnknown, Hosts: unknown, Reason: fmt.Sprintf(
			"deployment %s left %s of deployment %s on no known version: roll back without target_deployment_id, or choose another target",
			target.ID, strings.Join(unknown, ", "), orig.ID)}
	}
	if len(d.Nodes) == 0 {
		return nil, &NothingToRollBackError{Reason: fmt.Sprintf("every node of deployment %s already runs the version deployment %s left it on (%s)",
			orig.ID, target.ID, strings.Join(alone, ", "))}
	}
	back := orig.Targets().Only(hosts)
	d.Rollback = &executor.RollbackRequest{
		DeploymentID:     id,
		Service:          orig.Service,
		PhysicalRollback: executor.PhysicalRollback{Nodes: back.Nodes, Health: orig.Health()},
		K8sRollback:      executor.K8sRollback{Workloads: back.Workloads, ToImage: exactImage(target, d.Nodes)},
	}
	return d, nil
}

// targetServes refuses a target that is not an ended deployment setting versions of orig's service
// on orig's platform. A deployment of several applications is neither an orig nor a target: each of its
// applications is a deployment of its own, which is.
func targetServes(orig, target *store.Deployment) error {
	refuse := func(code, format string, args ...any) error {
		return &TargetRefusedError{Code: code, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case orig.HasApplications() || target.HasApplications():
		several := orig
		if target.HasApplications() {
			several = target
		}
		return refuse(TargetMismatch, "deployment %s is of several applications: roll back one application's deployment "+
			"(applications[].deployment_id) to a deployment of that application", several.ID)
	case target.Service != orig.Service || target.Platform != orig.Platform:
		return refuse(TargetMismatch, "deployment %s is of %s on %s, not of %s on %s like deployment %s",
			target.ID, target.Service, target.Platform, orig.Service, orig.Platform, orig.ID)
	case operationOf(target.Kind).irreversible(target) != "":
		return refuse(TargetMismatch, "deployment %s is a %s, which sets no version to go back to", target.ID, target.Kind)
	case !target.State.Terminal():
		return refuse(TargetNotFinished, "deployment %s is still running; wait for it to end, then roll back to it", target.ID)
	}
	return nil
}

// exactImage is the image a Kubernetes target deploy set, when every node goes back to that deploy's
// version: the exact image (registry, name, digest) beats the version's tag on today's image. "" when
// the target is a rollback, or left some workload on another version (it failed there).
func exactImage(target *store.Deployment, nodes []store.DeploymentNode) string {
	if target.Platform != executor.PlatformK8s || target.Deploy == nil || target.Deploy.Image == "" {
		return ""
	}
	for _, n := range nodes {
		if n.TargetVersion != target.Deploy.Version {
			return ""
		}
	}
	return target.Deploy.Image
}
