//go:build e2e

package main

// The faults of docs/reliability.md that happen on a node, against the real server and real hosts. Each
// test ends with every node on a known release that serves: what nodeexec records of a node is what it
// serves.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeSSH runs cmd on test host i (0-based) as root and fails the test when it fails.
func (env *apiEnv) nodeSSH(i int, cmd string) string {
	env.t.Helper()
	out, err := env.hosts.SSH(context.Background(), i, cmd)
	if err != nil {
		env.t.Fatalf("host %d: %s: %v\n%s", i+1, cmd, err, out)
	}
	return out
}

// recordedIsServed checks that each node's record says what it serves, and that its lock is free.
func (env *apiEnv) recordedIsServed() {
	env.t.Helper()
	for i, h := range env.hosts.Addrs[:3] {
		_, n := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+h, nil)
		serves := env.serving(h)
		if serves == "" || n["current_version"] != serves {
			env.t.Errorf("%s: recorded %v (%v), serves %q", h, n["current_version"], n["state"], serves)
		}
		if out, _ := env.hosts.SSH(context.Background(), i, "pgrep -x nodeexec-lock; cat /opt/"+env.svc.Name+"/.nodeexec/lock.holder.json 2>/dev/null"); strings.TrimSpace(out) != "" {
			env.t.Errorf("%s: the node lock is still held: %s", h, out)
		}
	}
}

// allServe checks that each of the three nodes serves version.
func (env *apiEnv) allServe(version string) {
	env.t.Helper()
	for _, h := range env.hosts.Addrs[:3] {
		if v := env.serving(h); v != version {
			env.t.Errorf("%s serves %q, want %s", h, v, version)
		}
	}
}

// deploysEverywhere deploys version to the three nodes: it must end success, each node serving it and
// recorded so.
func (env *apiEnv) deploysEverywhere(version, when string) {
	env.t.Helper()
	if end := env.deploy(version); end["state"] != "success" {
		env.t.Fatalf("deploy %s %s = %v", version, when, end)
	}
	env.allServe(version)
	env.recordedIsServed()
}

// ssh drops between two tasks of a deploy (the host's link goes down once it has prepared the release):
// the node's sshd still holds the dead connection, and the lock with it. The server reports the node
// unreachable, retries it as configured, and the retry, once the link is back, takes over the lock of
// the earlier attempt (which runs nothing) and deploys.
func TestFaultSSHDropsBetweenTasks(t *testing.T) {
	env := setupAPI(t) // the default retry policy: 3 retries, after 1, 2 and 4 s
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	third := env.hosts.Addrs[2]
	// The host's bridge port, set directly rather than through `hack/testhosts stop-host`: the script
	// (its lock, its checks) takes longer than the gap between two tasks this test must fall into.
	link := func(state string) {
		if out, err := exec.Command("ip", "-n", "nx-net", "link", "set", "vh3", state).CombinedOutput(); err != nil {
			t.Fatalf("link %s: %v %s", state, err, out)
		}
	}
	var dropped, back sync.Once
	t.Cleanup(func() { back.Do(func() { link("up") }) })
	var retries []string
	id := env.post("v2")
	events, end := env.follow(id, func(ev map[string]any) {
		step, _ := ev["step"].(map[string]any)
		if ev["node"] != third {
			return
		}
		if step != nil && step["name"] == "Render the unit of the release" {
			dropped.Do(func() { link("down") }) // prepared, the lock held for the next task
		}
		if step != nil && step["name"] == "Take the node lock" && strings.Contains(fmt.Sprint(step["message"]), "taken over") {
			t.Logf("the retry took over the lock: %v", step["message"])
		}
		if msg := fmt.Sprint(ev["message"]); strings.Contains(msg, "; retry ") {
			retries = append(retries, msg)
			back.Do(func() { link("up") })
		}
	})
	if len(retries) == 0 || !strings.Contains(retries[0], "host unreachable") {
		t.Fatalf("no retry of %s announced for an unreachable host: %q\nend %v", third, retries, end)
	}
	if end == nil || end["state"] != "success" {
		t.Fatalf("deploy through a dropped connection = %v\nretries %q\nevents %v", end, retries, events)
	}
	env.allServe("v2")
	env.recordedIsServed()
}

