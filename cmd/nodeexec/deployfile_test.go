package main

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/api"
)

// deployFlagsThatAreNoField are deploy's flags that set no field of the request.
var deployFlagsThatAreNoField = map[string]bool{"server": true, "token-file": true, "o": true, "output": true, "json": true,
	"detach": true, "dry-run": true, "applications": true, "from-file": true}

// Every flag of deploy overrides its field over --from-file: none is forgotten in deployFlagFields.
func TestEveryDeployFlagIsAFieldOfTheRequest(t *testing.T) {
	var names []string
	collectFlags = func(fs *flag.FlagSet) { fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) }) }
	defer func() { collectFlags = nil }()
	if _, err := deployCmd(context.Background(), nil); err != errHelp {
		t.Fatalf("collecting deploy's flags: %v", err)
	}
	if len(names) < 30 {
		t.Fatalf("deploy has %d flags: %v", len(names), names)
	}
	for _, n := range names {
		if _, ok := deployFlagFields[n]; !ok && !deployFlagsThatAreNoField[n] {
			t.Errorf("--%s: not in deployFlagFields (does it set a field of the request?)", n)
		}
	}
}

// recordingServer accepts every deploy and keeps the requests' bodies.
func recordingServer(t *testing.T) (string, *[]api.DeployRequest) {
	t.Helper()
	var got []api.DeployRequest
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body api.DeployRequest
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("%s %s: %v", r.Method, r.URL, err)
		}
		got = append(got, body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(api.Accepted{ID: "d-1", State: api.StatePending})
	}))
	t.Cleanup(hs.Close)
	return hs.URL, &got
}

func TestDeployFlagsSendEveryFieldOfTheRequest(t *testing.T) {
	url, got := recordingServer(t)
	code, out, errOut := runCaptured(t, deployArgs(url, "v2", "--detach", "--batch-size", "2", "--stop-on-failure", "--max-unavailable-nodes", "1",
		"--env", "MODE=prod", "--config", "POOL=8", "--unit-env", "GOGC=50", "--delivery", "push", "--health-port", "8080",
		"--health-retries", "3", "--stable-seconds", "5", "--exec-args", "-addr :8080", "--requested-by", "ana", "--idempotency-key", "k-1"))
	if code != 0 || strings.TrimSpace(out) != "d-1" || len(*got) != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	want := api.DeployRequest{Service: "demo", Version: "v2", Nodes: []string{"10.0.0.1", "10.0.0.2"}, PackageURL: "http://pkgs.example/demo-v2.tgz",
		SHA256: strings.Repeat("ab", 32), Health: &api.HealthCheck{HTTPPort: 8080, HTTPPath: "/health", HTTPStatus: 200, Retries: 3, DelaySeconds: 1, StableSeconds: 5},
		Unit: api.Unit{Args: "-addr :8080", Env: map[string]string{"GOGC": "50"}}, IdempotencyKey: "k-1", RequestedBy: "ana", BatchSize: 2,
		StopOnFailure: true, MaxUnavailable: 1, Delivery: api.DeliveryPush, Environment: map[string]string{"MODE": "prod"}, Config: map[string]string{"POOL": "8"}}
	if !reflect.DeepEqual((*got)[0], want) {
		t.Errorf("sent %+v\nwant %+v", (*got)[0], want)
	}
}

// --from-file sends the file's request; each flag given beside it overrides its own field only.
func TestDeployFromFileWithFlagsOverridingItsFields(t *testing.T) {
	url, got := recordingServer(t)
	t.Setenv("USER", "ops-user")
	file := filepath.Join(t.TempDir(), "request.json")
	request := `{"service": "demo", "version": "v1", "nodes": ["10.0.0.9"], "package_url": "http://pkgs.example/demo-v1.tgz",
		"sha256": "` + strings.Repeat("cd", 32) + `", "batch_size": 3, "health": {"http_port": 9000, "http_path": "/ready", "retries": 4},
		"environment": {"A": "1"}}`
	if err := os.WriteFile(file, []byte(request), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCaptured(t, []string{"deploy", "--server", url, "--detach", "--from-file", file, "--version", "v9", "--health-retries", "7", "--stop-on-failure"})
	if code != 0 || len(*got) != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	want := api.DeployRequest{Service: "demo", Version: "v9", Nodes: []string{"10.0.0.9"}, PackageURL: "http://pkgs.example/demo-v1.tgz",
		SHA256: strings.Repeat("cd", 32), BatchSize: 3, StopOnFailure: true, Health: &api.HealthCheck{HTTPPort: 9000, HTTPPath: "/ready", Retries: 7},
		Environment: map[string]string{"A": "1"}, RequestedBy: "ops-user"}
	if key := (*got)[0].IdempotencyKey; strings.HasPrefix(key, "nxc-") { // the client's own, as for every deploy without one
		want.IdempotencyKey = key
	}
	if !reflect.DeepEqual((*got)[0], want) {
		t.Errorf("sent %+v\nwant %+v", (*got)[0], want)
	}
	// A field the API does not know is a typo: refused, nothing sent.
	if err := os.WriteFile(file, []byte(`{"service": "demo", "batchsize": 2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCaptured(t, []string{"deploy", "--server", url, "--from-file", file}); code != 2 || !strings.Contains(errOut, `unknown field "batchsize"`) || len(*got) != 1 {
		t.Errorf("a file with a typo: exit %d, %s (%d sent)", code, errOut, len(*got))
	}
}
