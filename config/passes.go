package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/nodeexec/nodeexec/executor"
)

// The settings of the scheduled passes over every node: cleanup and drift, and their schedules.

// Cleanup is the scheduled cleanup: old releases off the physical nodes, old records out of the database.
type Cleanup struct {
	// Schedule is when passes run, a cron spec (see ParseSchedule); empty: never on their own (a pass
	// still runs on request: POST /api/v1/cleanups, nodeexec cleanup).
	Schedule string `yaml:"schedule"`
	// Keep is how many releases each node keeps (at least 2: current and previous); PerService sets
	// another number for a service's nodes.
	Keep       int            `yaml:"keep"`
	PerService map[string]int `yaml:"per_service"`
	// Retention: deployments (with their events and idempotency keys) and cleanup passes that finished
	// longer ago are deleted by each pass; 0 keeps them for ever.
	Retention Duration `yaml:"retention"`
	// BatchSize is how many nodes of a service one cleanup run takes (and holds from deploys meanwhile).
	BatchSize int `yaml:"batch_size"`
}

// Drift is the scheduled drift pass: every known node read and compared with its record. Off by default:
// a pass connects to every physical node and holds each from deploys while it is read, which an operator
// should choose to do (a pass still runs on request: POST /api/v1/drift, nodeexec drift).
type Drift struct {
	// Schedule is when passes run, a cron spec (see ParseSchedule); empty: only on request.
	Schedule string `yaml:"schedule"`
	// BatchSize is how many nodes of a service one status.yml run reads (and holds from deploys meanwhile).
	BatchSize int `yaml:"batch_size"`
}

func (d Drift) check() []Problem {
	var out []Problem
	if _, err := ParseSchedule(d.Schedule); err != nil {
		out = append(out, Problem{"drift.schedule", err.Error()})
	}
	if d.BatchSize < 1 || d.BatchSize > 500 {
		out = append(out, Problem{"drift.batch_size", fmt.Sprintf("want 1 to 500 nodes per run, not %d", d.BatchSize)})
	}
	return out
}

// scheduleParser reads standard cron specs (five fields, minute first, or @daily, @hourly, …) and, with a
// sixth field in front, seconds: a schedule of seconds is for tests of the lease, not for production.
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a cleanup (or drift) schedule: a standard cron spec (five fields, or @daily, @hourly,
// …; six fields: seconds first), in the server's time zone unless it starts with CRON_TZ=<zone>. Empty is
// no schedule (nil). @every is refused: its ticks count from each replica's start, so replicas would not
// agree on them and the lease could not run each tick once.
func ParseSchedule(spec string) (cron.Schedule, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	if strings.Contains(spec, "@every") {
		return nil, fmt.Errorf("%q: @every is not supported (replicas would not agree on its ticks); use a cron spec like \"0 3 * * *\"", spec)
	}
	s, err := scheduleParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron spec like \"0 3 * * *\" (minute hour day-of-month month day-of-week; "+
			"or six fields, seconds first: \"30 0 3 * * *\"): %v", spec, err)
	}
	if s.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("%q never fires", spec)
	}
	return s, nil
}

func (c Cleanup) check() []Problem {
	var out []Problem
	bad := func(setting, format string, a ...any) { out = append(out, Problem{setting, fmt.Sprintf(format, a...)}) }
	if _, err := ParseSchedule(c.Schedule); err != nil {
		bad("cleanup.schedule", "%v", err)
	}
	if c.Keep < 2 || c.Keep > 1000 {
		bad("cleanup.keep", "want 2 (current and previous, always kept) to 1000, not %d", c.Keep)
	}
	for service, keep := range c.PerService {
		if err := executor.ValidateService(service); err != nil {
			bad("cleanup.per_service", "%v", err)
		} else if keep < 2 || keep > 1000 {
			bad("cleanup.per_service", "%s: want 2 (current and previous, always kept) to 1000, not %d", service, keep)
		}
	}
	if c.Retention < 0 || (c.Retention > 0 && c.Retention < Duration(time.Hour)) {
		bad("cleanup.retention", "want 0 (keep records for ever) or at least 1h, not %s", time.Duration(c.Retention))
	}
	if c.BatchSize < 1 || c.BatchSize > 500 {
		bad("cleanup.batch_size", "want 1 to 500 nodes per run, not %d", c.BatchSize)
	}
	return out
}
