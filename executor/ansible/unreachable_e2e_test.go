//go:build e2e

package ansible

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// A node nodeexec cannot reach fails its first attempt quickly, as a transient fault (the server retries
// it as configured), with ssh's own reason: within 5 s when the node refuses the connection, within 15 s
// when its packets are dropped (the shipped ansible.cfg's connect timeout, 10 s, is what bounds it).
func TestE2EUnreachableNodesFailFast(t *testing.T) {
	env := setupE2E(t, map[string]bool{"v1": false})
	e := env.executorWith(t, func(c *Config) { c.SSH.ConnectTimeout = 0 }) // the shipped default
	ctx := context.Background()
	deployTo := func(n executor.Node) (executor.NodeResult, time.Duration) {
		t.Helper()
		req := env.deployRequest("v1")
		req.Nodes = []executor.Node{n}
		start := time.Now()
		res, err := e.Deploy(ctx, req)
		took := time.Since(start)
		if err != nil || len(res) != 1 {
			t.Fatalf("deploy = %v, %v", res, err)
		}
		return res[0], took
	}

	t.Run("refused: a port nothing listens on", func(t *testing.T) {
		r, took := deployTo(executor.Node{Host: env.hosts.Addrs[0], Port: 2})
		if r.State != executor.StateFailed || !r.Transient || !strings.Contains(r.LastError, "Connection refused") {
			t.Errorf("node = %s transient=%v %q; want a transient failure, connection refused", r.State, r.Transient, r.LastError)
		}
		t.Logf("the verdict took %s", took.Round(100*time.Millisecond))
		if took > 5*time.Second {
			t.Errorf("the verdict took %s, want within 5s", took)
		}
	})

	t.Run("dropped: the node's answers never come back", func(t *testing.T) {
		// The third host's replies to the controller go nowhere (a blackhole route in its namespace).
		ns, route := "nx-h3", env.hosts.ControllerIP+"/32"
		if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "route", "add", "blackhole", route).CombinedOutput(); err != nil {
			t.Fatalf("blackhole: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "exec", ns, "ip", "route", "del", "blackhole", route).Run() })
		r, took := deployTo(executor.Node{Host: env.hosts.Addrs[2]})
		if r.State != executor.StateFailed || !r.Transient || !strings.Contains(strings.ToLower(r.LastError), "timed out") {
			t.Errorf("node = %s transient=%v %q; want a transient failure, timed out", r.State, r.Transient, r.LastError)
		}
		if took > 15*time.Second {
			t.Errorf("the verdict took %s, want within 15s", took)
		}
		t.Logf("the verdict took %s", took.Round(100*time.Millisecond))
	})
}
