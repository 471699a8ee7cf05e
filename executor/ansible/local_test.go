package ansible

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
)

// These tests run the real ansible-playbook on this machine (connection local): no test hosts needed.

// probeExecutor runs the probe playbooks (testdata/probe); opts change its configuration.
func probeExecutor(t *testing.T, opts ...func(*Config)) *Executor {
	t.Helper()
	if _, err := osexec.LookPath("ansible-playbook"); err != nil {
		t.Skip("ansible-playbook is not installed")
	}
	dir, err := filepath.Abs("testdata/probe")
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(testWriter{t})
	cfg := Config{PlaybookDir: dir, WorkDir: t.TempDir(), KillGrace: 2 * time.Second, Logger: log}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

var localNode = []executor.Node{{Host: "localhost"}}

func TestHostileVersionIsRefusedBeforeAnythingRuns(t *testing.T) {
	e := probeExecutor(t)
	marker := filepath.Join(t.TempDir(), "pwned")
	_, err := e.Deploy(context.Background(), executor.DeployRequest{
		Service:        "probe",
		Version:        "{{ lookup('pipe','touch " + marker + "') }}",
		PhysicalDeploy: executor.PhysicalDeploy{Nodes: localNode, Package: executor.Package{URL: "http://127.0.0.1/x.tgz", SHA256: strings.Repeat("0", 64)}},
	})
	if !executor.IsValidation(err) {
		t.Fatalf("want a validation error, got %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the hostile version ran a command")
	}
}

func TestHostileValueThatSlipsThroughIsNotTemplated(t *testing.T) {
	e := probeExecutor(t)
	dir := t.TempDir()
	marker := filepath.Join(dir, "pwned")
	out := filepath.Join(dir, "out")
	hostile := "{{ lookup('pipe','touch " + marker + "') }}"
	// Straight to the runner, past validation, as if a validator had a hole.
	res, _, err := e.run(context.Background(), []string{"deploy.yml"}, map[string]any{
		"nodeexec_version": hostile, "probe_out": out, "ansible_connection": "local",
	}, localNode, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("Ansible templated the value and ran the command")
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != hostile {
		t.Fatalf("the node got %q, want the literal %q", got, hostile)
	}
	results := nodeResults(res, opDeploy, "probe", localNode, "")
	if results[0].State != executor.StateSuccess || results[0].CurrentVersion != hostile {
		t.Fatalf("result = %+v", results[0].NodeStatus)
	}
}

func TestCancelStopsTheWholeProcessGroup(t *testing.T) {
	e := probeExecutor(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	marker := "nodeexec-cancel-probe-" + randomID()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := e.run(ctx, []string{"sleep.yml"}, map[string]any{
			"probe_out": started, "probe_marker": marker, "ansible_connection": "local",
		}, localNode, nil)
		done <- err
	}()
	waitFor(t, 60*time.Second, func() bool { return processRunning(marker) })
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	// reap() has waited for the group and killed it: nothing of the run may be left.
	if processRunning(marker) {
		t.Fatal("a task of the cancelled run is still running")
	}
}

func TestMissingPlaybookDirIsAClearError(t *testing.T) {
	_, err := New(Config{PlaybookDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "ansible.cfg") {
		t.Fatalf("want an error naming ansible.cfg, got %v", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("empty config accepted")
	}
}

// processRunning reports whether any process that has marker in its command line runs on (procs_test.go).
func processRunning(marker string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), marker) && !strings.Contains(string(cmdline), "ansible") && !exiting(ent.Name()) {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or the deadline passes; explain, if given, says what was seen.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := "condition not met before the deadline"
			for _, e := range explain {
				msg += ": " + e()
			}
			t.Fatal(errors.New(msg))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Task results stream while the run goes on: the playbook's second task waits for a file this test
// writes only once it has seen the first task's result. Each is announced when it starts, and its result
// says when it started and how long it took.
func TestProgressStreamsEachTaskResultLive(t *testing.T) {
	e := probeExecutor(t)
	gate := filepath.Join(t.TempDir(), "gate")
	var seen []string
	began := time.Now()
	progress := func(host string, st executor.Step) {
		if st.Running { // each task is announced when it starts, then its result follows
			seen = append(seen, fmt.Sprintf("%s %s started", host, st.Name))
			if st.Started.Before(began.Add(-time.Second)) || st.Started.After(time.Now()) {
				t.Errorf("%s: announced as started at %s, want during the run", st.Name, st.Started)
			}
			return
		}
		seen = append(seen, fmt.Sprintf("%s %s failed=%v", host, st.Name, st.Failed))
		if st.Started.Before(began.Add(-time.Second)) || st.Started.After(time.Now()) || st.Duration <= 0 {
			t.Errorf("%s: started %s, took %s; want a start during the run and a duration", st.Name, st.Started, st.Duration)
		}
		if st.Name == "First step" {
			if err := os.WriteFile(gate, nil, 0o600); err != nil {
				t.Error(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, _, err := e.run(ctx, []string{"progress.yml"}, map[string]any{"probe_gate": gate, "ansible_connection": "local"}, localNode, progress)
	if err != nil {
		t.Fatal(err)
	}
	want := "localhost First step started|localhost First step failed=false|" +
		"localhost Wait for the test to see the first step started|localhost Wait for the test to see the first step failed=false"
	if got := strings.Join(seen, "|"); got != want {
		t.Errorf("progress = %q, want %q", got, want)
	}
	if len(res.Plays) != 1 {
		t.Errorf("the final results are still read: %+v", res)
	}
}

// A failed task's stdout and stderr reach the live step with its message, their end kept within a
// bound (the error is usually last), so the events keep the failure's own output.
func TestProgressKeepsAFailedTasksOutputBounded(t *testing.T) {
	e := probeExecutor(t)
	var failed []executor.Step
	progress := func(host string, st executor.Step) {
		if st.Failed {
			failed = append(failed, st)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, _, err := e.run(ctx, []string{"fail.yml"}, map[string]any{"ansible_connection": "local"}, localNode, progress); err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 {
		t.Fatalf("failed steps streamed: %+v", failed)
	}
	st := failed[0]
	if st.Name != "Print and fail" || !strings.Contains(st.Message, "non-zero return code") || st.Stdout != "out: about to fail" {
		t.Errorf("step = name %q, message %q, stdout %q", st.Name, st.Message, st.Stdout)
	}
	if !strings.HasSuffix(st.Stderr, "err line 2000") || strings.Contains(st.Stderr, "err line 1\n") || len(st.Stderr) > 4100 {
		t.Errorf("stderr is not the bounded end of the output (%d bytes): %q…", len(st.Stderr), st.Stderr[:min(80, len(st.Stderr))])
	}
}

// A module result with sub-steps streams one line per sub-step, each with its status, timing and, when
// it failed, its output; and the live steps are the same, in the same order, as the final results'.
func TestProgressStreamsEachSubStepAsTheResultsHaveIt(t *testing.T) {
	e := probeExecutor(t)
	var live, started []executor.Step
	progress := func(host string, st executor.Step) {
		if st.Running {
			started = append(started, st)
			return
		}
		live = append(live, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, _, err := e.run(ctx, []string{"steps.yml"}, map[string]any{"ansible_connection": "local"}, localNode, progress)
	if err != nil {
		t.Fatal(err)
	}
	want := "Take the node lock ok|Download the package skipped|Unpack the release changed|" +
		"Switch current to the release changed|Check the HTTP health endpoint failed|Release the node lock ok"
	if got := stepList(live); got != want {
		t.Errorf("live steps:\n got %s\nwant %s", got, want)
	}
	// Each module call is announced when it starts, before its steps come back.
	if got := stepList(started); got != "Prepare the probe running|Activate the probe running" {
		t.Errorf("started: %s, want each task once", got)
	}
	for _, st := range started {
		if st.Started.IsZero() {
			t.Errorf("started %q has no start time", st.Name)
		}
	}
	final := nodeResults(res, opDeploy, "probe", localNode, "")[0]
	if got := stepList(final.Steps); got != want {
		t.Errorf("final steps:\n got %s\nwant %s", got, want)
	}
	// (The probe's module is not one of the roles': its message comes after the task's name.)
	if final.State != executor.StateRolledBack || final.LastError != `task "Activate the probe": v2 failed verification and was rolled back to v1: Check the HTTP health endpoint: Status code was 503 and not [200]` {
		t.Errorf("final = %s %q", final.State, final.LastError)
	}
	for _, st := range live {
		if st.Action != "probe_steps" || st.Started.IsZero() || st.Duration != 250*time.Millisecond {
			t.Errorf("live step %q: action %q, started %s, duration %s; want probe_steps, a start, 250ms", st.Name, st.Action, st.Started, st.Duration)
		}
		if failed := st.Name == "Check the HTTP health endpoint"; st.Failed != failed || (st.Stdout == "out") != failed || (st.Stderr == "err") != failed {
			t.Errorf("live step %q: failed %v, stdout %q, stderr %q", st.Name, st.Failed, st.Stdout, st.Stderr)
		}
	}
}

// A run cancelled where the node cannot even be read afterwards (here: an address nothing answers at)
// says the node is unknown and why; it never guesses what the node runs.
func TestACancelledRunNeverGuessesWhatAnUnreadNodeRuns(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	off := false
	e := probeExecutor(t, func(c *Config) {
		c.PlaybookDir = repo
		c.SSH = SSH{User: "nobody", HostKeyChecking: &off, ConnectTimeout: time.Second}
	})
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("an operator asked"))
	res, err := e.Deploy(ctx, executor.DeployRequest{Service: "probe", Version: "v7", PhysicalDeploy: executor.PhysicalDeploy{
		Nodes: []executor.Node{{Host: "unread.invalid"}}, Package: executor.Package{URL: "http://127.0.0.1/p.tgz", SHA256: strings.Repeat("0", 64)}}})
	if err == nil || !strings.Contains(err.Error(), "an operator asked") {
		t.Errorf("err = %v, want the cancel's cause", err)
	}
	if len(res) != 1 {
		t.Fatalf("results: %+v", res)
	}
	want := "cancelled (an operator asked); unknown: could not read the node after the cancel: "
	if r := res[0]; r.State != executor.StateFailed || !strings.HasPrefix(r.LastError, want) || strings.Contains(r.LastError, "the node runs") {
		t.Errorf("node = %s %q, want failed, %q…", r.State, r.LastError, want)
	}
}
