package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Hostile input on the command line is refused with exit status 2 and a message naming the field,
// whether the command or the server refuses it; nothing is recorded or run.
func TestHostileInputOnTheCommandLineIsRefusedAndRecordsNothing(t *testing.T) {
	exec := &opsExecutor{}
	url := apiServer(t, exec)
	deploy := func(extra ...string) []string { return deployArgs(url, "v1", extra...) }
	restart := func(extra ...string) []string {
		return append([]string{"restart", "--server", url, "--service", "demo", "--nodes", "10.0.0.1"}, extra...)
	}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"cyrillic e in service", deploy("--service", "dеmo"), "service"},
		{"NUL in version", deploy("--version", "v1\x00"), "version"},
		{"fullwidth digit in a host", deploy("--nodes", "10.0.0.１"), "nodes[0].host"},
		{"service of 64 characters", deploy("--service", strings.Repeat("s", 64)), "service"},
		{"package_url of 2049 characters", deploy("--package-url", "http://p.example/"+strings.Repeat("p", 2032)), "package_url"},
		{"idempotency key of 201 characters", deploy("--idempotency-key", strings.Repeat("k", 201)), "idempotency_key"},
		{"newline in requested-by", deploy("--requested-by", "alice\nbob"), "requested_by"},
		{"package_url with user:pass@", deploy("--package-url", "http://u:p@p.example/demo.tgz"), "package_url"},
		{"health port past 65535", deploy("--health-port", "65536"), "health.http_port"},
		{"negative tcp port", deploy("--tcp-port", "-1"), "health.tcp_port"},
		{"health status 600", deploy("--health-status", "600"), "health.http_status"},
		{"health retries past 1000", deploy("--health-retries", "1001"), "health.retries"},
		{"health delay past an hour", deploy("--health-delay", "2h"), "health.delay"},
		{"health interval under 50 ms", deploy("--health-interval", "1ms"), "health.interval_ms"},
		{"exec args with a newline and a directive", deploy("--exec-args", "-addr :80\nExecStartPre=/bin/sh -c id"), "unit.args"},
		{"exec with a newline", deploy("--exec", "bin/demo\nUser=root"), "unit.exec"},
		{"restart: negative batch size", restart("--batch-size", "-1"), "batch_size"},
		{"restart: batch size past 500", restart("--batch-size", "501"), "batch_size"},
		{"restart: newline in the key", restart("--idempotency-key", "a\nb"), "idempotency_key"},
		{"rollback: NUL in the key", []string{"rollback", "--server", url, "--idempotency-key", "k\x00", "d-1"}, "idempotency_key"},
		{"list: limit past 200", []string{"list", "--server", url, "--limit", "201"}, "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCaptured(t, c.args)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want 2 naming %q", code, stderr, c.want)
			}
		})
	}
	exec.mu.Lock()
	if len(exec.deploys)+len(exec.restarts) != 0 {
		t.Errorf("hostile command lines ran %d deploys and %d restarts", len(exec.deploys), len(exec.restarts))
	}
	exec.mu.Unlock()
	resp, err := http.Get(url + "/api/v1/deployments")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Deployments []any }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Deployments) != 0 {
		t.Errorf("hostile command lines recorded %d deployments (%v)", len(list.Deployments), err)
	}
}
