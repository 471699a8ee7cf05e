//go:build e2e

package main

// End to end through the HTTP API: the real `nodeexec serve` binary (embedded database), real
// ansible-playbook over SSH to the real test hosts of `hack/testhosts up 3`. Run with `make e2e`.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/internal/testbed"
)

type apiEnv struct {
	t       *testing.T
	bin     string
	repo    string
	dataDir string
	hosts   testbed.Hosts
	svc     *testbed.Service
	serve   *osexec.Cmd
	base    string
	// serveArgs are more arguments of `nodeexec serve` (a tokens file); token is sent with every call.
	serveArgs []string
	token     string
}

func setupAPI(t *testing.T) *apiEnv {
	t.Helper()
	return setupAPIAs(t, "api")
}

// setupAPIAs is setupAPI with a service named prefix-<random>, for tests that keep their own names.
func setupAPIAs(t *testing.T, prefix string) *apiEnv {
	t.Helper()
	return setupAPIWith(t, prefix, "", nil)
}

// setupAPIWith is setupAPIAs with more arguments of `nodeexec serve`, and the token to call it with.
func setupAPIWith(t *testing.T, prefix, token string, serveArgs []string) *apiEnv {
	t.Helper()
	if os.Getenv("NODEEXEC_E2E") != "1" {
		t.Skip("set NODEEXEC_E2E=1 and run `hack/testhosts up 3` (or `make e2e`)")
	}
	hosts, err := testbed.LoadHosts()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	env := &apiEnv{t: t, repo: repo, dataDir: t.TempDir(), hosts: hosts, token: token, serveArgs: serveArgs}
	env.bin = filepath.Join(t.TempDir(), "nodeexec")
	if out, err := osexec.Command("go", "build", "-o", env.bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build nodeexec: %v\n%s", err, out)
	}
	env.svc = testbed.NewService(t, hosts, prefix, map[string]bool{"v1": false, "v2": false})
	t.Cleanup(func() { env.stop(syscall.SIGTERM) }) // before the service leaves the hosts
	env.start()
	return env
}

// start runs `nodeexec serve` on a free loopback port and waits for its "serving" log line, which
// names the address: no polling.
func (env *apiEnv) start() {
	t := env.t
	t.Helper()
	cmd := osexec.Command(env.bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", env.dataDir,
		"--playbook-dir", env.repo, "--ssh-user", env.hosts.SSHUser, "--ssh-key", env.hosts.SSHKey, "--insecure-host-keys"}, env.serveArgs...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	env.serve = cmd
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "nodeexec serving" {
				addr <- line["listen"].(string)
			}
			t.Logf("serve: %s", sc.Text())
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatal("nodeexec serve exited before serving")
		}
		env.base = "http://" + a
	case <-time.After(90 * time.Second):
		t.Fatal("nodeexec serve did not start serving within 90s")
	}
}

func (env *apiEnv) stop(sig syscall.Signal) {
	if env.serve == nil || env.serve.Process == nil {
		return
	}
	_ = env.serve.Process.Signal(sig)
	_ = env.serve.Wait()
	env.serve = nil
}

