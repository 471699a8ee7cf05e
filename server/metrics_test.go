package server

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
)

// checkingExecutor is the gated executor with the role's verification steps: every node it deploys
// reports them, the first two live (as ansible-playbook's progress callback does) and the rest only in
// its result. A node deployed the version rollsBack names for it fails its HTTP check and is switched
// back to v1 in the same run (rolled_back), verifying v1 again, as the role's auto_rollback.yml does.
// Nodes that fail (gatedExecutor.failing) fail at the download: they reach no check.
type checkingExecutor struct {
	*gatedExecutor
	rollsBack map[string]string
}

func (e *checkingExecutor) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	res, err := e.gatedExecutor.Deploy(ctx, req)
	for i := range res {
		r := &res[i]
		if r.State != executor.StateSuccess {
			continue
		}
		verify := []executor.Step{{Name: "Wait for the unit to be active"}, {Name: "Check the HTTP health endpoint"}, {Name: "Check the TCP port", Skipped: true}}
		r.Steps = append([]executor.Step{{Name: "Switch current to the new release", Changed: true}}, verify...)
		if e.rollsBack[r.Host] == req.Version {
			r.Steps[2].Failed = true
			r.Steps = append(r.Steps[:3], executor.Step{Name: "Switch current back to the previous release", Changed: true})
			r.Steps = append(r.Steps, verify...)
			r.State, r.CurrentVersion, r.LastError = executor.StateRolledBack, "v1", req.Version+" failed verification and was rolled back to v1"
		}
		for _, st := range r.Steps[:2] {
			req.Progress(r.Host, st)
		}
	}
	return res, err
}

