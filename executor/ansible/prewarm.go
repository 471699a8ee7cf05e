package ansible

// The SSH connections of a run are opened while ansible-playbook starts. Python and Ansible take most of
// a second to load before the first task connects; the SSH handshake then stands on the deploy's
// critical path. Here it happens beside the load instead: one master per node, on the socket path
// Ansible's own ssh looks for (ANSIBLE_SSH_CONTROL_PATH is %C, ssh's hash of the local host, remote host,
// port and user), so the first task finds the connection up. Nothing depends on it: a master that is
// late, refused or unreachable leaves Ansible to connect as it would have, and to report the node.

import (
	"context"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/nodeexec/nodeexec/executor"
)

// controlPathEnv makes Ansible name its SSH sockets as the opened masters do.
const controlPathEnv = "ANSIBLE_SSH_CONTROL_PATH=%(directory)s/%%C"

// openMasters starts an SSH master for every node in dir, in the background. The returned function
// stops what has not finished connecting and waits for every ssh it started, so that the masters that
// did start are all there for CloseMasters to find.
func (e *Executor) openMasters(dir string, nodes []executor.Node) (wait func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, n := range nodes {
		cmd := osexec.CommandContext(ctx, "ssh", e.masterArgs(dir, n)...)
		cmd.Env = append(os.Environ(), ownerEnv())
		if err := cmd.Start(); err != nil {
			continue // no ssh: Ansible says so for the node
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = cmd.Wait()
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// masterArgs is ssh's command line for a master to node n with the connection settings Ansible is
// given (inventory and ansible.cfg's ssh_args), running `true` once: the master persists behind it.
func (e *Executor) masterArgs(dir string, n executor.Node) []string {
	ssh := e.cfg.SSH
	args := []string{
		"-o", "BatchMode=yes", // never a prompt: a master that cannot log in alone is no use
		"-o", "ControlMaster=auto", "-o", "ControlPersist=30s", "-o", "ControlPath=" + filepath.Join(dir, "%C"),
		"-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
	}
	if ssh.HostKeyChecking != nil && !*ssh.HostKeyChecking {
		args = append(args, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null")
	}
	port := ssh.Port
	if n.Port != 0 {
		port = n.Port
	}
	if port != 0 {
		args = append(args, "-o", "Port="+strconv.Itoa(port))
	}
	if ssh.PrivateKeyFile != "" {
		args = append(args, "-o", "IdentityFile="+ssh.PrivateKeyFile)
	}
	if ssh.User != "" {
		args = append(args, "-o", "User="+ssh.User)
	}
	timeout := 10 // ansible.cfg's timeout
	if ssh.ConnectTimeout > 0 {
		timeout = max(1, int(ssh.ConnectTimeout.Seconds()))
	}
	args = append(args, "-o", "ConnectTimeout="+strconv.Itoa(timeout), "-o", "LogLevel=ERROR")
	address := n.Host
	if n.Address != "" {
		address = n.Address
	}
	return append(args, "--", address, "true")
}
