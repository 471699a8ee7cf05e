package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/api"
)

// history --service lists the deployments that touched the service, newest first; --node only those
// that touched that node, with what each did to it.
func TestHistoryOfAServiceAndOfOneNode(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	var ids []string
	for _, args := range [][]string{
		deployArgs(url, "v1", "--detach"),
		deployArgs(url, "v2", "--detach"),
		{"deploy", "--server", url, "--service", "demo", "--version", "v3", "--nodes", "10.0.0.1", "--detach",
			"--package-url", "http://pkgs.example/demo-v3.tgz", "--sha256", strings.Repeat("ab", 32)},
	} {
		id := strings.TrimSpace(mustRun(t, args...))
		mustRun(t, "status", id, "--watch", "--server", url)
		ids = append(ids, id)
	}
	_, out, _ := runCaptured(t, []string{"history", "--service", "demo", "--server", url})
	if got := regexp.MustCompile(`d-[0-9a-f]+`).FindAllString(out, -1); strings.Join(got, " ") != ids[2]+" "+ids[1]+" "+ids[0] {
		t.Errorf("history --service demo lists %v, want %v newest first:\n%s", got, ids, out)
	}
	_, out, _ = runCaptured(t, []string{"history", "--service", "demo", "--node", "10.0.0.2", "--server", url})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], ids[1]) || !strings.Contains(lines[1], "success     v1    v2") || !strings.HasPrefix(lines[2], ids[0]) {
		t.Errorf("history --node 10.0.0.2:\n%s", out)
	}
	var page api.DeploymentList
	code, out, _ := runCaptured(t, []string{"history", "--service", "demo", "--node", "10.0.0.1", "--server", url, "-o", "json"})
	if err := json.Unmarshal([]byte(out), &page); err != nil || code != 0 || len(page.Deployments) != 3 {
		t.Errorf("history -o json: exit %d %v\n%s", code, err, out)
	}
	if code, _, errOut := runCaptured(t, []string{"history", "--service", "demo", "-w", "shop/Deployment/web", "--server", url}); code != 2 || !strings.Contains(errOut, "not both") {
		t.Errorf("-w and --service: exit %d %s", code, errOut)
	}
}
