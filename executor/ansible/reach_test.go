package ansible

import (
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// A deploy that could not reach h1: ssh's reason ends with "\r\n", as ssh writes it.
const sampleUnreachable = `{
 "plays": [{"play": {"name": "Deploy"}, "tasks": [
  {"task": {"name": "Gathering Facts"}, "hosts": {
    "h1": {"unreachable": true, "changed": false,
     "msg": "Failed to connect to the host via ssh: ssh: connect to host 10.0.0.1 port 2222: Connection refused\r\n"}}}
 ]}],
 "stats": {"h1": {"changed": 0, "failures": 0, "ok": 0, "unreachable": 1}}
}`

// The error of a node nodeexec could not reach says what it tried (user, key path, port, host key
// checking) and what to check, after ssh's reason, which keeps no trailing "\r\n".
func TestAnUnreachableNodeSaysWhatWasTriedAndWhatToCheck(t *testing.T) {
	off := false
	cases := []struct {
		name string
		ssh  *SSH
		node executor.Node
		want []string
		not  []string
	}{
		{"configured", &SSH{User: "deploy", PrivateKeyFile: "/etc/nodeexec/id_ed25519", Port: 2222}, executor.Node{Host: "h1", Address: "10.0.0.1"},
			[]string{"connects to 10.0.0.1 port 2222 (--ssh-port)", "as user deploy (--ssh-user)", "with key /etc/nodeexec/id_ed25519 (--ssh-key)",
				"host key checking on", "known_hosts"}, nil},
		{"defaults", &SSH{}, executor.Node{Host: "h1"},
			[]string{"connects to h1 port 22 (ssh's default", "ssh's default user (--ssh-user not set)", "ssh's default keys (--ssh-key not set)"}, nil},
		{"the node's own port, no host key checking", &SSH{User: "root", PrivateKeyFile: "/k", Port: 22, HostKeyChecking: &off}, executor.Node{Host: "h1", Port: 2200},
			[]string{"port 2200 (the node's own)", "host key checking off (--insecure-host-keys)"}, []string{"known_hosts"}},
		{"not over ssh", nil, executor.Node{Host: "h1"}, nil, []string{"nodeexec connects"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := mustParse(t, sampleUnreachable)
			res.ssh = c.ssh
			for _, got := range []string{
				nodeResults(res, opDeploy, "demo", []executor.Node{c.node}, "")[0].LastError,
				commandResults(res, []executor.Node{c.node}, "", 100)[0].Error,
			} {
				reason := `host unreachable: task "Gathering Facts": Failed to connect to the host via ssh: ssh: connect to host 10.0.0.1 port 2222: Connection refused`
				if !strings.HasPrefix(got, reason) {
					t.Errorf("error %q does not start with ssh's reason", got)
				}
				if strings.ContainsAny(got, "\r") || got != strings.TrimSpace(got) {
					t.Errorf("error %q keeps ssh's \\r\\n", got)
				}
				for _, w := range c.want {
					if !strings.Contains(got, w) {
						t.Errorf("error %q lacks %q", got, w)
					}
				}
				for _, w := range c.not {
					if strings.Contains(got, w) {
						t.Errorf("error %q has %q", got, w)
					}
				}
			}
		})
	}
}