func (env *apiEnv) call(method, path string, body any) (int, map[string]any) {
	env.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, env.base+path, rd)
	if env.token != "" {
		req.Header.Set("Authorization", "Bearer "+env.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		env.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (env *apiEnv) deployBody(version string) map[string]any {
	return map[string]any{
		"service": env.svc.Name, "version": version, "nodes": env.hosts.Addrs[:3],
		"package_url": env.svc.URL(version), "sha256": env.svc.Releases[version].SHA256,
		"health": map[string]any{"http_port": env.svc.Port, "http_path": "/health", "retries": 5, "delay_seconds": 1},
		"unit":   map[string]any{"args": fmt.Sprintf("-addr :%d", env.svc.Port)},
	}
}

// follow reads a deployment's event stream to its end; onEvent sees each event's data as it comes.
func (env *apiEnv) follow(id string, onEvent func(map[string]any)) (events []map[string]any, end map[string]any) {
	env.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", env.base+"/api/v1/deployments/"+id+"/events", nil)
	if env.token != "" {
		req.Header.Set("Authorization", "Bearer "+env.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		env.t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	kind := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = line[7:]
		case strings.HasPrefix(line, "data: "):
			var data map[string]any
			if err := json.Unmarshal([]byte(line[6:]), &data); err != nil {
				env.t.Fatalf("event data: %v: %q", err, line)
			}
			if kind == "end" {
				return events, data
			}
			events = append(events, data)
			if onEvent != nil {
				onEvent(data)
			}
		}
	}
	return events, nil // the stream broke (the server was killed)
}

func (env *apiEnv) serving(host string) string {
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(fmt.Sprintf("http://%s:%d/health", host, env.svc.Port))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct{ Version string }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return ""
	}
	return body.Version
}

// post asks for a deploy of version to the three hosts and returns the deployment's id.
func (env *apiEnv) post(version string) string {
	env.t.Helper()
	code, d := env.call("POST", "/api/v1/deployments", env.deployBody(version))
	if code != http.StatusAccepted {
		env.t.Fatalf("deploy %s = %d %v", version, code, d)
	}
	return d["id"].(string)
}

// deploy deploys version and follows it to its end.
func (env *apiEnv) deploy(version string) map[string]any {
	env.t.Helper()
	_, end := env.follow(env.post(version), nil)
	return end
}

// The Plan Layer's flow: deploy → events → status → rollback → status, on real hosts.
func TestAPIDeployEventsStatusRollback(t *testing.T) {
	env := setupAPI(t)
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	id := env.post("v2")
	events, end := env.follow(id, nil)
	if end["state"] != "success" {
		t.Fatalf("deploy v2 ended %v", end)
	}
	steps, nodeEnds, lastStep, firstEnd := 0, 0, -1, -1
	for i, ev := range events {
		switch {
		case ev["type"] == "step":
			steps, lastStep = steps+1, i
		case ev["type"] == "node" && ev["state"] == "success":
			if nodeEnds++; firstEnd < 0 {
				firstEnd = i
			}
		}
	}
	if steps < 3*5 || nodeEnds != 3 {
		t.Errorf("events: %d steps, %d node ends; want every node's task results and 3 node ends", steps, nodeEnds)
	}
	// Live: every task result streamed while the run went on, before any node's end was known.
	if lastStep > firstEnd {
		t.Errorf("a step event (%d) came after a node's end (%d): steps were not streamed live", lastStep, firstEnd)
	}
	for _, h := range env.hosts.Addrs[:3] {
		code, n := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+h, nil)
		if code != 200 || n["current_version"] != "v2" || n["prev_version"] != "v1" || n["state"] != "success" {
			t.Errorf("node %s = %d %v", h, code, n)
		}
		if v := env.serving(h); v != "v2" {
			t.Errorf("%s serves %q", h, v)
		}
	}
	if code, logs := env.call("GET", "/internal/v1/deploy/logs/"+id+"?lines=50&source=events", nil); code != 200 || len(logs["logs"].([]any)) == 0 || len(logs["logs"].([]any)) > 50 {
		t.Errorf("logs = %d %v", code, logs)
	}
	if code, h := env.call("GET", "/internal/v1/deploy/health/"+id, nil); code != 200 || h["healthy"] != true {
		t.Errorf("health = %d %v", code, h)
	} else {
		// Each node's unit, read now, with what it uses where systemd accounts it (see AccountsTasks).
		services := 0
		for _, raw := range h["details"].([]any) {
			ch := raw.(map[string]any)
			if ch["type"] != "service" {
				continue
			}
			i := slices.Index(env.hosts.Addrs, ch["name"].(string))
			accounts, err := env.hosts.AccountsTasks(context.Background(), i, env.svc.Name+".service")
			if err != nil {
				t.Fatal(err)
			}
			services++
			res, _ := ch["resources"].(map[string]any)
			if ch["status"] != "pass" || !strings.Contains(ch["message"].(string), "runs v2") || accounts != (res["tasks"] != nil) {
				t.Errorf("service check %v; systemd accounts the unit: %v", ch, accounts)
			}
		}
		if services != 3 {
			t.Errorf("%d service checks, want one per node: %v", services, h["details"])
		}
	}

	code, rb := env.call("POST", "/api/v1/deployments/"+id+"/rollback", map[string]any{})
	if code != http.StatusAccepted {
		t.Fatalf("rollback = %d %v", code, rb)
	}
	if _, end := env.follow(rb["id"].(string), nil); end["state"] != "rolled_back" {
		t.Fatalf("rollback ended %v", end)
	}
	for _, h := range env.hosts.Addrs[:3] {
		_, n := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+h, nil)
		if n["current_version"] != "v1" || n["state"] != "rolled_back" {
			t.Errorf("node %s after rollback = %v", h, n)
		}
		if v := env.serving(h); v != "v1" {
			t.Errorf("%s serves %q after rollback", h, v)
		}
	}
}

