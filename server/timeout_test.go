package server

import (
	"strings"
	"testing"
	"time"
)

// The deploy timeout bounds each executor call: an executor that never ends is cut off, and every node
// and the deployment say that the deploy timeout did it, not a bare "context deadline exceeded".
func TestTheDeployTimeoutEndsARunThatNeverFinishes(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.DeployTimeout = 300 * time.Millisecond }) // the gate never opens
	code, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2"`, ""))
	if code != 202 {
		t.Fatalf("POST = %d %v", code, d)
	}
	end := f.waitState(t, d["id"].(string))
	if end["state"] != "failed" {
		t.Fatalf("deployment = %v", end)
	}
	for _, raw := range end["nodes"].([]any) {
		n := raw.(map[string]any)
		if e, _ := n["last_error"].(string); n["state"] != "failed" || !strings.Contains(e, "the deploy timeout (300ms) was reached") {
			t.Errorf("node %v: state %v, error %q", n["host"], n["state"], e)
		}
	}
	if e, _ := end["error"].(string); !strings.Contains(e, "the deploy timeout (300ms) was reached") {
		t.Errorf("deployment error %q does not name the deploy timeout", e)
	}
}
