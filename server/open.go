package server

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/cleanup"
	"github.com/nodeexec/nodeexec/drift"
	"github.com/nodeexec/nodeexec/store"
)

// What `nodeexec serve` runs, wired here so that the command knows its configuration and not the
// records: the database (Backend), and the server with the cleanup passes over it (Service).

// Database says where the state lives: the MongoDB at MongoURI, or, without one, the embedded server
// (FerretDB on SQLite, loopback only) keeping its data in DataDir. Name is the database in either.
type Database struct {
	MongoURI string
	Name     string
	DataDir  string
}

// Backend is an open database, which the server and the cleanup passes keep their records in.
type Backend struct {
	store *store.Store
	// close closes the connection, and stops the embedded server if it was started.
	close func()
}

// OpenBackend connects to the database, starting the embedded one unless db names a MongoDB.
func OpenBackend(ctx context.Context, db Database, log logrus.FieldLogger) (*Backend, error) {
	if db.MongoURI != "" {
		st, err := store.Open(ctx, db.MongoURI, db.Name)
		if err != nil {
			return nil, err
		}
		return &Backend{store: st, close: func() { _ = st.Close(context.WithoutCancel(ctx)) }}, nil
	}
	embedded, err := store.StartEmbedded(ctx, db.DataDir)
	if err != nil {
		return nil, err
	}
	st, err := embedded.Open(ctx, db.Name)
	if err != nil {
		embedded.Stop()
		return nil, err
	}
	log.WithField("data_dir", db.DataDir).Info("embedded database started (FerretDB on SQLite, loopback only)")
	return &Backend{store: st, close: func() { _ = st.Close(context.WithoutCancel(ctx)); embedded.Stop() }}, nil
}

// Close disconnects, and stops the embedded database. Stop what runs over it first.
func (b *Backend) Close() { b.close() }

// Service is the server with the cleanup passes beside it, over one Backend.
type Service struct {
	*Server
	cleanups *cleanup.Runner
	drift    *drift.Runner
}

// Service builds the server, the cleanup passes and the drift passes over the backend (it sets
// cfg.Store, cfg.Cleanups, cfg.Drift, and the passes' store; the drift passes read with cfg's executors
// and report to the server's metrics and webhooks). Passes asked for through the API run at once; the
// schedules wait for StartCleanups.
func (b *Backend) Service(cfg Config, passes cleanup.Config, drifts drift.Config) *Service {
	passes.Store, drifts.Store = b.store, b.store
	runner := cleanup.New(passes)
	cfg.Store, cfg.Cleanups = b.store, runner
	srv := New(cfg)
	if r, ok := cfg.Executor.(drift.NodeReader); ok {
		drifts.Nodes = r
	}
	if cfg.K8s != nil {
		drifts.Workloads = cfg.K8s
	}
	drifts.Metrics, drifts.Notify = srv.metrics, srv.notifier
	dr := drift.New(drifts)
	srv.cfg.Drift = dr
	return &Service{Server: srv, cleanups: runner, drift: dr}
}

// StartCleanups starts the scheduled cleanup and drift passes.
func (s *Service) StartCleanups() {
	s.cleanups.Go()
	s.drift.Go()
}

// StopCleanups ends the schedules and any pass running here (each records why), and waits for them.
func (s *Service) StopCleanups() {
	s.cleanups.Stop()
	s.drift.Stop()
}
