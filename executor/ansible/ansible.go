// Package ansible is the Executor for physical nodes: it runs the bundled playbooks (playbooks/, roles/)
// with ansible-playbook over SSH, one process per batch of nodes, and maps each host's results back to
// that node's status. The node keeps its own record (docs/node-contract.md), so status needs no database.
package ansible

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
)

// Config says where the playbooks are and how to reach the nodes.
type Config struct {
	// PlaybookDir holds ansible.cfg, playbooks/ and roles/ (the bundle, extracted, or a checkout).
	PlaybookDir string
	// AnsiblePlaybook is the ansible-playbook binary; default: found on PATH.
	AnsiblePlaybook string
	// WorkDir gets one short-lived directory per run (inventory, vars); default: the system temp dir.
	WorkDir string
	SSH     SSH
	// BaseDir is where services live on the nodes; default /opt. A clean absolute path other than "/".
	BaseDir string
	// Become runs the playbooks' tasks as root on the nodes through sudo (Ansible's become), for an SSH
	// user that is not root; it needs passwordless sudo there. Passed as nodeexec_become.
	Become bool
	// MaxForks caps how many nodes one ansible-playbook works on at once; default 50.
	MaxForks int
	// LockTTL is the longest a node lock may be held; default 1h. A crashed run frees its locks then.
	LockTTL time.Duration
	// KillGrace is how long a cancelled run gets between SIGTERM and SIGKILL; default 5s.
	KillGrace time.Duration
	// RecoveryTimeout bounds the status pass after a cancelled run; default 2m.
	RecoveryTimeout time.Duration
	// PushMaxBytes bounds a package nodeexec downloads itself for a push deploy; default 1 GiB.
	PushMaxBytes int64
	// DownloadTimeout bounds the package download's connection and each read; default 60s.
	DownloadTimeout time.Duration
	// HealthTimeout bounds one HTTP health check attempt; default 5s.
	HealthTimeout time.Duration
	Logger        logrus.FieldLogger
}

// SSH is how ansible-playbook connects. The key is a path: no secret ever goes into the environment
// or onto a command line.
type SSH struct {
	User           string
	PrivateKeyFile string
	Port           int
	ConnectTimeout time.Duration
	// HostKeyChecking on (the default) uses the system's known_hosts; off is for throwaway test hosts.
	HostKeyChecking *bool
}

// Executor runs the bundled playbooks on physical nodes.
type Executor struct {
	cfg Config
	log logrus.FieldLogger
}

var (
	_ executor.Executor  = (*Executor)(nil)
	_ executor.Recoverer = (*Executor)(nil)
)

// New checks the configuration and finds ansible-playbook.
func New(cfg Config) (*Executor, error) {
	if cfg.PlaybookDir == "" {
		return nil, errors.New("ansible executor: PlaybookDir is required (the directory with ansible.cfg, playbooks/ and roles/)")
	}
	for _, need := range []string{"ansible.cfg", "playbooks/deploy.yml", "roles"} {
		if _, err := os.Stat(filepath.Join(cfg.PlaybookDir, need)); err != nil {
			return nil, fmt.Errorf("ansible executor: %s has no %s: %w", cfg.PlaybookDir, need, err)
		}
	}
	if cfg.BaseDir == "" {
		cfg.BaseDir = "/opt"
	}
	if err := validateBaseDir(cfg.BaseDir); err != nil {
		return nil, err
	}
	if cfg.AnsiblePlaybook == "" {
		cfg.AnsiblePlaybook = "ansible-playbook"
	}
	bin, err := osexec.LookPath(cfg.AnsiblePlaybook)
	if err != nil {
		return nil, fmt.Errorf("ansible executor: %s not found; install it with `apt-get install ansible-core ansible`: %w", cfg.AnsiblePlaybook, err)
	}
	cfg.AnsiblePlaybook = bin
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	if cfg.MaxForks <= 0 {
		cfg.MaxForks = 50
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = time.Hour
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = 5 * time.Second
	}
	if cfg.DownloadTimeout <= 0 {
		cfg.DownloadTimeout = 60 * time.Second
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = 5 * time.Second
	}
	if cfg.RecoveryTimeout <= 0 {
		cfg.RecoveryTimeout = 2 * time.Minute
	}
	if cfg.PushMaxBytes <= 0 {
		cfg.PushMaxBytes = DefaultPushMaxBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = logrus.StandardLogger()
	}
	sweepLeftovers(cfg.Logger)
	return &Executor{cfg: cfg, log: cfg.Logger}, nil
}

