// Package config is nodeexec's configuration: one YAML file, overridden by environment variables,
// overridden by command-line flags. It knows the settings' names, defaults and rules, and how to show
// them with secrets masked; the commands bind their flags to it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/retry"
)

// Config is everything `nodeexec serve` (and, for reaching nodes, `nodeexec direct`) can be told.
type Config struct {
	// Listen is the API's address.
	Listen string `yaml:"listen"`
	// TokensFile lists the API tokens and their scopes; none means no auth, on loopback only.
	TokensFile string `yaml:"tokens_file"`
	// MaxConcurrent deployments run at once; more wait their turn.
	MaxConcurrent int `yaml:"max_concurrent"`
	// ShutdownGrace is how long running deployments may go on after SIGTERM.
	ShutdownGrace Duration   `yaml:"shutdown_grace"`
	Database      Database   `yaml:"database"`
	Nodes         Nodes      `yaml:"nodes"`
	Kubernetes    Kubernetes `yaml:"kubernetes"`
	Cleanup       Cleanup    `yaml:"cleanup"`
	Drift         Drift      `yaml:"drift"`
	Retry         Retry      `yaml:"retry"`
	Timeouts      Timeouts   `yaml:"timeouts"`
	Push          Push       `yaml:"push"`
	Adhoc         Adhoc      `yaml:"adhoc"`
	Replica       Replica    `yaml:"replica"`
	// Webhooks are told how each deployment ended (see Webhook).
	Webhooks []Webhook `yaml:"webhooks"`
}

// Retry is how transient faults are tried again, with exponential backoff: a node that could not be
// reached, a Kubernetes API server that did not answer or answered 5xx/429. Nothing else is retried.
type Retry struct {
	MaxRetries   int      `yaml:"max_retries"`
	InitialDelay Duration `yaml:"initial_delay"`
	MaxDelay     Duration `yaml:"max_delay"`
	Factor       float64  `yaml:"factor"`
}

// Policy is the retry settings as a retry.Policy.
func (r Retry) Policy() retry.Policy {
	return retry.Policy{MaxRetries: r.MaxRetries, InitialDelay: time.Duration(r.InitialDelay), MaxDelay: time.Duration(r.MaxDelay), Factor: r.Factor}
}

// Timeouts bound the steps of a deploy.
type Timeouts struct {
	// Download bounds the package download's connection and each read on a node.
	Download Duration `yaml:"download"`
	// Deploy bounds one executor run: a batch's ansible-playbook, or a Kubernetes rollout.
	Deploy Duration `yaml:"deploy"`
	// HealthCheck bounds one HTTP health check attempt on a node.
	HealthCheck Duration `yaml:"health_check"`
}

// Push is the push delivery of packages (deploys with "delivery": "push"): nodeexec downloads the
// package itself, checks its SHA256, and copies it to the nodes.
type Push struct {
	// MaxBytes bounds such a download; a larger package is refused before any node is touched.
	MaxBytes int64 `yaml:"max_bytes"`
}

// Adhoc is what admin tokens may run on nodes: only the commands named here (POST /api/v1/adhoc).
type Adhoc struct {
	// Commands maps a name to the argv it runs (a program and its arguments; never through a shell).
	// An argument that is exactly "{service}" is the request's service name; no other placeholder.
	Commands executor.AllowList `yaml:"commands"`
	// MaxOutput bounds the stdout, and the stderr, kept of each node (bytes).
	MaxOutput int `yaml:"max_output"`
	// Timeout bounds the command on each node.
	Timeout Duration `yaml:"timeout"`
}

func (a Adhoc) check() []Problem {
	var out []Problem
	for _, err := range a.Commands.Check() {
		out = append(out, Problem{"adhoc.commands", err.Error()})
	}
	if a.MaxOutput < 1024 || a.MaxOutput > 4<<20 {
		out = append(out, Problem{"adhoc.max_output", fmt.Sprintf("want 1024 to %d bytes, not %d", 4<<20, a.MaxOutput)})
	}
	if a.Timeout < Duration(time.Second) || a.Timeout > Duration(time.Hour) {
		out = append(out, Problem{"adhoc.timeout", fmt.Sprintf("want 1s to 1h, not %s", time.Duration(a.Timeout))})
	}
	return out
}

