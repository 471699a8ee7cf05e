package store

import (
	"fmt"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// Whatever its kind, a deployment says what it runs on and how its nodes prove they work, from the
// request of its kind; narrowed to some of its nodes, it keeps their order and addresses.
func TestADeploymentsTargetsAndHealthComeFromTheRequestOfItsKind(t *testing.T) {
	nodes := []executor.Node{{Host: "h1", Address: "10.0.0.1"}, {Host: "h2"}, {Host: "h3", Address: "10.0.0.3"}}
	web := []executor.Workload{{Namespace: "prod", Kind: "Deployment", Name: "web"}, {Namespace: "prod", Kind: "StatefulSet", Name: "db"}}
	hc := executor.HealthCheck{HTTPPort: 8080}
	for _, c := range []struct {
		name   string
		d      Deployment
		hosts  string
		health executor.HealthCheck
		only   []string
		kept   string // Only(only).Hosts()
		addr   string // Address of h3 ("" when there is no h3)
	}{
		{"deploy to nodes", Deployment{Kind: KindDeploy, Deploy: &executor.DeployRequest{PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodes, Health: hc}}},
			"[h1 h2 h3]", hc, []string{"h3", "h1", "nowhere"}, "[h1 h3]", "10.0.0.3"},
		{"deploy to workloads", Deployment{Kind: KindDeploy, Deploy: &executor.DeployRequest{K8sDeploy: executor.K8sDeploy{Workloads: web}}},
			"[prod/web prod/db]", executor.HealthCheck{}, []string{"prod/db"}, "[prod/db]", "h3"},
		{"a kind this build does not know reads as a deploy", Deployment{Kind: "", Deploy: &executor.DeployRequest{PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodes[:1]}}},
			"[h1]", executor.HealthCheck{}, []string{"h1"}, "[h1]", "h3"},
		{"rollback", Deployment{Kind: KindRollback, Rollback: &executor.RollbackRequest{PhysicalRollback: executor.PhysicalRollback{Nodes: nodes[1:], Health: hc}}},
			"[h2 h3]", hc, []string{"h2"}, "[h2]", "10.0.0.3"},
		{"scale", Deployment{Kind: KindScale, Scale: &executor.ScaleRequest{Workloads: web, Replicas: 3}},
			"[prod/web prod/db]", executor.HealthCheck{}, nil, "[]", "h3"},
		{"restart", Deployment{Kind: KindRestart, Restart: &executor.RestartRequest{Nodes: nodes, Health: hc}},
			"[h1 h2 h3]", hc, []string{"h2", "h1"}, "[h1 h2]", "10.0.0.3"},
		{"a request of another kind is not read", Deployment{Kind: KindRestart, Deploy: &executor.DeployRequest{PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodes, Health: hc}}},
			"[]", executor.HealthCheck{}, []string{"h1"}, "[]", "h3"},
		{"no request at all", Deployment{Kind: KindScale}, "[]", executor.HealthCheck{}, []string{"h1"}, "[]", "h3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			targets := c.d.Targets()
			if got := fmt.Sprint(targets.Hosts()); got != c.hosts {
				t.Errorf("hosts = %s, want %s", got, c.hosts)
			}
			if got := c.d.Health(); got != c.health {
				t.Errorf("health = %+v, want %+v", got, c.health)
			}
			kept := targets.Only(c.only)
			if got := fmt.Sprint(kept.Hosts()); got != c.kept {
				t.Errorf("only %v = %s, want %s", c.only, got, c.kept)
			}
			if got := targets.Address("h3"); got != c.addr {
				t.Errorf("address of h3 = %s, want %s", got, c.addr)
			}
			for _, n := range kept.Nodes {
				if kept.Address(n.Host) != targets.Address(n.Host) {
					t.Errorf("only lost the address of %s", n.Host)
				}
			}
		})
	}
}
