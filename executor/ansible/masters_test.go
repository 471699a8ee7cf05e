package ansible

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// standInEnv makes the test binary a stand-in for an SSH master (see TestMain).
const standInEnv = "NODEEXEC_TEST_STAND_IN_MASTER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(standInEnv); mode != "" {
		standInMaster(mode)
		return
	}
	os.Exit(m.Run())
}

// standInMaster is what a stand-in does once it has said it is ready: "lingers" exits by itself after
// 500 ms, as a master asked to exit takes a moment to; "runs" runs until signalled; "ignores-term"
// ignores SIGTERM and runs until SIGKILL.
func standInMaster(mode string) {
	if mode == "ignores-term" {
		signal.Ignore(syscall.SIGTERM)
	}
	fmt.Println("ready")
	if mode == "lingers" {
		time.Sleep(500 * time.Millisecond)
		os.Exit(0)
	}
	time.Sleep(time.Hour)
}

// startStandIn starts a stand-in master whose command line names dir, as a real one names its socket
// there, and returns once it is ready. The test reaps it.
func startStandIn(t *testing.T, dir, mode string) *osexec.Cmd {
	t.Helper()
	cmd := osexec.Command(os.Args[0], "stand-in-master", dir)
	cmd.Env = append(os.Environ(), standInEnv+"="+mode)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("stand-in %s: %q, %v", mode, line, err)
	}
	return cmd
}

func controlDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nx-cp-") // as run makes it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// endedBy waits for a stand-in CloseMasters should have ended and says how it ended: "exit N" or the
// signal. It must be gone already (a zombie) when CloseMasters returns.
func endedBy(t *testing.T, cmd *osexec.Cmd) string {
	t.Helper()
	if !exiting(strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("stand-in %d still runs after CloseMasters returned", cmd.Process.Pid)
		_ = cmd.Process.Kill()
	}
	var exit *osexec.ExitError
	if err := cmd.Wait(); err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
		return ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", cmd.ProcessState.ExitCode())
}

// The flake this fixes: `ssh -O exit` returns as soon as the master has the request, and the master was
// still there when the run had returned. CloseMasters now returns only once it is gone, and leaves the
// masters of other runs alone.
func TestCloseMastersWaitsUntilTheMastersHaveExited(t *testing.T) {
	dir, other := controlDir(t), controlDir(t)
	lingering := startStandIn(t, dir, "lingers")
	neighbour := startStandIn(t, other, "runs")
	start := time.Now()
	err := CloseMasters(dir)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if how := endedBy(t, lingering); how != "exit 0" {
		t.Errorf("the master ended by %s; want it to exit by itself, waited for", how)
	}
	if took > 3*time.Second {
		t.Errorf("CloseMasters took %s for a master that exits after 500ms: it did not see it go", took)
	}
	if exiting(strconv.Itoa(neighbour.Process.Pid)) {
		t.Error("the master of another run was ended")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", dir, err)
	}
}

// A master that does not leave when asked gets SIGTERM, and one that ignores SIGTERM gets SIGKILL, all
// within the bound.
func TestCloseMastersEndsWhatStaysWithinTheBound(t *testing.T) {
	dir := controlDir(t)
	stays := startStandIn(t, dir, "runs")
	stubborn := startStandIn(t, dir, "ignores-term")
	const bound = 1500 * time.Millisecond
	start := time.Now()
	err := closeMastersWithin(dir, bound)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if how := endedBy(t, stays); how != syscall.SIGTERM.String() {
		t.Errorf("the master that stayed ended by %s, want SIGTERM", how)
	}
	if how := endedBy(t, stubborn); how != syscall.SIGKILL.String() {
		t.Errorf("the master that ignores SIGTERM ended by %s, want SIGKILL", how)
	}
	if took < bound*4/5 || took > bound+time.Second {
		t.Errorf("CloseMasters took %s; want SIGKILL only after %s and a return within %s", took, bound*4/5, bound)
	}
}

// Where the kernel has no pidfd_open, processes are watched by pid in /proc: the same ends, the same bound.
func TestCloseMastersWithoutPidfds(t *testing.T) {
	pidfdOpen = func(int, int) (int, error) { return -1, unix.ENOSYS }
	t.Cleanup(func() { pidfdOpen = unix.PidfdOpen })
	dir := controlDir(t)
	lingering := startStandIn(t, dir, "lingers")
	stubborn := startStandIn(t, dir, "ignores-term")
	const bound = 1500 * time.Millisecond
	start := time.Now()
	if err := closeMastersWithin(dir, bound); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > bound+time.Second {
		t.Errorf("CloseMasters took %s, bound %s", took, bound)
	}
	if how := endedBy(t, lingering); how != "exit 0" {
		t.Errorf("the lingering master ended by %s, want exit 0", how)
	}
	if how := endedBy(t, stubborn); how != syscall.SIGKILL.String() {
		t.Errorf("the master that ignores SIGTERM ended by %s, want SIGKILL", how)
	}
}
