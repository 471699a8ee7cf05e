package store

import (
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// The fingerprint is what a request asks for: every field of it counts, its id and who asked do not.
func TestFingerprintChangesWithWhatIsAskedOnly(t *testing.T) {
	base := func() *Deployment {
		req := &executor.DeployRequest{DeploymentID: "d-1", Service: "demo", Version: "v2"}
		// Set one by one: they are the request's own fields or its platform part's, promoted.
		req.Nodes = []executor.Node{{Host: "h1"}, {Host: "h2"}}
		req.Package = executor.Package{URL: "https://p/x.tgz", SHA256: "ab"}
		req.Unit = executor.Unit{Env: map[string]string{"A": "1", "B": "2", "C": "3"}}
		return &Deployment{ID: "d-1", Kind: KindDeploy, Service: "demo", Version: "v2", Platform: executor.PlatformPhysical, Deploy: req}
	}
	fp := base().Fingerprint()
	if len(fp) != 64 {
		t.Fatalf("fingerprint %q is not a SHA-256 in hex", fp)
	}
	same := map[string]func(d *Deployment){
		"another id":           func(d *Deployment) { d.ID, d.Deploy.DeploymentID = "d-2", "d-2" },
		"another requested_by": func(d *Deployment) { d.RequestedBy, d.Token = "someone", "ci" },
		"a progress func":      func(d *Deployment) { d.Deploy.Progress = func(string, executor.Step) {} },
		"env built in another order": func(d *Deployment) {
			d.Deploy.Unit.Env = map[string]string{"C": "3", "A": "1", "B": "2"}
		},
	}
	for name, change := range same {
		d := base()
		change(d)
		if got := d.Fingerprint(); got != fp {
			t.Errorf("%s changed the fingerprint", name)
		}
	}
	other := map[string]func(d *Deployment){
		"service":     func(d *Deployment) { d.Service, d.Deploy.Service = "billing", "billing" },
		"version":     func(d *Deployment) { d.Version, d.Deploy.Version = "v3", "v3" },
		"kind":        func(d *Deployment) { d.Kind = KindRestart },
		"a node":      func(d *Deployment) { d.Deploy.Nodes[1].Host = "h3" },
		"node order":  func(d *Deployment) { d.Deploy.Nodes[0], d.Deploy.Nodes[1] = d.Deploy.Nodes[1], d.Deploy.Nodes[0] },
		"package":     func(d *Deployment) { d.Deploy.Package.SHA256 = "cd" },
		"env":         func(d *Deployment) { d.Deploy.Unit.Env["A"] = "2" },
		"batch":       func(d *Deployment) { d.Batch.Size = 1 },
		"platform":    func(d *Deployment) { d.Platform = executor.PlatformK8s },
		"rollback of": func(d *Deployment) { d.RollbackOf = "d-0" },
		"target":      func(d *Deployment) { d.TargetDeploymentID = "d-0" },
		"workloads": func(d *Deployment) {
			d.Deploy.Workloads = []executor.Workload{{Namespace: "p", Kind: "Deployment", Name: "w"}}
		},
		"health":        func(d *Deployment) { d.Deploy.Health.HTTPPort = 8080 },
		"restart nodes": func(d *Deployment) { d.Restart = &executor.RestartRequest{Service: "demo"} },
	}
	for name, change := range other {
		d := base()
		change(d)
		if got := d.Fingerprint(); got == fp {
			t.Errorf("another %s kept the fingerprint", name)
		}
	}
}

// Fields added since keys were first fingerprinted leave the fingerprint of a request without them as it
// was: a retry across an upgrade still finds its deployment.
func TestARollbackWithoutATargetKeepsItsFingerprintAcrossNewFields(t *testing.T) {
	d := &Deployment{ID: "d-2", Kind: KindRollback, RollbackOf: "d-1", Service: "web", Version: "v2", Platform: executor.PlatformK8s,
		Rollback: &executor.RollbackRequest{DeploymentID: "d-2", Service: "web",
			K8sRollback: executor.K8sRollback{Workloads: []executor.Workload{{Namespace: "p", Kind: "Deployment", Name: "w"}}}}}
	// Computed by the build before target_deployment_id and ToImage.
	const before = "6eaff299e18459a0495c33969df7026c308c478f45558c7edc505abf27ac7677"
	if got := d.Fingerprint(); got != before {
		t.Errorf("fingerprint = %s, want %s as before", got, before)
	}
	d.Rollback.ToImage = "reg/web:v1"
	if d.Fingerprint() == before {
		t.Error("an exact image to go back to kept the fingerprint")
	}
}

func TestAKeyHolderWithoutAFingerprintIsNeverReused(t *testing.T) {
	for _, c := range []struct {
		held, asked string
		reused      bool
	}{{"a", "a", false}, {"a", "b", true}, {"", "b", false}, {"a", "", false}} {
		if got := (KeyHolder{Fingerprint: c.held}).Reused(c.asked); got != c.reused {
			t.Errorf("held %q, asked %q: reused = %v, want %v", c.held, c.asked, got, c.reused)
		}
	}
}
