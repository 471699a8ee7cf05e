//go:build e2e

package bench

// BenchmarkReplicas measures the API of one `nodeexec serve` on the embedded default (what a user runs
// without a shared database), and of 1 and of 3 on the shared database (FerretDB over PostgreSQL, one
// `nodeexec database` front end; hack/pg up), all three up at once and taken in turn within every
// iteration (the first one rotating): deploy requests accepted per second, the Plan Layer's hot reads
// per second (GET a deployment, GET a node), and their ratios. The processes are built with the
// occupancy executor (-tags occupancy), which connects nowhere and holds each node briefly: what is
// measured is nodeexec and its database, not Ansible. Each request deploys to a node of its own, so
// nothing is refused.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/internal/testbed"
	"github.com/nodeexec/nodeexec/store/storetest"
)

const (
	replicaClients  = 30
	replicaRequests = 300             // deploys per iteration
	replicaReadTime = 3 * time.Second // each read endpoint, per iteration
)

func BenchmarkReplicas(b *testing.B) {
	if os.Getenv("NODEEXEC_E2E") != "1" {
		b.Skip("set NODEEXEC_E2E=1 and run hack/pg up (or `make bench`)")
	}
	pg := os.Getenv("NODEEXEC_TEST_PG_URL")
	if pg == "" {
		b.Skip(`NODEEXEC_TEST_PG_URL is not set: run hack/pg up, then eval "$(hack/pg env)"`)
	}
	bin := testbed.BuildNodeexec(b, "occupancy")
	mongoURI, _ := testbed.StartDatabase(b, bin, pg, true)["mongo_uri"].(string)
	type setup struct {
		name  string
		bases []string
		// per second, summed over the iterations
		accepted, deploymentReads, nodeReads float64
	}
	start := func(name string, n int, where ...string) *setup {
		env := []string{"NODEEXEC_OCCUPANCY_FILE=" + filepath.Join(b.TempDir(), "occupancy"), "NODEEXEC_OCCUPANCY_HOLD=10ms", "NODEEXEC_RETRY_MAX=0"}
		s := &setup{name: name}
		for range n {
			line := testbed.StartLogged(b, name, "nodeexec serving", true, env, bin,
				append([]string{"serve", "--listen", "127.0.0.1:0", "--max-concurrent", "16"}, where...)...)
			s.bases = append(s.bases, "http://"+line["listen"].(string))
		}
		return s
	}
	shared := func() []string {
		name := storetest.ScratchName()
		b.Cleanup(func() { storetest.DropDatabase(b, mongoURI, name) })
		return []string{"--mongo-uri", mongoURI, "--database", name}
	}
	setups := []*setup{start("embedded", 1, "--data-dir", b.TempDir()), start("shared1", 1, shared()...), start("shared3", 3, shared()...)}
	b.ResetTimer()
	for i := range b.N {
		for k := range setups {
			s := setups[(i+k)%len(setups)]
			ids, hosts, perSecond := acceptDeploys(b, s.bases, fmt.Sprintf("rb%d", i))
			s.accepted += perSecond
			waitIdle(b, s.bases[0])
			s.deploymentReads += readLoad(b, s.bases, func(rng *rand.Rand) string { return "/api/v1/deployments/" + ids[rng.IntN(len(ids))] })
			s.nodeReads += readLoad(b, s.bases, func(rng *rand.Rand) string { return "/api/v1/nodes/bench-rep/" + hosts[rng.IntN(len(hosts))] })
		}
	}
	for _, s := range setups {
		b.ReportMetric(s.accepted/float64(b.N), s.name+"-deploys-accepted/s")
		b.ReportMetric(s.deploymentReads/float64(b.N), s.name+"-deployment-reads/s")
		b.ReportMetric(s.nodeReads/float64(b.N), s.name+"-node-reads/s")
	}
	embedded, one, three := setups[0], setups[1], setups[2]
	b.ReportMetric(three.accepted/one.accepted, "accepted-3/1-replicas")
	b.ReportMetric(three.deploymentReads/one.deploymentReads, "deployment-reads-3/1-replicas")
	b.ReportMetric(one.accepted/embedded.accepted, "accepted-shared/embedded")
	b.ReportMetric(one.nodeReads/embedded.nodeReads, "node-reads-shared/embedded")
}

// acceptDeploys sends replicaRequests deploys, each to a node of its own, from replicaClients clients
// round-robin over bases; every one must be accepted. It returns the deployments, their nodes, and how
// many were accepted per second.
func acceptDeploys(b *testing.B, bases []string, prefix string) (ids, hosts []string, perSecond float64) {
	b.Helper()
	ids, hosts = make([]string, replicaRequests), make([]string, replicaRequests)
	next := make(chan int, replicaRequests)
	for i := range replicaRequests {
		hosts[i] = fmt.Sprintf("%s-h%04d", prefix, i)
		next <- i
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range replicaClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body := map[string]any{"service": "bench-rep", "version": "v1", "nodes": []string{hosts[i]},
					"package_url": "http://127.0.0.1:1/bench-rep.tar.gz", "sha256": strings.Repeat("ab", 32)}
				var out struct{ ID, Error string }
				code, err := call(http.MethodPost, bases[c%len(bases)]+"/api/v1/deployments", body, &out)
				if err != nil || code != http.StatusAccepted {
					b.Errorf("deploy %s: %d %v %v", hosts[i], code, out.Error, err)
				}
				ids[i] = out.ID
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return ids, hosts, float64(replicaRequests) / time.Since(start).Seconds()
}

// waitIdle waits (bounded) until no deployment is pending or deploying, so reads are measured alone.
func waitIdle(b *testing.B, base string) {
	b.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for _, state := range []string{"pending", "deploying"} {
		for {
			var page struct{ Deployments []json.RawMessage }
			if code, err := call(http.MethodGet, base+"/api/v1/deployments?limit=1&state="+state, nil, &page); err != nil || code != http.StatusOK {
				b.Fatalf("list %s deployments: %d %v", state, code, err)
			}
			if len(page.Deployments) == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("deployments still %s after 3m", state)
			}
			time.Sleep(100 * time.Millisecond) // polling, bounded by the deadline
		}
	}
}

// readLoad has replicaClients clients GET path() round-robin over bases for replicaReadTime; each answer
// must be 200. It returns the reads per second.
func readLoad(b *testing.B, bases []string, path func(*rand.Rand) string) float64 {
	b.Helper()
	var reads atomic.Int64
	stop := time.Now().Add(replicaReadTime)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range replicaClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			for time.Now().Before(stop) {
				p := path(rng)
				if code, err := call(http.MethodGet, bases[c%len(bases)]+p, nil, nil); err != nil || code != http.StatusOK {
					b.Errorf("GET %s: %d %v", p, code, err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(reads.Load()) / time.Since(start).Seconds()
}

var benchClient = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: replicaClients}}

// call sends a request with a JSON body (nil: none) and decodes a JSON answer into out (nil: dropped).
func call(method, url string, body, out any) (int, error) {
	return testbed.DoJSON(benchClient, method, url, body, out)
}
