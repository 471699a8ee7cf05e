//go:build e2e

package main

// A replica killed mid-deploy on the real test hosts: another replica on the shared database (FerretDB
// over a real PostgreSQL, hack/pg up) takes its deployment over once the dead one's heartbeat is older
// than the replica lease, reads each node, and gives the deployment a true end; the nodes deploy again.

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/store/storetest"
)

func TestAReplicaKilledMidDeployIsTakenOverByAnother(t *testing.T) {
	pg := os.Getenv("NODEEXEC_TEST_PG_URL")
	if pg == "" || os.Getenv("NODEEXEC_E2E") != "1" {
		t.Skip(`needs NODEEXEC_E2E=1, the test hosts and NODEEXEC_TEST_PG_URL (hack/pg up; eval "$(hack/pg env)"; or make e2e)`)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nodeexec")
	if out, err := osexec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build nodeexec: %v\n%s", err, out)
	}
	urlFile := filepath.Join(dir, "pg.url")
	if err := os.WriteFile(urlFile, []byte(pg+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := startLogged(t, "database", "nodeexec database serving", nil, bin, "database", "--postgresql-url-file", urlFile, "--listen", "127.0.0.1:0")
	mongoURI, _ := db["mongo_uri"].(string)
	name := storetest.ScratchName()
	t.Cleanup(func() { storetest.DropDatabase(t, mongoURI, name) })

	const lease = 6 * time.Second
	shared := []string{"--mongo-uri", mongoURI, "--database", name, "--replica-lease", lease.String()}
	a := setupAPIWith(t, "takeover", "", append([]string{"--replica-name", "replica-a"}, shared...))
	b := *a // the same service and hosts, another process
	b.serve, b.dataDir = nil, t.TempDir()
	b.serveArgs = append([]string{"--replica-name", "replica-b"}, shared...)
	b.start()
	t.Cleanup(func() { b.stop(syscall.SIGTERM) })

	if end := a.deploy("v1"); end["state"] != "success" {
		t.Fatalf("deploy v1 on replica a = %v", end)
	}
	id := a.post("v2")
	a.waitLocked(id)
	a.stop(syscall.SIGKILL)
	killed := time.Now()

	// Replica b ends it, from the nodes, once a's heartbeat is older than the lease.
	var got map[string]any
	for {
		_, got = b.call("GET", "/api/v1/deployments/"+id, nil)
		if st := got["state"]; st == "success" || st == "failed" {
			break
		}
		if time.Since(killed) > lease+2*time.Minute {
			t.Fatalf("replica b did not end a's deployment %s within %s of the kill: %v", id, time.Since(killed), got)
		}
		time.Sleep(250 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("replica b ended a's deployment %s %s after the kill (lease %s): %s, %q", id, took.Round(time.Millisecond), lease, got["state"], got["error"])
	if took < lease-lease/6 {
		t.Errorf("b ended it %s after the kill, before a's lease (%s) could have run out", took, lease)
	}
	if e, _ := got["error"].(string); !strings.Contains(e, "replica that ran it stopped") {
		t.Errorf("the deployment's error = %q; want it to say its replica stopped", e)
	}
	for _, raw := range got["nodes"].([]any) {
		n := raw.(map[string]any)
		host := n["host"].(string)
		serves := b.serving(host)
		switch n["state"] {
		case "success":
			if serves != "v2" {
				t.Errorf("%s recorded success but serves %q", host, serves)
			}
		case "failed":
			if serves == "" || !strings.Contains(n["last_error"].(string), serves) {
				t.Errorf("%s recorded failed with %q, serves %q", host, n["last_error"], serves)
			}
		default:
			t.Errorf("%s left %v", host, n["state"])
		}
	}
	// The nodes are free and true to their records: the next deploy, on b, runs everywhere.
	if end := b.deploy("v2"); end["state"] != "success" {
		t.Fatalf("deploy on replica b after the takeover = %v", end)
	}
	for _, h := range b.hosts.Addrs[:3] {
		if v := b.serving(h); v != "v2" {
			t.Errorf("%s serves %q", h, v)
		}
	}
}