// validateBaseDir checks where services live on the nodes: every path the roles touch is under it, and
// the unit they write carries it unquoted (WorkingDirectory, ExecStart).
func validateBaseDir(dir string) error {
	reason := ""
	switch {
	case !filepath.IsAbs(dir):
		reason = "must be an absolute path"
	case strings.ContainsFunc(dir, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }):
		reason = "must not contain whitespace or control characters"
	case slices.Contains(strings.Split(dir, "/"), ".."):
		reason = "must not contain '..'"
	case filepath.Clean(dir) != dir:
		reason = fmt.Sprintf("must be a clean path (%s)", filepath.Clean(dir))
	case dir == "/":
		reason = "must not be / (each service gets <base>/<service>)"
	}
	if reason != "" {
		return fmt.Errorf("ansible executor: BaseDir %q %s", dir, reason)
	}
	return nil
}

// Deploy puts req.Version of req.Service on every node in one ansible-playbook run. A node whose new
// release fails verification is switched back in the same run and reported rolled_back. When ctx is
// cancelled, the whole process group is stopped, locks taken by this run are released, and each node
// reports what it really runs; the error then says it was cancelled. With push delivery, the package is
// downloaded and checked here first, and copied to the nodes (see fetchPackage).
func (e *Executor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	vars := e.commonVars(req.Service, req.DeploymentID)
	vars["nodeexec_version"] = req.Version
	vars["nodeexec_package_url"] = req.Package.URL
	vars["nodeexec_package_sha256"] = strings.ToLower(req.Package.SHA256)
	if req.Delivery == executor.DeliveryPush {
		file, remove, err := e.fetchPackage(ctx, req.Package)
		if err != nil {
			return nil, fmt.Errorf("push delivery: %w", err)
		}
		defer remove()
		vars["nodeexec_delivery"] = string(executor.DeliveryPush)
		vars["nodeexec_package_file"] = file
	}
	healthVars(vars, req.Health)
	if req.Unit.Exec != "" {
		vars["nodeexec_exec"] = req.Unit.Exec
	}
	if req.Unit.Args != "" {
		vars["nodeexec_exec_args"] = req.Unit.Args
	}
	if len(req.Unit.Env) > 0 {
		vars["nodeexec_service_env"] = req.Unit.Env
	}
	log := e.log.WithFields(logrus.Fields{"deployment_id": req.DeploymentID, "service": req.Service, "version": req.Version})
	return e.write(ctx, log, opDeploy, "deploy.yml", vars, req.Service, req.Nodes, req.Progress)
}

// Rollback switches every node back to its previous release, or to req.ToVersion when set.
func (e *Executor) Rollback(ctx context.Context, req executor.RollbackRequest) ([]executor.NodeResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	vars := e.commonVars(req.Service, req.DeploymentID)
	if req.ToVersion != "" {
		vars["nodeexec_rollback_to"] = req.ToVersion
	}
	healthVars(vars, req.Health)
	log := e.log.WithFields(logrus.Fields{"deployment_id": req.DeploymentID, "service": req.Service, "version": req.ToVersion})
	return e.write(ctx, log, opRollback, "rollback.yml", vars, req.Service, req.Nodes, req.Progress)
}

// CleanupRequest asks each node to keep only its newest Keep releases of Service.
type CleanupRequest struct {
	// ID names the cleanup pass (a store.Cleanup's id) in the node locks it takes; empty: an ad-hoc run.
	ID      string
	Service string
	Keep    int
	Nodes   []executor.Node
}

// Validate checks a cleanup request before anything runs.
func (r CleanupRequest) Validate() error {
	if err := executor.ValidateService(r.Service); err != nil {
		return err
	}
	if r.Keep < 2 {
		return &executor.ValidationError{Field: "keep", Reason: "must be at least 2 (current and previous are always kept)"}
	}
	return executor.ValidateNodes(r.Nodes)
}

