package main

import (
	"errors"
	"flag"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// errUsage means the flags were wrong; the flag package has already said why.
var errUsage = errors.New("usage")

// deliveryFlag is how the package reaches the nodes.
func deliveryFlag(fs *flag.FlagSet, d *executor.Delivery) {
	fs.Func("delivery", "pull (default: each node downloads --package-url) or push (download and check it here, copy it to the nodes)", func(v string) error {
		*d = executor.Delivery(v)
		return executor.ValidateDelivery(*d)
	})
}

// healthFlags are the verification of a deploy, a rollback or a restart.
func healthFlags(fs *flag.FlagSet, h *executor.HealthCheck) {
	fs.IntVar(&h.HTTPPort, "health-port", 0, "HTTP health check port on the node (0: no HTTP check)")
	fs.StringVar(&h.HTTPPath, "health-path", "/health", "HTTP health check path")
	fs.IntVar(&h.HTTPStatus, "health-status", 200, "expected HTTP status")
	fs.IntVar(&h.TCPPort, "tcp-port", 0, "TCP port that must accept connections (0: no TCP check)")
	fs.IntVar(&h.Retries, "health-retries", 10, "verification may take health-retries × health-delay in all")
	fs.DurationVar(&h.Delay, "health-delay", time.Second, "see health-retries")
	fs.DurationVar(&h.Interval, "health-interval", 0, "how often the node looks at the unit and the checks while it verifies (0: 200ms)")
	fs.DurationVar(&h.Stable, "health-stable", 0, "how long the unit and every check must keep passing once all passed (e.g. 10s)")
}

// validLabels checks the free text a request carries beside its fields, as the server does, before
// anything is sent.
func validLabels(key, by string) error {
	if err := executor.ValidateLabel("idempotency_key", key); err != nil {
		return err
	}
	return executor.ValidateLabel("requested_by", by)
}
