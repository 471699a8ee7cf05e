//go:build e2e

// Package bench measures nodeexec against the obvious alternative on the same test hosts.
//
// BenchmarkDeploy deploys one release to N = 1, 5, 10 hosts through the AnsibleExecutor's batch path, and
// runs the same playbook with ansible-playbook directly on the same inventory, alternating the two, in one
// run. Every iteration switches version (v1 <-> v2), so each deploy does the real work: download, verify,
// unpack, switch, restart, health check. Run: `make bench` (brings up 10 test hosts).
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/ansible"
	"github.com/nodeexec/nodeexec/internal/testbed"
)

func BenchmarkDeploy(b *testing.B) {
	if os.Getenv("NODEEXEC_E2E") != "1" {
		b.Skip("set NODEEXEC_E2E=1 and bring up test hosts (`make bench`)")
	}
	hosts, err := testbed.LoadHosts()
	if err != nil {
		b.Fatal(err)
	}
	repo, _ := filepath.Abs("..")
	pkgDir := b.TempDir()
	const service, port = "benchsvc", 19090
	rels := map[string]testbed.Release{}
	for _, v := range []string{"v1", "v2"} {
		if rels[v], err = testbed.BuildRelease(pkgDir, service, v, false); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	baseURL, stop, err := testbed.Serve(ctx, hosts.ControllerIP, pkgDir)
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	off := false
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	exec, err := ansible.New(ansible.Config{PlaybookDir: repo, WorkDir: b.TempDir(), Logger: log,
		SSH: ansible.SSH{User: hosts.SSHUser, PrivateKeyFile: hosts.SSHKey, HostKeyChecking: &off}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for i := range hosts.Addrs {
			_, _ = hosts.SSH(context.Background(), i, "systemctl disable --now "+service+".service; rm -rf /opt/"+service+" /etc/systemd/system/"+service+".service")
		}
	}()

	for _, n := range []int{1, 5, 10} {
		if n > len(hosts.Addrs) {
			b.Logf("skipping N=%d: only %d hosts up (`hack/testhosts up %d`)", n, len(hosts.Addrs), n)
			continue
		}
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			nodes := make([]executor.Node, n)
			for i := range nodes {
				nodes[i] = executor.Node{Host: hosts.Addrs[i]}
			}
			req := func(v string) executor.DeployRequest {
				return executor.DeployRequest{DeploymentID: "bench", Service: service, Version: v, Nodes: nodes,
					Package: executor.Package{URL: baseURL + "/" + filepath.Base(rels[v].Path), SHA256: rels[v].SHA256},
					Health:  executor.HealthCheck{HTTPPort: port, HTTPPath: "/health"},
					Unit:    executor.Unit{Args: fmt.Sprintf("-addr :%d", port)}}
			}
			raw := rawRunner(b, repo, hosts, nodes, port)
			// Warm up: the first deploy of each version installs it; both sides then do the same work.
			mustDeploy(b, exec, req("v1"))
			var viaExecutor, viaRaw time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				mustDeploy(b, exec, req("v2"))
				viaExecutor += time.Since(start)
				start = time.Now()
				raw(req("v1"))
				viaRaw += time.Since(start)
			}
			b.ReportMetric(viaExecutor.Seconds()/float64(b.N), "nodeexec-s/deploy")
			b.ReportMetric(viaRaw.Seconds()/float64(b.N), "ansible-playbook-s/deploy")
			b.ReportMetric(float64(viaExecutor)/float64(viaRaw), "ratio")
		})
	}
}

func mustDeploy(b *testing.B, exec *ansible.Executor, req executor.DeployRequest) {
	b.Helper()
	res, err := exec.Deploy(context.Background(), req)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		if r.State != executor.StateSuccess {
			b.Fatalf("%s: %s %s", r.Host, r.State, r.LastError)
		}
	}
}

// rawRunner returns a function that runs playbooks/deploy.yml with ansible-playbook directly, as an
// operator would, on an inventory of the same nodes, with the same forks.
func rawRunner(b *testing.B, repo string, hosts testbed.Hosts, nodes []executor.Node, port int) func(executor.DeployRequest) {
	dir := b.TempDir()
	var names []string
	for _, n := range nodes {
		names = append(names, n.Host)
	}
	inventory := filepath.Join(dir, "hosts")
	if err := os.WriteFile(inventory, []byte("[all]\n"+strings.Join(names, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	return func(req executor.DeployRequest) {
		vars, _ := json.Marshal(map[string]any{
			"nodeexec_service": req.Service, "nodeexec_version": req.Version,
			"nodeexec_package_url": req.Package.URL, "nodeexec_package_sha256": req.Package.SHA256,
			"nodeexec_health_http_port": port, "nodeexec_exec_args": req.Unit.Args,
		})
		varsFile := filepath.Join(dir, "vars.json")
		if err := os.WriteFile(varsFile, vars, 0o600); err != nil {
			b.Fatal(err)
		}
		cmd := osexec.Command("ansible-playbook", "-i", inventory, "-f", fmt.Sprint(len(nodes)),
			"-u", hosts.SSHUser, "--private-key", hosts.SSHKey, "-e", "@"+varsFile, "playbooks/deploy.yml")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "ANSIBLE_HOST_KEY_CHECKING=False")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ansible-playbook: %v\n%s", err, out)
		}
	}
}
