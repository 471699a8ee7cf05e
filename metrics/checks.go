package metrics

import (
	"regexp"

	"github.com/nodeexec/nodeexec/executor"
)

// healthSteps names the steps that are health checks, by the step names the executors report: on
// physical nodes the verification sub-steps of the nodeexec_release module (named in
// roles/nodeexec_release/library/nodeexec_release.py, its unit part; run after a deploy, after an automatic
// rollback, and after a rollback), on Kubernetes the rollout waits of executor/k8s. checks_test.go
// holds this list to those sources.
var healthSteps = map[executor.Platform][]struct {
	name  *regexp.Regexp
	check string
}{
	executor.PlatformPhysical: {
		{regexp.MustCompile(`^Wait for the unit to be active$`), "unit_active"},
		{regexp.MustCompile(`^Check the HTTP health endpoint$`), "http"},
		{regexp.MustCompile(`^Check the TCP port$`), "tcp"},
	},
	executor.PlatformK8s: {
		// A rolling update's (or a rollback's) rollout, and one already done; a blue-green deploy's new
		// color coming up, and the old color's readiness before a switch back.
		{regexp.MustCompile(`^(Wait for|Check) the rollout$`), "rollout"},
		{regexp.MustCompile(`^(Wait for|Check) (blue|green)$`), "rollout"},
		{regexp.MustCompile(`^Wait for the replicas$`), "replicas"},
		// Blue-green: the new color holds steady for the verify period before the switch.
		{regexp.MustCompile(`^Verify (blue|green) for `), "steady"},
	},
}

// HealthCheck says which health check a step of platform p is, if it is one.
func HealthCheck(p executor.Platform, step string) (check string, ok bool) {
	if p == "" {
		p = executor.PlatformPhysical
	}
	for _, h := range healthSteps[p] {
		if h.name.MatchString(step) {
			return h.check, true
		}
	}
	return "", false
}
