package ansible

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

func TestMasterArgsCarryTheConnectionSettingsAnsibleIsGiven(t *testing.T) {
	off := false
	tests := []struct {
		name     string
		ssh      SSH
		node     executor.Node
		want     []string // options that must be there, each "-o" value
		dontWant []string // option prefixes that must not
		target   string
	}{{
		name:     "defaults: ssh's own user, port and key; host keys checked",
		node:     executor.Node{Host: "web-1"},
		want:     []string{"BatchMode=yes", "ControlMaster=auto", "ControlPersist=30s", "ControlPath=/tmp/nx-cp-x/%C", "ConnectTimeout=10"},
		dontWant: []string{"Port=", "User=", "IdentityFile=", "StrictHostKeyChecking="},
		target:   "web-1",
	}, {
		name: "the executor's user, key, port and timeout; test hosts' host keys unchecked",
		ssh:  SSH{User: "deploy", PrivateKeyFile: "/etc/nodeexec/id", Port: 2222, ConnectTimeout: 5 * time.Second, HostKeyChecking: &off},
		node: executor.Node{Host: "web-1"},
		want: []string{"User=deploy", "IdentityFile=/etc/nodeexec/id", "Port=2222", "ConnectTimeout=5",
			"StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"},
		target: "web-1",
	}, {
		name:   "a node's own address and port win, as in the inventory",
		ssh:    SSH{Port: 2222},
		node:   executor.Node{Host: "web-1", Address: "10.0.0.7", Port: 2200},
		want:   []string{"Port=2200"},
		target: "10.0.0.7",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Executor{cfg: Config{SSH: tt.ssh}}
			args := e.masterArgs("/tmp/nx-cp-x", tt.node)
			var opts []string
			for i := 0; i+1 < len(args); i++ {
				if args[i] == "-o" {
					opts = append(opts, args[i+1])
				}
			}
			for _, w := range tt.want {
				if !slices.Contains(opts, w) {
					t.Errorf("no -o %s in %q", w, args)
				}
			}
			for _, d := range tt.dontWant {
				if slices.ContainsFunc(opts, func(o string) bool { return strings.HasPrefix(o, d) }) {
					t.Errorf("-o %s… in %q", d, args)
				}
			}
			if tail := args[len(args)-3:]; !slices.Equal(tail, []string{"--", tt.target, "true"}) {
				t.Errorf("ends %q, want -- %s true", tail, tt.target)
			}
		})
	}
}

// An ssh still connecting when the run ends is stopped, and the wait returns only once it has exited:
// no master can start after CloseMasters looked.
func TestOpeningMastersStopsAnSSHStillConnecting(t *testing.T) {
	bin := t.TempDir()
	started := filepath.Join(bin, "started")
	if err := syscall.Mkfifo(started, 0o600); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(bin, "pid")
	// A stand-in ssh that says it started, then hangs as one connecting to an unreachable node does.
	script := "#!/bin/sh\necho $$ >" + pidFile + "\necho \"$@\" >" + started + "\nexec sleep 3600\n"
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	e := &Executor{cfg: Config{SSH: SSH{User: "deploy"}}}
	wait := e.openMasters("/tmp/nx-cp-x", []executor.Node{{Host: "web-1"}})
	args, err := os.ReadFile(started) // blocks until the stand-in writes
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(args), "ControlPath=/tmp/nx-cp-x/%C") || !strings.HasSuffix(strings.TrimSpace(string(args)), "-- web-1 true") {
		t.Errorf("ssh ran with %q", args)
	}
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not return: the connecting ssh was not stopped")
	}
	pid, _ := os.ReadFile(pidFile)
	if _, err := os.Stat("/proc/" + strings.TrimSpace(string(pid))); err == nil {
		t.Errorf("the stand-in ssh (pid %s) still runs after the wait", strings.TrimSpace(string(pid)))
	}
}

// A run over nodes that Ansible reaches otherwise (connection local) opens no master.
func TestNoMastersForALocalConnection(t *testing.T) {
	bin := t.TempDir()
	marker := filepath.Join(bin, "ran")
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte("#!/bin/sh\necho \"$@\" >>"+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	e := probeExecutor(t)
	if _, _, err := e.run(t.Context(), []string{"steps.yml"}, map[string]any{"ansible_connection": "local"}, localNode, nil); err != nil {
		t.Fatal(err)
	}
	// (ansible-playbook itself runs `ssh -o ControlPersist` once, to see whether ssh has it.)
	if ran, _ := os.ReadFile(marker); strings.Contains(string(ran), "BatchMode=yes") {
		t.Errorf("a master was opened for a run whose connection is local: ssh %s", ran)
	}
}
