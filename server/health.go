package server

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

// A deployment's health as the Plan Layer's specification has it: a few aggregate checks over every
// node or pod (pod_status, http_endpoint, resource_usage, and process for a physical unit), decided
// from the per-node checks and the replicas, and one verdict with a sentence a person can read. Pure:
// the handler does the reads.

// healthFacts is what the aggregate checks are decided from.
type healthFacts struct {
	platform executor.Platform
	version  string
	replicas []api.Replica
	// podErrors are the workloads whose pods could not be read ("namespace/name: why").
	podErrors []string
	// details are the per-node checks: node_status, service, pod, http.
	details []api.Check
	units   unitReading
	health  executor.HealthCheck
}

// verdict is an aggregate check, and whether its being unknown keeps the deployment from being healthy:
// it does when a read failed, not when the check does not apply here.
type verdict struct {
	api.AggregateCheck
	blocking bool
}

func healthy(name, format string, args ...any) verdict {
	return verdict{AggregateCheck: api.AggregateCheck{Name: name, Status: api.CheckHealthy, Message: fmt.Sprintf(format, args...)}}
}

func unhealthy(name, format string, args ...any) verdict {
	return verdict{AggregateCheck: api.AggregateCheck{Name: name, Status: api.CheckUnhealthy, Message: fmt.Sprintf(format, args...)}}
}

// unknown is a check that could not be decided; blocking when that is because a read failed.
func unknown(name string, blocking bool, format string, args ...any) verdict {
	return verdict{AggregateCheck: api.AggregateCheck{Name: name, Status: api.CheckUnknown, Message: fmt.Sprintf(format, args...)}, blocking: blocking}
}

// aggregateChecks decides every aggregate check of a deployment, in a stable order.
func aggregateChecks(f healthFacts) []verdict {
	out := []verdict{podStatus(f), httpEndpoint(f), resourceUsage(f)}
	if f.platform == executor.PlatformPhysical {
		out = append(out, process(f))
	}
	return out
}

// judge is the verdict over the aggregate checks: healthy when pod_status is, no check is unhealthy,
// and no check is unknown for a failed read; and the sentence that says why.
func judge(vs []verdict) (bool, string) {
	ok := true
	var wrong, notChecked []string
	for _, v := range vs {
		switch {
		case v.Status == api.CheckUnhealthy || v.blocking:
			ok = false
			wrong = append(wrong, v.Message)
		case v.Status == api.CheckUnknown:
			notChecked = append(notChecked, v.Name+" ("+v.Message+")")
		case v.Name == api.CheckPodStatus && v.Status != api.CheckHealthy:
			ok = false
		}
	}
	if !ok {
		return false, strings.Join(wrong, "; ")
	}
	msg := "All replicas are healthy"
	if len(notChecked) > 0 {
		msg += "; not checked: " + strings.Join(notChecked, ", ")
	}
	return true, msg
}

// podStatus: every replica ready (a physical node also not failed in its own record).
func podStatus(f healthFacts) verdict {
	noun := "pods"
	if f.platform == executor.PlatformPhysical {
		noun = "nodes"
	}
	recordFailed := map[string]string{}
	for _, ch := range f.details {
		if ch.Type == "node_status" && ch.Status == "fail" {
			recordFailed[ch.Name] = ch.Message
		}
	}
	var down []string
	fromRecord := 0
	for _, r := range f.replicas {
		if r.PhaseSource == sourceRecord {
			fromRecord++
		}
		switch why, failed := recordFailed[r.Name]; {
		case !r.Ready:
			down = append(down, r.Name+": "+r.Message)
		case failed:
			down = append(down, r.Name+": "+why)
		}
	}
	total := len(f.replicas)
	counted := fmt.Sprintf("%d/%d %s running", total-len(down), total, noun)
	if f.platform == executor.PlatformPhysical && f.version != "" {
		counted += " " + f.version
	}
	switch {
	case len(f.podErrors) > 0:
		return unknown(api.CheckPodStatus, true, "cannot read the pods of %s; %s", strings.Join(f.podErrors, ", "), counted)
	case total == 0:
		return unhealthy(api.CheckPodStatus, "no %s: 0/0 running", noun)
	case len(down) > 0:
		return unhealthy(api.CheckPodStatus, "%s: %s", counted, strings.Join(down, ", "))
	case fromRecord > 0:
		return healthy(api.CheckPodStatus, "%s (%d of them by the deployment's record: their units could not be read)", counted, fromRecord)
	}
	return healthy(api.CheckPodStatus, "%s", counted)
}

