//go:build e2e

// Package bench measures nodeexec against the obvious alternatives on the same test hosts.
//
// BenchmarkDeploy deploys one release to N = 1, 3, 10 hosts through the AnsibleExecutor's batch path, and
// runs the same playbook with ansible-playbook directly on the same inventory, alternating the two, in one
// run: what nodeexec adds to its own playbook. BenchmarkAPIvsReference deploys through nodeexec's HTTP
// API against bench/reference/deploy.yml, the playbook an operator would write without nodeexec. Every
// iteration switches version (v1 <-> v2), so each deploy does the real work: download, verify, unpack,
// switch, restart, health check. Run: `make bench` (brings up 10 test hosts).
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
	"github.com/nodeexec/nodeexec/internal/testbed/testapi"
)

// hostCounts are the numbers of hosts the deploy benchmarks deploy to.
var hostCounts = []int{1, 3, 10}

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

	for _, n := range hostCounts {
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
				return executor.DeployRequest{
					DeploymentID:   "bench",
					Service:        service,
					Version:        v,
					PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodes, Package: executor.Package{URL: baseURL + "/" + filepath.Base(rels[v].Path), SHA256: rels[v].SHA256}, Health: executor.HealthCheck{HTTPPort: port, HTTPPath: "/health"}, Unit: executor.Unit{Args: fmt.Sprintf("-addr :%d", port)}},
				}
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
		// Fresh SSH connections for every run, as nodeexec's own runs have: what is compared is the Go
		// side, not a reused connection (the masters are closed when the run ends, as nodeexec closes its own).
		masters, err := os.MkdirTemp("", "nx-bench-cp-")
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = ansible.CloseMasters(masters) }()
		cmd := osexec.Command("ansible-playbook", "-i", inventory, "-f", fmt.Sprint(len(nodes)),
			"-u", hosts.SSHUser, "--private-key", hosts.SSHKey, "-e", "@"+varsFile, "playbooks/deploy.yml")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "ANSIBLE_HOST_KEY_CHECKING=False", "ANSIBLE_SSH_CONTROL_PATH_DIR="+masters)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ansible-playbook: %v\n%s", err, out)
		}
	}
}

// crashVersion is deployed with unit arguments that make the demo service exit at once (-crash): under
// the unit's Restart=on-failure, a release that crash-loops.
const crashVersion = "v3-crash"

// BenchmarkAPIvsReference deploys through nodeexec's HTTP API as the Plan Layer does (the API served in
// this process on the embedded database with the Ansible executor, as `nodeexec serve` runs it; timed
// from the POST to the "end" of the deployment's event stream) and with bench/reference/deploy.yml, a
// playbook as an operator writes it without nodeexec, run by ansible-playbook on the same hosts with the
// same ansible.cfg. The two sides have a service each (the reference's is <service>-ref, on the next
// port), and take turns; which goes first alternates by iteration. For N = 1, 3, 10 hosts:
//
//   - switch: both sides switch version (v1 <-> v2) every iteration; ratio nodeexec / reference.
//   - redeploy: the API deploys the version the nodes already run, against the reference's switching
//     deploy; ratio redeploy / reference.
//   - crashloop: the API deploys a release that exits at once (it must end failed, every node rolled
//     back to the release it ran), against a good switching deploy through the API; ratio crashloop /
//     good.
//
// Every deploy's outcome is checked, or the benchmark fails. Run: `make bench` (brings up 10 test hosts).
func BenchmarkAPIvsReference(b *testing.B) {
	if os.Getenv("NODEEXEC_E2E") != "1" {
		b.Skip("set NODEEXEC_E2E=1 and bring up test hosts (`make bench`)")
	}
	hosts, err := testbed.LoadHosts()
	if err != nil {
		b.Fatal(err)
	}
	repo, _ := filepath.Abs("..")
	svc := testbed.NewService(b, hosts, "benchapi", map[string]bool{"v1": false, "v2": false, crashVersion: false})
	api := testapi.Start(b, hosts, repo)
	b.Cleanup(func() { removeReference(hosts, svc.Name) })
	for _, n := range hostCounts {
		if n > len(hosts.Addrs) {
			b.Logf("skipping N=%d: only %d hosts up (`hack/testhosts up %d`)", n, len(hosts.Addrs), n)
			continue
		}
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			rig := &deployRig{api: api, svc: svc, nodes: hosts.Addrs[:n], ref: newReference(b, repo, hosts, hosts.Addrs[:n], svc.Port+1)}
			rig.warmUp(b)
			b.Run("switch", rig.benchSwitch)
			b.Run("redeploy", rig.benchRedeploy)
			b.Run("crashloop", rig.benchCrashLoop)
		})
	}
}

