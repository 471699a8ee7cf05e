//go:build !occupancy

package main

import "testing"

// The occupancy executor is for tests only: a build without the tag has no way to reach it.
func TestAProductionBuildHasNoOccupancyExecutor(t *testing.T) {
	if occupancyHook != nil {
		t.Fatal("occupancyHook is set in a build without the occupancy tag")
	}
}
