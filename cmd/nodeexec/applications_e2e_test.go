//go:build e2e

package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/internal/contract"
	"github.com/nodeexec/nodeexec/internal/testbed"
)

// Several applications as one deployment, on the real hosts: two services, one of them on a host the
// other is on too, each with its environment and config in its unit's environment (read from the
// running process); a second deployment in which one application fails fails as a whole, and its
// rollback takes back the application that changed, as one rollback.
func TestAPIDeploysSeveralApplicationsAsOneDeployment(t *testing.T) {
	env := setupAPI(t)
	api := env.svc
	web := testbed.NewService(t, env.hosts, "web", map[string]bool{"v1": false, "v2": true})
	h := env.hosts.Addrs
	app := func(svc *testbed.Service, version string, nodes []string, extra map[string]any) map[string]any {
		a := map[string]any{"service": svc.Name, "version": version, "nodes": nodes,
			"package_url": svc.URL(version), "sha256": svc.Releases[version].SHA256,
			"health": map[string]any{"http_port": svc.Port, "http_path": "/health", "retries": 5, "delay_seconds": 1},
			"unit":   map[string]any{"args": fmt.Sprintf("-addr :%d", svc.Port)}}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}
	deploy := func(apps ...map[string]any) (string, map[string]any) {
		t.Helper()
		code, acc := env.call("POST", "/api/v1/deployments", map[string]any{"applications": apps, "requested_by": "plan"})
		if code != http.StatusAccepted {
			t.Fatalf("deploy = %d %v", code, acc)
		}
		id := acc["id"].(string)
		_, end := env.follow(id, nil)
		return id, end
	}

	_, end := deploy(
		app(api, "v1", h[:2], map[string]any{"environment": map[string]any{"MODE": "prod"}, "config": map[string]any{"DB_POOL": "8"}}),
		app(web, "v1", h[:1], map[string]any{"config": map[string]any{"THEME": "dark"}}))
	if end["state"] != "success" || len(end["applications"].([]any)) != 2 {
		t.Fatalf("first deployment = %v", end)
	}
	for _, a := range end["applications"].([]any) {
		a := a.(map[string]any)
		if a["state"] != "success" {
			t.Errorf("application %v", a)
		}
		_, own := env.call("GET", "/api/v1/deployments/"+a["deployment_id"].(string), nil)
		if own["parent_id"] != end["id"] {
			t.Errorf("application's deployment %v", own)
		}
	}
	// The running processes have their variables; the two services share 10.200.0.11.
	environ := func(i int, service string) string {
		t.Helper()
		out, err := env.hosts.SSH(context.Background(), i, "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value "+service+".service)/environ")
		if err != nil {
			t.Fatalf("environ of %s on %s: %v %s", service, h[i], err, out)
		}
		return out
	}
	for _, c := range []struct {
		host     int
		service  string
		has, not []string
	}{
		{0, api.Name, []string{"MODE=prod", "DB_POOL=8"}, []string{"THEME=dark"}},
		{1, api.Name, []string{"MODE=prod", "DB_POOL=8"}, nil},
		{0, web.Name, []string{"THEME=dark"}, []string{"MODE=prod"}},
	} {
		got := environ(c.host, c.service)
		for _, v := range c.has {
			if !strings.Contains(got, v+"\n") {
				t.Errorf("%s on %s lacks %s:\n%s", c.service, h[c.host], v, got)
			}
		}
		for _, v := range c.not {
			if strings.Contains(got, v) {
				t.Errorf("%s on %s has %s", c.service, h[c.host], v)
			}
		}
	}

	// Its management endpoints answer for both applications, in the specified shapes, read live.
	first := end["id"].(string)
	for _, c := range []struct {
		schema contract.Schema
		path   string
	}{
		{contract.Info, "/internal/v1/deploy/info/" + first},
		{contract.Health, "/internal/v1/deploy/health/" + first},
		{contract.Logs, "/internal/v1/deploy/logs/" + first + "?lines=50"},
	} {
		code, body := env.rawGet(c.path)
		if err := contract.Validate(c.schema, body); code != http.StatusOK || err != nil {
			t.Errorf("%s = %d, %v\n%s", c.path, code, err, body)
		}
	}
	if _, info := env.call("GET", "/internal/v1/deploy/info/"+first, nil); info["replicas"] != 3.0 || info["ready_replicas"] != 3.0 {
		t.Errorf("info = %v", info)
	}
	if _, health := env.call("GET", "/internal/v1/deploy/health/"+first, nil); health["healthy"] != true {
		t.Errorf("health = %v", health)
	}
	_, logs := env.call("GET", "/internal/v1/deploy/logs/"+first+"?lines=50", nil)
	units := map[string]bool{}
	for _, raw := range logs["logs"].([]any) {
		units[fmt.Sprint(raw.(map[string]any)["container"])] = true
	}
	if !units[api.Name+".service"] || !units[web.Name+".service"] {
		t.Errorf("the journals read are of %v, want both services'", units)
	}

	// api v2 is good, web v2 fails its health check (and its node goes back to v1 by itself).
	id, end := deploy(app(api, "v2", h[:2], nil), app(web, "v2", h[:1], nil))
	if end["state"] != "failed" || !strings.Contains(fmt.Sprint(end["error"]), web.Name+" failed") {
		t.Fatalf("second deployment = %v", end)
	}
	if v := env.serving(h[0]); v != "v2" {
		t.Errorf("api on %s serves %q after the second deployment", h[0], v)
	}
	code, rb := env.call("POST", "/api/v1/deployments/"+id+"/rollback", map[string]any{"requested_by": "plan"})
	if code != http.StatusAccepted {
		t.Fatalf("rollback = %d %v", code, rb)
	}
	_, back := env.follow(rb["id"].(string), nil)
	apps, _ := back["applications"].([]any)
	if back["state"] != "rolled_back" || back["rollback_of"] != id || len(apps) != 1 || apps[0].(map[string]any)["service"] != api.Name {
		t.Fatalf("rollback = %v", back)
	}
	for _, host := range h[:2] {
		if v := env.serving(host); v != "v1" {
			t.Errorf("api on %s serves %q after the rollback, want v1", host, v)
		}
	}
}
