//go:build e2e

package main

import (
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/internal/testbed"
)

// SIGTERM to the real `nodeexec serve` in the middle of a deploy on the real test hosts: new
// deployments are refused at once (503), a deploy that finishes within the grace period ends as it
// would have, and the process exits cleanly; one that outlives the grace is cancelled, recorded with
// that reason (still there after a restart), and its nodes are left on the release they had.
func TestAPISigtermDrainsThenCancelsWhatOutlivesTheGrace(t *testing.T) {
	t.Setenv("NODEEXEC_SHUTDOWN_GRACE", "2m")
	env := setupAPI(t)
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	hosts := env.hosts.Addrs[:3]

	// sigtermOnFirstStep follows id, sends SIGTERM once a task has run on a node (the run is under way),
	// and checks that a new deploy is refused from then on.
	sigtermOnFirstStep := func(t *testing.T, id string) map[string]any {
		var once sync.Once
		_, end := env.follow(id, func(ev map[string]any) {
			if ev["type"] != "step" {
				return
			}
			once.Do(func() {
				if err := env.serve.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				// The drain begins when serve sees the signal: /readyz says so first.
				for deadline := time.Now().Add(10 * time.Second); ; {
					code, _ := env.call("GET", "/readyz", nil)
					if code == http.StatusServiceUnavailable {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("/readyz still %d after SIGTERM", code)
					}
				}
				if code, body := env.call("POST", "/api/v1/deployments", env.deployBody("v1")); code != http.StatusServiceUnavailable || body["code"] != "shutting_down" {
					t.Errorf("a deploy while draining = %d %v; want 503 shutting_down", code, body)
				}
			})
		})
		if end == nil {
			t.Fatal("the event stream broke before the deployment ended")
		}
		return end
	}
	exited := func(t *testing.T) {
		t.Helper()
		err := env.serve.Wait()
		env.serve = nil
		if err != nil {
			t.Errorf("nodeexec serve after SIGTERM: %v; want exit 0", err)
		}
	}

	t.Run("a deploy that finishes within the grace period ends success, then serve exits 0", func(t *testing.T) {
		end := sigtermOnFirstStep(t, env.post("v2"))
		if end["state"] != "success" {
			t.Errorf("deploy v2 while draining = %v", end)
		}
		exited(t)
		for _, h := range hosts {
			if v := env.serving(h); v != "v2" {
				t.Errorf("%s serves %q, want v2", h, v)
			}
		}
	})

	t.Run("a deploy that outlives the grace period is cancelled with that reason, nodes untouched", func(t *testing.T) {
		t.Setenv("NODEEXEC_SHUTDOWN_GRACE", "3s")
		env.start()
		body := env.deployBody("v1")
		// A version the nodes never had (one they had is not downloaded again), from a server whose
		// download outlasts any grace.
		body["version"] = "v1-stalled"
		body["package_url"] = testbed.ServeStalled(t, env.hosts.ControllerIP)
		code, d := env.call("POST", "/api/v1/deployments", body)
		if code != http.StatusAccepted {
			t.Fatalf("deploy = %d %v", code, d)
		}
		id := d["id"].(string)
		end := sigtermOnFirstStep(t, id)
		exited(t)
		const reason = "did not finish within the 3s grace period"
		check := func(what string, dep map[string]any) {
			if e, _ := dep["error"].(string); dep["state"] != "failed" || !strings.Contains(e, reason) {
				t.Errorf("%s: deployment state %v, error %q; want failed: %s", what, dep["state"], e, reason)
			}
			for _, raw := range dep["nodes"].([]any) {
				n := raw.(map[string]any)
				if e, _ := n["last_error"].(string); n["state"] != "failed" || !strings.Contains(e, reason) || !strings.Contains(e, "the node runs v2") {
					t.Errorf("%s: node %v: state %v, error %q", what, n["host"], n["state"], e)
				}
			}
		}
		check("the end of the stream", end)
		env.start() // what was recorded outlives the process
		_, again := env.call("GET", "/api/v1/deployments/"+id, nil)
		check("after a restart", again)
		for _, h := range hosts {
			if v := env.serving(h); v != "v2" {
				t.Errorf("%s serves %q, want v2", h, v)
			}
		}
	})
}
