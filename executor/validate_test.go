package executor

import (
	"errors"
	"strings"
	"testing"
)

func validDeploy() DeployRequest {
	return DeployRequest{
		DeploymentID: "d-1",
		Service:      "demo",
		Version:      "1.2.3+build.4",
		PhysicalDeploy: PhysicalDeploy{
			Nodes:   []Node{{Host: "web-1.example.com"}, {Host: "10.200.0.12", Port: 2222}, {Host: "::1"}},
			Package: Package{URL: "https://pkgs.example.com/demo-1.2.3.tar.gz", SHA256: strings.Repeat("ab", 32)},
			Health:  HealthCheck{HTTPPort: 8080, HTTPPath: "/health", HTTPStatus: 200},
			Unit:    Unit{Exec: "bin/demo", Args: "-addr :8080", Env: map[string]string{"GOMAXPROCS": "2"}},
		},
	}
}

func TestValidDeployRequestPasses(t *testing.T) {
	if err := validDeploy().Validate(); err != nil {
		t.Fatalf("valid request refused: %v", err)
	}
}

// A request is checked by its platform's part alone: the other platform's fields are not its business
// (beyond refusing a request that mixes nodes and workloads), and each part checks itself.
func TestEachPlatformsPartChecksItsOwnFields(t *testing.T) {
	physical, k8s := validDeploy(), validK8sDeploy()
	physical.Strategy = Strategy{Type: "no-such-strategy"} // a k8s field: not read for nodes
	k8s.Unit = Unit{Exec: "../escape"}                     // a physical field: not read for workloads
	for name, r := range map[string]DeployRequest{"physical": physical, "k8s": k8s} {
		if err := r.Validate(); err != nil {
			t.Errorf("%s request refused for the other platform's field: %v", name, err)
		}
	}
	cases := []struct {
		name, field string
		err         error
	}{
		{"physical part without nodes", "nodes", PhysicalDeploy{Package: validDeploy().Package}.Validate()},
		{"physical part with a hostile unit", "unit.exec", PhysicalDeploy{Nodes: validDeploy().Nodes, Package: validDeploy().Package, Unit: Unit{Exec: "../x"}}.Validate()},
		{"k8s part without an image", "image", K8sDeploy{Workloads: validK8sDeploy().Workloads}.Validate()},
		{"k8s part without workloads", "workloads", K8sDeploy{Image: "web:v2"}.Validate()},
		{"physical rollback without nodes", "nodes", PhysicalRollback{}.Validate()},
		{"k8s rollback to a negative revision", "to_revision", K8sRollback{Workloads: validK8sDeploy().Workloads, ToRevision: -1}.Validate()},
	}
	for _, c := range cases {
		var ve *ValidationError
		if !errors.As(c.err, &ve) || ve.Field != c.field {
			t.Errorf("%s: got %v, want an error on %s", c.name, c.err, c.field)
		}
	}
}

