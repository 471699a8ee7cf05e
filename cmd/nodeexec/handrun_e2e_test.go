//go:build e2e

package main

import (
	"fmt"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// An operator's hand run of playbooks/deploy.yml on the real hosts, reporting to a real `nodeexec serve`
// with API tokens: with reporting on, nodeexec's node records say what the run put there, naming a
// record of kind manual by user@controller; with reporting off, nodeexec learns nothing; with a wrong
// token, the deploy still goes through and the playbook says the report was refused. The token is never
// in the playbook's output.
func TestHandRunReportsToNodeexec(t *testing.T) {
	const deployToken = "hand-deploy-token-0123456789abcdef0123456789"
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.yaml")
	writeFile(t, tokens, fmt.Sprintf("- {name: hand-ops, token: %s, scopes: [read, deploy]}\n", deployToken))
	env := setupAPIWith(t, "hand", deployToken, []string{"--tokens-file", tokens})
	hosts := env.hosts.Addrs[:3]
	controller, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}

	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 through nodeexec: %v", end)
	}
	byNodeexec := env.nodeRecord(hosts[0])["deployment_id"]

	goodToken := filepath.Join(dir, "good.token")
	writeFile(t, goodToken, deployToken+"\n")
	out := env.handDeploy(t, "v2", map[string]any{"nodeexec_report_url": env.base, "nodeexec_report_token_file": goodToken})
	if !strings.Contains(out, "Reported to nodeexec: recorded as deployment d-hand-") {
		t.Errorf("the playbook does not say it reported:\n%s", out)
	}
	manualID := ""
	for _, h := range hosts {
		n := env.nodeRecord(h)
		if n["current_version"] != "v2" || n["prev_version"] != "v1" || n["state"] != "success" || !strings.HasPrefix(fmt.Sprint(n["deployment_id"]), "d-hand-") {
			t.Errorf("node %s after the reported hand run = %v", h, n)
		}
		if manualID == "" {
			manualID = fmt.Sprint(n["deployment_id"])
		}
		if env.serving(h) != "v2" {
			t.Errorf("%s serves %q", h, env.serving(h))
		}
	}
	code, d := env.call("GET", "/api/v1/deployments/"+manualID, nil)
	if code != http.StatusOK || d["kind"] != "manual" || d["playbook"] != "deploy" || d["version"] != "v2" || d["state"] != "success" ||
		d["requested_by"] != "hand-tester@"+controller || d["token"] != "hand-ops" || len(d["nodes"].([]any)) != 3 {
		t.Fatalf("the manual record = %d %v", code, d)
	}
	for _, n := range d["nodes"].([]any) {
		if n := n.(map[string]any); n["state"] != "success" || n["from_version"] != "v1" || n["current_version"] != "v2" || n["record_kept"] != nil {
			t.Errorf("a node of the manual record = %v", n)
		}
	}
	deployments := env.deploymentCount()

	// Reporting off: the same hand run (back to v1) changes the nodes and nothing in nodeexec.
	env.handDeploy(t, "v1", map[string]any{})
	for _, h := range hosts {
		if n := env.nodeRecord(h); env.serving(h) != "v1" || n["current_version"] != "v2" || n["deployment_id"] != manualID {
			t.Errorf("%s after an unreported hand run: serves %q, nodeexec says %v", h, env.serving(h), n)
		}
	}
	if got := env.deploymentCount(); got != deployments {
		t.Errorf("an unreported hand run recorded something: %d deployments, then %d", deployments, got)
	}

	// A wrong token: the deploy goes through, the playbook says the report was refused, nodeexec is unchanged.
	wrongToken := filepath.Join(dir, "wrong.token")
	writeFile(t, wrongToken, "not-the-token-9876543210fedcba9876543210\n")
	out = env.handDeploy(t, "v2", map[string]any{"nodeexec_report_url": env.base, "nodeexec_report_token_file": wrongToken})
	if !strings.Contains(out, "WARNING: the report of this run did not reach nodeexec (401)") {
		t.Errorf("the playbook does not say the report was refused:\n%s", out)
	}
	if strings.Contains(out, "not-the-token") {
		t.Errorf("the wrong token is in the playbook's output:\n%s", out)
	}
	for _, h := range hosts {
		if n := env.nodeRecord(h); env.serving(h) != "v2" || n["deployment_id"] != manualID {
			t.Errorf("%s after a refused report: serves %q, nodeexec says %v", h, env.serving(h), n)
		}
	}
	if got := env.deploymentCount(); got != deployments {
		t.Errorf("a refused report recorded something: %d deployments, then %d", deployments, got)
	}
	if byNodeexec == manualID {
		t.Errorf("the manual record is nodeexec's own deployment %v", byNodeexec)
	}

	// A hand rollback reports too: each node back on v1, rolled_back, by a record of playbook rollback.
	env.handPlaybook(t, "playbooks/rollback.yml", map[string]any{"nodeexec_report_url": env.base, "nodeexec_report_token_file": goodToken})
	rollbackID := ""
	for _, h := range hosts {
		n := env.nodeRecord(h)
		if env.serving(h) != "v1" || n["current_version"] != "v1" || n["state"] != "rolled_back" || n["deployment_id"] == manualID {
			t.Errorf("%s after a reported hand rollback: serves %q, nodeexec says %v", h, env.serving(h), n)
		}
		rollbackID = fmt.Sprint(n["deployment_id"])
	}
	if _, d := env.call("GET", "/api/v1/deployments/"+rollbackID, nil); d["kind"] != "manual" || d["playbook"] != "rollback" || d["state"] != "success" {
		t.Errorf("the hand rollback's record = %v", d)
	}
}