// Database says where state is kept.
type Database struct {
	// MongoURI is an external MongoDB; empty: the embedded one, under DataDir.
	MongoURI string `yaml:"mongo_uri"`
	Name     string `yaml:"name"`
	DataDir  string `yaml:"data_dir"`
}

// Nodes says how physical nodes are reached and where services live on them.
type Nodes struct {
	SSHUser string `yaml:"ssh_user"`
	SSHKey  string `yaml:"ssh_key"`
	SSHPort int    `yaml:"ssh_port"`
	// InsecureHostKeys turns host key checking off: for throwaway test hosts only.
	InsecureHostKeys bool `yaml:"insecure_host_keys"`
	// Become runs the tasks as root with sudo, for an SSH user that is not root.
	Become  bool   `yaml:"become"`
	BaseDir string `yaml:"base_dir"`
	// PlaybookDir runs playbooks/ and roles/ from there instead of the bundled ones.
	PlaybookDir string `yaml:"playbook_dir"`
}

// Kubernetes enables platform k8s.
type Kubernetes struct {
	// Kubeconfig of the cluster; empty: off, unless nodeexec runs in a pod (its service account).
	Kubeconfig string `yaml:"kubeconfig"`
}

// Duration is a time.Duration written as "90s" or "2m".
type Duration time.Duration

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 90s or 2m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Default is the configuration with nothing set.
func Default() Config {
	return Config{
		Listen: "127.0.0.1:8080", MaxConcurrent: 4, ShutdownGrace: Duration(time.Minute),
		Database: Database{Name: "nodeexec", DataDir: DefaultDataDir()},
		Nodes:    Nodes{BaseDir: "/opt"},
		Cleanup:  Cleanup{Keep: 5, PerService: map[string]int{}, Retention: Duration(30 * 24 * time.Hour), BatchSize: 20},
		Drift:    Drift{BatchSize: 20},
		Retry: Retry{MaxRetries: retry.Default.MaxRetries, InitialDelay: Duration(retry.Default.InitialDelay),
			MaxDelay: Duration(retry.Default.MaxDelay), Factor: retry.Default.Factor},
		Timeouts: Timeouts{Download: Duration(time.Minute), Deploy: Duration(30 * time.Minute), HealthCheck: Duration(5 * time.Second)},
		Push:     Push{MaxBytes: 1 << 30},
		Adhoc:    Adhoc{Commands: executor.AllowList{}, MaxOutput: 64 << 10, Timeout: Duration(time.Minute)},
		Webhooks: []Webhook{},
		Replica:  Replica{Lease: Duration(DefaultReplicaLease)},
	}
}

// DefaultDataDir is where the embedded database keeps its data: /var/lib/nodeexec for root, else under
// the user's config directory.
func DefaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/nodeexec"
	}
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "nodeexec", "data")
	}
	return filepath.Join(os.TempDir(), "nodeexec-data")
}

// Load reads the defaults, then the file at path (none when empty), then the environment.
func Load(path string, env func(string) string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	return cfg, cfg.applyEnv(env)
}