// The node loses power in the middle of a deploy and boots again: nothing of the run survives on it
// (the lock went with its holder process). The server sees the node unreachable and retries it; the
// deployment ends with the node on a known release, and a deploy after it runs normally.
func TestFaultNodeRebootsMidDeploy(t *testing.T) {
	env := setupAPI(t)
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	id := env.post("v2")
	var rebooted sync.Once
	_, end := env.follow(id, func(ev map[string]any) {
		step, _ := ev["step"].(map[string]any)
		if ev["node"] == env.hosts.Addrs[2] && step != nil && step["name"] == "Render the unit of the release" {
			rebooted.Do(func() { testhostsCmd(t, env.repo, "reboot-host", "3") })
		}
	})
	if end == nil || (end["state"] != "success" && end["state"] != "failed") {
		t.Fatalf("deploy across a reboot = %v", end)
	}
	t.Logf("the deploy across the reboot ended %v", end["state"])
	env.recordedIsServed()
	env.deploysEverywhere("v2", "after the reboot")
}

// The node's disk fills up while the release unpacks: the node stays on the release it ran, with
// nothing half-written left of the new one, and the error names the step and the cause. Once there is
// room again, the same deploy succeeds.
func TestFaultDiskFullDuringUnpack(t *testing.T) {
	env := setupAPI(t)
	root := "/opt/" + env.svc.Name
	// The first node's service directory is a small filesystem of its own: room for v1, not for v2 too.
	env.nodeSSH(0, "mkdir -p "+root+" && mount -t tmpfs -o size=64m tmpfs "+root)
	t.Cleanup(func() {
		_, _ = env.hosts.SSH(context.Background(), 0, "systemctl stop "+env.svc.Name+"; umount -l "+root)
	})
	if end := env.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 = %v", end)
	}
	used, err := strconv.ParseInt(strings.TrimSpace(env.nodeSSH(0, "df -B1 --output=used "+root+" | tail -1")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	release, err := strconv.ParseInt(strings.Fields(env.nodeSSH(0, "du -sb "+root+"/releases/v1"))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	// Room for v2's package and half of its release.
	info, err := os.Stat(env.svc.Releases["v2"].Path)
	if err != nil {
		t.Fatal(err)
	}
	pkg := info.Size()
	env.nodeSSH(0, fmt.Sprintf("mount -o remount,size=%d %s", used+pkg+release/2, root))

	id := env.post("v2")
	_, end := env.follow(id, nil)
	if end == nil || end["state"] != "failed" {
		t.Fatalf("deploy v2 onto a full disk = %v", end)
	}
	_, n := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+env.hosts.Addrs[0], nil)
	lastError := fmt.Sprint(n["last_error"])
	if !strings.Contains(lastError, "Unpack the release") || !strings.Contains(lastError, "No space left on device") {
		t.Errorf("the full node's error = %q; want the step and the cause", lastError)
	}
	if v := env.serving(env.hosts.Addrs[0]); v != "v1" {
		t.Errorf("the full node serves %q, want v1", v)
	}
	if got := strings.Fields(env.nodeSSH(0, "ls -A "+root+"/releases")); len(got) != 1 || got[0] != "v1" {
		t.Errorf("releases on the full node: %v; want v1 alone (nothing half-written)", got)
	}
	env.recordedIsServed()

	env.nodeSSH(0, "mount -o remount,size=256m "+root)
	env.deploysEverywhere("v2", "with room again")
}

// skewPython is a sitecustomize for the node's python3: it sets the wall clock Python sees (time.time,
// datetime.now) skew seconds apart, as a wrong clock would. The monotonic clock stays, as it does when a
// wall clock is wrong. (libfaketime does the same for every program, but its clock_nanosleep fails with
// the monotonic clock left alone, so Python's time.sleep raises under it.)
const skewPython = `import datetime as _dt, os as _os, time as _time
_skew = float(_os.environ.get("NODEEXEC_TEST_SKEW") or 0)
_time_s, _time_ns = _time.time, _time.time_ns
_time.time = lambda: _time_s() + _skew
_time.time_ns = lambda: _time_ns() + int(_skew * 1e9)
class _Skewed(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return super().now(tz) + _dt.timedelta(seconds=_skew)
    @classmethod
    def utcnow(cls):
        return super().utcnow() + _dt.timedelta(seconds=_skew)
_dt.datetime = _Skewed
`

// The nodes' clocks are off: three hours ahead on the first node, three behind on the second, as every
// Python program of nodeexec's SSH sessions there sees it (what nodeexec runs on a node is its module,
// in Python). Nothing nodeexec decides depends on a node's clock: the deploys succeed, every time
// nodeexec records is its own, and a unit's uptime comes out right.
func TestFaultClockSkew(t *testing.T) {
	env := setupAPI(t)
	dir := "/usr/local/lib/nodeexec-test-skew"
	for i, offset := range []int{3 * 3600, -3 * 3600} {
		env.nodeSSH(i, fmt.Sprintf("mkdir -p %s && cat >%s/sitecustomize.py <<'EOF'\n%sEOF\n"+
			"printf 'SetEnv PYTHONPATH=%s NODEEXEC_TEST_SKEW=%d\\n' >/etc/ssh/sshd_config.d/zz-skew.conf && systemctl reload ssh",
			dir, dir, skewPython, dir, offset))
		t.Cleanup(func() {
			_, _ = env.hosts.SSH(context.Background(), i, "rm -rf /etc/ssh/sshd_config.d/zz-skew.conf "+dir+" && systemctl reload ssh")
		})
	}
	for i, want := range []time.Duration{3 * time.Hour, -3 * time.Hour, 0} {
		secs, err := strconv.ParseInt(strings.TrimSpace(env.nodeSSH(i, `python3 -c 'import datetime; print(int(datetime.datetime.now().timestamp()))'`)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if off := time.Unix(secs, 0).Sub(time.Now()); (off - want).Abs() > time.Minute {
			t.Fatalf("host %d's clock is off by %s, want %s", i+1, off.Round(time.Second), want)
		}
	}

	start := time.Now().Add(-time.Second)
	for _, v := range []string{"v1", "v2"} {
		id := env.post(v)
		events, end := env.follow(id, nil)
		if end == nil || end["state"] != "success" {
			t.Fatalf("deploy %s with skewed node clocks = %v", v, end)
		}
		_, d := env.call("GET", "/api/v1/deployments/"+id, nil)
		for _, field := range []string{"created_at", "started_at", "finished_at"} {
			at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(d[field]))
			if err != nil || at.Before(start) || at.After(time.Now().Add(time.Second)) {
				t.Errorf("deployment %s %s = %v: not nodeexec's own time (%v)", v, field, d[field], err)
			}
		}
		for _, ev := range events {
			at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["time"]))
			if err != nil || at.Before(start) || at.After(time.Now().Add(time.Second)) {
				t.Errorf("event %v of node %v at %v: not nodeexec's own time", ev["seq"], ev["node"], ev["time"])
			}
		}
	}
	env.allServe("v2")
	for _, h := range env.hosts.Addrs[:3] {
		_, st := env.call("GET", "/api/v1/nodes/"+env.svc.Name+"/"+h+"/service", nil)
		if up, ok := st["uptime_seconds"].(float64); !ok || up < 0 || up > 600 {
			t.Errorf("%s: uptime %v, want the seconds since the deploy", h, st["uptime_seconds"])
		}
	}
	env.recordedIsServed()
}
