package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/nodeexec/nodeexec/config"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store"
)

// serve refuses to run without auth anywhere but loopback, and says how to fix it; a bad tokens file
// is named. Both before any database or executor starts. config check gives the same verdict on every
// one of these inputs: exit 2 naming the same problem (one set of checks, checkServe).
func TestServeAndConfigCheckRefuseUnsafeOrBrokenAuthSetups(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "bad.yaml")
	shortToken := filepath.Join(dir, "short.yaml")
	almost := filepath.Join(dir, "almost.yaml")
	badScope := filepath.Join(dir, "scope.yaml")
	empty := filepath.Join(dir, "empty.yaml")
	for path, body := range map[string]string{
		badYAML:    "{not: [a list",
		shortToken: "- {name: plan, token: short, scopes: [deploy]}\n",
		almost:     "- {name: plan, token: " + strings.Repeat("a", server.MinTokenLength-1) + ", scopes: [deploy]}\n",
		badScope:   "- {name: plan, token: " + strings.Repeat("b", server.MinTokenLength) + ", scopes: [root]}\n",
		empty:      "[]\n",
	} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "without API tokens"},
		{[]string{"--listen", "10.1.2.3:8080"}, "bind to 127.0.0.1 or pass --tokens-file"},
		{[]string{"--tokens-file", filepath.Join(dir, "missing.yaml")}, "tokens_file: cannot read it"},
		{[]string{"--tokens-file", badYAML}, "want a YAML list"},
		{[]string{"--tokens-file", shortToken}, "at least 32 characters"},
		{[]string{"--tokens-file", almost}, "at least 32 characters"},
		{[]string{"--tokens-file", badScope}, `unknown scope "root"`},
		{[]string{"--tokens-file", empty, "--listen", "0.0.0.0:0"}, "holds no tokens"},
	}
	for _, c := range cases {
		args := append([]string{"--data-dir", data}, c.args...)
		ok, err := serveCmd(context.Background(), args)
		if ok || err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve %v: ok=%v err=%v; want an error with %q", c.args, ok, err, c.want)
		}
		code, _, stderr := runCaptured(t, append([]string{"config", "check"}, args...))
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("config check %v: exit %d %q; want 2 with %q, as serve", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("a refused serve made its data dir: %v", err)
	}
	// The shortest token it takes, with every scope, is ok to both (serve itself is not started here).
	good := filepath.Join(dir, "good.yaml")
	body := "- {name: plan, token: " + strings.Repeat("c", server.MinTokenLength) + ", scopes: [read, deploy, admin]}\n"
	if err := os.WriteFile(good, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCaptured(t, []string{"config", "check", "--data-dir", data, "--tokens-file", good, "--listen", "0.0.0.0:0"}); code != 0 {
		t.Errorf("config check of a good tokens file: exit %d %s", code, stderr)
	}
}

// At start, serve warns about what it accepts but an operator should know: no tokens, no SSH key.
func TestServeWarnsWithoutTokensOrAnSSHKey(t *testing.T) {
	cfg := config.Default()
	log, hook := logtest.NewNullLogger()
	warnAtStart(log, cfg, serveInputs{})
	var msgs []string
	for _, e := range hook.AllEntries() {
		if e.Level != logrus.WarnLevel {
			t.Errorf("%q logged at %s, want warn", e.Message, e.Level)
		}
		msgs = append(msgs, e.Message)
	}
	if len(msgs) != 2 || !strings.Contains(msgs[0], "no API tokens") || !strings.Contains(msgs[1], "no SSH key configured") {
		t.Fatalf("warnings = %q", msgs)
	}
	if _, ok := hook.LastEntry().Data["ssh_user"]; !ok {
		t.Errorf("the SSH warning does not name the user: %v", hook.LastEntry().Data)
	}
	hook.Reset()
	cfg.Nodes.SSHKey, cfg.Nodes.SSHUser = "/etc/nodeexec/id_ed25519", "deploy"
	warnAtStart(log, cfg, serveInputs{tokens: []server.Token{{Name: "plan"}}})
	if n := len(hook.AllEntries()); n != 0 {
		t.Errorf("with tokens and a key: %d warnings (%q)", n, hook.LastEntry().Message)
	}
}

func TestLoopbackAddresses(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "localhost:8080": true, "[::1]:8080": true,
		"0.0.0.0:8080": false, ":8080": false, "10.0.0.1:80": false, "nonsense": false,
	} {
		if got := config.Loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v", addr, got)
		}
	}
}

