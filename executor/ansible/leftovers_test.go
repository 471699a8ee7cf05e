package ansible

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

// startOwned starts a process group (a leader and a forked worker) whose environment names owner, as a
// run's processes do; it returns the leader's and the worker's pids.
func startOwned(t *testing.T, owner string) []int {
	t.Helper()
	t.Setenv(ownerVar, owner) // inherited by the shell and its worker, as by ansible-playbook's
	leader, worker := startGroup(t)
	return []int{leader.Process.Pid, worker}
}

// ownerOf starts and ends a process, or leaves it running, and returns its owner mark.
func ownerOf(t *testing.T, running bool) string {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	start, err := processStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !running {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return strconv.Itoa(cmd.Process.Pid) + ":" + strconv.FormatUint(start, 10)
}

// masterOf starts a stand-in SSH master in a masters directory marked with owner.
func masterOf(t *testing.T, owner string) int {
	t.Helper()
	dir := controlDir(t)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600); err != nil {
		t.Fatal(err)
	}
	return startStandIn(t, dir, "runs").Process.Pid
}

// The guard died with nodeexec: the next executor ends the run's processes, and only those whose
// nodeexec is gone (another nodeexec's live run, and processes that carry no mark or a foreign one,
// are left alone).
func TestANewExecutorEndsTheRunsOfANodeexecThatIsGone(t *testing.T) {
	deadOwner, liveOwner := ownerOf(t, false), ownerOf(t, true)
	dead := startOwned(t, deadOwner)
	live := startOwned(t, liveOwner)
	foreign := startOwned(t, "not-a-mark")
	ours := startOwned(t, ownerOnce())
	os.Unsetenv(ownerVar)
	// SSH masters: their command line names the run's masters directory, which names the owner.
	dead = append(dead, masterOf(t, deadOwner))
	live = append(live, masterOf(t, liveOwner))

	killed := sweepLeftovers(logrus.New())
	for _, pid := range dead {
		if !slices.Contains(killed, pid) {
			t.Errorf("pid %d of a gone nodeexec's run not ended (ended: %v)", pid, killed)
		}
	}
	if left := gone(t, dead...); len(left) > 0 {
		t.Errorf("still running: %v", left)
	}
	for _, pid := range slices.Concat(live, foreign, ours) {
		if slices.Contains(killed, pid) || syscall.Kill(pid, 0) != nil {
			t.Errorf("pid %d was ended, though its owner lives or it is not a run's", pid)
		}
	}
}

// Every process a run starts carries the mark: ansible-playbook and its children, the SSH masters
// opened beside it, and the guard.
func TestARunsProcessesCarryTheirOwner(t *testing.T) {
	g, err := startGuard(controlDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer g.done()
	// Until the child has exec'd the guard, /proc shows the environment of its parent (this test).
	pid := strconv.Itoa(g.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); ; {
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		if strings.Contains(string(cmdline), "nodeexec-run-guard") || time.Now().After(deadline) {
			break
		}
		runtime.Gosched()
	}
	if got := runOwner(g.cmd.Process.Pid); got != ownerOnce() {
		t.Errorf("the guard's owner: %q, want %q", got, ownerOnce())
	}
	if pid, start, ok := parseOwner(ownerOnce()); !ok || pid != os.Getpid() || !ownerAlive(pid, start) {
		t.Errorf("this process's own mark %q does not name it alive", ownerOnce())
	}
}
