// Package occupancy is a stand-in executor for physical nodes that connects nowhere and records, in a
// file shared by every process of a test, when each node was occupied and by whom. Tests of several
// nodeexec replicas read that file to prove that no two deployments ever held one node at once: the
// executor's own account, not nodeexec's records. It is wired into `nodeexec serve` only in builds with
// the occupancy tag (cmd/nodeexec/occupancy.go); production builds do not contain it.
package occupancy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/ansible"
)

// Line is one line of the occupancy file: a node taken ("start") or given back ("end") by a run.
type Line struct {
	Event      string `json:"event"` // "start" or "end"
	Run        string `json:"run"`   // pairs a start with its end: "<pid>-<executor>-<sequence>"
	Kind       string `json:"kind"`  // "deploy", "rollback" or "cleanup"
	Service    string `json:"service"`
	Host       string `json:"host"`
	Deployment string `json:"deployment"` // the deployment's id (a cleanup pass's c-… for a cleanup)
	PID        int    `json:"pid"`
	UnixNano   int64  `json:"ns"`
}

// Executor deploys, rolls back and cleans up nothing: it holds each node for Hold, recording the start
// and the end of that in the file, and reports success.
type Executor struct {
	file *os.File
	hold time.Duration
	pid  int
	// self tells this executor's runs from another's in the same process (tests run several).
	self string
	seq  atomic.Int64
	now  func() time.Time

	mu       sync.Mutex
	statuses map[string]executor.NodeStatus // by service and host: what the last run here set
}

// Open appends to the occupancy file at path (created if need be); each node is held for hold.
func Open(path string, hold time.Duration) (*Executor, error) {
	if hold < 0 {
		return nil, fmt.Errorf("occupancy: hold %s is negative", hold)
	}
	// O_APPEND: each line is one write(2) at the file's end, so lines of several processes never interleave.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("occupancy: open the occupancy file: %w", err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return &Executor{file: f, hold: hold, pid: os.Getpid(), self: hex.EncodeToString(b), now: time.Now,
		statuses: map[string]executor.NodeStatus{}}, nil
}

// Close closes the file.
func (e *Executor) Close() error { return e.file.Close() }

// Deploy holds every node at once (as one ansible-playbook run does) and sets it to the version.
func (e *Executor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	return e.occupy(ctx, "deploy", req.DeploymentID, req.Service, req.Nodes, func(prev executor.NodeStatus) executor.NodeStatus {
		if prev.CurrentVersion != req.Version {
			prev.PrevVersion = prev.CurrentVersion
		}
		prev.CurrentVersion, prev.State = req.Version, executor.StateSuccess
		return prev
	})
}

// Rollback holds every node and sets it back to ToVersion (or, without one, to its previous version).
func (e *Executor) Rollback(ctx context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	return e.occupy(ctx, "rollback", req.DeploymentID, req.Service, req.Nodes, func(prev executor.NodeStatus) executor.NodeStatus {
		to := req.ToVersion
		if to == "" {
			to = prev.PrevVersion
		}
		prev.PrevVersion, prev.CurrentVersion, prev.State = prev.CurrentVersion, to, executor.StateRolledBack
		return prev
	})
}

// Status reports what the last deploy or rollback in this process set on each node (nothing yet: no
// version, state pending).
func (e *Executor) Status(_ context.Context, req executor.StatusRequest) ([]executor.NodeResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]executor.NodeResult, 0, len(req.Nodes))
	for _, n := range req.Nodes {
		st, ok := e.statuses[key(req.Service, n.Host)]
		if !ok {
			st = executor.NodeStatus{Host: n.Host, Service: req.Service, Platform: executor.PlatformPhysical, State: executor.StatePending}
		}
		out = append(out, executor.NodeResult{NodeStatus: st, RunningVersion: st.CurrentVersion})
	}
	return out, nil
}

// Cleanup occupies each node for no time (a scheduled pass must be quick) and keeps what it runs.
func (e *Executor) Cleanup(ctx context.Context, req ansible.CleanupRequest) ([]ansible.CleanupResult, error) {
	out := make([]ansible.CleanupResult, 0, len(req.Nodes))
	for _, n := range req.Nodes {
		run := e.runID()
		if err := e.write("start", run, "cleanup", req.ID, req.Service, n.Host); err != nil {
			return nil, err
		}
		st, _ := e.Status(ctx, executor.StatusRequest{Service: req.Service, Nodes: []executor.Node{n}})
		r := ansible.CleanupResult{NodeResult: st[0], Kept: []string{}, Removed: []string{}}
		if v := st[0].CurrentVersion; v != "" {
			r.Kept = append(r.Kept, v)
		}
		if err := e.write("end", run, "cleanup", req.ID, req.Service, n.Host); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// occupy records each node's start, holds them all for Hold (or until ctx ends), records each end, and
// gives each node the status set makes of its previous one; a cancelled run fails, changing nothing.
func (e *Executor) occupy(ctx context.Context, kind, deployment, service string, nodes []executor.Node,
	set func(prev executor.NodeStatus) executor.NodeStatus) ([]executor.NodeResult, error) {
	runs := make([]string, len(nodes))
	for i, n := range nodes {
		runs[i] = e.runID()
		if err := e.write("start", runs[i], kind, deployment, service, n.Host); err != nil {
			return nil, err
		}
	}
	t := time.NewTimer(e.hold)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	out := make([]executor.NodeResult, len(nodes))
	for i, n := range nodes {
		// The end is written before the run returns, so before nodeexec can give the node to anyone else.
		if err := e.write("end", runs[i], kind, deployment, service, n.Host); err != nil {
			return nil, err
		}
		out[i] = e.finish(ctx, service, n.Host, set)
	}
	return out, nil
}

func (e *Executor) finish(ctx context.Context, service, host string, set func(executor.NodeStatus) executor.NodeStatus) executor.NodeResult {
	e.mu.Lock()
	defer e.mu.Unlock()
	prev, ok := e.statuses[key(service, host)]
	if !ok {
		prev = executor.NodeStatus{Host: host, Service: service, Platform: executor.PlatformPhysical}
	}
	if ctx.Err() != nil {
		prev.State, prev.LastError = executor.StateFailed, "cancelled: "+context.Cause(ctx).Error()
		return executor.NodeResult{NodeStatus: prev, RunningVersion: prev.CurrentVersion}
	}
	next := set(prev)
	next.LastError = ""
	e.statuses[key(service, host)] = next
	return executor.NodeResult{NodeStatus: next, RunningVersion: next.CurrentVersion, Changed: true}
}

func (e *Executor) runID() string { return fmt.Sprintf("%d-%s-%d", e.pid, e.self, e.seq.Add(1)) }

// write appends one line in a single write(2).
func (e *Executor) write(event, run, kind, deployment, service, host string) error {
	b, err := json.Marshal(Line{Event: event, Run: run, Kind: kind, Service: service, Host: host, Deployment: deployment,
		PID: e.pid, UnixNano: e.now().UnixNano()})
	if err != nil {
		return err
	}
	if _, err := e.file.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("occupancy: record %s of %s/%s: %w", event, service, host, err)
	}
	return nil
}

func key(service, host string) string { return service + "/" + host }
