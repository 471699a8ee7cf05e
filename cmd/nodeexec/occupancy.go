//go:build occupancy

package main

// In builds with the occupancy tag only (never in production builds): with NODEEXEC_OCCUPANCY_FILE set,
// serve deploys physical nodes with the occupancy executor, which connects nowhere and records when each
// node was held and by which deployment (internal/occupancy), for the tests of several replicas.

import (
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/internal/occupancy"
)

func init() { occupancyHook = occupancyExecutor }

// occupancyExecutor is the occupancy executor NODEEXEC_OCCUPANCY_FILE names, each node held for
// NODEEXEC_OCCUPANCY_HOLD (default 50ms); nil without the file.
func occupancyExecutor(log logrus.FieldLogger) (physicalExecutor, error) {
	path := os.Getenv("NODEEXEC_OCCUPANCY_FILE")
	if path == "" {
		return nil, nil
	}
	hold := 50 * time.Millisecond
	if v := os.Getenv("NODEEXEC_OCCUPANCY_HOLD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("NODEEXEC_OCCUPANCY_HOLD %q: want a duration like 50ms: %w", v, err)
		}
		hold = d
	}
	e, err := occupancy.Open(path, hold)
	if err != nil {
		return nil, err
	}
	log.WithFields(logrus.Fields{"file": path, "hold": hold.String()}).Warn("test build: physical nodes are not deployed; the occupancy executor records them")
	return e, nil
}
