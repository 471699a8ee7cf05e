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
	for _, h := range env.hosts.Addrs[:3] {
		if v := env.serving(h); v != "v2" {
			t.Errorf("%s serves %q, want v2", h, v)
		}
	}
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
	if end := env.deploy("v2"); end["state"] != "success" {
		t.Fatalf("deploy after the reboot = %v", end)
	}
	for _, h := range env.hosts.Addrs[:3] {
		if v := env.serving(h); v != "v2" {
			t.Errorf("%s serves %q, want v2", h, v)
		}
	}
	env.recordedIsServed()
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
	if end := env.deploy("v2"); end["state"] != "success" {
		t.Fatalf("deploy v2 with room again = %v", end)
	}
	for _, h := range env.hosts.Addrs[:3] {
		if v := env.serving(h); v != "v2" {
			t.Errorf("%s serves %q, want v2", h, v)
		}
	}
	env.recordedIsServed()
}
