//go:build e2e

package main

// Helpers of the replicas' tests (replicas_e2e_test.go): a nodeexec built with the occupancy executor,
// one shared database front end, replicas on it, a load of deploys over overlapping nodes, and what the
// occupancy file says of it.

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/internal/occupancy"
	"github.com/nodeexec/nodeexec/internal/testbed"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// needReplicaE2E skips without NODEEXEC_E2E=1, and, when pg, without the PostgreSQL server; it returns
// the server's URL ("" when not pg).
func needReplicaE2E(t *testing.T, pg bool) string {
	t.Helper()
	if os.Getenv("NODEEXEC_E2E") != "1" {
		t.Skip("set NODEEXEC_E2E=1 (or run make e2e)")
	}
	if !pg {
		return ""
	}
	url := os.Getenv("NODEEXEC_TEST_PG_URL")
	if url == "" {
		t.Skip(`NODEEXEC_TEST_PG_URL is not set: run hack/pg up, then eval "$(hack/pg env)" (or make e2e)`)
	}
	return url
}

// sharedDatabase starts one `nodeexec database` front end over PostgreSQL and names a fresh database in
// it (dropped at the end): the arguments that put a replica on it.
func sharedDatabase(t *testing.T, bin, pg string) []string {
	t.Helper()
	mongoURI, _ := testbed.StartDatabase(t, bin, pg, true)["mongo_uri"].(string)
	name := storetest.ScratchName()
	t.Cleanup(func() { storetest.DropDatabase(t, mongoURI, name) }) // before the front end stops
	return []string{"--mongo-uri", mongoURI, "--database", name}
}

// startReplicas starts n `nodeexec serve` processes with the occupancy executor (each node held for
// hold, recorded in occFile), each with args; it returns their base URLs.
func startReplicas(t *testing.T, bin string, n int, occFile, hold string, args ...string) []string {
	t.Helper()
	env := []string{"NODEEXEC_OCCUPANCY_FILE=" + occFile, "NODEEXEC_OCCUPANCY_HOLD=" + hold, "NODEEXEC_RETRY_MAX=0"}
	var bases []string
	for i := range n {
		all := append([]string{"serve", "--listen", "127.0.0.1:0", "--max-concurrent", "16"}, args...)
		line := testbed.StartLogged(t, fmt.Sprintf("replica-%d", i), "nodeexec serving", true, env, bin, all...)
		bases = append(bases, "http://"+line["listen"].(string))
	}
	return bases
}

var replicaClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// postJSON posts body to a replica and decodes the answer; a transport error is the error.
func postJSON(base, path string, body any) (int, map[string]any, error) {
	var out map[string]any
	code, err := testbed.DoJSON(replicaClient, http.MethodPost, base+path, body, &out)
	return code, out, err
}

// getReplicaJSON reads path from a replica.
func getReplicaJSON(base, path string) (int, map[string]any, error) {
	var out map[string]any
	code, err := testbed.DoJSON(replicaClient, http.MethodGet, base+path, nil, &out)
	return code, out, err
}

// occupancyDeploy is a deploy of service to hosts; the occupancy executor fetches no package.
func occupancyDeploy(service, version string, hosts []string) map[string]any {
	return map[string]any{"service": service, "version": version, "nodes": hosts,
		"package_url": "http://127.0.0.1:1/" + service + "-" + version + ".tar.gz", "sha256": strings.Repeat("ab", 32)}
}

// load is what the replicas answered to a load of deploys.
type load struct {
	accepted map[string][]string // deployment id: its hosts
	services map[string]bool
	refused  int
	holders  map[string]bool // the deployments 409s named
}

