package client_test

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store"
)

// fleetExecutor stands in for Ansible under the real server and the embedded database: every node it
// deploys streams two steps and ends on the version, except where fail says the version's health check
// fails on a host: that node goes back to what it ran, as a real deploy does. A hold channel, when set,
// keeps each deploy running until it is closed. Real deploys are proven by client/e2e_test.go.
type fleetExecutor struct {
	hold chan struct{}
	fail map[string]string // version -> host whose health check fails

	mu      sync.Mutex
	running map[string]string // host -> version it runs
}

func (e *fleetExecutor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	if e.hold != nil {
		select {
		case <-e.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running == nil {
		e.running = map[string]string{}
	}
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		req.Progress(n.Host, executor.Step{Name: "Download the package", Changed: true})
		st := executor.NodeStatus{Host: n.Host, Service: req.Service, CurrentVersion: req.Version, PrevVersion: e.running[n.Host], State: executor.StateSuccess}
		if e.fail[req.Version] == n.Host {
			req.Progress(n.Host, executor.Step{Name: "Check health", Failed: true, Message: "HTTP 503"})
			st.State, st.CurrentVersion, st.LastError = executor.StateRolledBack, e.running[n.Host], "Check health: HTTP 503"
		} else {
			req.Progress(n.Host, executor.Step{Name: "Check health"})
			e.running[n.Host] = req.Version
		}
		out = append(out, executor.NodeResult{NodeStatus: st, Changed: true})
	}
	return out, nil
}

func (e *fleetExecutor) Rollback(_ context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []executor.NodeResult
	for _, n := range req.Nodes {
		e.running[n.Host] = req.ToVersion
		out = append(out, executor.NodeResult{NodeStatus: executor.NodeStatus{Host: n.Host, Service: req.Service,
			CurrentVersion: req.ToVersion, State: executor.StateRolledBack}, Changed: true})
	}
	return out, nil
}

func (e *fleetExecutor) Status(context.Context, executor.StatusRequest) ([]executor.NodeResult, error) {
	return nil, nil
}

// testServer is the real API on an embedded database of its own, served on a loopback port.
type testServer struct {
	URL  string
	srv  *server.Server
	http *httptest.Server
	stop func()
}

// startServer serves the API over exec; tokens, when given, are required. Close stops it and removes
// the database.
func startServer(exec executor.Executor, tokens ...server.Token) (*testServer, error) {
	return startServerWith(server.Config{Executor: exec, Tokens: tokens})
}

// startServerWith serves cfg, on a fresh embedded database of its own.
func startServerWith(cfg server.Config) (*testServer, error) {
	dir, err := os.MkdirTemp("", "nodeexec-client-test-")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	db, err := store.StartEmbedded(ctx, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	st, err := db.Open(ctx, "nodeexec")
	if err != nil {
		db.Stop()
		os.RemoveAll(dir)
		return nil, err
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg.Store, cfg.Logger = st, log
	srv := server.New(cfg)
	hs := httptest.NewServer(srv.Handler())
	return &testServer{URL: hs.URL, srv: srv, http: hs, stop: func() {
		hs.Close()
		srv.Shutdown()
		_ = st.Close(context.Background())
		db.Stop()
		os.RemoveAll(dir)
	}}, nil
}

func (s *testServer) Close() { s.stop() }