// A kubeconfig that cannot be read, or whose cluster does not answer, stops serve at the start with
// the reason, instead of failing the first Kubernetes deploy; config check refuses it the same way.
func TestServeRefusesAKubeconfigThatReachesNoCluster(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	closed := filepath.Join(dir, "closed")
	if err := os.WriteFile(garbage, []byte("not a kubeconfig"), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(closed, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		garbage: "kubernetes client configuration",
		closed:  "platform k8s: the Kubernetes API server does not answer",
	} {
		args := []string{"--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--kubeconfig", path}
		ok, err := serveCmd(context.Background(), args)
		if ok || err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("serve --kubeconfig %s: ok=%v err=%v; want %q", filepath.Base(path), ok, err, want)
		}
		// config check says the same.
		if code, _, stderr := runCaptured(t, append([]string{"config", "check"}, args...)); code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("config check --kubeconfig %s: exit %d %q; want 2 with %q", filepath.Base(path), code, stderr, want)
		}
	}
}

// With --mongo-uri, serve keeps its state in that server (here a FerretDB of its own, reached over the
// MongoDB wire protocol like any external MongoDB) and starts no embedded database; /readyz follows it.
func TestServeUsesTheDatabaseAtMongoURI(t *testing.T) {
	ctx := context.Background()
	db, err := store.StartEmbedded(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dataDir := t.TempDir()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := serveCmd(sctx, []string{"--listen", addr, "--mongo-uri", db.URI + "/?serverSelectionTimeoutMS=1500", "--database", "external", "--data-dir", dataDir})
		done <- err
	}()
	ready := func() int {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for ready() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("serve --mongo-uri never became ready")
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	st, err := store.Open(ctx, db.URI, "external")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	if _, _, err := st.ListDeployments(ctx, store.DeploymentFilter{Limit: 1}); err != nil {
		t.Errorf("the external database has no deployments collection: %v", err)
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
		t.Errorf("serve --mongo-uri wrote an embedded database: %v", entries)
	}
	db.Stop()
	for deadline := time.Now().Add(30 * time.Second); ready() != http.StatusServiceUnavailable; {
		if time.Now().After(deadline) {
			t.Fatal("readyz did not answer 503 once the database stopped")
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("serve after the stop: %v", err)
	}
}

// config check prints the configuration serve would run with (flags over environment over file,
// secrets masked) and exits 0; a configuration serve would refuse exits 2 with each problem named.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodeexec.yaml")
	body := "listen: 127.0.0.1:9000\nmax_concurrent: 3\ndatabase: {mongo_uri: \"mongodb://u:hunter2@db:27017/\"}\nnodes: {ssh_user: fromfile}\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NODEEXEC_MAX_CONCURRENT", "5")
	t.Setenv("NODEEXEC_SSH_USER", "fromenv")
	code, out, _ := runCaptured(t, []string{"config", "check", "--config", path, "--ssh-user", "fromflag"})
	for _, want := range []string{"listen: 127.0.0.1:9000", "max_concurrent: 5", "ssh_user: fromflag", "mongodb://u:****@db:27017/"} {
		if !strings.Contains(out, want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	if code != 0 || strings.Contains(out, "hunter2") {
		t.Errorf("config check = exit %d\n%s", code, out)
	}
	if code, _, stderr := runCaptured(t, []string{"config", "check", "--listen", "0.0.0.0:80", "--max-concurrent", "0"}); code != 2 ||
		!strings.Contains(stderr, "listen: refusing to serve on 0.0.0.0:80") || !strings.Contains(stderr, "max_concurrent: want 1 to 1000") {
		t.Errorf("config check of a refused configuration = exit %d %s, want 2 naming both problems", code, stderr)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("lissen: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCaptured(t, []string{"config", "check", "--config", bad}); code != 2 || !strings.Contains(stderr, "field lissen not found") || out != "" {
		t.Errorf("config check of a file with an unknown setting = exit %d %s, want 2 naming it and nothing printed of it:\n%s", code, stderr, out)
	}
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("listen: 127.0.0.1:9000\nmax_concurrent: [3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCaptured(t, []string{"config", "check", "--config", broken}); code != 2 || !strings.Contains(stderr, "broken.yaml") || out != "" {
		t.Errorf("config check of a file that is not YAML = exit %d %q, want 2 with the error only; printed:\n%s", code, stderr, out)
	}
	// serve itself refuses the same way, before anything starts.
	if ok, err := serveCmd(context.Background(), []string{"--config", path, "--max-concurrent", "0", "--data-dir", filepath.Join(dir, "data")}); ok || err == nil || !strings.Contains(err.Error(), "max_concurrent: want 1 to 1000") {
		t.Errorf("serve with a bad setting: %v %v", ok, err)
	}
}

// A second nodeexec on a data directory another one serves is refused at start, saying what to do.
func TestServeRefusesADataDirAnotherNodeexecServes(t *testing.T) {
	dataDir := t.TempDir()
	held, err := store.StartEmbedded(context.Background(), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Stop()
	ok, err := serveCmd(context.Background(), []string{"--listen", "127.0.0.1:0", "--data-dir", dataDir})
	if ok || err == nil || !strings.Contains(err.Error(), "is served by another nodeexec") || !strings.Contains(err.Error(), "another --data-dir") {
		t.Errorf("serve = %v, %v; want it refused: the data directory is in use", ok, err)
	}
}
