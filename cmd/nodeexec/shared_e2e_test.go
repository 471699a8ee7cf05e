//go:build e2e

package main

// Two `nodeexec serve` processes on one shared database: FerretDB over a real PostgreSQL server
// (hack/pg up), served by one `nodeexec database` process, which both replicas reach with --mongo-uri.
// No test hosts: the deployment goes to a node whose SSH port refuses (127.0.0.1:1), so it fails
// quickly; what is checked is that what one replica records, the other serves.

import (
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/internal/testbed"
	"github.com/nodeexec/nodeexec/store/storetest"
)

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	var out map[string]any
	code, err := testbed.DoJSON(http.DefaultClient, http.MethodGet, url, nil, &out)
	if code == 0 {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code, out
}

func TestTwoServeProcessesOnOneSharedDatabaseSeeEachOthersDeployments(t *testing.T) {
	pg := os.Getenv("NODEEXEC_TEST_PG_URL")
	if pg == "" {
		t.Skip(`NODEEXEC_TEST_PG_URL is not set: run hack/pg up, then eval "$(hack/pg env)" (or make e2e)`)
	}
	bin := testbed.BuildNodeexec(t)
	db := testbed.StartDatabase(t, bin, pg, false)
	mongoURI, _ := db["mongo_uri"].(string)
	if shown, _ := db["postgresql"].(string); strings.Contains(shown, urlPassword(pg)) {
		t.Fatalf("the database's log line shows the PostgreSQL password: %v", db)
	}
	name := storetest.ScratchName()
	t.Cleanup(func() { storetest.DropDatabase(t, mongoURI, name) }) // before the database stops

	serve := func(replica string) string {
		line := testbed.StartLogged(t, replica, "nodeexec serving", false, []string{"NODEEXEC_RETRY_MAX=0"}, bin, "serve", "--listen", "127.0.0.1:0",
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