// kill -9 of the server in the middle of a deploy: at the next start the deployment is reconciled from
// the nodes (its locks released, each node judged by what it really serves), events recorded before
// the kill are still there, and the next deploy to the same nodes runs normally.
func TestAPIKill9MidDeployIsReconciledAtRestart(t *testing.T) {
	env := setupAPI(t)
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	id := env.post("v2")
	env.waitLocked(id)
	// Everything the run started: the server's process tree (ansible-playbook, its forked workers,
	// their ssh clients, the run's guard) and the run's SSH masters, which ControlPersist moved out of it.
	run := append(descendants(env.serve.Process.Pid), sshMasters()...)
	if len(run) < 3 {
		t.Fatalf("the run's processes before the kill: %v; want ansible-playbook, a worker and ssh at least", run)
	}
	env.stop(syscall.SIGKILL)
	if left := stillRunningAfter(run, 2*time.Second); len(left) > 0 {
		t.Errorf("2s after kill -9 of the server, processes of its run still run: %v", left)
	}

	env.start()
	code, got := env.call("GET", "/api/v1/deployments/"+id, nil)
	if code != 200 {
		t.Fatalf("deployment after restart = %d %v", code, got)
	}
	state := got["state"]
	if state != "success" && state != "failed" {
		t.Fatalf("deployment after restart = %v; want a final state", got)
	}
	nodesServeTheirRecords(t, env, got)
	events, end := env.follow(id, nil)
	if end == nil || len(events) < 4 || events[0]["seq"] != 1.0 {
		t.Errorf("events after restart: %d, end %v", len(events), end)
	}
	for i, ev := range events {
		if ev["seq"] != float64(i+1) {
			t.Errorf("event %d has seq %v: a gap or a duplicate", i, ev["seq"])
		}
	}
	// The nodes are free and consistent: the next deploy runs and every node ends on v2.
	if end := env.deploy("v2"); end["state"] != "success" {
		t.Fatalf("deploy after the restart = %v", end)
	}
	for _, h := range env.hosts.Addrs[:3] {
		if v := env.serving(h); v != "v2" {
			t.Errorf("%s serves %q", h, v)
		}
	}
}

// waitLocked returns once deployment id's run is on the nodes: the first node has taken its lock.
func (env *apiEnv) waitLocked(id string) {
	env.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _ := env.hosts.SSH(context.Background(), 0, "cat /opt/"+env.svc.Name+"/.nodeexec/lock.holder.json 2>/dev/null; pgrep -f nodeexec-lock >/dev/null && echo HELD")
		if strings.Contains(out, id) && strings.Contains(out, "HELD") {
			return
		}
		if time.Now().After(deadline) {
			env.t.Fatalf("the deploy never took the lock on host 1: %s", out)
		}
	}
}

// kill -9 of the server and of its run's guard at once (as when a service manager kills the whole
// group): what the run left running is ended by the next start, before it serves.
func TestAPIKill9OfServerAndGuardLeftoversEndAtNextStart(t *testing.T) {
	env := setupAPI(t)
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	id := env.post("v2")
	env.waitLocked(id)
	var run []string
	guard := 0
	for _, p := range descendants(env.serve.Process.Pid) {
		pidText, _, _ := strings.Cut(p, " ")
		cmdline, _ := os.ReadFile("/proc/" + pidText + "/cmdline")
		if bytes.Contains(cmdline, []byte("nodeexec-run-guard")) {
			guard, _ = strconv.Atoi(pidText)
			continue
		}
		run = append(run, p)
	}
	if guard == 0 {
		t.Fatalf("no guard among the server's processes: %v", run)
	}
	_ = syscall.Kill(guard, syscall.SIGKILL)
	env.stop(syscall.SIGKILL)
	run = append(run, sshMasters()...)
	// ansible-playbook dies with the server (Pdeathsig); its workers and the SSH masters do not.
	left := stillRunningAfter(run, 500*time.Millisecond)
	if len(left) == 0 {
		t.Fatalf("nothing of the run outlived the server and its guard (%v): this test would prove nothing", run)
	}
	t.Logf("left running by the run: %v", left)

	env.start()
	if still := stillRunningAfter(left, 2*time.Second); len(still) > 0 {
		t.Errorf("2s after the next start, processes of the killed run still run: %v", still)
	}
	// The deployment is reconciled, and the next deploy runs.
	if code, got := env.call("GET", "/api/v1/deployments/"+id, nil); code != 200 || (got["state"] != "success" && got["state"] != "failed") {
		t.Fatalf("deployment after restart = %d %v", code, got)
	}
	if end := env.deploy("v2"); end["state"] != "success" {
		t.Fatalf("deploy after the restart = %v", end)
	}
	for _, h := range env.hosts.Addrs[:3] {
		if v := env.serving(h); v != "v2" {
			t.Errorf("%s serves %q", h, v)
		}
	}
}