// series names one series as the exposition writes it: labels sorted by name.
func series(name string, labels ...string) string {
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// scrape reads /metrics as Prometheus does and returns nodeexec's series. Histograms count as their
// _count (how many were observed); their buckets and sums depend on timing.
func (f *fixture) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(f.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		key, value, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(line, "nodeexec_") || strings.Contains(key, "_bucket{") || strings.Contains(key, "_sum{") {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[key] = v
	}
	return out
}

// expectDelta scrapes again and checks that exactly the series in want changed since before, each by
// its amount; it returns the new scrape.
func (f *fixture) expectDelta(t *testing.T, step string, before map[string]float64, want map[string]float64) map[string]float64 {
	t.Helper()
	now := f.scrape(t)
	got := map[string]float64{}
	for k, v := range now {
		if d := v - before[k]; d != 0 {
			got[k] = d
		}
	}
	for k, v := range before {
		if _, ok := now[k]; !ok {
			got[k] = -v
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: the metrics changed by\n  %v\nwant\n  %v", step, got, want)
	}
	return now
}

// Every way a deployment ends moves the metrics by exactly what it did: its outcome, its run time and
// its executor calls, the nodes it rolled back, the checks its nodes ran; the in-flight gauge follows
// it from queued to running to gone.
func TestMetricsFollowEveryOutcome(t *testing.T) {
	var exec *checkingExecutor
	f := newFixture(t, func(c *Config) {
		c.MaxConcurrent = 1
		exec = &checkingExecutor{gatedExecutor: c.Executor.(*gatedExecutor), rollsBack: map[string]string{"10.0.0.2": "v2"}}
		exec.failing = map[string]bool{"10.0.0.4": true}
		c.Executor = exec
	})
	physical := []string{"platform", "physical", "service", "demo"}
	ended := func(kind, state string) string {
		return series("nodeexec_deployments_total", append([]string{"kind", kind, "state", state}, physical...)...)
	}
	took := func(kind, state string) string {
		return series("nodeexec_deployment_duration_seconds_count", append([]string{"kind", kind, "state", state}, physical...)...)
	}
	calls := func(kind string) string {
		return series("nodeexec_executor_run_duration_seconds_count", append([]string{"kind", kind}, physical...)...)
	}
	inFlight := func(phase string) string {
		return series("nodeexec_deployments_in_flight", append([]string{"phase", phase}, physical...)...)
	}
	check := func(name, result string) string {
		return series("nodeexec_health_checks_total", append([]string{"check", name, "result", result}, physical...)...)
	}
	rollbacks := func(trigger string) string {
		return series("nodeexec_node_rollbacks_total", append([]string{"trigger", trigger}, physical...)...)
	}
	post := func(path, body string) string {
		t.Helper()
		code, b := f.do(t, "POST", path, body)
		if code != http.StatusAccepted {
			t.Fatalf("POST %s = %d %v", path, code, b)
		}
		return b["id"].(string)
	}
	version := func(v, nodes string) string { return strings.Replace(deployJSON(nodes, ""), `"v2"`, `"`+v+`"`, 1) }

	m := f.scrape(t)
	running := post("/api/v1/deployments", version("v1", `"10.0.0.9"`))
	<-f.exec.started
	m = f.expectDelta(t, "a deployment runs", m, map[string]float64{inFlight("running"): 1})
	waiting := post("/api/v1/deployments", version("v1", `"10.0.0.3"`))
	m = f.expectDelta(t, "another waits for the only slot", m, map[string]float64{inFlight("queued"): 1})

	post("/api/v1/deployments/"+waiting+"/cancel", "")
	f.waitState(t, waiting)
	m = f.expectDelta(t, "the waiting one is cancelled", m, map[string]float64{inFlight("queued"): -1, ended("deploy", "failed"): 1})
	post("/api/v1/deployments/"+running+"/cancel", "")
	f.waitState(t, running)
	m = f.expectDelta(t, "the running one is cancelled", m, map[string]float64{inFlight("running"): -1,
		ended("deploy", "failed"): 1, took("deploy", "failed"): 1, calls("deploy"): 1})

	close(f.exec.gate)
	if end := f.waitState(t, post("/api/v1/deployments", version("v1", `"10.0.0.1","10.0.0.2"`))); end["state"] != "success" {
		t.Fatalf("first deploy = %v", end)
	}
	m = f.expectDelta(t, "a deploy succeeds", m, map[string]float64{ended("deploy", "success"): 1, took("deploy", "success"): 1,
		calls("deploy"): 1, check("unit_active", "pass"): 2, check("http", "pass"): 2})

	if end := f.waitState(t, post("/api/v1/deployments", version("v2", `"10.0.0.4"`))); end["state"] != "failed" {
		t.Fatalf("deploy to the failing node = %v", end)
	}
	m = f.expectDelta(t, "a deploy fails before any check", m, map[string]float64{ended("deploy", "failed"): 1, took("deploy", "failed"): 1,
		calls("deploy"): 1})

	autoRolledBack := post("/api/v1/deployments", version("v2", `"10.0.0.1","10.0.0.2"`))
	if end := f.waitState(t, autoRolledBack); end["state"] != "failed" {
		t.Fatalf("deploy with a node that fails verification = %v", end)
	}
	m = f.expectDelta(t, "a node fails verification and is switched back", m, map[string]float64{ended("deploy", "failed"): 1,
		took("deploy", "failed"): 1, calls("deploy"): 1, rollbacks("automatic"): 1,
		check("unit_active", "pass"): 3, check("http", "pass"): 2, check("http", "fail"): 1})

	// Only 10.0.0.1 runs what the deployment put there: the rollback takes that one node back.
	if end := f.waitState(t, post("/api/v1/deployments/"+autoRolledBack+"/rollback", "")); end["state"] != "rolled_back" {
		t.Fatalf("rollback = %v", end)
	}
	f.expectDelta(t, "an explicit rollback", m, map[string]float64{ended("rollback", "rolled_back"): 1, took("rollback", "rolled_back"): 1,
		calls("rollback"): 1, rollbacks("explicit"): 1})
}

// /metrics is a read like any other: Prometheus sends a read token; without one it is 401.
func TestMetricsNeedTheReadScope(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Tokens = []Token{{Name: "prometheus", Token: "read-token-0123456789", Scopes: []Scope{ScopeRead}}}
	})
	get := func(token string) (int, string) {
		req, _ := http.NewRequest("GET", f.http.URL+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			body.WriteString(sc.Text() + "\n")
		}
		return resp.StatusCode, body.String()
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token = %d, want 401", code)
	}
	code, body := get("read-token-0123456789")
	// The Go runtime's and the process's collectors are in the server's own registry.
	if code != http.StatusOK || !strings.Contains(body, "\ngo_goroutines ") || !strings.Contains(body, "\nprocess_start_time_seconds ") {
		t.Errorf("GET /metrics with a read token = %d:\n%s", code, body)
	}
}
