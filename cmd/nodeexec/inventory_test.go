package main

import (
	"strings"
	"testing"
)

// services, nodes (every service's) and forget against the real server.
func TestServicesNodesAndForget(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	if code, out, errOut := runCaptured(t, deployArgs(url, "v1")); code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ := runCaptured(t, []string{"services", "--server", url})
	if code != 0 || !strings.Contains(out, "demo") || !strings.Contains(out, "v1 on 2") {
		t.Errorf("services: exit %d\n%s", code, out)
	}
	code, out, _ = runCaptured(t, []string{"nodes", "--server", url, "--version", "v1"})
	if code != 0 || strings.Count(out, "demo") != 2 {
		t.Errorf("nodes --version v1: exit %d\n%s", code, out)
	}
	code, out, _ = runCaptured(t, []string{"forget", "--server", url, "--service", "demo", "--host", "10.0.0.2", "--requested-by", "ops"})
	if code != 0 || !strings.Contains(out, "forgot node 10.0.0.2 of demo (it ran v1)") {
		t.Errorf("forget: exit %d\n%s", code, out)
	}
	if _, out, _ := runCaptured(t, []string{"nodes", "--server", url}); strings.Contains(out, "10.0.0.2") {
		t.Errorf("the forgotten node is still listed:\n%s", out)
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"forget", "--server", url, "--service", "demo"}, "give the node"},
		{[]string{"forget", "--server", url, "--service", "demo", "--host", "10.0.0.2"}, "not found"},
		{[]string{"nodes", "--server", url, "--host", "10.0.0.1"}, "needs --service"},
	} {
		if code, out, errOut := runCaptured(t, c.args); code == 0 || !strings.Contains(out+errOut, c.says) {
			t.Errorf("%v: exit %d, want %q\n%s%s", c.args, code, c.says, out, errOut)
		}
	}
}