// handDeploy runs playbooks/deploy.yml by hand on the three hosts with vars beside the release's.
func (env *apiEnv) handDeploy(t *testing.T, version string, vars map[string]any) string {
	t.Helper()
	vars["nodeexec_version"] = version
	vars["nodeexec_package_url"] = env.svc.URL(version)
	vars["nodeexec_package_sha256"] = env.svc.Releases[version].SHA256
	return env.handPlaybook(t, "playbooks/deploy.yml", vars)
}

// handPlaybook runs a playbook by hand on the three hosts, as USER hand-tester, with vars beside the
// service's, and returns its output (the default callback, as an operator reads it). It must pass, and
// never print the deploy token.
func (env *apiEnv) handPlaybook(t *testing.T, book string, vars map[string]any) string {
	t.Helper()
	inv := filepath.Join(t.TempDir(), "hosts.ini")
	lines := "[all]\n" + strings.Join(env.hosts.Addrs[:3], "\n") +
		fmt.Sprintf("\n[all:vars]\nansible_user=%s\nansible_ssh_private_key_file=%s\n", env.hosts.SSHUser, env.hosts.SSHKey)
	writeFile(t, inv, lines)
	args := []string{"-i", inv, book, "-e", "nodeexec_service=" + env.svc.Name,
		"-e", fmt.Sprintf("nodeexec_health_http_port=%d", env.svc.Port), "-e", fmt.Sprintf("nodeexec_exec_args='-addr :%d'", env.svc.Port)}
	for k, v := range vars {
		args = append(args, "-e", fmt.Sprintf("%s=%v", k, v))
	}
	cmd := osexec.Command("ansible-playbook", args...)
	cmd.Dir = env.repo
	cmd.Env = append(os.Environ(), "ANSIBLE_HOST_KEY_CHECKING=False", "USER=hand-tester")
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	t.Logf("hand run of %s %v:\n%s", book, vars["nodeexec_version"], out)
	if err != nil {
		t.Fatalf("ansible-playbook %s: %v", book, err)
	}
	if env.token != "" && strings.Contains(out, env.token) {
		t.Errorf("the deploy token is in the playbook's output")
	}
	return out
}

func (env *apiEnv) nodeRecord(host string) map[string]any {
	env.t.Helper()
	code, n := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+host, nil)
	if code != http.StatusOK {
		env.t.Fatalf("node %s = %d %v", host, code, n)
	}
	return n
}

func (env *apiEnv) deploymentCount() int {
	env.t.Helper()
	code, list := env.call("GET", "/api/v1/deployments?service="+env.svc.Name, nil)
	if code != http.StatusOK {
		env.t.Fatalf("list deployments = %d %v", code, list)
	}
	return len(list["deployments"].([]any))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
