//go:build e2e

package main

// Several `nodeexec serve` processes on one shared database (issue 12, part 3): FerretDB over a real
// PostgreSQL server (hack/pg up) behind one `nodeexec database` front end. The replicas are built with
// the occupancy executor (-tags occupancy), which connects nowhere and records when each node is held and
// by which deployment: whether two deployments ever held one node at once is read from that record, not
// from nodeexec's.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/internal/occupancy"
	"github.com/nodeexec/nodeexec/internal/testbed"
)

// 300 deploys from 30 clients over 40 hosts of 2 services, round-robin over 3 replicas.
func TestThreeReplicasNeverDeployOneNodeAtOnce(t *testing.T) {
	pg := needReplicaE2E(t, true)
	bin := testbed.BuildNodeexec(t, "occupancy")
	occFile := filepath.Join(t.TempDir(), "occupancy")
	bases := startReplicas(t, bin, 3, occFile, "50ms", sharedDatabase(t, bin, pg)...)
	l := deployLoad(t, bases, []string{"reptest-a", "reptest-b"}, 20, 300, 30)
	checkNothingStuck(t, bases, l)
	checkOccupancy(t, occFile, l)
}

// The same load on one replica on the embedded database: the default, one process.
func TestOneReplicaOnTheEmbeddedDatabaseNeverDeploysOneNodeAtOnce(t *testing.T) {
	needReplicaE2E(t, false)
	bin := testbed.BuildNodeexec(t, "occupancy")
	occFile := filepath.Join(t.TempDir(), "occupancy")
	bases := startReplicas(t, bin, 1, occFile, "50ms", "--data-dir", t.TempDir())
	l := deployLoad(t, bases, []string{"reptest-a", "reptest-b"}, 40, 300, 30)
	checkNothingStuck(t, bases, l)
	checkOccupancy(t, occFile, l)
}

// The same idempotency key sent to the 3 replicas at once, for 10 keys: one deployment each.
func TestOneIdempotencyKeySentToThreeReplicasAtOnceMakesOneDeployment(t *testing.T) {
	pg := needReplicaE2E(t, true)
	bin := testbed.BuildNodeexec(t, "occupancy")
	bases := startReplicas(t, bin, 3, filepath.Join(t.TempDir(), "occupancy"), "10ms", sharedDatabase(t, bin, pg)...)
	const service, keys = "reptest-idem", 10
	for k := range keys {
		key := fmt.Sprintf("reptest-key-%d", k)
		body := occupancyDeploy(service, "v1", []string{fmt.Sprintf("rt-idem%02d", k)})
		body["idempotency_key"] = key
		ids := make([]string, len(bases))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, base := range bases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				code, out, err := postJSON(base, "/api/v1/deployments", body)
				if err != nil || (code != http.StatusAccepted && code != http.StatusOK) {
					t.Errorf("key %s on replica %d: %d %v %v", key, i, code, out, err)
				}
				ids[i], _ = out["id"].(string)
			}()
		}
		close(start)
		wg.Wait()
		if ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] {
			t.Errorf("key %s sent to 3 replicas at once: deployments %v; want one", key, ids)
		}
	}
	code, page, err := getReplicaJSON(bases[1], "/api/v1/deployments?limit=200&service="+service)
	if err != nil || code != http.StatusOK {
		t.Fatalf("list deployments: %d %v %v", code, page, err)
	}
	byKey := map[string][]any{}
	deployments, _ := page["deployments"].([]any)
	for _, d := range deployments {
		dep, _ := d.(map[string]any)
		key, _ := dep["idempotency_key"].(string)
		byKey[key] = append(byKey[key], dep["id"])
	}
	if len(deployments) != keys || len(byKey) != keys {
		t.Errorf("%d deployments of %s for %d keys: %v", len(deployments), service, keys, byKey)
	}
	for key, ids := range byKey {
		if len(ids) != 1 {
			t.Errorf("key %s made %d deployments: %v", key, len(ids), ids)
		}
	}
}

