package engine

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// physicalDeploy is an ended deploy of demo to hosts, each left on the version its node names.
func physicalDeploy(id, version string, left map[string]string, hosts ...string) *store.Deployment {
	d := &store.Deployment{ID: id, Kind: store.KindDeploy, Service: "demo", Version: version, Platform: executor.PlatformPhysical,
		State: executor.StateSuccess, Deploy: &executor.DeployRequest{Service: "demo", Version: version,
			PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodesOf(hosts...), Health: executor.HealthCheck{HTTPPort: 8080}}}}
	for _, h := range hosts {
		d.Nodes = append(d.Nodes, store.DeploymentNode{Host: h, TargetVersion: version, CurrentVersion: left[h]})
	}
	return d
}

// A rollback to a target takes each node of the deployment to the version the target left it on; a node
// already there is left alone, whatever the kind and age of the target.
func TestRollbackToTakesOnlyTheNodesNotOnTheTargetsVersion(t *testing.T) {
	v1 := physicalDeploy("d-1", "v1", map[string]string{"h1": "v1", "h2": "v1", "h3": "v1"}, "h1", "h2", "h3")
	v2 := physicalDeploy("d-2", "v2", map[string]string{"h1": "v2", "h2": "v2", "h3": "v2"}, "h1", "h2", "h3")
	// A rollback that put h2 back on v1 but failed on h3 (left on v2): a target, newer than v2.
	rb := &store.Deployment{ID: "d-3", Kind: store.KindRollback, Service: "demo", Platform: executor.PlatformPhysical, State: executor.StateFailed,
		Rollback: &executor.RollbackRequest{Service: "demo", PhysicalRollback: executor.PhysicalRollback{Nodes: nodesOf("h2", "h3")}},
		Nodes:    []store.DeploymentNode{{Host: "h2", TargetVersion: "v1", CurrentVersion: "v1"}, {Host: "h3", TargetVersion: "v1", CurrentVersion: "v2"}}}
	cases := []struct {
		name         string
		orig, target *store.Deployment
		current      map[string]string
		want         string // the rollback's nodes, host@version
	}{
		{"every node differs", v2, v1, map[string]string{"h1": "v2", "h2": "v2", "h3": "v2"}, "[h1@v1 h2@v1 h3@v1]"},
		{"a node already on the version is left alone", v2, v1, map[string]string{"h1": "v2", "h2": "v1", "h3": "v2"}, "[h1@v1 h3@v1]"},
		{"a node with no record goes back", v2, v1, map[string]string{"h1": "v1", "h2": "v1"}, "[h3@v1]"},
	}
	for _, c := range cases {
		d, err := RollbackTo(c.orig, c.target, c.current, "d-9")
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var got []string
		for _, n := range d.Nodes {
			got = append(got, n.Host+"@"+n.TargetVersion)
		}
		if fmt.Sprint(got) != c.want || fmt.Sprint(d.Targets().Hosts()) != fmt.Sprint(hostsOf(d.Nodes)) {
			t.Errorf("%s: nodes %v (targets %v), want %s", c.name, got, d.Targets().Hosts(), c.want)
		}
		if d.Kind != store.KindRollback || d.RollbackOf != c.orig.ID || d.TargetDeploymentID != c.target.ID || d.Service != "demo" ||
			d.State != executor.StatePending || d.Rollback.DeploymentID != "d-9" || d.Rollback.Health.HTTPPort != 8080 || d.Rollback.ToImage != "" {
			t.Errorf("%s: rollback = %+v, %+v", c.name, d, d.Rollback)
		}
	}
	// A target that did not touch every node of the deployment left them on no known version.
	_, err := RollbackTo(v2, rb, map[string]string{}, "d-9")
	var refused *TargetRefusedError
	if !errors.As(err, &refused) || refused.Code != TargetVersionUnknown || fmt.Sprint(refused.Hosts) != "[h1]" ||
		err.Error() != "deployment d-3 left h1 of deployment d-2 on no known version: roll back without target_deployment_id, or choose another target" {
		t.Errorf("target without h1: %v", err)
	}
	// Within the target's own nodes, a rollback to it goes by what it left, not what it aimed at.
	sub := physicalDeploy("d-4", "v4", nil, "h2", "h3")
	d, err := RollbackTo(sub, rb, map[string]string{"h2": "v4", "h3": "v4"}, "d-9")
	if err != nil || fmt.Sprint(d.Nodes) != fmt.Sprint([]store.DeploymentNode{{Host: "h2", State: executor.StatePending, TargetVersion: "v1"},
		{Host: "h3", State: executor.StatePending, TargetVersion: "v2"}}) {
		t.Errorf("to a rollback: %+v, %v", d, err)
	}
	if got := describe(d); got != "rollback of demo to the versions deployment d-3 left, on 2 nodes" {
		t.Errorf("line = %q", got)
	}
}

func hostsOf(nodes []store.DeploymentNode) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Host)
	}
	return out
}