// deployRig is both sides on the same N hosts, and the version each side runs there now.
type deployRig struct {
	api           *testapi.Server
	svc           *testbed.Service
	nodes         []string
	ref           *reference
	apiRuns       string
	referenceRuns string
}

// warmUp puts both versions on both sides, and the crash-looping release once through the API, so that
// every timed deploy finds what a deploy in production finds: the earlier packages and releases in place.
// Not timed.
func (r *deployRig) warmUp(b *testing.B) {
	r.deployViaAPI(b, "v1")
	r.crashLoopViaAPI(b)
	r.deployViaAPI(b, "v2")
	r.deployReference(b, "v1")
	r.deployReference(b, "v2")
}

func (r *deployRig) benchSwitch(b *testing.B) {
	var viaAPI, viaReference time.Duration
	for i := 0; i < b.N; i++ {
		inTurn(i,
			func() { viaAPI += r.deployViaAPI(b, otherVersion(r.apiRuns)) },
			func() { viaReference += r.deployReference(b, otherVersion(r.referenceRuns)) })
	}
	reportPair(b, viaAPI, "nodeexec-s/deploy", viaReference, "reference-s/deploy")
}

func (r *deployRig) benchRedeploy(b *testing.B) {
	var redeploys, viaReference time.Duration
	for i := 0; i < b.N; i++ {
		inTurn(i,
			func() { redeploys += r.deployViaAPI(b, r.apiRuns) },
			func() { viaReference += r.deployReference(b, otherVersion(r.referenceRuns)) })
	}
	reportPair(b, redeploys, "redeploy-s", viaReference, "reference-s/deploy")
}

func (r *deployRig) benchCrashLoop(b *testing.B) {
	var crashLoops, good time.Duration
	for i := 0; i < b.N; i++ {
		inTurn(i,
			func() { crashLoops += r.crashLoopViaAPI(b) },
			func() { good += r.deployViaAPI(b, otherVersion(r.apiRuns)) })
	}
	reportPair(b, crashLoops, "crashloop-s", good, "good-s/deploy")
}

// inTurn runs first then second on even iterations, second then first on odd ones, so that neither side
// always inherits the tail of the other's work.
func inTurn(i int, first, second func()) {
	if i%2 == 1 {
		first, second = second, first
	}
	first()
	second()
}

// reportPair reports the mean time of each side per iteration and the ratio of the first to the second.
func reportPair(b *testing.B, first time.Duration, firstUnit string, second time.Duration, secondUnit string) {
	b.ReportMetric(first.Seconds()/float64(b.N), firstUnit)
	b.ReportMetric(second.Seconds()/float64(b.N), secondUnit)
	b.ReportMetric(float64(first)/float64(second), "ratio")
}

func otherVersion(v string) string {
	if v == "v1" {
		return "v2"
	}
	return "v1"
}

// deployViaAPI deploys version through the API; every node must end success on it.
func (r *deployRig) deployViaAPI(b *testing.B, version string) time.Duration {
	d, took := r.viaAPI(b, r.request(version, ""))
	r.expect(b, d, "success", "success", version)
	r.apiRuns = version
	return took
}

// crashLoopViaAPI deploys the crash-looping release through the API: the deployment must end failed,
// every node rolled back to the version it ran.
func (r *deployRig) crashLoopViaAPI(b *testing.B) time.Duration {
	d, took := r.viaAPI(b, r.request(crashVersion, " -crash"))
	r.expect(b, d, "failed", "rolled_back", r.apiRuns)
	return took
}

