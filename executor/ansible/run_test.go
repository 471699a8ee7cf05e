package ansible

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// What one run is made of, on this machine with the probe playbooks (connection local): one
// ansible-playbook process for all of a call's nodes, a run directory that is gone afterwards, and the
// variables every playbook gets.

// countingPlaybook is a wrapper in front of the real ansible-playbook that appends a line with its
// arguments to the returned log at each start.
func countingPlaybook(t *testing.T) (bin, log string) {
	t.Helper()
	real, err := osexec.LookPath("ansible-playbook")
	if err != nil {
		t.Skip("ansible-playbook is not installed")
	}
	dir := t.TempDir()
	bin, log = filepath.Join(dir, "ansible-playbook"), filepath.Join(dir, "starts.log")
	script := fmt.Sprintf("#!/bin/sh\necho \"start $*\" >> '%s'\nexec '%s' \"$@\"\n", log, real)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

func TestOneAnsiblePlaybookRunsForAllOfACallsNodes(t *testing.T) {
	bin, log := countingPlaybook(t)
	base := t.TempDir()
	e := probeExecutor(t, func(c *Config) { c.AnsiblePlaybook, c.BaseDir = bin, base })
	nodes := []executor.Node{{Host: "n1"}, {Host: "n2"}, {Host: "n3"}}
	res, err := e.Deploy(context.Background(), executor.DeployRequest{
		Service:        "probe",
		Version:        "v7",
		PhysicalDeploy: executor.PhysicalDeploy{Nodes: nodes, Package: executor.Package{URL: "http://127.0.0.1/probe-v7.tar.gz", SHA256: strings.Repeat("0", 64)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	starts := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(starts) != 1 || !strings.Contains(starts[0], "--forks=3") {
		t.Fatalf("ansible-playbook starts: %q; want one, with a fork per node (--forks=3)", starts)
	}
	for i, r := range res {
		got, _ := os.ReadFile(filepath.Join(base, nodes[i].Host+".version"))
		if r.Host != nodes[i].Host || r.State != executor.StateSuccess || string(got) != "v7" {
			t.Errorf("%s: state=%s error=%q, wrote %q; want success and v7", r.Host, r.State, r.LastError, got)
		}
	}
}

// probeVars is what the probe status playbook writes: the variables the run gave it.
type probeVars struct {
	Service   string `json:"service"`
	BaseDir   string `json:"base_dir"`
	Become    any    `json:"become"`
	Inventory string `json:"inventory"`
}

func readProbeVars(t *testing.T, base, host string) probeVars {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(base, host+".json"))
	if err != nil {
		t.Fatalf("the probe playbook wrote nothing: %v", err)
	}
	var v probeVars
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	return v
}

func TestTheRunDirectoryIsGoneAfterTheRun(t *testing.T) {
	work, base := t.TempDir(), t.TempDir()
	e := probeExecutor(t, func(c *Config) { c.WorkDir, c.BaseDir = work, base })
	if _, err := e.Status(context.Background(), executor.StatusRequest{Service: "probe", Nodes: localNode}); err != nil {
		t.Fatal(err)
	}
	// The run read its inventory from a directory of its own under WorkDir ...
	inv := readProbeVars(t, base, "localhost").Inventory
	if !strings.HasPrefix(inv, work+string(os.PathSeparator)+"nodeexec-run-") || filepath.Base(inv) != "inventory.yml" {
		t.Fatalf("the run's inventory was %q; want <WorkDir>/nodeexec-run-*/inventory.yml", inv)
	}
	// ... which is gone, with the extra vars beside it.
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("WorkDir keeps %v after the run", left)
	}

	// Also when ansible-playbook fails without a result.
	e = probeExecutor(t, func(c *Config) { c.WorkDir, c.AnsiblePlaybook = work, "false" })
	if _, err := e.Status(context.Background(), executor.StatusRequest{Service: "probe", Nodes: localNode}); err == nil {
		t.Fatal("a run of `false` reported no error")
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("WorkDir keeps %v after a failed run", left)
	}
}

func TestBecomeReachesEveryPlaybookAsABool(t *testing.T) {
	for _, become := range []bool{true, false} {
		t.Run(fmt.Sprint(become), func(t *testing.T) {
			base := t.TempDir()
			e := probeExecutor(t, func(c *Config) { c.BaseDir, c.Become = base, become })
			if _, err := e.Status(context.Background(), executor.StatusRequest{Service: "probe", Nodes: localNode}); err != nil {
				t.Fatal(err)
			}
			if got := readProbeVars(t, base, "localhost"); got.Become != become || got.Service != "probe" || got.BaseDir != base {
				t.Errorf("the playbook got %+v; want become %v (a bool), service probe, base dir %s", got, become, base)
			}
			// The runs that change nodes get the same.
			if got := e.commonVars("probe", "d-1")["nodeexec_become"]; got != become {
				t.Errorf("deploy, rollback and cleanup get nodeexec_become=%v, want %v", got, become)
			}
		})
	}
}

func TestBaseDirMustBeACleanAbsolutePath(t *testing.T) {
	if err := validateBaseDir("/opt"); err != nil {
		t.Fatalf("/opt: %v", err)
	}
	if err := validateBaseDir("/srv/apps-2/x_y.z"); err != nil {
		t.Fatalf("/srv/apps-2/x_y.z: %v", err)
	}
	for dir, why := range map[string]string{
		"opt":           "absolute",
		"./opt":         "absolute",
		"/":             "must not be /",
		"/opt/../etc":   "'..'",
		"/opt/..":       "'..'",
		"/opt/":         "clean",
		"//opt":         "clean",
		"/opt/./svc":    "clean",
		"/opt\n/x":      "control",
		"/opt\x00":      "control",
		"/opt/my apps":  "whitespace",
		"/opt/\u0085x":  "control",
		"/opt/x\x7fy":   "control",
		"/opt/\ttabbed": "whitespace",
	} {
		err := validateBaseDir(dir)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("BaseDir %q: err = %v, want one saying %q", dir, err, why)
		}
	}
	// New refuses it before anything runs.
	dir, _ := filepath.Abs("testdata/probe")
	if _, err := New(Config{PlaybookDir: dir, BaseDir: "/opt/../etc"}); err == nil || !strings.Contains(err.Error(), "BaseDir") {
		t.Errorf("New accepted BaseDir /opt/../etc: %v", err)
	}
}
