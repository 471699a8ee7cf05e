// Command apiload measures the API's reads under load: it seeds N nodes and some deployments into the
// database (the embedded server by default), serves the real API on loopback, and has C concurrent
// clients read random records for a while, per endpoint. For comparison it reads the same nodes
// straight from the database (the driver, without the API and without serve's node cache), with the
// same concurrency, in the same run.
//
//	go run ./bench/apiload [-nodes 10000] [-clients 50] [-duration 10s] [-warmup 2s] [-rounds 5]
//	                       [-mongo-uri URI] [-json] [-cpuprofile P]
//
// The endpoints take turns (-rounds), so that other work on a shared machine falls on each alike; the
// CPU columns say how much of the machine the run got. The embedded database runs in this process, so
// -cpuprofile P shows the whole path: load generator, HTTP server, driver, FerretDB and SQLite. It
// writes one profile per endpoint and round, of the measured time only; pprof merges them:
// go tool pprof P-node-*.pprof.
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
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
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
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured time before the measurements, shared by the endpoints")
	rounds := flag.Int("rounds", 5, "the endpoints take turns this many times, duration/rounds each")
	mongoURI := flag.String("mongo-uri", "", "MongoDB URI (default: the embedded server in a temp dir)")
	asJSON := flag.Bool("json", false, "print results as JSON")
	cpuProfile := flag.String("cpuprofile", "", "write CPU profiles of the measured time to `prefix`-<endpoint>-<round>.pprof")
	flag.Parse()
	if *rounds < 1 {
		*rounds = 1
	}
	if err := run(*nodes, *clients, *rounds, *duration, *warmup, *mongoURI, *asJSON, *cpuProfile); err != nil {
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
	// CPU this process used (load generator, server, driver, embedded database), per request and in
	// cores: on a shared machine, cores well under the machine's count mean something else ran too.
	CPUmsPerReq float64 `json:"cpu_ms_per_request"`
	CoresUsed   float64 `json:"cores_used"`
}

func run(nNodes, clients, rounds int, duration, warmup time.Duration, mongoURI string, asJSON bool, cpuProfile string) error {
	ctx := context.Background()
	database := fmt.Sprintf("apiload_%d", time.Now().UnixNano())
	var st *store.Store
	uri := mongoURI
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
		uri = db.URI
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
	// The baseline reads the database itself: a second Store, without the node cache serve's has.
	direct, err := store.Open(ctx, uri, database)
	if err != nil {
		return err
	}
	defer direct.Close(ctx)

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
		name, short string
		op          func(r *rand.Rand) error
	}{
		{"GET /api/v1/nodes/{service}/{host}", "node", func(r *rand.Rand) error {
			return get("/api/v1/nodes/bench/" + hosts[r.IntN(len(hosts))])
		}},
		{"GET /api/v1/deployments/{id}", "deployment", func(r *rand.Rand) error {
			return get("/api/v1/deployments/" + deployments[r.IntN(len(deployments))])
		}},
		{"database read, no cache, no HTTP (baseline)", "store", func(r *rand.Rand) error {
			_, err := direct.Node(ctx, "bench", hosts[r.IntN(len(hosts))])
			return err
		}},
	}
	// Endpoints take turns, a slice of the duration each per round: on a shared machine, other work
	// then falls on all of them alike, which keeps the HTTP/direct comparison fair.
	for _, l := range loads {
		measure(l.op, clients, warmup/time.Duration(len(loads)))
	}
	samples := make([]sample, len(loads))
	for round := 1; round <= rounds; round++ {
		for i, l := range loads {
			stopProfile, err := startProfile(cpuProfile, fmt.Sprintf("%s-%d", l.short, round))
			if err != nil {
				return err
			}
			samples[i].add(measure(l.op, clients, duration/time.Duration(rounds)))
			if err := stopProfile(); err != nil {
				return err
			}
		}
	}
	var results []result
	for i, l := range loads {
		r := samples[i].result(clients)
		r.Name = l.name
		results = append(results, r)
	}
	return report(os.Stdout, asJSON, results, nNodes, seeded)
}

// startProfile starts a CPU profile to prefix-name.pprof; with no prefix it does nothing.
func startProfile(prefix, name string) (stop func() error, err error) {
	if prefix == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(prefix + "-" + name + ".pprof")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
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

// sample is what measurements of one endpoint saw.
type sample struct {
	lat          []time.Duration
	errs         int64
	elapsed, cpu time.Duration
}

func (s *sample) add(o sample) {
	s.lat = append(s.lat, o.lat...)
	s.errs += o.errs
	s.elapsed += o.elapsed
	s.cpu += o.cpu
}

func (s *sample) result(c int) result {
	all := slices.Clone(s.lat)
	slices.Sort(all)
	res := result{Clients: c, Requests: len(all), Errors: s.errs}
	if s.elapsed > 0 {
		res.PerSec = float64(len(all)) / s.elapsed.Seconds()
		res.CoresUsed = s.cpu.Seconds() / s.elapsed.Seconds()
	}
	if n := len(all) + int(s.errs); n > 0 {
		res.CPUmsPerReq = ms(s.cpu) / float64(n)
	}
	if len(all) > 0 {
		q := func(p float64) float64 { return ms(all[min(len(all)-1, int(p*float64(len(all))))]) }
		res.P50ms, res.P90ms, res.P99ms, res.MaxMs = q(0.50), q(0.90), q(0.99), ms(all[len(all)-1])
	}
	return res
}

// measure runs op from c goroutines for d and collects every latency.
func measure(op func(*rand.Rand) error, c int, d time.Duration) sample {
	cpu0 := cpuTime()
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
	return sample{lat: slices.Concat(lat...), errs: errs.Load(), elapsed: time.Since(start), cpu: cpuTime() - cpu0}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(w io.Writer, asJSON bool, results []result, nodes int, seeded time.Duration) error {
	var errs error
	for _, r := range results {
		if r.Errors > 0 {
			errs = errors.Join(errs, fmt.Errorf("%s: %d errors", r.Name, r.Errors))
		}
	}
	if asJSON {
		if err := json.NewEncoder(w).Encode(map[string]any{"nodes": nodes, "cpus": runtime.NumCPU(), "seed_seconds": seeded.Seconds(), "results": results}); err != nil {
			return err
		}
		return errs
	}
	fmt.Fprintf(w, "%d nodes seeded in %.1fs; %d CPUs\n\n", nodes, seeded.Seconds(), runtime.NumCPU())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "endpoint\tclients\trequests\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\terrors\tCPU ms/req\tcores used\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.3f\t%.2f\t\n", r.Name, r.Clients, r.Requests, r.PerSec,
			r.P50ms, r.P90ms, r.P99ms, r.MaxMs, r.Errors, r.CPUmsPerReq, r.CoresUsed)
	}
	tw.Flush()
	if len(results) == 3 && results[2].PerSec > 0 && results[2].P50ms > 0 {
		fmt.Fprintf(w, "\nnode reads over HTTP vs straight from the database: req/s ratio %.2f, p50 ratio %.2f\n",
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