// deployLoad sends requests deploys from clients goroutines, round-robin over bases, each to 1-4 random
// hosts (of hosts, named rt-h01…) of one of services; every answer must be 202, or 409 node_busy naming the
// deployment that holds the node.
func deployLoad(t *testing.T, bases []string, services []string, hosts, requests, clients int) load {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("load: %d requests from %d clients over %d replicas, %d hosts of %d services (seed %d)", requests, clients, len(bases), hosts, len(services), seed)
	l := load{accepted: map[string][]string{}, services: map[string]bool{}, holders: map[string]bool{}}
	for _, s := range services {
		l.services[s] = true
	}
	var mu sync.Mutex
	next := make(chan int, requests)
	for i := range requests {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			for i := range next {
				service := services[rng.IntN(len(services))]
				picked := map[string]bool{}
				for want := 1 + rng.IntN(4); len(picked) < want; {
					picked[fmt.Sprintf("rt-h%02d", 1+rng.IntN(hosts))] = true
				}
				var nodes []string
				for h := range picked {
					nodes = append(nodes, h)
				}
				code, out, err := postJSON(bases[i%len(bases)], "/api/v1/deployments", occupancyDeploy(service, "v"+strconv.Itoa(i), nodes))
				id, _ := out["id"].(string)
				holder, _ := out["deployment_id"].(string)
				msg, _ := out["error"].(string)
				mu.Lock()
				switch {
				case err != nil:
					t.Errorf("request %d to %s: %v", i, bases[i%len(bases)], err)
				case code == http.StatusAccepted && strings.HasPrefix(id, "d-"):
					l.accepted[id] = nodes
				case code == http.StatusConflict && out["code"] == "node_busy" && strings.HasPrefix(holder, "d-") && strings.Contains(msg, holder):
					l.refused++
					l.holders[holder] = true
				default:
					t.Errorf("request %d (%s %v): %d %v; want 202, or 409 node_busy naming the holder", i, service, nodes, code, out)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("load: %d accepted, %d refused (409 naming %d holders)", len(l.accepted), l.refused, len(l.holders))
	return l
}

// checkNothingStuck waits (bounded) for every accepted deployment to end, each successfully (the
// occupancy executor never fails a node), checks that every holder a 409 named is a deployment, and that
// no node of the services is left deploying or pending.
func checkNothingStuck(t *testing.T, bases []string, l load) {
	t.Helper()
	waiting := map[string]bool{}
	for id := range l.accepted {
		waiting[id] = true
	}
	states := map[string]int{}
	deadline := time.Now().Add(3 * time.Minute)
	for round := 0; len(waiting) > 0; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("%d deployments did not end within 3m: %v", len(waiting), keys(waiting, 10))
		}
		if round > 0 {
			time.Sleep(200 * time.Millisecond) // polling, bounded by the deadline
		}
		i := 0
		for id := range waiting {
			i++
			code, d, err := getReplicaJSON(bases[i%len(bases)], "/api/v1/deployments/"+id)
			if err != nil || code != http.StatusOK {
				t.Fatalf("GET deployment %s: %d %v %v", id, code, d, err)
			}
			switch st, _ := d["state"].(string); st {
			case "success", "failed", "rolled_back":
				states[st]++
				delete(waiting, id)
				if st != "success" {
					t.Errorf("deployment %s ended %s (the occupancy executor fails nothing): %v", id, st, d["error"])
				}
			}
		}
	}
	t.Logf("every accepted deployment ended: %v", states)
	for holder := range l.holders {
		if code, d, err := getReplicaJSON(bases[0], "/api/v1/deployments/"+holder); err != nil || code != http.StatusOK {
			t.Errorf("a 409 named %s as the holder, which is no deployment: %d %v %v", holder, code, d, err)
		}
	}
	for service := range l.services {
		cursor := ""
		for {
			code, page, err := getReplicaJSON(bases[len(bases)-1], "/api/v1/nodes?limit=200&service="+url.QueryEscape(service)+"&cursor="+url.QueryEscape(cursor))
			if err != nil || code != http.StatusOK {
				t.Fatalf("GET nodes of %s: %d %v %v", service, code, page, err)
			}
			nodes, _ := page["nodes"].([]any)
			for _, n := range nodes {
				node, _ := n.(map[string]any)
				if st := node["state"]; st == "deploying" || st == "pending" {
					t.Errorf("node %v of %s left %v by %v", node["host"], service, st, node["deployment_id"])
				}
			}
			if cursor, _ = page["next_cursor"].(string); cursor == "" {
				break
			}
		}
	}
}

// checkOccupancy reads the occupancy file: every run ended, each accepted deployment held each of its
// nodes exactly once, and no two deployments ever held one node at once. It returns the overlaps.
func checkOccupancy(t *testing.T, occFile string, l load) []occupancy.Overlap {
	t.Helper()
	f, err := os.Open(occFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	closed, open, err := occupancy.Read(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) > 0 {
		t.Errorf("%d runs never gave their node back, e.g. %+v", len(open), open[0])
	}
	held := map[string]map[string]int{}
	pids := map[int]int{}
	for _, iv := range closed {
		if held[iv.Deployment] == nil {
			held[iv.Deployment] = map[string]int{}
		}
		held[iv.Deployment][iv.Host]++
		pids[iv.PID]++
	}
	for id, hosts := range l.accepted {
		for _, h := range hosts {
			if held[id][h] != 1 {
				t.Errorf("deployment %s held %s %d times; want once", id, h, held[id][h])
			}
		}
		if len(held[id]) != len(hosts) {
			t.Errorf("deployment %s held %v; it was asked for %v", id, held[id], hosts)
		}
	}
	overlaps := occupancy.Overlaps(closed)
	t.Logf("occupancy: %d runs by %d processes %v, %d overlaps", len(closed), len(pids), pids, len(overlaps))
	for i, o := range overlaps {
		if i == 20 {
			t.Errorf("… and %d more overlaps", len(overlaps)-20)
			break
		}
		t.Errorf("two deployments held one node at once: %s", o)
	}
	return overlaps
}

func keys(m map[string]bool, most int) []string {
	var out []string
	for k := range m {
		if len(out) == most {
			break
		}
		out = append(out, k)
	}
	return out
}
