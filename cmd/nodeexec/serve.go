package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/k8s"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store"
)

// serveCmd runs the HTTP API. Without a MongoDB URI it starts the embedded database (FerretDB on
// SQLite under --data-dir, loopback only), so one command runs the whole service.
func serveCmd(ctx context.Context, args []string) (bool, error) {
	var c common
	fs := flag.NewFlagSet("nodeexec serve", flag.ContinueOnError)
	sshFlags(fs, &c)
	listen := fs.String("listen", envOr("NODEEXEC_LISTEN", "127.0.0.1:8080"), "address to serve the API on")
	mongoURI := fs.String("mongo-uri", os.Getenv("NODEEXEC_MONGO_URI"), "MongoDB URI (default: the embedded database)")
	database := fs.String("database", envOr("NODEEXEC_DATABASE", "nodeexec"), "database name")
	dataDir := fs.String("data-dir", envOr("NODEEXEC_DATA_DIR", defaultDataDir()), "where the embedded database keeps its data")
	tokensFile := fs.String("tokens-file", os.Getenv("NODEEXEC_TOKENS_FILE"), "file of API tokens and their scopes (see README); none: loopback only, no auth")
	maxConcurrent := fs.Int("max-concurrent", 4, "deployments that run at once; more wait their turn")
	kubeconfig := fs.String("kubeconfig", os.Getenv("NODEEXEC_KUBECONFIG"), "kubeconfig of the cluster for platform k8s (inside a pod: its service account)")
	grace := fs.Duration("shutdown-grace", envDuration("NODEEXEC_SHUTDOWN_GRACE", time.Minute), "on SIGTERM, how long running deployments may go on before they are cancelled (a second signal: at once)")
	if err := c.parse(fs, args); err != nil {
		return false, err
	}
	log := logrus.New()
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetOutput(os.Stderr)

	tokens, err := server.LoadTokens(*tokensFile)
	if err != nil {
		return false, err
	}
	if len(tokens) == 0 {
		if !loopback(*listen) {
			return false, fmt.Errorf("refusing to serve on %s without API tokens: bind to 127.0.0.1 or pass --tokens-file", *listen)
		}
		log.WithField("listen", *listen).Warn("no API tokens configured: serving without authentication, on loopback only")
	}

	var st *store.Store
	if *mongoURI == "" {
		db, err := store.StartEmbedded(ctx, *dataDir)
		if err != nil {
			return false, err
		}
		defer db.Stop()
		if st, err = db.Open(ctx, *database); err != nil {
			return false, err
		}
		log.WithField("data_dir", *dataDir).Info("embedded database started (FerretDB on SQLite, loopback only)")
	} else if st, err = store.Open(ctx, *mongoURI, *database); err != nil {
		return false, err
	}
	defer st.Close(context.WithoutCancel(ctx))

	exec, err := c.executorLogging(log)
	if err != nil {
		return false, err
	}
	var kexec executor.Executor
	if *kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		k, err := k8s.Connect(*kubeconfig, k8s.Config{Logger: log})
		if err != nil {
			return false, err
		}
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err = k.Ping(pctx)
		cancel()
		if err != nil {
			return false, fmt.Errorf("platform k8s: %w (check --kubeconfig)", err)
		}
		kexec = k
		log.Info("platform k8s enabled")
	}
	srv := server.New(server.Config{Executor: exec, K8s: kexec, Store: st, Logger: log, MaxConcurrent: *maxConcurrent, Tokens: tokens})
	// Deployments a previous process left in flight get their true end before anything new is taken.
	if err := srv.Reconcile(ctx); err != nil {
		log.WithError(err).Error("reconciling deployments left in flight failed; they stay in flight and are tried again at the next start")
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return false, fmt.Errorf("listen on %s: %w", *listen, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.WithField("listen", ln.Addr().String()).Info("nodeexec serving")
	select {
	case err := <-errc:
		return false, err
	case <-ctx.Done():
	}
	// Drain: no new deployments; the running ones get the grace period (a second signal cuts it short);
	// reads and event streams are served until they end.
	log.WithField("grace", grace.String()).Info("shutting down: taking no new deployments; running ones may finish within the grace period")
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	dctx, cut := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-again:
			log.Warn("second signal: cancelling the running deployments now")
			cut()
		case <-dctx.Done():
		}
	}()
	srv.Drain(dctx, *grace)
	cut()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	srv.Shutdown()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return false, err
	}
	return true, nil
}

// envDuration reads a duration ("90s", "2m") from the environment; def when unset or unreadable.
func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d >= 0 {
		return d
	}
	return def
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/nodeexec"
	}
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "nodeexec", "data")
	}
	return filepath.Join(os.TempDir(), "nodeexec-data")
}

// loopback reports whether addr binds only to a loopback address.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