// process: each node's unit active and running the deployment's release (physical nodes).
func process(f healthFacts) verdict {
	if f.units.unsupported {
		return unknown(api.CheckProcess, false, "this server's executor cannot read units")
	}
	var failed, unread []string
	total := 0
	for _, ch := range f.details {
		if ch.Type != "service" {
			continue
		}
		total++
		switch ch.Status {
		case "fail":
			failed = append(failed, ch.Name+": "+ch.Message)
		case "unknown":
			unread = append(unread, ch.Name+": "+ch.Message)
		}
	}
	switch {
	case len(failed) > 0:
		return unhealthy(api.CheckProcess, "%d/%d units active and running %s: %s", total-len(failed)-len(unread), total, f.version, strings.Join(failed, ", "))
	case len(unread) > 0:
		return unknown(api.CheckProcess, true, "could not read %d/%d units: %s", len(unread), total, strings.Join(unread, ", "))
	case total == 0:
		return unknown(api.CheckProcess, true, "no unit was reported")
	}
	return healthy(api.CheckProcess, "%d/%d units active, running %s", total, total, f.version)
}

// httpEndpoint: every node answers the deployment's HTTP health check now (physical nodes).
func httpEndpoint(f healthFacts) verdict {
	if f.platform != executor.PlatformPhysical {
		return unknown(api.CheckHTTPEndpoint, false, "nodeexec does not probe pods over HTTP: their readiness probes count in pod_status")
	}
	if f.health.HTTPPort == 0 {
		return unknown(api.CheckHTTPEndpoint, false, "no HTTP health check is configured for this deployment")
	}
	var failed []string
	total := 0
	for _, ch := range f.details {
		if ch.Type != "http" {
			continue
		}
		total++
		if ch.Status != "pass" {
			failed = append(failed, ch.Name+": "+ch.Message)
		}
	}
	want := f.health.HTTPStatus
	if want == 0 {
		want = http.StatusOK
	}
	if len(failed) > 0 {
		return unhealthy(api.CheckHTTPEndpoint, "%d/%d nodes answer HTTP %d: %s", total-len(failed), total, want, strings.Join(failed, ", "))
	}
	return healthy(api.CheckHTTPEndpoint, "HTTP %d %s on %d/%d nodes", want, http.StatusText(want), total, total)
}

// resourceUsage: what the units use, from systemd's accounting; never unhealthy, as nodeexec knows
// no limit to hold it to.
func resourceUsage(f healthFacts) verdict {
	if f.platform != executor.PlatformPhysical {
		return unknown(api.CheckResourceUsage, false, "no metrics source: nodeexec reads no pod metrics")
	}
	if f.units.unsupported || f.units.err != nil {
		return unknown(api.CheckResourceUsage, false, "the units were not read")
	}
	var sum executor.Resources
	accounted := 0
	for _, st := range f.units.byHost {
		if r := st.Resources; r != nil {
			accounted++
			sum.MemoryBytes += r.MemoryBytes
			sum.CPUSeconds += r.CPUSeconds
			sum.Tasks += r.Tasks
		}
	}
	if accounted == 0 {
		return unknown(api.CheckResourceUsage, false, "systemd accounts nothing for the units (none running, or accounting off)")
	}
	msg := fmt.Sprintf("memory %s, CPU %.1f s, %d tasks on %d/%d nodes", mebibytes(sum.MemoryBytes), sum.CPUSeconds, sum.Tasks, accounted, len(f.replicas))
	if accounted < len(f.replicas) {
		return unknown(api.CheckResourceUsage, false, "%s", msg)
	}
	return healthy(api.CheckResourceUsage, "%s", msg)
}

func mebibytes(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
