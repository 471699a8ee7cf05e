//go:build e2e

package main

// A replica killed mid-deploy on the real test hosts: another replica on the shared database (FerretDB
// over a real PostgreSQL, hack/pg up) takes its deployment over once the dead one's heartbeat is older
// than the replica lease, reads each node, and gives the deployment a true end; the nodes deploy again.

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/internal/testbed"
	"github.com/nodeexec/nodeexec/store/storetest"
)

func TestAReplicaKilledMidDeployIsTakenOverByAnother(t *testing.T) {
	pg := os.Getenv("NODEEXEC_TEST_PG_URL")
	if pg == "" || os.Getenv("NODEEXEC_E2E") != "1" {
		t.Skip(`needs NODEEXEC_E2E=1, the test hosts and NODEEXEC_TEST_PG_URL (hack/pg up; eval "$(hack/pg env)"; or make e2e)`)
	}
	mongoURI, _ := testbed.StartDatabase(t, testbed.BuildNodeexec(t), pg, false)["mongo_uri"].(string)
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
	nodesServeTheirRecords(t, &b, got)
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