// CleanupResult is one node after a cleanup: its status, the releases left on it and those removed.
type CleanupResult struct {
	executor.NodeResult
	Kept    []string `json:"kept"`
	Removed []string `json:"removed"`
	// Error says why the cleanup did not go through on this node ("" when it did). The status's own
	// LastError is the node's record (a past deploy's error), not the cleanup's.
	Error string `json:"error,omitempty"`
}

// Cleanup removes old releases on every node, by the node's own deploy record, under the node lock.
// Current and previous are always kept.
func (e *Executor) Cleanup(ctx context.Context, req CleanupRequest) ([]CleanupResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	id := req.ID
	if id == "" {
		id = "cleanup"
	}
	vars := e.commonVars(req.Service, id)
	vars["nodeexec_keep"] = req.Keep
	log := e.log.WithFields(logrus.Fields{"service": req.Service, "keep": req.Keep, "cleanup_id": req.ID})
	log.WithField("nodes", len(req.Nodes)).Info("running cleanup.yml")
	res, stderr, err := e.run(ctx, []string{"cleanup.yml"}, vars, req.Nodes, nil)
	if ctx.Err() != nil {
		read, err := e.afterCancel(ctx, log, req.Service, vars["nodeexec_lock_holder"].(string), req.Nodes, nil)
		if err != nil {
			return nil, err
		}
		out := make([]CleanupResult, len(read))
		for i, r := range read {
			out[i] = CleanupResult{NodeResult: r, Error: r.LastError}
		}
		return out, nil
	}
	if res == nil && err != nil {
		return nil, err
	}
	return cleanupResults(res, req.Service, req.Nodes, stderr), nil
}

// Status asks each node what it runs, from the node's own record; it takes no lock and changes nothing.
func (e *Executor) Status(ctx context.Context, req executor.StatusRequest) ([]executor.NodeResult, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	res, stderr, err := e.run(ctx, []string{"status.yml"}, e.nodeVars(req.Service), req.Nodes, nil)
	if res == nil && err != nil {
		return nil, err
	}
	return nodeResults(res, opStatus, req.Service, req.Nodes, stderr), nil
}

// write runs a playbook that changes nodes under their locks, and cleans up after a cancellation.
func (e *Executor) write(ctx context.Context, log logrus.FieldLogger, op operation, book string, vars map[string]any, service string, nodes []executor.Node, progress executor.ProgressFunc) ([]executor.NodeResult, error) {
	holder := vars["nodeexec_lock_holder"].(string)
	log.WithField("nodes", len(nodes)).Infof("running %s", book)
	res, stderr, err := e.run(ctx, []string{book}, vars, nodes, progress)
	if ctx.Err() != nil {
		return e.afterCancel(ctx, log, service, holder, nodes, progress)
	}
	if res == nil && err != nil {
		return nil, err
	}
	results := nodeResults(res, op, service, nodes, stderr)
	for _, r := range results {
		entry := log.WithFields(logrus.Fields{"node": r.Host, "state": r.State, "current": r.CurrentVersion, "changed": r.Changed})
		if r.LastError != "" {
			entry.WithField("error", r.LastError).Warn("node finished with an error")
		} else {
			entry.Info("node finished")
		}
	}
	return results, nil
}

// afterCancelStep marks the steps of the run that follows a cancel (releasing the locks, reading the
// nodes back), so that they never read as the cancelled operation's own.
const afterCancelStep = "After the cancel: "

