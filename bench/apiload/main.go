// Command apiload measures the API's reads under load: it seeds N nodes and some deployments into the
// database (the embedded server by default), serves the real API on loopback, and has C concurrent
// clients read random records for a while, per endpoint. For comparison it reads the same nodes
// through the store directly, with the same concurrency, in the same run.
//
//	go run ./bench/apiload [-nodes 10000] [-clients 50] [-duration 10s] [-warmup 2s] [-mongo-uri URI] [-json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/server"
	"github.com/nodeexec/nodeexec/store"
)

func main() {
	nodes := flag.Int("nodes", 10000, "node records to seed")
	clients := flag.Int("clients", 50, "concurrent clients")
	duration := flag.Duration("duration", 10*time.Second, "measured time per endpoint")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured time before each measurement")
	mongoURI := flag.String("mongo-uri", "", "MongoDB URI (default: the embedded server in a temp dir)")
	asJSON := flag.Bool("json", false, "print results as JSON")
	flag.Parse()
	if err := run(*nodes, *clients, *duration, *warmup, *mongoURI, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "apiload:", err)
		os.Exit(1)
	}
}

// result is one endpoint's figures.
type result struct {
	Name     string  `json:"name"`
	Clients  int     `json:"clients"`
	Requests int     `json:"requests"`
	Errors   int64   `json:"errors"`
	PerSec   float64 `json:"requests_per_second"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
	MaxMs    float64 `json:"max_ms"`
}

func run(nNodes, clients int, duration, warmup time.Duration, mongoURI string, asJSON bool) error {
	ctx := context.Background()
	database := fmt.Sprintf("apiload_%d", time.Now().UnixNano())
	var st *store.Store
	if mongoURI == "" {
		dir, err := os.MkdirTemp("", "nodeexec-apiload-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		db, err := store.StartEmbedded(ctx, dir)
		if err != nil {
			return err
		}
		defer db.Stop()
		if st, err = db.Open(ctx, database); err != nil {
			return err
		}
	} else {
		var err error
		if st, err = store.Open(ctx, mongoURI, database); err != nil {
			return err
		}
	}
	defer st.Close(ctx)

	seedStart := time.Now()
	hosts, deployments, err := seed(ctx, st, nNodes)
	if err != nil {
		return err
	}
	seeded := time.Since(seedStart)

	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	srv := server.New(server.Config{Executor: readOnly{}, Store: st, Logger: quiet})
	defer srv.Shutdown()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	base := "http://" + ln.Addr().String()
	transport := &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	get := func(path string) error {
		resp, err := client.Get(base + path)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %d", path, resp.StatusCode)
		}
		return nil
	}
	loads := []struct {
		name string
		op   func(r *rand.Rand) error
	}{
		{"GET /api/v1/nodes/{service}/{host}", func(r *rand.Rand) error {
			return get("/api/v1/nodes/bench/" + hosts[r.IntN(len(hosts))])
		}},
		{"GET /api/v1/deployments/{id}", func(r *rand.Rand) error {
			return get("/api/v1/deployments/" + deployments[r.IntN(len(deployments))])
		}},
		{"store.Node (no HTTP, the baseline)", func(r *rand.Rand) error {
			_, err := st.Node(ctx, "bench", hosts[r.IntN(len(hosts))])
			return err
		}},
	}
	var results []result
	for _, l := range loads {
		measure(l.op, clients, warmup)
		results = append(results, measure(l.op, clients, duration))
		results[len(results)-1].Name = l.name
	}
	return report(os.Stdout, asJSON, results, nNodes, seeded)
}

// seed writes n nodes of service "bench" and 100 deployments of 10 nodes each.
func seed(ctx context.Context, st *store.Store, n int) (hosts, deployments []string, err error) {
	now := time.Now().UTC()
	nodes := make([]store.Node, n)
	for i := range nodes {
		h := fmt.Sprintf("10.%d.%d.%d", 1+i/65536, (i/256)%256, i%256)
		hosts = append(hosts, h)
		nodes[i] = store.Node{Service: "bench", Host: h, Platform: executor.PlatformPhysical, CurrentVersion: "v2", PrevVersion: "v1",
			State: executor.StateSuccess, DeploymentID: "d-seed", CreatedAt: now, UpdatedAt: now}
	}
	if err := st.InsertNodes(ctx, nodes); err != nil {
		return nil, nil, err
	}
	for i := range 100 {
		d := &store.Deployment{ID: fmt.Sprintf("d-bench-%03d", i), Kind: store.KindDeploy, Service: "bench", Version: "v2",
			Platform: executor.PlatformPhysical, State: executor.StateSuccess, CreatedAt: now}
		for j := range 10 {
			d.Nodes = append(d.Nodes, store.DeploymentNode{Host: hosts[(i*10+j)%len(hosts)], State: executor.StateSuccess,
				TargetVersion: "v2", FromVersion: "v1", CurrentVersion: "v2", PrevVersion: "v1", Changed: true})
		}
		if _, _, err := st.CreateDeployment(ctx, d); err != nil {
			return nil, nil, err
		}
		deployments = append(deployments, d.ID)
	}
	return hosts, deployments, nil
}

// measure runs op from c goroutines for d and collects every latency.
func measure(op func(*rand.Rand) error, c int, d time.Duration) result {
	var wg sync.WaitGroup
	var errs atomic.Int64
	lat := make([][]time.Duration, c)
	stop := time.Now().Add(d)
	start := time.Now()
	for i := range c {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 42))
			for time.Now().Before(stop) {
				t0 := time.Now()
				if err := op(r); err != nil {
					errs.Add(1)
					continue
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := result{Clients: c, Requests: len(all), Errors: errs.Load(), PerSec: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		q := func(p float64) float64 { return ms(all[min(len(all)-1, int(p*float64(len(all))))]) }
		res.P50ms, res.P90ms, res.P99ms, res.MaxMs = q(0.50), q(0.90), q(0.99), ms(all[len(all)-1])
	}
	return res
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func report(w io.Writer, asJSON bool, results []result, nodes int, seeded time.Duration) error {
	var errs error
	for _, r := range results {
		if r.Errors > 0 {
			errs = errors.Join(errs, fmt.Errorf("%s: %d errors", r.Name, r.Errors))
		}
	}
	if asJSON {
		if err := json.NewEncoder(w).Encode(map[string]any{"nodes": nodes, "seed_seconds": seeded.Seconds(), "results": results}); err != nil {
			return err
		}
		return errs
	}
	fmt.Fprintf(w, "%d nodes seeded in %.1fs\n\n", nodes, seeded.Seconds())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\tclients\trequests\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\terrors\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n", r.Name, r.Clients, r.Requests, r.PerSec, r.P50ms, r.P90ms, r.P99ms, r.MaxMs, r.Errors)
	}
	tw.Flush()
	if len(results) == 3 && results[2].PerSec > 0 && results[2].P50ms > 0 {
		fmt.Fprintf(w, "\nnode reads over HTTP vs straight from the store: req/s ratio %.2f, p50 ratio %.2f\n",
			results[0].PerSec/results[2].PerSec, results[0].P50ms/results[2].P50ms)
	}
	return errs
}

// readOnly is the executor of a server that only serves reads here.
type readOnly struct{}

var errReadOnly = errors.New("apiload serves reads only")

func (readOnly) Deploy(context.Context, executor.DeployRequest) ([]executor.NodeResult, error) {
	return nil, errReadOnly
}
func (readOnly) Rollback(context.Context, executor.RollbackRequest) ([]executor.NodeResult, error) {
	return nil, errReadOnly
}
func (readOnly) Status(context.Context, executor.StatusRequest) ([]executor.NodeResult, error) {
	return nil, errReadOnly
}
