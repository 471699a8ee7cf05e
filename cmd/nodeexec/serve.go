package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/cleanup"
	"github.com/nodeexec/nodeexec/config"
	"github.com/nodeexec/nodeexec/console"
	"github.com/nodeexec/nodeexec/drift"
	"github.com/nodeexec/nodeexec/engine"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/executor/k8s"
	"github.com/nodeexec/nodeexec/notify"
	"github.com/nodeexec/nodeexec/server"
)

// serveFlags are serve's flags, bound to its configuration (read from file and environment first).
func serveFlags(c *common, args []string) *flag.FlagSet {
	c.load(args)
	cfg := &c.cfg
	fs := flag.NewFlagSet("nodeexec serve", flag.ContinueOnError)
	sshFlags(fs, c)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve the API on")
	fs.StringVar(&cfg.Database.MongoURI, "mongo-uri", cfg.Database.MongoURI, "MongoDB URI (default: the embedded database)")
	fs.StringVar(&cfg.Database.Name, "database", cfg.Database.Name, "database name")
	fs.StringVar(&cfg.Database.DataDir, "data-dir", cfg.Database.DataDir, "where the embedded database keeps its data")
	fs.StringVar(&cfg.TokensFile, "tokens-file", cfg.TokensFile, "file of API tokens and their scopes (see README); none: loopback only, no auth")
	fs.IntVar(&cfg.MaxConcurrent, "max-concurrent", cfg.MaxConcurrent, "deployments that run at once; more wait their turn")
	fs.StringVar(&cfg.Kubernetes.Kubeconfig, "kubeconfig", cfg.Kubernetes.Kubeconfig, "kubeconfig of the cluster for platform k8s (inside a pod: its service account)")
	fs.Var(&cfg.ShutdownGrace, "shutdown-grace", "on SIGTERM, how long running deployments may go on before they are cancelled (a second signal: at once)")
	fs.StringVar(&cfg.Cleanup.Schedule, "cleanup-schedule", cfg.Cleanup.Schedule, `when cleanup passes run, a cron spec like "0 3 * * *" (empty: only on request)`)
	fs.StringVar(&cfg.Drift.Schedule, "drift-schedule", cfg.Drift.Schedule, `when drift passes run, a cron spec like "*/30 * * * *" (empty: only on request)`)
	fs.StringVar(&cfg.Replica.Name, "replica-name", cfg.Replica.Name, `this replica's name among replicas on one database, kept across restarts (default "<hostname>/<listen>")`)
	fs.Var(&cfg.Replica.Lease, "replica-lease", "a replica silent this long is dead: another finishes its deployments in flight")
	fs.IntVar(&cfg.Cleanup.Keep, "cleanup-keep", cfg.Cleanup.Keep, "releases each node keeps after a cleanup pass (at least 2)")
	return fs
}

// serveInputs is what serve reads, once, from the files its configuration names: the API tokens, the
// webhooks' secrets, and the cluster its kubeconfig reaches (nil: platform k8s is off).
type serveInputs struct {
	tokens []server.Token
	hooks  notify.Config
	k8s    executor.Executor
}

// checkServe parses serve's flags over its configuration and makes every check serve makes before it
// opens anything: the settings (config.Check), then what the files they name hold, and whether the
// cluster the kubeconfig names answers. config check runs exactly this, so the two give the same
// verdict on every configuration. A configuration with problems is a ValidationError naming each (exit
// status 2). log is what the Kubernetes executor logs to.
func checkServe(ctx context.Context, c *common, fs *flag.FlagSet, args []string, log logrus.FieldLogger) (serveInputs, error) {
	var in serveInputs
	if err := c.parse(fs, args); err != nil {
		return in, err
	}
	cfg := c.cfg
	problems := cfg.Check()
	named := func(prefix string) bool {
		for _, p := range problems {
			if strings.HasPrefix(p.Setting, prefix) {
				return true
			}
		}
		return false
	}
	tokens, err := server.LoadTokens(cfg.TokensFile)
	switch {
	case err != nil && !named("tokens_file"): // one that cannot be read is named already
		problems = append(problems, config.Problem{Setting: "tokens_file", Reason: err.Error()})
	case err == nil && cfg.TokensFile != "" && len(tokens) == 0 && !config.Loopback(cfg.Listen):
		problems = append(problems, config.Problem{Setting: "tokens_file", Reason: cfg.TokensFile +
			" holds no tokens: serving on " + cfg.Listen + " needs at least one (or bind to 127.0.0.1)"})
	}
	hooks, err := cfg.Notify() // the webhooks' secrets, read once at start
	if err != nil && !named("webhooks") {
		problems = append(problems, config.Problem{Setting: "webhooks", Reason: err.Error()})
	}
	var kexec executor.Executor
	if (cfg.Kubernetes.Kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "") && !named("kubernetes") {
		k, err := k8s.Connect(cfg.Kubernetes.Kubeconfig, k8s.Config{Logger: log, Retry: cfg.Retry.Policy()})
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err = k.Ping(pctx)
			cancel()
		}
		if err != nil {
			problems = append(problems, config.Problem{Setting: "kubernetes.kubeconfig", Reason: "platform k8s: " + err.Error() + " (check --kubeconfig)"})
		} else {
			kexec = k
		}
	}
	if len(problems) > 0 {
		lines := make([]string, len(problems))
		for i, p := range problems {
			lines[i] = p.String()
		}
		return in, &executor.ValidationError{Field: "configuration", Reason: strings.Join(lines, "; ")}
	}
	return serveInputs{tokens: tokens, hooks: hooks, k8s: kexec}, nil
}

