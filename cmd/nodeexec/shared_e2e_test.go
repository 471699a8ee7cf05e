//go:build e2e

package main

// Two `nodeexec serve` processes on one shared database: FerretDB over a real PostgreSQL server
// (hack/pg up), served by one `nodeexec database` process, which both replicas reach with --mongo-uri.
// No test hosts: the deployment goes to a node whose SSH port refuses (127.0.0.1:1), so it fails
// quickly; what is checked is that what one replica records, the other serves.

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/store/storetest"
)

// startLogged starts bin with args and waits (bounded) for its JSON log line msg, returning that line.
// The process is stopped with SIGTERM when the test ends.
func startLogged(t *testing.T, name, msg string, env []string, bin string, args ...string) map[string]any {
	t.Helper()
	cmd := osexec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	found := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == msg {
				found <- line
			}
			t.Logf("%s: %s", name, sc.Text())
		}
		close(found)
	}()
	select {
	case line, ok := <-found:
		if !ok {
			t.Fatalf("%s exited before logging %q", name, msg)
		}
		return line
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not log %q within 60s", name, msg)
	}
	return nil
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestTwoServeProcessesOnOneSharedDatabaseSeeEachOthersDeployments(t *testing.T) {
	pg := os.Getenv("NODEEXEC_TEST_PG_URL")
	if pg == "" {
		t.Skip(`NODEEXEC_TEST_PG_URL is not set: run hack/pg up, then eval "$(hack/pg env)" (or make e2e)`)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nodeexec")
	if out, err := osexec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build nodeexec: %v\n%s", err, out)
	}
	// The password goes in a file, never on a command line.
	urlFile := filepath.Join(dir, "pg.url")
	if err := os.WriteFile(urlFile, []byte(pg+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := startLogged(t, "database", "nodeexec database serving", nil, bin, "database", "--postgresql-url-file", urlFile, "--listen", "127.0.0.1:0")
	mongoURI, _ := db["mongo_uri"].(string)
	if !strings.HasPrefix(mongoURI, "mongodb://127.0.0.1:") {
		t.Fatalf("database serving line: %v", db)
	}
	if shown, _ := db["postgresql"].(string); strings.Contains(shown, urlPassword(pg)) {
		t.Fatalf("the database's log line shows the PostgreSQL password: %v", db)
	}
	name := storetest.ScratchName()
	t.Cleanup(func() { storetest.DropDatabase(t, mongoURI, name) }) // before the database stops

	serve := func(replica string) string {
		line := startLogged(t, replica, "nodeexec serving", []string{"NODEEXEC_RETRY_MAX=0"}, bin, "serve", "--listen", "127.0.0.1:0",
			"--mongo-uri", mongoURI, "--database", name, "--ssh-user", "root", "--ssh-port", "1", "--insecure-host-keys")
		return "http://" + line["listen"].(string)
	}
	a, b := serve("replica-a"), serve("replica-b")

	env := &apiEnv{t: t, base: a}
	code, created := env.call(http.MethodPost, "/api/v1/deployments", map[string]any{
		"service": "shared-db", "version": "v1", "nodes": []string{"127.0.0.1"},
		"package_url": "http://127.0.0.1:1/shared-db-v1.tar.gz", "sha256": strings.Repeat("ab", 32),
		"idempotency_key": "shared-db-1"})
	id, _ := created["id"].(string)
	if code != http.StatusAccepted || id == "" {
		t.Fatalf("POST on replica a: %d %v", code, created)
	}
	code, got := getJSON(t, b+"/api/v1/deployments/"+id)
	if code != http.StatusOK || got["service"] != "shared-db" || got["version"] != "v1" {
		t.Fatalf("GET on replica b of a's deployment %s: %d %v", id, code, got)
	}
	// a runs it (the node refuses SSH) and records its end; b serves that end.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, got = getJSON(t, b+"/api/v1/deployments/"+id)
		if st, _ := got["state"].(string); st == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica b never saw a's deployment end: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("replica b serves a's deployment as a ended it: %v", got)
	code, node := getJSON(t, b+"/api/v1/nodes/shared-db/127.0.0.1")
	if code != http.StatusOK || node["state"] == "deploying" {
		t.Fatalf("GET on replica b of the node a deployed: %d %v", code, node)
	}
	// The same idempotency key on b answers with a's deployment.
	envB := &apiEnv{t: t, base: b}
	code, again := envB.call(http.MethodPost, "/api/v1/deployments", map[string]any{
		"service": "shared-db", "version": "v1", "nodes": []string{"127.0.0.1"},
		"package_url": "http://127.0.0.1:1/shared-db-v1.tar.gz", "sha256": strings.Repeat("ab", 32),
		"idempotency_key": "shared-db-1"})
	if again["id"] != id {
		t.Fatalf("the same idempotency key on replica b: %d %v; want a's deployment %s", code, again, id)
	}
}

// urlPassword is the password of a URL ("" when it has none; then nothing to hide).
func urlPassword(raw string) string {
	i, j := strings.Index(raw, "://"), strings.LastIndex(raw, "@")
	if i < 0 || j < 0 {
		return "\x00"
	}
	userinfo := raw[i+3 : j]
	if k := strings.Index(userinfo, ":"); k >= 0 && k+1 < len(userinfo) {
		return userinfo[k+1:]
	}
	return "\x00"
}
