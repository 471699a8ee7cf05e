package ansible

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// mastersCloseBound is how long closing one run's SSH masters may take, all of them together.
const mastersCloseBound = 5 * time.Second

// CloseMasters (exported for the benchmarks, whose plain ansible-playbook runs get connections of their
// own too) ends every SSH master connection whose socket is in dir and waits until no process that
// names dir is left (at most mastersCloseBound); then it removes dir. Closing a master ends its sessions
// on the node, and with them any module still running there.
func CloseMasters(dir string) error { return closeMastersWithin(dir, mastersCloseBound) }

// closeMastersWithin is CloseMasters within bound. `ssh -O exit` only asks: the master leaves a moment
// later, so the wait is what makes "the run has ended" true. Whatever is left after most of the bound gets
// SIGTERM, then SIGKILL; the error names what outlived even that.
func closeMastersWithin(dir string, bound time.Duration) error {
	defer os.RemoveAll(dir)
	start := time.Now()
	// Found before the exit requests, whose own command lines name dir too.
	procs := openProcessesNaming(dir)
	defer closeAll(procs)
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(bound*3/5))
	defer cancel()
	requestExits(ctx, dir)
	left := waitExited(procs, start.Add(bound*3/5))
	left = signalAndWait(left, syscall.SIGTERM, start.Add(bound*4/5))
	left = signalAndWait(left, syscall.SIGKILL, start.Add(bound))
	if len(left) > 0 {
		return fmt.Errorf("SSH masters of %s still running %s after SIGKILL: pids %v", dir, bound, pids(left))
	}
	return nil
}

// requestExits asks every master in dir to exit (`ssh -O exit`), all at once.
func requestExits(ctx context.Context, dir string) {
	entries, _ := os.ReadDir(dir)
	var wg sync.WaitGroup
	for _, ent := range entries {
		if ent.Type()&fs.ModeSocket == 0 {
			continue // the owner file
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = osexec.CommandContext(ctx, "ssh", "-o", "ControlPath="+filepath.Join(dir, ent.Name()), "-O", "exit", "nodeexec-run").Run()
		}()
	}
	wg.Wait()
}

// pidfdOpen is pidfd_open(2); a test takes it away to try the fallback of a kernel without it.
var pidfdOpen = unix.PidfdOpen

// process is a process we wait for. Through its pidfd a signal or a wait can only ever reach that
// process, never one that got its pid later; fd is -1 where the kernel has no pidfd_open.
type process struct {
	pid, fd int
}

// openProcessesNaming finds the live processes whose command line contains s (an SSH master names its
// socket there: "ssh: /tmp/nx-cp-…/… [mux]").
func openProcessesNaming(s string) []process {
	var found []process
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() || !cmdlineContains(pid, s) {
			continue
		}
		fd, err := pidfdOpen(pid, 0)
		switch {
		case errors.Is(err, unix.ESRCH):
			continue // gone already
		case err != nil:
			fd = -1
		case !cmdlineContains(pid, s): // the pid was reused between the two looks
			unix.Close(fd)
			continue
		}
		found = append(found, process{pid: pid, fd: fd})
	}
	return found
}

// procFile is one of a process's files under /proc (stat, cmdline, environ).
func procFile(pid int, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), name))
}

func cmdlineContains(pid int, s string) bool {
	cmdline, err := procFile(pid, "cmdline")
	return err == nil && bytes.Contains(cmdline, []byte(s))
}

// waitExited waits until every process has exited or the deadline passes, and returns those still
// running then.
func waitExited(procs []process, deadline time.Time) []process {
	for {
		left := running(procs)
		wait := time.Until(deadline)
		if len(left) == 0 || wait <= 0 {
			return left
		}
		waitForAnExit(left, wait)
		procs = left
	}
}

// waitForAnExit blocks until one of procs exits (a pidfd turns readable), at most wait. Without
// pidfds, it can only look again a little later.
func waitForAnExit(procs []process, wait time.Duration) {
	fds := make([]unix.PollFd, 0, len(procs))
	for _, p := range procs {
		if p.fd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(p.fd), Events: unix.POLLIN})
		}
	}
	if len(fds) < len(procs) {
		wait = min(wait, 10*time.Millisecond)
	}
	_, _ = unix.Poll(fds, int(wait.Milliseconds())+1) // EINTR: the caller looks again
}

// running is the processes that have not exited; a zombie has.
func running(procs []process) []process {
	var left []process
	for _, p := range procs {
		if !exited(p) {
			left = append(left, p)
		}
	}
	return left
}

func exited(p process) bool {
	if p.fd >= 0 {
		fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	}
	stat, err := procFile(p.pid, "stat")
	return err != nil || bytes.Contains(stat, []byte(") Z ")) || bytes.Contains(stat, []byte(") X "))
}

// signalAndWait sends sig to procs and waits for them until the deadline.
func signalAndWait(procs []process, sig syscall.Signal, deadline time.Time) []process {
	for _, p := range procs {
		if p.fd >= 0 {
			_ = unix.PidfdSendSignal(p.fd, sig, nil, 0)
		} else {
			_ = syscall.Kill(p.pid, sig)
		}
	}
	return waitExited(procs, deadline)
}

func closeAll(procs []process) {
	for _, p := range procs {
		if p.fd >= 0 {
			unix.Close(p.fd)
		}
	}
}

func pids(procs []process) []int {
	out := make([]int, len(procs))
	for i, p := range procs {
		out[i] = p.pid
	}
	return out
}