// configCmd: `nodeexec config check [--config F] [serve's flags]` checks the configuration serve would
// run with and prints it, secrets masked. A file that does not parse is only named, with why: what was
// read of it is not the configuration.
func configCmd(args []string) (bool, error) {
	if len(args) == 0 || args[0] != "check" {
		return false, wantSubcommand("config", args)
	}
	var c common
	fs := serveFlags(&c, args[1:])
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	_, err := checkServe(context.Background(), &c, fs, args[1:], quiet)
	if errors.Is(err, errUsage) || c.loadErr != nil || (err != nil && !executor.IsValidation(err)) {
		return false, err
	}
	fmt.Print(c.cfg.Masked())
	if err != nil {
		return false, err
	}
	fmt.Fprintln(os.Stderr, "nodeexec config: ok")
	return true, nil
}

// warnAtStart says what serve accepts but an operator should know: no authentication (loopback only),
// no SSH key of its own (ssh falls back to its defaults: ~/.ssh/id_*, an agent).
func warnAtStart(log logrus.FieldLogger, cfg config.Config, in serveInputs) {
	if len(in.tokens) == 0 {
		log.WithField("listen", cfg.Listen).Warn("no API tokens configured: serving without authentication, on loopback only")
	}
	if cfg.Nodes.SSHKey == "" {
		user := cfg.Nodes.SSHUser
		if user == "" {
			user = "(ssh's default: the user nodeexec runs as)"
		}
		log.WithFields(logrus.Fields{"ssh_user": user, "ssh_key": "", "setting": "--ssh-key, NODEEXEC_SSH_KEY, nodes.ssh_key"}).
			Warn("no SSH key configured: nodes are reached with ssh's default keys (~/.ssh/id_*, an agent) if any; set --ssh-key")
	}
}

// physicalExecutor is what serve needs of the executor for physical nodes: deploys, and cleanup passes.
type physicalExecutor interface {
	executor.Executor
	cleanup.Cleaner
}

// occupancyHook is nil but in test builds (-tags occupancy), where it may return an executor that
// stands in for Ansible (nil: the Ansible one).
var occupancyHook func(log logrus.FieldLogger) (physicalExecutor, error)

// serveCmd runs the HTTP API. Without a MongoDB URI it starts the embedded database (FerretDB on
// SQLite under the data dir, loopback only), so one command runs the whole service.
func serveCmd(ctx context.Context, args []string) (bool, error) {
	var c common
	fs := serveFlags(&c, args)
	log := logrus.New()
	log.SetFormatter(&logrus.JSONFormatter{})
	log.SetOutput(os.Stderr)
	in, err := checkServe(ctx, &c, fs, args, log)
	if err != nil {
		return false, err
	}
	cfg, tokens, hooks, kexec := c.cfg, in.tokens, in.hooks, in.k8s
	grace := time.Duration(cfg.ShutdownGrace)
	warnAtStart(log, cfg, in)
	if kexec != nil {
		log.Info("platform k8s enabled")
	}

	backend, err := server.OpenBackend(ctx, server.Database{MongoURI: cfg.Database.MongoURI, Name: cfg.Database.Name, DataDir: cfg.Database.DataDir}, log)
	if err != nil {
		return false, err
	}
	defer backend.Close()

	var exec physicalExecutor
	if occupancyHook != nil { // test builds only (-tags occupancy): occupancy.go
		exec, err = occupancyHook(log)
	}
	if exec == nil && err == nil {
		exec, err = c.executorLogging(log)
	}
	if err != nil {
		return false, err
	}
	// Cleanup passes: on the schedule (if any) and on request, one at a time across the replicas.
	schedule, _ := config.ParseSchedule(cfg.Cleanup.Schedule) // checked with the configuration
	driftSchedule, _ := config.ParseSchedule(cfg.Drift.Schedule)
	srv := backend.Service(server.Config{Executor: exec, K8s: kexec, Logger: log, MaxConcurrent: cfg.MaxConcurrent, Tokens: tokens,
		Retry: cfg.Retry.Policy(), DeployTimeout: time.Duration(cfg.Timeouts.Deploy), Notify: hooks,
		Commands: cfg.Adhoc.Commands, CommandMaxOutput: cfg.Adhoc.MaxOutput, CommandTimeout: time.Duration(cfg.Adhoc.Timeout),
		Replica: engine.ReplicaConfig{Name: cfg.ReplicaName(), Lease: time.Duration(cfg.Replica.Lease)}},
		cleanup.Config{Cleaner: exec, Schedule: schedule, Keep: cfg.Cleanup.Keep, PerService: cfg.Cleanup.PerService,
			Retention: time.Duration(cfg.Cleanup.Retention), BatchSize: cfg.Cleanup.BatchSize, Logger: log},
		drift.Config{Schedule: driftSchedule, BatchSize: cfg.Drift.BatchSize, Logger: log})
	defer srv.StopCleanups()
	// Deployments a previous process left in flight get their true end before anything new is taken.
	if err := srv.Reconcile(ctx); err != nil {
		log.WithError(err).Error("reconciling deployments left in flight failed; they stay in flight and are tried again at the next start")
	}
	srv.WatchReplicas()

	srv.StartCleanups()
	if schedule != nil {
		log.WithFields(logrus.Fields{"schedule": cfg.Cleanup.Schedule, "next": schedule.Next(time.Now())}).Info("cleanup passes scheduled")
	}
	if driftSchedule != nil {
		log.WithFields(logrus.Fields{"schedule": cfg.Drift.Schedule, "next": driftSchedule.Next(time.Now())}).Info("drift passes scheduled")
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return false, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	// The web console (/ui/) beside the API: static files, which call the API with the operator's token.
	hs := &http.Server{Handler: console.Mount(srv.Handler()), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "console": "http://" + ln.Addr().String() + console.Prefix}).Info("nodeexec serving")
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
	srv.Drain(dctx, grace)
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

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