// afterCancel runs once the cancelled run's process group is gone: it releases the locks this run holds
// and asks every node what it really runs, so each reports the release it is on and says which. Its
// steps stream to progress (when set) marked as after the cancel, and are then not in the results.
func (e *Executor) afterCancel(ctx context.Context, log logrus.FieldLogger, service, holder string, nodes []executor.Node, progress executor.ProgressFunc) ([]executor.NodeResult, error) {
	cause := ctx.Err()
	// Why it was cancelled, when whoever cancelled said so: the deploy timeout, a shutdown, an operator.
	why := context.Cause(ctx)
	cancelled := fmt.Errorf("cancelled: %w", cause)
	if why != cause {
		cancelled = fmt.Errorf("cancelled (%v): %w", why, cause)
	}
	log.WithField("cause", why).Warn("run cancelled; releasing its locks and reading each node's state")
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.RecoveryTimeout)
	defer cancel()
	var readBack executor.ProgressFunc
	if progress != nil {
		readBack = func(host string, st executor.Step) {
			st.Name = afterCancelStep + st.Name
			progress(host, st)
		}
	}
	results, unread, err := e.unlockAndRead(rctx, service, holder, nodes, readBack)
	if err != nil {
		return nil, fmt.Errorf("cancelled (%v), and reading the nodes' state afterwards failed: %w", why, err)
	}
	for i := range results {
		r := &results[i]
		r.State = executor.StateFailed
		for j := range r.Steps {
			r.Steps[j].Name = afterCancelStep + r.Steps[j].Name
		}
		if progress != nil {
			r.Steps = nil // streamed as they ran; the count of the cancelled run's steps must not skip them
		}
		if reason, ok := unread[r.Host]; ok {
			// Never a guess: a node that could not be read is said to be unknown, and why.
			r.LastError = fmt.Sprintf("cancelled (%v); unknown: could not read the node after the cancel: %s", why, reason)
			log.WithFields(logrus.Fields{"node": r.Host, "error": reason}).Warn("node state after cancel: could not read it")
			continue
		}
		r.LastError = fmt.Sprintf("cancelled (%v); the node runs %s", why, runningText(r.RunningVersion))
		log.WithFields(logrus.Fields{"node": r.Host, "running": r.RunningVersion, "current": r.CurrentVersion}).Warn("node state after cancel")
	}
	return results, cancelled
}

// Recover releases the locks a lost run of req.DeploymentID still holds (the holder text is derived from
// the deployment id, so a new process can name it) and reports what each node runs, from its own record.
func (e *Executor) Recover(ctx context.Context, req executor.RecoverRequest) ([]executor.NodeResult, error) {
	if err := (executor.StatusRequest{Service: req.Service, Nodes: req.Nodes}).Validate(); err != nil {
		return nil, err
	}
	if req.DeploymentID == "" {
		return nil, &executor.ValidationError{Field: "deployment_id", Reason: "is required to name the lost run's locks"}
	}
	e.log.WithFields(logrus.Fields{"deployment_id": req.DeploymentID, "service": req.Service, "nodes": len(req.Nodes)}).Warn("recovering a lost run: releasing its locks and reading each node")
	results, _, err := e.unlockAndRead(ctx, req.Service, lockHolder(req.DeploymentID), req.Nodes, nil)
	return results, err
}

// unlockAndRead releases holder's locks and reads each node's own record. unread names the nodes whose
// record did not come back, with why: their results say nothing of what they run.
func (e *Executor) unlockAndRead(ctx context.Context, service, holder string, nodes []executor.Node, progress executor.ProgressFunc) (results []executor.NodeResult, unread map[string]string, err error) {
	vars := e.nodeVars(service)
	vars["nodeexec_unlock_holder"] = holder
	res, stderr, err := e.run(ctx, []string{"unlock.yml", "status.yml"}, vars, nodes, progress)
	if res == nil && err != nil {
		return nil, nil, err
	}
	results = nodeResults(res, opStatus, service, nodes, stderr)
	outcomes := collect(res)
	unread = map[string]string{}
	for _, r := range results {
		if o := outcomes[r.Host]; o == nil || o.report == nil {
			unread[r.Host] = cmp.Or(r.LastError, "the node sent no record")
		}
	}
	return results, unread, nil
}

func runningText(v string) string {
	if v == "" {
		return "nothing (the unit is not running)"
	}
	return v
}

// lockHolder is the text a deployment's node locks carry: derived from the deployment id alone, so the
// server can release them after a crash. Runs without an id get a random one.
func lockHolder(deploymentID string) string {
	switch deploymentID {
	case "":
		return "nodeexec adhoc run " + randomID()
	case "cleanup":
		return "nodeexec cleanup run " + randomID()
	}
	if strings.HasPrefix(deploymentID, "c-") { // a cleanup pass of the server (store.IsCleanupID)
		return "nodeexec cleanup pass " + deploymentID
	}
	return "nodeexec deployment " + deploymentID
}