// Env lists the environment variables and what they set.
var Env = []struct{ Name, Setting string }{
	{"NODEEXEC_LISTEN", "listen"},
	{"NODEEXEC_TOKENS_FILE", "tokens_file"},
	{"NODEEXEC_MAX_CONCURRENT", "max_concurrent"},
	{"NODEEXEC_SHUTDOWN_GRACE", "shutdown_grace"},
	{"NODEEXEC_MONGO_URI", "database.mongo_uri"},
	{"NODEEXEC_DATABASE", "database.name"},
	{"NODEEXEC_DATA_DIR", "database.data_dir"},
	{"NODEEXEC_SSH_USER", "nodes.ssh_user"},
	{"NODEEXEC_SSH_KEY", "nodes.ssh_key"},
	{"NODEEXEC_SSH_PORT", "nodes.ssh_port"},
	{"NODEEXEC_INSECURE_HOST_KEYS", "nodes.insecure_host_keys"},
	{"NODEEXEC_BECOME", "nodes.become"},
	{"NODEEXEC_BASE_DIR", "nodes.base_dir"},
	{"NODEEXEC_PLAYBOOK_DIR", "nodes.playbook_dir"},
	{"NODEEXEC_KUBECONFIG", "kubernetes.kubeconfig"},
	{"NODEEXEC_CLEANUP_SCHEDULE", "cleanup.schedule"},
	{"NODEEXEC_CLEANUP_KEEP", "cleanup.keep"},
	{"NODEEXEC_CLEANUP_RETENTION", "cleanup.retention"},
	{"NODEEXEC_CLEANUP_BATCH_SIZE", "cleanup.batch_size"},
	{"NODEEXEC_DRIFT_SCHEDULE", "drift.schedule"},
	{"NODEEXEC_DRIFT_BATCH_SIZE", "drift.batch_size"},
	{"NODEEXEC_RETRY_MAX", "retry.max_retries"},
	{"NODEEXEC_DEPLOY_TIMEOUT", "timeouts.deploy"},
	{"NODEEXEC_REPLICA_NAME", "replica.name"},
	{"NODEEXEC_REPLICA_LEASE", "replica.lease"},
}

func (c *Config) applyEnv(env func(string) string) error {
	for _, e := range Env {
		v := env(e.Name)
		if v == "" {
			continue
		}
		if err := c.set(e.Setting, v); err != nil {
			return fmt.Errorf("%s: %w", e.Name, err)
		}
	}
	return nil
}

// set puts a value, as text, into the setting of that name.
func (c *Config) set(setting, v string) error {
	str := map[string]*string{"listen": &c.Listen, "tokens_file": &c.TokensFile, "database.mongo_uri": &c.Database.MongoURI,
		"database.name": &c.Database.Name, "database.data_dir": &c.Database.DataDir, "nodes.ssh_user": &c.Nodes.SSHUser,
		"nodes.ssh_key": &c.Nodes.SSHKey, "nodes.base_dir": &c.Nodes.BaseDir, "nodes.playbook_dir": &c.Nodes.PlaybookDir,
		"kubernetes.kubeconfig": &c.Kubernetes.Kubeconfig, "cleanup.schedule": &c.Cleanup.Schedule,
		"drift.schedule": &c.Drift.Schedule, "replica.name": &c.Replica.Name}
	num := map[string]*int{"max_concurrent": &c.MaxConcurrent, "nodes.ssh_port": &c.Nodes.SSHPort, "retry.max_retries": &c.Retry.MaxRetries, "cleanup.keep": &c.Cleanup.Keep, "cleanup.batch_size": &c.Cleanup.BatchSize,
		"drift.batch_size": &c.Drift.BatchSize}
	dur := map[string]*Duration{"shutdown_grace": &c.ShutdownGrace, "timeouts.deploy": &c.Timeouts.Deploy, "cleanup.retention": &c.Cleanup.Retention,
		"replica.lease": &c.Replica.Lease}
	flag := map[string]*bool{"nodes.insecure_host_keys": &c.Nodes.InsecureHostKeys, "nodes.become": &c.Nodes.Become}
	switch {
	case str[setting] != nil:
		*str[setting] = v
	case num[setting] != nil:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v)
		}
		*num[setting] = n
	case flag[setting] != nil:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true/false (or 1/0)", v)
		}
		*flag[setting] = b
	case dur[setting] != nil:
		return dur[setting].Set(v)
	default:
		return fmt.Errorf("no setting %q", setting)
	}
	return nil
}

// Problem is one thing wrong with a configuration.
type Problem struct{ Setting, Reason string }

func (p Problem) String() string { return p.Setting + ": " + p.Reason }