// A target that cannot say where to go back to is refused, naming why; when every node is already
// there, there is nothing to roll back.
func TestRollbackToRefusesATargetThatCannotServe(t *testing.T) {
	v2 := physicalDeploy("d-2", "v2", map[string]string{"h1": "v2", "h2": "v2"}, "h1", "h2")
	v1 := func(change func(d *store.Deployment)) *store.Deployment {
		d := physicalDeploy("d-1", "v1", map[string]string{"h1": "v1", "h2": "v1"}, "h1", "h2")
		change(d)
		return d
	}
	now := map[string]string{"h1": "v2", "h2": "v2"}
	cases := []struct {
		name    string
		target  *store.Deployment
		current map[string]string
		code    string // "" for nothing to roll back
		want    string
	}{
		{"another service", v1(func(d *store.Deployment) { d.Service = "billing" }), now, TargetMismatch,
			"deployment d-1 is of billing on physical, not of demo on physical like deployment d-2"},
		{"another platform", v1(func(d *store.Deployment) { d.Platform = executor.PlatformK8s }), now, TargetMismatch,
			"deployment d-1 is of demo on k8s, not of demo on physical like deployment d-2"},
		{"a restart", v1(func(d *store.Deployment) { d.Kind = store.KindRestart }), now, TargetMismatch,
			"deployment d-1 is a restart, which sets no version to go back to"},
		{"a deployment of several applications", v1(func(d *store.Deployment) {
			d.Service, d.Applications = "", []store.Application{{Service: "demo", DeploymentID: "d-1a"}}
		}), now, TargetMismatch,
			"deployment d-1 is of several applications: roll back one application's deployment (applications[].deployment_id) to a deployment of that application"},
		{"still running", v1(func(d *store.Deployment) { d.State = executor.StateDeploying }), now, TargetNotFinished,
			"deployment d-1 is still running; wait for it to end, then roll back to it"},
		{"a node it left on nothing", v1(func(d *store.Deployment) { d.Nodes[1].CurrentVersion = "" }), now, TargetVersionUnknown,
			"deployment d-1 left h2 of deployment d-2 on no known version: roll back without target_deployment_id, or choose another target"},
		{"every node already there", v1(func(*store.Deployment) {}), map[string]string{"h1": "v1", "h2": "v1"}, "",
			"every node of deployment d-2 already runs the version deployment d-1 left it on (h1 v1, h2 v1)"},
	}
	for _, c := range cases {
		d, err := RollbackTo(v2, c.target, c.current, "d-9")
		var refused *TargetRefusedError
		var nothing *NothingToRollBackError
		switch {
		case d != nil:
			t.Errorf("%s: got a rollback %+v", c.name, d)
		case c.code == "" && !errors.As(err, &nothing), c.code != "" && (!errors.As(err, &refused) || refused.Code != c.code):
			t.Errorf("%s: error %T %v, want code %q", c.name, err, err, c.code)
		case err.Error() != c.want:
			t.Errorf("%s: %q\nwant %q", c.name, err, c.want)
		}
	}
}

// On Kubernetes, a rollback to a deploy goes back to the exact image that deploy set; to a rollback,
// or where the deploy failed, to the version's tag on the current image.
func TestRollbackToAKubernetesDeployKeepsItsExactImage(t *testing.T) {
	web := []executor.Workload{{Namespace: "rbt-a", Kind: "Deployment", Name: "web"}, {Namespace: "rbt-a", Kind: "Deployment", Name: "api"}}
	k8s := func(id, version, image string, left ...string) *store.Deployment {
		d := &store.Deployment{ID: id, Kind: store.KindDeploy, Service: "web", Version: version, Platform: executor.PlatformK8s, State: executor.StateSuccess,
			Deploy: &executor.DeployRequest{Service: "web", Version: version, K8sDeploy: executor.K8sDeploy{Workloads: web, Image: image}}}
		for i, w := range web {
			d.Nodes = append(d.Nodes, store.DeploymentNode{Host: w.Host(), TargetVersion: version, CurrentVersion: left[i]})
		}
		return d
	}
	v2 := k8s("d-2", "v2", "reg.example/web:v2", "v2", "v2")
	now := map[string]string{"rbt-a/web": "v2", "rbt-a/api": "v2"}
	for _, c := range []struct {
		name   string
		target *store.Deployment
		image  string
	}{
		{"a deploy that succeeded", k8s("d-1", "v1", "reg.example/web@sha256:"+fmt.Sprintf("%064d", 1), "v1", "v1"), "reg.example/web@sha256:" + fmt.Sprintf("%064d", 1)},
		{"a deploy that left a workload on v0", k8s("d-1", "v1", "reg.example/web:v1", "v1", "v0"), ""},
	} {
		d, err := RollbackTo(v2, c.target, now, "d-9")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if d.Rollback.ToImage != c.image || len(d.Rollback.Workloads) != 2 || len(d.Rollback.Nodes) != 0 {
			t.Errorf("%s: image %q, want %q (%+v)", c.name, d.Rollback.ToImage, c.image, d.Rollback)
		}
	}
}