// A real transient fault: one host is off the network when the deploy starts, and comes back once the
// server has announced a retry. Only that host is tried again, and the deploy ends success on all three.
func TestAPIUnreachableHostThatComesBackIsRetried(t *testing.T) {
	env := setupAPI(t) // serve with the default retry policy: 3 retries, after 1, 2 and 4 s
	third := env.hosts.Addrs[2]
	testhostsCmd(t, env.repo, "stop-host", "3")
	back := false
	t.Cleanup(func() {
		if !back {
			testhostsCmd(t, env.repo, "start-host", "3")
		}
	})
	var retries []string
	events, end := env.follow(env.post("v1"), func(ev map[string]any) {
		msg := fmt.Sprint(ev["message"])
		if ev["node"] == third && strings.Contains(msg, "; retry ") {
			retries = append(retries, msg)
			if !back {
				testhostsCmd(t, env.repo, "start-host", "3")
				back = true
			}
		}
	})
	if end == nil || end["state"] != "success" {
		t.Fatalf("deploy with a host that came back = %v\nevents: %v", end, events)
	}
	if len(retries) != 1 || !strings.Contains(retries[0], "host unreachable") || !strings.Contains(retries[0], "retry 1 of 3 in 1s") {
		t.Errorf("retries announced for %s: %q", third, retries)
	}
	for _, ev := range events {
		if ev["node"] != third && strings.Contains(fmt.Sprint(ev["message"]), "; retry ") {
			t.Errorf("a reachable node was retried: %v", ev)
		}
	}
	for _, h := range env.hosts.Addrs[:3] {
		if got := env.serving(h); got != "v1" {
			t.Errorf("%s serves %q, want v1", h, got)
		}
	}
}

// testhostsCmd runs hack/testhosts with args.
func testhostsCmd(t *testing.T, repo string, args ...string) {
	t.Helper()
	if out, err := osexec.Command(filepath.Join(repo, "hack", "testhosts"), args...).CombinedOutput(); err != nil {
		t.Fatalf("hack/testhosts %v: %v\n%s", args, err, out)
	}
}

// descendants lists every process below pid in the process tree, as "pid comm".
func descendants(pid int) []string {
	children := map[int][]int{}
	comm := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		head, rest, _ := strings.Cut(string(stat), ") ")
		fields := strings.Fields(rest)
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		children[ppid] = append(children[ppid], p)
		comm[p] = head[strings.Index(head, "(")+1:]
	}
	var out []string
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, fmt.Sprintf("%d %s", c, comm[c]))
			walk(c)
		}
	}
	walk(pid)
	return out
}

// sshMasters lists the SSH master connections of nodeexec's runs ("ssh: /tmp/nx-cp-…/… [mux]").
func sshMasters() []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		cmdline, err := os.ReadFile("/proc/" + ent.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte("/nx-cp-")) && bytes.Contains(cmdline, []byte("[mux]")) {
			out = append(out, ent.Name()+" ssh master")
		}
	}
	return out
}

// stillRunningAfter waits up to bound for the processes ("pid comm") to end and returns those that did
// not (a zombie has ended).
func stillRunningAfter(procs []string, bound time.Duration) []string {
	deadline := time.Now().Add(bound)
	for {
		var left []string
		for _, p := range procs {
			pid, _, _ := strings.Cut(p, " ")
			stat, err := os.ReadFile("/proc/" + pid + "/stat")
			if err == nil && !strings.Contains(string(stat), ") Z ") {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond) // polling /proc: there is no event for another process's end
	}
}

// nodesServeTheirRecords checks that each node of deployment got ended true to what it serves: success
// serving the target, failed naming what it serves.
func nodesServeTheirRecords(t *testing.T, env *apiEnv, got map[string]any) {
	t.Helper()
	for _, raw := range got["nodes"].([]any) {
		n := raw.(map[string]any)
		host := n["host"].(string)
		serves := env.serving(host)
		switch n["state"] {
		case "success":
			if serves != n["target_version"] {
				t.Errorf("%s recorded success at %v but serves %q", host, n["target_version"], serves)
			}
		case "failed":
			if serves == "" || !strings.Contains(n["last_error"].(string), serves) {
				t.Errorf("%s recorded failed with %q, serves %q", host, n["last_error"], serves)
			}
		default:
			t.Errorf("%s left %v", host, n["state"])
		}
	}
}