// Check lists what is wrong; files it names must exist and be readable.
func (c Config) Check() []Problem {
	var out []Problem
	bad := func(setting, format string, a ...any) { out = append(out, Problem{setting, fmt.Sprintf(format, a...)}) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port", c.Listen)
	} else if c.TokensFile == "" && !Loopback(c.Listen) {
		bad("listen", "refusing to serve on %s without API tokens: bind to 127.0.0.1 or pass --tokens-file (tokens_file)", c.Listen)
	}
	if c.MaxConcurrent < 1 || c.MaxConcurrent > 1000 {
		bad("max_concurrent", "want 1 to 1000, not %d", c.MaxConcurrent)
	}
	if c.ShutdownGrace < 0 {
		bad("shutdown_grace", "must not be negative")
	}
	if err := c.Retry.Policy().Check(); err != nil {
		bad("retry", "%v", err)
	}
	for setting, d := range map[string]Duration{"timeouts.download": c.Timeouts.Download, "timeouts.deploy": c.Timeouts.Deploy, "timeouts.health_check": c.Timeouts.HealthCheck} {
		if d < Duration(time.Second) {
			bad(setting, "want at least 1s, not %s", time.Duration(d))
		}
	}
	out = append(out, c.Cleanup.check()...)
	out = append(out, c.Drift.check()...)
	out = append(out, c.Adhoc.check()...)
	out = append(out, c.Replica.check()...)
	if c.Push.MaxBytes < 1<<20 || c.Push.MaxBytes > 1<<40 {
		bad("push.max_bytes", "want 1 MiB (%d) to 1 TiB, not %d", 1<<20, c.Push.MaxBytes)
	}
	out = append(out, checkWebhooks(c.Webhooks)...)
	if c.Database.MongoURI != "" {
		if u, err := url.Parse(c.Database.MongoURI); err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") {
			bad("database.mongo_uri", "want a mongodb:// or mongodb+srv:// URI")
		}
	} else if !filepath.IsAbs(c.Database.DataDir) {
		bad("database.data_dir", "%q is not an absolute path", c.Database.DataDir)
	}
	if c.Database.Name == "" || strings.ContainsAny(c.Database.Name, `/\. "$`) {
		bad("database.name", "%q is not a database name", c.Database.Name)
	}
	if c.Nodes.SSHPort < 0 || c.Nodes.SSHPort > 65535 {
		bad("nodes.ssh_port", "want 1 to 65535 (0: SSH's default), not %d", c.Nodes.SSHPort)
	}
	if b := c.Nodes.BaseDir; !filepath.IsAbs(b) || filepath.Clean(b) != b || b == "/" {
		bad("nodes.base_dir", "%q is not a clean absolute directory other than /", b)
	}
	for setting, path := range map[string]string{"tokens_file": c.TokensFile, "nodes.ssh_key": c.Nodes.SSHKey,
		"kubernetes.kubeconfig": c.Kubernetes.Kubeconfig} {
		if path == "" {
			continue
		}
		if f, err := os.Open(path); err != nil {
			bad(setting, "cannot read it: %v", err)
		} else {
			f.Close()
		}
	}
	if p := c.Nodes.PlaybookDir; p != "" {
		if st, err := os.Stat(filepath.Join(p, "playbooks")); err != nil || !st.IsDir() {
			bad("nodes.playbook_dir", "%s has no playbooks/ directory", p)
		}
	}
	return out
}

// Masked is the configuration as YAML, secrets replaced by "****": the password of the MongoDB URI,
// and the query of each webhook URL. (Token values, the SSH key and webhook secrets live in their own
// files; only their paths are here.)
func (c Config) Masked() string {
	c.Webhooks = maskWebhooks(c.Webhooks)
	if u, err := url.Parse(c.Database.MongoURI); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "****")
			c.Database.MongoURI = strings.Replace(u.String(), "%2A%2A%2A%2A", "****", 1)
		}
	}
	b, _ := yaml.Marshal(c)
	return string(b)
}

// Loopback reports whether addr binds only to a loopback address.
func Loopback(addr string) bool {
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

// Set and String make a Duration a command-line flag.
func (d *Duration) Set(v string) error {
	p, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 90s or 2m", v)
	}
	*d = Duration(p)
	return nil
}

func (d *Duration) String() string { return time.Duration(*d).String() }