// request is the body of a deploy of version with the demo service's arguments plus extraArgs.
func (r *deployRig) request(version, extraArgs string) map[string]any {
	return map[string]any{
		"service": r.svc.Name, "version": version, "nodes": r.nodes,
		"package_url": r.svc.URL(version), "sha256": r.svc.Releases[version].SHA256,
		"health": map[string]any{"http_port": r.svc.Port, "http_path": "/health", "retries": 10, "delay_seconds": 1},
		"unit":   map[string]any{"args": fmt.Sprintf("-addr :%d", r.svc.Port) + extraArgs},
	}
}

// viaAPI posts a deployment and returns it as it ended, with the time from the request to its end.
func (r *deployRig) viaAPI(b *testing.B, body map[string]any) (testapi.Deployment, time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	d, err := r.api.Deploy(ctx, body)
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	return d, took
}

// expect fails the benchmark unless d ended in state with every node in nodeState on version.
func (r *deployRig) expect(b *testing.B, d testapi.Deployment, state, nodeState, version string) {
	b.Helper()
	ok := d.State == state && len(d.Nodes) == len(r.nodes)
	for _, n := range d.Nodes {
		ok = ok && n.State == nodeState && n.CurrentVersion == version
	}
	if !ok {
		b.Fatalf("deployment %s ended %s (%s), want %s with every node %s on %s: %+v", d.ID, d.State, d.Error, state, nodeState, version, d.Nodes)
	}
}

func (r *deployRig) deployReference(b *testing.B, version string) time.Duration {
	took := r.ref.deploy(b, r.svc, version)
	r.referenceRuns = version
	return took
}

// reference runs bench/reference/deploy.yml on some hosts as an operator would: ansible-playbook with
// the repository's ansible.cfg, an inventory of the hosts, a fork per host.
type reference struct {
	repo, inventory string
	hosts           testbed.Hosts
	forks, port     int
}

func newReference(b *testing.B, repo string, hosts testbed.Hosts, nodes []string, port int) *reference {
	inventory := filepath.Join(b.TempDir(), "hosts")
	// Throwaway test hosts: no host key checks, as nodeexec's inventory says for them.
	ini := "[all]\n" + strings.Join(nodes, "\n") +
		"\n\n[all:vars]\nansible_ssh_common_args=-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null\n"
	if err := os.WriteFile(inventory, []byte(ini), 0o644); err != nil {
		b.Fatal(err)
	}
	return &reference{repo: repo, inventory: inventory, hosts: hosts, forks: len(nodes), port: port}
}

// deploy runs the reference playbook for version of svc and returns how long ansible-playbook took.
func (r *reference) deploy(b *testing.B, svc *testbed.Service, version string) time.Duration {
	b.Helper()
	vars, _ := json.Marshal(map[string]any{"service": svc.Name, "version": version, "package_url": svc.URL(version),
		"package_sha256": svc.Releases[version].SHA256, "http_port": r.port})
	cmd := osexec.Command("ansible-playbook", "-i", r.inventory, "-f", fmt.Sprint(r.forks), "-u", r.hosts.SSHUser,
		"--private-key", r.hosts.SSHKey, "-e", string(vars), "bench/reference/deploy.yml")
	cmd.Dir = r.repo
	cmd.Env = append(os.Environ(), "ANSIBLE_CONFIG="+filepath.Join(r.repo, "ansible.cfg"), "ANSIBLE_HOST_KEY_CHECKING=False")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("reference deploy of %s: %v\n%s", version, err, out)
	}
	return took
}

// removeReference takes the reference's service off every host.
func removeReference(hosts testbed.Hosts, service string) {
	for i := range hosts.Addrs {
		_, _ = hosts.SSH(context.Background(), i, fmt.Sprintf(
			"systemctl disable --now %[1]s-ref.service; rm -rf /opt/%[1]s-ref /etc/systemd/system/%[1]s-ref.service; systemctl daemon-reload", service))
	}
}
