package ansible

// One ansible-playbook process: its run directory, SSH connections, inventory, extra vars and
// environment, and its results.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/apenella/go-ansible/v2/pkg/execute"
	jsonresults "github.com/apenella/go-ansible/v2/pkg/execute/result/json"
	"github.com/apenella/go-ansible/v2/pkg/playbook"

	"github.com/nodeexec/nodeexec/executor"
)

// run executes playbooks once over nodes: one ansible-playbook process, forks = number of nodes. It
// returns the parsed results when the output parses, even if ansible-playbook exited non-zero (it does
// whenever any one host failed); err is set when there are no results to read.
// With progress set, each task result also streams to it live (plugins/callback/nodeexec_progress.py).
func (e *Executor) run(ctx context.Context, books []string, vars map[string]any, nodes []executor.Node, progress executor.ProgressFunc) (*runResults, string, error) {
	dir, err := os.MkdirTemp(e.cfg.WorkDir, "nodeexec-run-")
	if err != nil {
		return nil, "", fmt.Errorf("make a run directory: %w", err)
	}
	defer os.RemoveAll(dir)
	// The run's own SSH masters: ControlPersist detaches them from the run's process group, so they are
	// closed when it ends (cancelled or not) rather than left to serve a task the run no longer waits
	// for. A short path: a Unix socket's may not exceed 108 bytes.
	masters, err := os.MkdirTemp("", "nx-cp-")
	if err == nil {
		if err = markMasters(masters); err != nil {
			_ = os.RemoveAll(masters)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("make a directory for SSH connections: %w", err)
	}
	// Deferred first, so it runs last: the guard stands until every process of the run is gone.
	guard, err := startGuard(masters)
	if err != nil {
		_ = os.RemoveAll(masters)
		return nil, "", err
	}
	defer guard.done()
	defer func() {
		if err := CloseMasters(masters); err != nil {
			e.log.WithError(err).Warn("closing the run's SSH connections")
		}
	}()
	if conn, _ := vars["ansible_connection"].(string); conn == "" || conn == "ssh" {
		// Deferred after the close, so it runs before it: every master started is there to be closed.
		stopOpening := e.openMasters(masters, nodes)
		defer stopOpening()
	}
	inventory, err := writeUnsafeYAML(dir, "inventory.yml", e.inventory(nodes))
	if err != nil {
		return nil, "", fmt.Errorf("write the inventory: %w", err)
	}
	varsFile, err := writeUnsafeYAML(dir, "vars.yml", vars)
	if err != nil {
		return nil, "", fmt.Errorf("write the extra vars: %w", err)
	}
	paths := make([]string, len(books))
	for i, b := range books {
		paths[i] = filepath.Join(e.cfg.PlaybookDir, "playbooks", b)
	}
	cmd := playbook.NewAnsiblePlaybookCmd(
		playbook.WithBinary(e.cfg.AnsiblePlaybook),
		playbook.WithPlaybooks(paths...),
		playbook.WithPlaybookOptions(&playbook.AnsiblePlaybookOptions{
			Inventory:     inventory,
			ExtraVarsFile: []string{"@" + varsFile},
			Forks:         strconv.Itoa(min(len(nodes), e.cfg.MaxForks)),
		}),
	)
	var stdout, stderr bytes.Buffer
	group := &groupExec{env: append(e.environ(dir), "ANSIBLE_SSH_CONTROL_PATH_DIR="+masters, controlPathEnv, ownerEnv()), dir: e.cfg.PlaybookDir,
		grace: e.cfg.KillGrace, started: guard.watch}
	if progress != nil {
		stream, err := startProgress(group, progress)
		if err != nil {
			return nil, "", err
		}
		defer stream.stop()
	}
	exec := execute.NewDefaultExecute(
		execute.WithCmd(cmd),
		execute.WithExecutable(group),
		execute.WithOutput(jsonresults.NewJSONStdoutCallbackResults()),
		execute.WithWrite(&stdout),
		execute.WithWriteError(&stderr),
	)
	exec.Quiet()
	runErr := exec.Execute(ctx)
	group.reap()
	res, parseErr := parseRun(stdout.Bytes())
	if parseErr != nil || (len(res.Plays) == 0 && len(res.Stats) == 0) {
		if runErr == nil {
			runErr = parseErr
		}
		return nil, stderr.String(), fmt.Errorf("ansible-playbook %s: %w%s", strings.Join(books, " "), errors.Unwrap(runErr), stderrHint(stderr.String()))
	}
	if conn, _ := vars["ansible_connection"].(string); conn == "" || conn == "ssh" {
		ssh := e.cfg.SSH
		res.ssh = &ssh
	}
	return res, stderr.String(), nil
}

// environ is ansible-playbook's environment: ours plus the settings that make its output JSON and its
// runs independent of the caller's own Ansible configuration. Nothing secret goes here.
func (e *Executor) environ(runDir string) []string {
	checking := e.cfg.SSH.HostKeyChecking == nil || *e.cfg.SSH.HostKeyChecking
	return append(os.Environ(),
		"ANSIBLE_CONFIG="+filepath.Join(e.cfg.PlaybookDir, "ansible.cfg"),
		"ANSIBLE_STDOUT_CALLBACK=ansible.posix.json",
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_HOST_KEY_CHECKING="+strconv.FormatBool(checking),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(runDir, "tmp"),
		"LANG=C.UTF-8",
	)
}

// inventory lists the request's nodes; names are validated, and every string is passed unsafe.
func (e *Executor) inventory(nodes []executor.Node) map[string]any {
	hosts := make(map[string]any, len(nodes))
	for _, n := range nodes {
		h := map[string]any{}
		if n.Address != "" {
			h["ansible_host"] = n.Address
		}
		if n.Port != 0 {
			h["ansible_port"] = n.Port
		}
		hosts[n.Host] = h
	}
	all := map[string]any{}
	if e.cfg.SSH.User != "" {
		all["ansible_user"] = e.cfg.SSH.User
	}
	if e.cfg.SSH.PrivateKeyFile != "" {
		all["ansible_ssh_private_key_file"] = e.cfg.SSH.PrivateKeyFile
	}
	if e.cfg.SSH.Port != 0 {
		all["ansible_port"] = e.cfg.SSH.Port
	}
	if e.cfg.SSH.ConnectTimeout > 0 {
		all["ansible_timeout"] = max(1, int(e.cfg.SSH.ConnectTimeout.Seconds()))
	}
	if e.cfg.SSH.HostKeyChecking != nil && !*e.cfg.SSH.HostKeyChecking {
		all["ansible_ssh_common_args"] = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
	}
	return map[string]any{"all": map[string]any{"hosts": hosts, "vars": all}}
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
