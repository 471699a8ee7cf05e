package metrics

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

func TestHealthCheckNamesTheVerificationSteps(t *testing.T) {
	for _, c := range []struct {
		platform executor.Platform
		step     string
		want     string // "" when the step is not a health check
	}{
		{executor.PlatformPhysical, "Wait for the unit to be active", "unit_active"},
		{executor.PlatformPhysical, "Check the HTTP health endpoint", "http"},
		{executor.PlatformPhysical, "Check the TCP port", "tcp"},
		{"", "Check the TCP port", "tcp"}, // records from before platforms existed are physical
		{executor.PlatformPhysical, "Download the package and check its SHA256", ""},
		{executor.PlatformPhysical, "Check the request", ""},
		{executor.PlatformPhysical, "Wait for the rollout", ""}, // a k8s step name means nothing on a host
		{executor.PlatformK8s, "Wait for the rollout", "rollout"},
		{executor.PlatformK8s, "Check the rollout", "rollout"},
		{executor.PlatformK8s, "Wait for green", "rollout"},
		{executor.PlatformK8s, "Check blue", "rollout"},
		{executor.PlatformK8s, "Wait for the replicas", "replicas"},
		{executor.PlatformK8s, "Verify green for 30s", "steady"},
		{executor.PlatformK8s, "Set the image", ""},
		{executor.PlatformK8s, "Check the serving color", ""},
		{executor.PlatformK8s, "Roll back to the previous image", ""},
		{executor.PlatformK8s, "Check the HTTP health endpoint", ""},
	} {
		got, ok := HealthCheck(c.platform, c.step)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("HealthCheck(%q, %q) = %q, %v; want %q", c.platform, c.step, got, ok, c.want)
		}
	}
}

// The physical checks are steps the nodeexec_release module reports, its step names string literals in
// its Python code: renaming a step there without renaming it here would silently stop counting it.
func TestPhysicalChecksAreStepsTheReleaseModuleReports(t *testing.T) {
	files, err := filepath.Glob("../roles/nodeexec_release/library/*.py")
	if err != nil || len(files) == 0 {
		t.Fatalf("the release module's source: %v %v", files, err)
	}
	var src strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(data)
	}
	checks := healthSteps[executor.PlatformPhysical]
	if len(checks) == 0 {
		t.Fatal("healthSteps names no physical checks")
	}
	for _, h := range checks {
		name := strings.TrimSuffix(strings.TrimPrefix(h.name.String(), "^"), "$")
		if regexp.QuoteMeta(name) != name {
			t.Errorf("physical check %s is not a plain step name; this test reads only those", h.name)
			continue
		}
		if !strings.Contains(src.String(), `"`+name+`"`) && !strings.Contains(src.String(), `'`+name+`'`) {
			t.Errorf("the nodeexec_release module (%s) no longer names a step %q: update healthSteps", strings.Join(files, ", "), name)
		}
	}
}

// The Kubernetes executor still reports the steps counted as checks (its step names are Go literals).
func TestK8sChecksAreStepsTheExecutorReports(t *testing.T) {
	files, err := filepath.Glob("../executor/k8s/*.go")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(data)
	}
	for _, literal := range []string{`"Wait for the rollout"`, `"Check the rollout"`, `"Wait for the replicas"`,
		`"Wait for "+idle`, `"Check "+back`, `"Verify %s for %s"`} {
		if !strings.Contains(src.String(), literal) {
			t.Errorf("executor/k8s no longer names a step %s: update healthSteps and this list", literal)
		}
	}
}
