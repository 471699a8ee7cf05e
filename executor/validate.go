package executor

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ValidationError names the field that is wrong and why, so an API can answer 400 naming it.
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// IsValidation reports whether err (or what it wraps) is a ValidationError.
func IsValidation(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Names reach paths (<base>/<service>/releases/<version>), unit names and commands on the nodes, so they
// are held to a small alphabet: no slash, no whitespace, no shell or template metacharacters.
var (
	serviceRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	versionRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$`)
	hostnameRe = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	sha256Re   = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	zoneRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)
	execPathRe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+/-]{0,254}$`)
	envKeyRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// ValidateService checks a service name: it becomes a directory and the systemd unit <service>.service.
func ValidateService(s string) error {
	return validateName("service", s, serviceRe, "1-63 characters: letters, digits, '.', '_', '-', starting with a letter or digit")
}

// ValidateVersion checks a version: it becomes the directory releases/<version>.
func ValidateVersion(v string) error {
	return validateName("version", v, versionRe, "1-128 characters: letters, digits, '.', '_', '+', '-', starting with a letter or digit")
}

func validateName(field, v string, re *regexp.Regexp, rule string) error {
	switch {
	case v == "":
		return invalid(field, "is required")
	case !re.MatchString(v):
		return invalid(field, "%q is not allowed (%s)", v, rule)
	case strings.Contains(v, ".."):
		return invalid(field, "%q must not contain '..'", v)
	}
	return nil
}

// ValidateHost checks a node's host: a DNS name or an IP address literal.
func ValidateHost(h string) error {
	if h == "" {
		return invalid("host", "is required")
	}
	if a, err := netip.ParseAddr(h); err == nil {
		// An IPv6 zone ("fe80::1%eth0") is free text to the parser, and the host reaches Ansible and
		// ssh: only an interface-like name is allowed there.
		if zone := a.Zone(); zone != "" && !zoneRe.MatchString(zone) {
			return invalid("host", "%q has an IPv6 zone that is not an interface name", h)
		}
		return nil
	}
	if len(h) > 253 || !hostnameRe.MatchString(h) {
		return invalid("host", "%q is neither a DNS name nor an IP address", h)
	}
	return nil
}

// ValidateNodes checks a node list: at least one, each valid, no host twice.
func ValidateNodes(nodes []Node) error {
	if len(nodes) == 0 {
		return invalid("nodes", "at least one node is required")
	}
	seen := make(map[string]bool, len(nodes))
	for i, n := range nodes {
		field := fmt.Sprintf("nodes[%d]", i)
		if err := ValidateHost(n.Host); err != nil {
			return invalid(field+".host", "%s", err.(*ValidationError).Reason)
		}
		if n.Address != "" {
			if err := ValidateHost(n.Address); err != nil {
				return invalid(field+".address", "%s", err.(*ValidationError).Reason)
			}
		}
		if n.Port < 0 || n.Port > 65535 {
			return invalid(field+".port", "%d is not a port", n.Port)
		}
		if seen[n.Host] {
			return invalid(field+".host", "%q is listed twice", n.Host)
		}
		seen[n.Host] = true
	}
	return nil
}

// ValidatePackage checks a release artifact: an http(s) URL without credentials, and a SHA256 digest.
func ValidatePackage(p Package) error {
	if p.URL == "" {
		return invalid("package_url", "is required")
	}
	if err := plainTextUpTo("package_url", p.URL, MaxURLLength); err != nil {
		return err
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return invalid("package_url", "is not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid("package_url", "must be http:// or https://, not %q", u.Scheme)
	}
	if u.Host == "" {
		return invalid("package_url", "has no host")
	}
	if u.User != nil {
		// Credentials in a URL end up in logs and on the nodes' process lists.
		return invalid("package_url", "must not carry credentials")
	}
	if !sha256Re.MatchString(p.SHA256) {
		return invalid("sha256", "must be 64 hexadecimal characters")
	}
	return nil
}

// ValidateDelivery checks how a package reaches the nodes: "" (pull), pull or push.
func ValidateDelivery(d Delivery) error {
	switch d {
	case "", DeliveryPull, DeliveryPush:
		return nil
	}
	return invalid("delivery", "%q is not pull or push", d)
}

// Bounds of verification's pace: polling faster than 50 ms only loads the node; slower than 10 s misses
// crashes; holding steady longer than an hour is a soak test, not a deploy.
const (
	MinHealthInterval = 50 * time.Millisecond
	MaxHealthInterval = 10 * time.Second
	MaxHealthStable   = time.Hour
	// MaxHealthDelay bounds the pause between health check attempts: an hour is already a stuck deploy.
	MaxHealthDelay = time.Hour
)

// Bounds of free text that reaches the nodes or comes back to people: generous for real use, and small
// enough that a request cannot make a unit file or a record of megabytes.
const (
	MaxURLLength      = 2048
	MaxHTTPPathLength = 1024
	MaxUnitArgsLength = 4096
	MaxEnvValueLength = 4096
	MaxEnvVars        = 100
	// MaxLabelLength bounds the labels a deployment keeps and shows back: idempotency_key, requested_by.
	MaxLabelLength = 200
)

// ValidateHealth checks a health check; zero values mean defaults.
func ValidateHealth(h HealthCheck) error {
	for field, port := range map[string]int{"health.http_port": h.HTTPPort, "health.tcp_port": h.TCPPort} {
		if port < 0 || port > 65535 {
			return invalid(field, "%d is not a port", port)
		}
	}
	if h.HTTPPath != "" {
		if !strings.HasPrefix(h.HTTPPath, "/") {
			return invalid("health.http_path", "must start with '/'")
		}
		if err := plainTextUpTo("health.http_path", h.HTTPPath, MaxHTTPPathLength); err != nil {
			return err
		}
		if strings.ContainsAny(h.HTTPPath, " \"'`\\") {
			return invalid("health.http_path", "must not contain spaces, quotes or backslashes")
		}
	}
	if h.HTTPStatus != 0 && (h.HTTPStatus < 100 || h.HTTPStatus > 599) {
		return invalid("health.http_status", "%d is not an HTTP status", h.HTTPStatus)
	}
	if h.Retries < 0 || h.Retries > 1000 {
		return invalid("health.retries", "must be between 0 and 1000")
	}
	if h.Delay < 0 {
		return invalid("health.delay", "must not be negative")
	}
	if h.Delay > MaxHealthDelay {
		return invalid("health.delay", "must be at most %d seconds", int(MaxHealthDelay.Seconds()))
	}
	if h.Interval != 0 && (h.Interval < MinHealthInterval || h.Interval > MaxHealthInterval) {
		return invalid("health.interval_ms", "must be 0 (200 ms) or from %d to %d", MinHealthInterval.Milliseconds(), MaxHealthInterval.Milliseconds())
	}
	if h.Stable < 0 || h.Stable > MaxHealthStable {
		return invalid("health.stable_seconds", "must be from 0 to %d", int(MaxHealthStable.Seconds()))
	}
	return nil
}

// ValidateUnit checks how a service is run: these values are written into a systemd unit file, where a
// newline would start a new directive.
func ValidateUnit(u Unit) error {
	if u.Exec != "" && (!execPathRe.MatchString(u.Exec) || strings.Contains(u.Exec, "..")) {
		return invalid("unit.exec", "%q must be a relative path inside the release", u.Exec)
	}
	if err := plainTextUpTo("unit.args", u.Args, MaxUnitArgsLength); err != nil {
		return err
	}
	return ValidateEnv("unit.env", u.Env)
}

// ValidateEnv checks environment variables a service gets (a unit's, a container's): names as a shell
// takes them, values of plain text. The unit writes Environment="K=V", where a quote or backslash would
// end or escape the value; a container's are refused the same, so one request means the same on both.
func ValidateEnv(field string, env map[string]string) error {
	if len(env) > MaxEnvVars {
		return invalid(field, "at most %d variables, not %d", MaxEnvVars, len(env))
	}
	for k, v := range env {
		if !envKeyRe.MatchString(k) {
			return invalid(field, "%q is not an environment variable name", k)
		}
		if err := plainTextUpTo(field+"."+k, v, MaxEnvValueLength); err != nil {
			return err
		}
		if strings.ContainsAny(v, "\"\\") {
			return invalid(field+"."+k, "must not contain quotes or backslashes")
		}
	}
	return nil
}

// ValidateLabel checks free text a deployment keeps and shows back (idempotency_key, requested_by): at
// most MaxLabelLength bytes, no control or invisible characters.
func ValidateLabel(field, s string) error {
	if len(s) > MaxLabelLength {
		return invalid(field, "longer than %d characters", MaxLabelLength)
	}
	return visibleText(field, s)
}

// visibleText refuses what is not plain, visible text: invalid UTF-8, control characters, invisible
// format characters and line separators.
func visibleText(field, s string) error {
	if !utf8.ValidString(s) {
		return invalid(field, "is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalid(field, "must not contain control characters")
		}
		if unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			return invalid(field, "must not contain invisible or line-separator characters (%U)", r)
		}
	}
	return nil
}

// plainTextUpTo is plainText of at most most bytes.
func plainTextUpTo(field, s string, most int) error {
	if len(s) > most {
		return invalid(field, "longer than %d characters", most)
	}
	return plainText(field, s)
}

// plainText refuses control characters (a newline ends a unit directive) and template markers: Ansible
// never renders our values (they are passed as unsafe), this is the second line of defence. Invisible
// format characters (bidirectional overrides, zero-width ones) and Unicode's line and paragraph
// separators are refused too: they make a value read otherwise than it is, in a unit file or a log.
func plainText(field, s string) error {
	if err := visibleText(field, s); err != nil {
		return err
	}
	for _, marker := range []string{"{{", "{%", "{#"} {
		if strings.Contains(s, marker) {
			return invalid(field, "must not contain %q", marker)
		}
	}
	return nil
}

// Validate checks a whole deploy request before anything runs: its platform's part by that part's own
// rules, after what every deploy needs.
func (r DeployRequest) Validate() error {
	k8s := len(r.Workloads) > 0
	if k8s {
		if len(r.Nodes) > 0 {
			return invalid("nodes", "a request names nodes or workloads, not both")
		}
		if r.Delivery != "" {
			return invalid("delivery", "workloads get an image, not a package: delivery is for physical nodes")
		}
	}
	if err := firstError(ValidateService(r.Service), ValidateVersion(r.Version)); err != nil {
		return err
	}
	var part error
	if k8s {
		part = r.K8sDeploy.Validate()
	} else {
		part = r.PhysicalDeploy.Validate()
	}
	return firstError(part, validateID(r.DeploymentID))
}

// Validate checks a deploy's physical part.
func (p PhysicalDeploy) Validate() error {
	return firstError(ValidateNodes(p.Nodes), ValidatePackage(p.Package), ValidateDelivery(p.Delivery),
		ValidateHealth(p.Health), ValidateUnit(p.Unit))
}

// Validate checks a deploy's Kubernetes part.
func (k K8sDeploy) Validate() error {
	if len(k.Env) > 0 && k.Strategy.Type == StrategyBlueGreen {
		return invalid("environment", "a blue-green deploy copies the serving color's pods as they are: set the environment with a rolling deploy")
	}
	return firstError(ValidateWorkloads(k.Workloads), ValidateImage(k.Image), ValidateStrategy(k.Strategy, k.Workloads),
		ValidateEnv("environment", k.Env))
}

// Validate checks a rollback request before anything runs: of nodes, or of workloads when it names some.
func (r RollbackRequest) Validate() error {
	if err := ValidateService(r.Service); err != nil {
		return err
	}
	if r.ToVersion != "" {
		if err := ValidateVersion(r.ToVersion); err != nil {
			return invalid("to_version", "%s", err.(*ValidationError).Reason)
		}
	}
	var part error
	if len(r.Workloads) > 0 {
		part = r.K8sRollback.Validate()
	} else {
		part = r.PhysicalRollback.Validate()
	}
	return firstError(part, validateID(r.DeploymentID))
}

// Validate checks a rollback's physical part.
func (p PhysicalRollback) Validate() error {
	return firstError(ValidateNodes(p.Nodes), ValidateHealth(p.Health))
}

// Validate checks a rollback's Kubernetes part.
func (k K8sRollback) Validate() error {
	if k.ToRevision < 0 {
		return invalid("to_revision", "must not be negative")
	}
	if k.ToImage != "" {
		if err := ValidateImage(k.ToImage); err != nil {
			return invalid("to_image", "%s", err.(*ValidationError).Reason)
		}
	}
	return ValidateWorkloads(k.Workloads)
}

// firstError is the first of errs that is not nil: checks run in order, the first failure is the one
// reported.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a scale request (workloads only: physical nodes have no replicas).
func (r ScaleRequest) Validate() error {
	return firstError(ValidateService(r.Service), ValidateWorkloads(r.Workloads), ValidateReplicas(r.Replicas))
}

// Validate checks a status request.
func (r StatusRequest) Validate() error {
	if err := ValidateService(r.Service); err != nil {
		return err
	}
	return ValidateNodes(r.Nodes)
}

// validateID checks an optional deployment id; it is shown to whoever finds a node locked.
func validateID(id string) error {
	if id == "" {
		return nil
	}
	return validateName("deployment_id", id, versionRe, "1-128 characters: letters, digits, '.', '_', '+', '-'")
}
