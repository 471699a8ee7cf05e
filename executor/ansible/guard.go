package ansible

// A run must not outlive nodeexec. ansible-playbook dies with it (Pdeathsig), but not its forked
// workers, their ssh clients, nor the SSH masters (ControlPersist detaches them): after a kill -9 they
// would go on working on the nodes, unobserved, for as long as their tasks last. Each run therefore has
// a guard: a small shell beside it, outside the run's process group, that holds the read end of a pipe
// whose write end only nodeexec holds. The kernel closes that end when nodeexec dies, however it dies;
// the guard then kills the run's process groups and every process naming the run's masters directory.
// A run that ends normally says "done" first, and the guard leaves without killing anything.

import (
	"fmt"
	"os"
	osexec "os/exec"
)

// guardScript is the guard: it learns the run's process groups ("pgid N"), leaves on "done", and on
// end of input without "done" kills them and whatever names the directory on its command line. It ignores the signals a terminal or
// a service manager sends nodeexec, so that it outlives nodeexec to do its work.
const guardScript = `trap '' INT TERM HUP QUIT
dir=$NODEEXEC_GUARD_DIR
groups=
while read -r word arg; do
  case $word in
    pgid) groups="$groups $arg" ;;
    done) exit 0 ;;
  esac
done
for g in $groups; do kill -KILL "-$g" 2>/dev/null; done
for f in $(grep -alsF -- "$dir" /proc/[0-9]*/cmdline); do
  pid=${f#/proc/}; pid=${pid%/cmdline}
  [ "$pid" = "$$" ] || kill -KILL "$pid" 2>/dev/null
done
exit 0
`

// runGuard is one run's guard.
type runGuard struct {
	w   *os.File
	cmd *osexec.Cmd
}

// startGuard starts the guard of a run whose SSH masters live in mastersDir.
func startGuard(mastersDir string) (*runGuard, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start the run's guard: %w", err)
	}
	defer r.Close()
	cmd := osexec.Command("/bin/sh", "-c", guardScript, "nodeexec-run-guard")
	// The directory goes in the environment, not on the command line: what names it there is killed.
	cmd.Env = append(os.Environ(), "NODEEXEC_GUARD_DIR="+mastersDir, ownerEnv())
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start the run's guard: %w", err)
	}
	return &runGuard{w: w, cmd: cmd}, nil
}

// watch adds a process group of the run to what the guard kills if nodeexec dies.
func (g *runGuard) watch(pgid int) {
	fmt.Fprintf(g.w, "pgid %d\n", pgid)
}

// done tells the guard the run ended and nothing of it is left, and waits for it to leave.
func (g *runGuard) done() {
	fmt.Fprintln(g.w, "done")
	g.w.Close()
	_ = g.cmd.Wait()
}