func TestDeployRequestRefusesHostileValues(t *testing.T) {
	cases := []struct {
		name  string
		field string
		edit  func(*DeployRequest)
	}{
		{"empty service", "service", func(r *DeployRequest) { r.Service = "" }},
		{"service path traversal", "service", func(r *DeployRequest) { r.Service = "../etc" }},
		{"service with slash", "service", func(r *DeployRequest) { r.Service = "a/b" }},
		{"service shell", "service", func(r *DeployRequest) { r.Service = "demo;rm -rf /" }},
		{"service dot dot", "service", func(r *DeployRequest) { r.Service = "a..b" }},
		{"version template", "version", func(r *DeployRequest) { r.Version = "{{ lookup('pipe','id') }}" }},
		{"version subshell", "version", func(r *DeployRequest) { r.Version = "$(id)" }},
		{"version traversal", "version", func(r *DeployRequest) { r.Version = "1/../../x" }},
		{"version newline", "version", func(r *DeployRequest) { r.Version = "1\nExecStart=/bin/sh" }},
		{"version leading dash", "version", func(r *DeployRequest) { r.Version = "-rf" }},
		{"version too long", "version", func(r *DeployRequest) { r.Version = strings.Repeat("1", 129) }},
		{"no nodes", "nodes", func(r *DeployRequest) { r.Nodes = nil }},
		{"host shell", "nodes[0].host", func(r *DeployRequest) { r.Nodes[0].Host = "a;reboot" }},
		{"host option", "nodes[0].host", func(r *DeployRequest) { r.Nodes[0].Host = "-oProxyCommand=id" }},
		{"host ipv6 zone shell", "nodes[0].host", func(r *DeployRequest) { r.Nodes[0].Host = "fe80::1%;touch x" }},
		{"host ipv6 zone space", "nodes[0].host", func(r *DeployRequest) { r.Nodes[0].Host = "fe80::1%eth0 -oProxyCommand=id" }},
		{"host duplicate", "nodes[1].host", func(r *DeployRequest) { r.Nodes[1].Host = r.Nodes[0].Host }},
		{"port range", "nodes[1].port", func(r *DeployRequest) { r.Nodes[1].Port = 70000 }},
		{"file url", "package_url", func(r *DeployRequest) { r.Package.URL = "file:///etc/passwd" }},
		{"url credentials", "package_url", func(r *DeployRequest) { r.Package.URL = "https://u:secret@h/x.tgz" }},
		{"url template", "package_url", func(r *DeployRequest) { r.Package.URL = "https://h/{{x}}.tgz" }},
		{"sha256 short", "sha256", func(r *DeployRequest) { r.Package.SHA256 = "abc" }},
		{"sha256 missing", "sha256", func(r *DeployRequest) { r.Package.SHA256 = "" }},
		{"health path", "health.http_path", func(r *DeployRequest) { r.Health.HTTPPath = "health" }},
		{"health status", "health.http_status", func(r *DeployRequest) { r.Health.HTTPStatus = 1000 }},
		{"unit args newline", "unit.args", func(r *DeployRequest) { r.Unit.Args = "x\nExecStartPre=/bin/sh" }},
		{"unit exec escape", "unit.exec", func(r *DeployRequest) { r.Unit.Exec = "../../bin/sh" }},
		{"unit exec absolute", "unit.exec", func(r *DeployRequest) { r.Unit.Exec = "/bin/sh" }},
		{"unit env key", "unit.env", func(r *DeployRequest) { r.Unit.Env = map[string]string{"A B": "1"} }},
		{"unit env quote", "unit.env.A", func(r *DeployRequest) { r.Unit.Env = map[string]string{"A": `x" B="y`} }},
		{"deployment id", "deployment_id", func(r *DeployRequest) { r.DeploymentID = "x y" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := validDeploy()
			c.edit(&req)
			err := req.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			v, ok := err.(*ValidationError)
			if !ok {
				t.Fatalf("error %T is not a ValidationError: %v", err, err)
			}
			if v.Field != c.field {
				t.Errorf("field = %q, want %q (%v)", v.Field, c.field, err)
			}
		})
	}
}

func TestRollbackRequestValidation(t *testing.T) {
	ok := RollbackRequest{Service: "demo", PhysicalRollback: PhysicalRollback{Nodes: []Node{{Host: "h1"}}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid rollback refused: %v", err)
	}
	bad := ok
	bad.ToVersion = "../v1"
	if err := bad.Validate(); err == nil || err.(*ValidationError).Field != "to_version" {
		t.Fatalf("to_version traversal: %v", err)
	}
}

func TestHostsThatAreFine(t *testing.T) {
	for _, h := range []string{"node-1.example.com", "10.0.0.1", "::1", "fe80::1%eth0", "fe80::1%enp0s3.100"} {
		if err := ValidateHost(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
}

func TestADeleteSelectorMustParseAndNarrow(t *testing.T) {
	for _, c := range []struct {
		selector string
		ok       bool
	}{
		{"app=web", true}, {"app in (web,api),tier!=cache", true}, {"app", true},
		{"", false}, {"   ", false}, {"app in (web", false}, {"a b", false},
	} {
		err := ValidateDeleteSelector(c.selector)
		if (err == nil) != c.ok {
			t.Errorf("ValidateDeleteSelector(%q) = %v, want ok %v", c.selector, err, c.ok)
		}
		if err != nil && err.(*ValidationError).Field != "selector" {
			t.Errorf("%q: field %s, want selector", c.selector, err.(*ValidationError).Field)
		}
	}
}
