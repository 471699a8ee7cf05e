//go:build occupancy

package main

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
)

// In a test build, serve takes the occupancy executor only when NODEEXEC_OCCUPANCY_FILE is set.
func TestTheOccupancyBuildUsesItsExecutorOnlyWithAFile(t *testing.T) {
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	if occupancyHook == nil {
		t.Fatal("occupancyHook is not set in a build with the occupancy tag")
	}
	t.Setenv("NODEEXEC_OCCUPANCY_FILE", "")
	if e, err := occupancyHook(quiet); e != nil || err != nil {
		t.Errorf("without a file: %v, %v; want the Ansible executor (nil)", e, err)
	}
	t.Setenv("NODEEXEC_OCCUPANCY_FILE", filepath.Join(t.TempDir(), "occupancy"))
	t.Setenv("NODEEXEC_OCCUPANCY_HOLD", "forever")
	if _, err := occupancyHook(quiet); err == nil {
		t.Error("a hold that is not a duration was accepted")
	}
	t.Setenv("NODEEXEC_OCCUPANCY_HOLD", "1ms")
	if e, err := occupancyHook(quiet); e == nil || err != nil {
		t.Errorf("with a file: %v, %v", e, err)
	}
}
