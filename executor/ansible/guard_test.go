package ansible

import (
	"bufio"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startGroup starts a process group as ansible-playbook's is (a leader and a forked worker that is not
// the leader's to reap), and returns the leader and the worker's pid.
func startGroup(t *testing.T) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & echo $!; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	worker, perr := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || perr != nil {
		t.Fatalf("worker pid: %q %v %v", line, err, perr)
	}
	return cmd, worker
}

// gone waits (at most 5 s, on pidfds) until every pid has exited, and returns those still running.
func gone(t *testing.T, pids ...int) []int {
	t.Helper()
	var procs []process
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		procs = append(procs, process{pid: pid, fd: fd})
	}
	defer closeAll(procs)
	return pidsOf(waitExited(procs, time.Now().Add(5*time.Second)))
}

func pidsOf(procs []process) []int {
	out := make([]int, len(procs))
	for i, p := range procs {
		out[i] = p.pid
	}
	return out
}

// nodeexec dies (the guard's pipe closes without "done"): the guard kills the run's process group,
// worker included, and the SSH masters that name the run's directory.
func TestTheGuardEndsTheRunWhenNodeexecDies(t *testing.T) {
	dir := controlDir(t)
	g, err := startGuard(dir)
	if err != nil {
		t.Fatal(err)
	}
	leader, worker := startGroup(t)
	master := startStandIn(t, dir, "ignores-term")
	g.watch(leader.Process.Pid)

	g.w.Close() // what the kernel does when nodeexec dies
	if err := g.cmd.Wait(); err != nil {
		t.Fatalf("guard: %v", err)
	}
	if left := gone(t, leader.Process.Pid, worker, master.Process.Pid); len(left) > 0 {
		t.Errorf("still running after the guard: %v (leader %d, worker %d, master %d)", left, leader.Process.Pid, worker, master.Process.Pid)
	}
}

// A run that ends says so: the guard leaves and kills nothing.
func TestTheGuardOfARunThatEndedKillsNothing(t *testing.T) {
	dir := controlDir(t)
	g, err := startGuard(dir)
	if err != nil {
		t.Fatal(err)
	}
	leader, worker := startGroup(t)
	master := startStandIn(t, dir, "runs")
	g.watch(leader.Process.Pid)
	g.done()
	for _, pid := range []int{leader.Process.Pid, worker, master.Process.Pid} {
		if exiting(strconv.Itoa(pid)) {
			t.Errorf("pid %d was ended by the guard of a run that ended", pid)
		}
	}
}