// A cleanup schedule of every second on 3 replicas for 20-odd seconds: each tick runs once, on one
// of them, and none is missed while the passes are quick (each takes the lease; a pass still running
// at the next tick would make that tick be skipped on every replica, which this test counts as missed).
func TestEachCleanupTickRunsOnceAcrossThreeReplicas(t *testing.T) {
	pg := needReplicaE2E(t, true)
	bin := testbed.BuildNodeexec(t, "occupancy")
	occFile := filepath.Join(t.TempDir(), "occupancy")
	bases := startReplicas(t, bin, 3, occFile, "10ms", append(sharedDatabase(t, bin, pg), "--cleanup-schedule", "* * * * * *")...)
	up := time.Now()
	// Nodes for the passes to clean (each held as a deploy holds it); a pass may hold them at the deploy's
	// moment (409 naming it): then the next second's try (the ticks go on meanwhile).
	hosts := []string{"rt-c1", "rt-c2", "rt-c3"}
	var deployed load
	for try := 0; try < 20 && deployed.accepted == nil; try++ {
		code, out, err := postJSON(bases[0], "/api/v1/deployments", occupancyDeploy("reptest-clean", "v1", hosts))
		switch {
		case err == nil && code == http.StatusAccepted:
			deployed = load{accepted: map[string][]string{out["id"].(string): hosts}, services: map[string]bool{"reptest-clean": true}}
			checkNothingStuck(t, bases, deployed)
		case err == nil && code == http.StatusConflict && out["code"] == "node_busy":
			time.Sleep(time.Second)
		default:
			t.Fatalf("deploy the nodes to clean: %d %v %v", code, out, err)
		}
	}
	// The ticks after every replica was up: whole seconds from then on.
	first := up.Truncate(time.Second).Add(2 * time.Second)
	const want = 20
	deadline := time.Now().Add(90 * time.Second)
	var ticks map[time.Time][]string
	for {
		ticks = scheduledPasses(t, bases[2], first)
		if len(ticks) >= want+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond) // polling, bounded by the deadline
	}
	var sorted []time.Time
	for tick := range ticks {
		sorted = append(sorted, tick)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Before(sorted[j]) })
	if len(sorted) < want {
		t.Fatalf("%d ticks ran from %s within 90s; want at least %d", len(sorted), first, want)
	}
	runners := map[string]int{}
	for i, tick := range sorted {
		if passes := ticks[tick]; len(passes) != 1 {
			t.Errorf("tick %s ran %d times: %v", tick, len(passes), passes)
		} else {
			runners[passes[0]]++
		}
		if i > 0 && tick.Sub(sorted[i-1]) != time.Second {
			t.Errorf("ticks between %s and %s were missed", sorted[i-1], tick)
		}
	}
	if !sorted[0].Equal(first) {
		t.Errorf("the first tick after every replica was up, %s, was missed (first run: %s)", first, sorted[0])
	}
	t.Logf("%d ticks from %s to %s, each run once; passes by runner: %v", len(sorted), sorted[0], sorted[len(sorted)-1], runners)
	// The passes held the nodes they cleaned, never beside the deploy nor beside each other.
	checkOccupancy(t, occFile, deployed)
	if cleaned := countRuns(t, occFile, "cleanup"); cleaned < len(hosts)*(want/2) {
		t.Errorf("the passes cleaned nodes %d times; want most of %d ticks to clean the %d nodes", cleaned, want, len(hosts))
	}
}

// countRuns counts the runs of kind in the occupancy file.
func countRuns(t *testing.T, occFile, kind string) int {
	t.Helper()
	f, err := os.Open(occFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	closed, _, err := occupancy.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, iv := range closed {
		if iv.Kind == kind {
			n++
		}
	}
	return n
}

// scheduledPasses lists the scheduled cleanup passes of ticks at or after from: by tick, each pass's
// runner.
func scheduledPasses(t *testing.T, base string, from time.Time) map[time.Time][]string {
	t.Helper()
	out := map[time.Time][]string{}
	cursor := ""
	for {
		code, page, err := getReplicaJSON(base, "/api/v1/cleanups?limit=200&cursor="+cursor)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET cleanups: %d %v %v", code, page, err)
		}
		passes, _ := page["cleanups"].([]any)
		for _, p := range passes {
			pass, _ := p.(map[string]any)
			raw, _ := pass["tick"].(string)
			if pass["trigger"] != "schedule" || raw == "" {
				continue
			}
			tick, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				t.Fatalf("pass %v: tick %q: %v", pass["id"], raw, err)
			}
			if st := pass["state"]; st == "failed" {
				t.Errorf("pass %v of tick %s failed: %v", pass["id"], tick, pass["error"])
			}
			if !tick.Before(from) {
				runner, _ := pass["runner"].(string)
				out[tick] = append(out[tick], runner)
			}
		}
		if cursor, _ = page["next_cursor"].(string); cursor == "" {
			return out
		}
	}
}
