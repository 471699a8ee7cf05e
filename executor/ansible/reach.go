package ansible

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nodeexec/nodeexec/executor"
)

// unreachable is a node's error when ansible-playbook could not reach it: ssh's reason, then one
// sentence of what nodeexec tried and what to check, so an operator can act without reading the
// configuration. The key is named by its path only. ssh is nil when the run did not go over SSH
// (connection local in tests): the reason alone.
func unreachable(reason string, ssh *SSH, n executor.Node) string {
	msg := "host unreachable: " + strings.TrimRight(executor.CleanError(reason), ". ")
	if ssh == nil {
		return msg
	}
	user := "ssh's default user (--ssh-user not set)"
	if ssh.User != "" {
		user = "user " + ssh.User + " (--ssh-user)"
	}
	key := "ssh's default keys (--ssh-key not set)"
	if ssh.PrivateKeyFile != "" {
		key = "key " + ssh.PrivateKeyFile + " (--ssh-key)"
	}
	port := "22 (ssh's default; --ssh-port)"
	switch {
	case n.Port != 0:
		port = strconv.Itoa(n.Port) + " (the node's own)"
	case ssh.Port != 0:
		port = strconv.Itoa(ssh.Port) + " (--ssh-port)"
	}
	addr := n.Host
	if n.Address != "" {
		addr = n.Address
	}
	checking, known := "on", ", and that "+addr+" is in known_hosts with its current key"
	if ssh.HostKeyChecking != nil && !*ssh.HostKeyChecking {
		checking, known = "off (--insecure-host-keys)", ""
	}
	return fmt.Sprintf("%s. nodeexec connects to %s port %s as %s with %s, host key checking %s: check that sshd "+
		"listens there and the key is authorized for that user%s.",
		msg, addr, port, user, key, checking, known)
}
