package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// deploy --dry-run asks the server's dry run and prints its answer, a node a line (the API's object
// with -o json); it starts nothing.
func TestDeployDryRunPrintsWhatWouldHappenAndStartsNothing(t *testing.T) {
	var queries []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body["version"] != "v2" {
			t.Errorf("body = %v %v", body, err)
		}
		_, _ = w.Write([]byte(`{"dry_run":true,"service":"demo","version":"v2","platform":"physical","nodes":[` +
			`{"host":"10.0.0.1","action":"change","from":"v1","to":"v2","recorded":"v1"},` +
			`{"host":"10.0.0.2","action":"held","to":"v2","held_by":"d-other"},` +
			`{"host":"10.0.0.3","action":"unreachable","to":"v2","error":"ssh timed out"}]}`))
	}))
	defer hs.Close()
	args := []string{"deploy", "--server", hs.URL, "--dry-run", "--service", "demo", "--version", "v2", "--nodes", "10.0.0.1,10.0.0.2,10.0.0.3",
		"--package-url", "https://p/demo.tgz", "--sha256", strings.Repeat("a", 64)}
	code, out, errOut := runCaptured(t, args)
	if code != 0 || len(queries) != 1 || queries[0] != "POST /api/v1/deployments?dry_run=true" {
		t.Fatalf("exit %d, requests %v, stderr %s", code, queries, errOut)
	}
	for _, want := range []string{"dry run: demo v2 (physical), nothing changed", "10.0.0.1  change", "v1    v2  v1",
		"held by d-other", "10.0.0.3  unreachable", "ssh timed out"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCaptured(t, append(args, "-o", "json"))
	var plan map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &plan) != nil || plan["dry_run"] != true || len(plan["nodes"].([]any)) != 3 {
		t.Errorf("-o json: exit %d, %s", code, out)
	}
	if code, _, errOut := runCaptured(t, []string{"deploy", "--server", hs.URL, "--dry-run", "--applications", "x.json"}); code != 2 || !strings.Contains(errOut, "dry run") {
		t.Errorf("--dry-run with --applications: exit %d, %s", code, errOut)
	}
	if len(queries) != 2 {
		t.Errorf("requests = %v, want the two dry runs only", queries)
	}
}
