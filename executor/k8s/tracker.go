package k8s

import (
	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
)

// tracker builds one workload's result and reports each step the moment it happens.
type tracker struct {
	res      executor.NodeResult
	progress executor.ProgressFunc
	log      logrus.FieldLogger
}

func (e *Executor) track(w executor.Workload, service, deploymentID, version string, progress executor.ProgressFunc) *tracker {
	fields := logrus.Fields{"deployment_id": deploymentID, "service": service, "node": w.Host()}
	if version != "" {
		fields["version"] = version
	}
	return &tracker{
		res:      executor.NodeResult{NodeStatus: executor.NodeStatus{Host: w.Host(), Service: service, Platform: executor.PlatformK8s}},
		progress: progress,
		log:      e.log.WithFields(fields),
	}
}

// step records a step that did (changed) or did not change the workload.
func (t *tracker) step(name string, changed bool, msg string) {
	t.emit(executor.Step{Name: name, Changed: changed, Message: msg})
	if changed {
		t.res.Changed = true
	}
}

// fail records the failed step and ends the workload failed, naming the step.
func (t *tracker) fail(name string, err error) executor.NodeResult {
	t.emit(executor.Step{Name: name, Failed: true, Message: err.Error()})
	t.res.State, t.res.LastError = executor.StateFailed, name+": "+err.Error()
	t.log.WithError(err).Warn("workload failed")
	return t.res
}

func (t *tracker) emit(st executor.Step) {
	t.res.Steps = append(t.res.Steps, st)
	if t.progress != nil {
		t.progress(t.res.Host, st)
	}
}
