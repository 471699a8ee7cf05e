package executor

import (
	"errors"
	"testing"
)

func validK8sDeploy() DeployRequest {
	return DeployRequest{
		DeploymentID: "d-1",
		Service:      "web",
		Version:      "v2",
		K8sDeploy:    K8sDeploy{Image: "registry.example:5000/team/web:v2", Workloads: []Workload{{Namespace: "prod", Kind: KindDeployment, Name: "web", Container: "app"}}},
	}
}

func int32p(v int32) *int32 { return &v }

func TestK8sDeployRequestsAreCheckedFieldByField(t *testing.T) {
	cases := []struct {
		name  string
		field string // "" = valid
		edit  func(*DeployRequest)
	}{
		{"valid", "", func(r *DeployRequest) {}},
		{"image by digest", "", func(r *DeployRequest) { r.Image = "web@sha256:" + string(make64('a')) }},
		{"rolling settings", "", func(r *DeployRequest) {
			r.Strategy = Strategy{MaxSurge: "25%", MaxUnavailable: "0", MinReadySeconds: int32p(5), ProgressDeadlineSeconds: int32p(60)}
		}},
		{"blue-green", "", func(r *DeployRequest) {
			r.Strategy = Strategy{Type: StrategyBlueGreen, Service: "web-svc", VerifySeconds: 3}
		}},
		{"statefulset min ready", "", func(r *DeployRequest) {
			r.Workloads[0].Kind = KindStatefulSet
			r.Strategy = Strategy{MinReadySeconds: int32p(3)}
		}},
		{"nodes and workloads", "nodes", func(r *DeployRequest) { r.Nodes = []Node{{Host: "h"}} }},
		{"namespace upper case", "workloads[0].namespace", func(r *DeployRequest) { r.Workloads[0].Namespace = "Prod" }},
		{"namespace traversal", "workloads[0].namespace", func(r *DeployRequest) { r.Workloads[0].Namespace = "../kube-system" }},
		{"kind", "workloads[0].kind", func(r *DeployRequest) { r.Workloads[0].Kind = "DaemonSet" }},
		{"name shell", "workloads[0].name", func(r *DeployRequest) { r.Workloads[0].Name = "web;id" }},
		{"container", "workloads[0].container", func(r *DeployRequest) { r.Workloads[0].Container = "App" }},
		{"workload twice", "workloads[1]", func(r *DeployRequest) { r.Workloads = append(r.Workloads, r.Workloads[0]) }},
		{"image space", "image", func(r *DeployRequest) { r.Image = "web:v2 --privileged" }},
		{"image missing", "image", func(r *DeployRequest) { r.Image = "" }},
		{"image template", "image", func(r *DeployRequest) { r.Image = "web:{{x}}" }},
		{"strategy type", "strategy.type", func(r *DeployRequest) { r.Strategy.Type = "canary" }},
		{"surge over 100%", "strategy.max_surge", func(r *DeployRequest) { r.Strategy.MaxSurge = "150%" }},
		{"surge word", "strategy.max_surge", func(r *DeployRequest) { r.Strategy.MaxSurge = "many" }},
		{"unavailable negative", "strategy.max_unavailable", func(r *DeployRequest) { r.Strategy.MaxUnavailable = "-1" }},
		{"both zero", "strategy.max_surge", func(r *DeployRequest) { r.Strategy.MaxSurge, r.Strategy.MaxUnavailable = "0", "0%" }},
		{"min ready negative", "strategy.min_ready_seconds", func(r *DeployRequest) { r.Strategy.MinReadySeconds = int32p(-1) }},
		{"deadline not after min ready", "strategy.progress_deadline_seconds", func(r *DeployRequest) {
			r.Strategy.MinReadySeconds, r.Strategy.ProgressDeadlineSeconds = int32p(30), int32p(30)
		}},
		{"statefulset surge", "workloads[0]", func(r *DeployRequest) {
			r.Workloads[0].Kind = KindStatefulSet
			r.Strategy.MaxSurge = "1"
		}},
		{"blue-green statefulset", "workloads[0].kind", func(r *DeployRequest) {
			r.Workloads[0].Kind = KindStatefulSet
			r.Strategy.Type = StrategyBlueGreen
		}},
		{"blue-green with surge", "strategy", func(r *DeployRequest) { r.Strategy = Strategy{Type: StrategyBlueGreen, MaxSurge: "1"} }},
		{"blue-green bad service", "strategy.service", func(r *DeployRequest) {
			r.Strategy = Strategy{Type: StrategyBlueGreen, Service: "web/../x"}
		}},
		{"blue-green verify too long", "strategy.verify_seconds", func(r *DeployRequest) {
			r.Strategy = Strategy{Type: StrategyBlueGreen, VerifySeconds: 7200}
		}},
		{"rolling with a service", "strategy", func(r *DeployRequest) { r.Strategy.Service = "web" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := validK8sDeploy()
			c.edit(&r)
			err := r.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != c.field {
				t.Fatalf("error = %v, want one about %s", err, c.field)
			}
		})
	}
}

func TestSplitWorkloadHost(t *testing.T) {
	for host, want := range map[string]bool{"prod/web": true, "prod/web.v2": true, "web": false, "Prod/web": false, "prod/": false, "a/b/c": false} {
		if _, _, ok := SplitWorkloadHost(host); ok != want {
			t.Errorf("SplitWorkloadHost(%q) ok = %v, want %v", host, ok, want)
		}
	}
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}

// Rollback and scale requests of workloads are checked by their own Validate, as a deploy's are.
func TestK8sRollbackAndScaleRequestsAreChecked(t *testing.T) {
	w := []Workload{{Namespace: "prod", Kind: KindDeployment, Name: "web"}}
	cases := []struct {
		name  string
		req   interface{ Validate() error }
		field string // "" = valid
	}{
		{"rollback of workloads needs no nodes", RollbackRequest{Service: "web", K8sRollback: K8sRollback{Workloads: w}}, ""},
		{"rollback to a revision", RollbackRequest{Service: "web", K8sRollback: K8sRollback{Workloads: w, ToRevision: 3}}, ""},
		{"rollback to a negative revision", RollbackRequest{Service: "web", K8sRollback: K8sRollback{Workloads: w, ToRevision: -1}}, "to_revision"},
		{"rollback to a hostile version", RollbackRequest{Service: "web", ToVersion: "../v1", K8sRollback: K8sRollback{Workloads: w}}, "to_version"},
		{"rollback of a workload without a name", RollbackRequest{Service: "web", K8sRollback: K8sRollback{Workloads: []Workload{{Namespace: "prod", Kind: KindDeployment}}}}, "workloads[0].name"},
		{"scale", ScaleRequest{Service: "web", Workloads: w, Replicas: 3}, ""},
		{"scale to zero", ScaleRequest{Service: "web", Workloads: w, Replicas: 0}, ""},
		{"scale past the cap", ScaleRequest{Service: "web", Workloads: w, Replicas: MaxReplicas + 1}, "replicas"},
		{"scale without workloads", ScaleRequest{Service: "web", Replicas: 1}, "workloads"},
		{"scale of a bad service", ScaleRequest{Service: "a b", Workloads: w, Replicas: 1}, "service"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.req.Validate()
			var ve *ValidationError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.field != "" && (!errors.As(err, &ve) || ve.Field != c.field):
				t.Fatalf("got %v, want an error on %s", err, c.field)
			}
		})
	}
}
