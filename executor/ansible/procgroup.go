package ansible

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"sync"
	"syscall"
	"time"

	goexec "github.com/apenella/go-ansible/v2/pkg/execute/exec"
)

// groupExec is the execute.Executabler we hand go-ansible. Its default runner kills only
// ansible-playbook on cancellation, leaving its forks and ssh children running; and it wires the
// parent's stdin into ansible-playbook, which can stop a background process group on a terminal.
// Here every run gets its own process group, no stdin, our environment, and a cancel that signals
// the whole group (SIGTERM, then SIGKILL after grace).
type groupExec struct {
	env   []string
	dir   string
	grace time.Duration
	// extra are handed to the child as fds 3, 4, ...
	extra []*os.File
	// started, when set, learns each process started, the leader of its own group.
	started func(pid int)

	mu   sync.Mutex
	cmds []*osexec.Cmd
}

func (g *groupExec) Command(name string, arg ...string) goexec.Cmder {
	return g.CommandContext(context.Background(), name, arg...)
}

func (g *groupExec) CommandContext(ctx context.Context, name string, arg ...string) goexec.Cmder {
	cmd := osexec.CommandContext(ctx, name, arg...)
	cmd.Env = g.env
	cmd.Dir = g.dir
	cmd.Stdin = nil
	cmd.ExtraFiles = g.extra
	// Pdeathsig: if nodeexec itself dies (kill -9), ansible-playbook dies with it instead of running on
	// unobserved; the server reconciles such runs from the nodes when it starts again.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		signalGroup(cmd, syscall.SIGTERM)
		time.AfterFunc(g.grace, func() { signalGroup(cmd, syscall.SIGKILL) })
		return nil
	}
	cmd.WaitDelay = g.grace
	g.mu.Lock()
	g.cmds = append(g.cmds, cmd)
	g.mu.Unlock()
	// The wrapper type (not *os/exec.Cmd) keeps go-ansible from replacing Env, Dir and Stdin.
	return &groupCmd{Cmd: goexec.NewCmd(cmd), cmd: cmd, started: g.started}
}

// reap makes sure nothing of a run is left: go-ansible returns early on cancellation without waiting
// for the process, so the process is waited here, and the group killed in every case.
func (g *groupExec) reap() {
	g.mu.Lock()
	cmds := g.cmds
	g.cmds = nil
	g.mu.Unlock()
	for _, cmd := range cmds {
		if cmd.Process == nil {
			continue
		}
		if cmd.ProcessState == nil {
			signalGroup(cmd, syscall.SIGTERM)
			timer := time.AfterFunc(g.grace, func() { signalGroup(cmd, syscall.SIGKILL) })
			_ = cmd.Wait()
			timer.Stop()
		}
		signalGroup(cmd, syscall.SIGKILL)
	}
}

// groupCmd kills what is left of the group once the leader has exited: a fork or an ssh child must
// never outlive the run it belongs to.
type groupCmd struct {
	*goexec.Cmd
	cmd     *osexec.Cmd
	started func(pid int)
}

func (c *groupCmd) Start() error {
	if err := c.Cmd.Start(); err != nil {
		return err
	}
	if c.started != nil {
		c.started(c.cmd.Process.Pid)
	}
	return nil
}

func (c *groupCmd) Wait() error {
	err := c.Cmd.Wait()
	signalGroup(c.cmd, syscall.SIGKILL)
	return err
}

func signalGroup(cmd *osexec.Cmd, sig syscall.Signal) {
	if cmd.Process == nil {
		return
	}
	// The group id is the leader's pid (Setpgid). ESRCH means the group is already gone.
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = cmd.Process.Signal(sig)
	}
}
