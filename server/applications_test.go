package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/internal/contract"
)

// appJSON is one application of a deployment of several, on nodes, with extra fields.
func appJSON(service, version, nodes, extra string) string {
	return fmt.Sprintf(`{"service":%q,"version":%q,"nodes":[%s],"package_url":"https://pkgs.example/%s-%s.tgz","sha256":"%s"%s}`,
		service, version, nodes, service, version, strings.Repeat("ab", 32), extra)
}

func applicationsJSON(extra string, apps ...string) string {
	return `{"applications":[` + strings.Join(apps, ",") + `]` + extra + `}`
}

// Several applications go as one deployment: each is a deployment of its own (parent_id naming the
// one), on its own nodes, with its environment and config in its unit's environment; the deployment
// follows them and ends when the last does, with each application's nodes under it.
func TestSeveralApplicationsDeployAsOneDeployment(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	code, acc := f.do(t, "POST", "/api/v1/deployments", applicationsJSON(`,"requested_by":"plan"`,
		appJSON("api", "v2", `"10.0.0.1","10.0.0.2"`, `,"environment":{"MODE":"prod"},"config":{"DB_POOL":"8"},"unit":{"env":{"A":"1"}}`),
		appJSON("web", "v7", `"10.0.0.1"`, `,"config":{"THEME":"dark"}`)))
	if code != http.StatusAccepted {
		t.Fatalf("deploy = %d %v", code, acc)
	}
	id := acc["id"].(string)
	evs, end := f.follow(t, id, nil)
	if end["state"] != "success" || end["service"] != "" || len(end["nodes"].([]any)) != 0 || end["requested_by"] != "plan" {
		t.Fatalf("end = %v", end)
	}
	apps := end["applications"].([]any)
	if len(apps) != 2 {
		t.Fatalf("applications = %v", apps)
	}
	for i, want := range []struct {
		service, version string
		nodes            int
	}{{"api", "v2", 2}, {"web", "v7", 1}} {
		a := apps[i].(map[string]any)
		if a["service"] != want.service || a["version"] != want.version || a["state"] != "success" || len(a["nodes"].([]any)) != want.nodes {
			t.Errorf("application %d = %v", i, a)
		}
		_, own := f.do(t, "GET", "/api/v1/deployments/"+a["deployment_id"].(string), "")
		if own["parent_id"] != id || own["service"] != want.service || own["state"] != "success" {
			t.Errorf("application %d's own deployment = %v", i, own)
		}
	}
	// Both services on 10.0.0.1, each its own record.
	for _, svc := range []string{"api", "web"} {
		if _, n := f.do(t, "GET", "/api/v1/nodes/"+svc+"/10.0.0.1", ""); n["state"] != "success" {
			t.Errorf("node %s/10.0.0.1 = %v", svc, n)
		}
	}
	env := map[string]string{}
	for _, r := range f.exec.deployed() {
		env[r.Service] = fmt.Sprint(r.Unit.Env)
	}
	if env["api"] != "map[A:1 DB_POOL:8 MODE:prod]" || env["web"] != "map[THEME:dark]" {
		t.Errorf("units' environments = %v", env)
	}
	var said []string
	for _, ev := range evs {
		said = append(said, fmt.Sprint(ev.data["message"]))
	}
	all := strings.Join(said, "\n")
	for _, want := range []string{"deploy of 2 applications (api v2, web v7) accepted", "application api v2", "ended success"} {
		if !strings.Contains(all, want) {
			t.Errorf("events do not say %q:\n%s", want, all)
		}
	}
}

// One application failing fails the deployment, naming it; a rollback of the deployment rolls back
// each application that changed a node, as one rollback of several.
func TestAFailedApplicationFailsTheDeploymentAndItRollsBackAsOne(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	for _, v := range []string{"v1", "v2"} {
		_, acc := f.do(t, "POST", "/api/v1/deployments", applicationsJSON("",
			appJSON("api", v, `"10.0.0.1"`, ""), appJSON("web", v, `"10.0.0.2"`, "")))
		if end := f.waitState(t, acc["id"].(string)); end["state"] != "success" {
			t.Fatalf("%s = %v", v, end)
		}
	}
	f.exec.failing = map[string]bool{"10.0.0.2": true}
	_, acc := f.do(t, "POST", "/api/v1/deployments", applicationsJSON("",
		appJSON("api", "v3", `"10.0.0.1"`, ""), appJSON("web", "v3", `"10.0.0.2"`, "")))
	id := acc["id"].(string)
	end := f.waitState(t, id)
	if end["state"] != "failed" || !strings.Contains(fmt.Sprint(end["error"]), "web failed") {
		t.Fatalf("end = %v", end)
	}
	code, rb := f.do(t, "POST", "/api/v1/deployments/"+id+"/rollback", "")
	if code != http.StatusAccepted {
		t.Fatalf("rollback = %d %v", code, rb)
	}
	back := f.waitState(t, rb["id"].(string))
	apps := back["applications"].([]any)
	if back["state"] != "rolled_back" || back["kind"] != "rollback" || back["rollback_of"] != id || len(apps) != 1 ||
		apps[0].(map[string]any)["service"] != "api" {
		t.Fatalf("rollback = %v", back)
	}
	if got := f.exec.rollbacks(); got != "10.0.0.1->v2" {
		t.Errorf("executor rollbacks = %q", got)
	}
}

// A deployment of several is refused whole, before anything is recorded or held: a field of its own
// that belongs to each application, a service twice, a bad field of one application (named by its
// place), a variable given twice, and an application whose node another deployment holds.
func TestSeveralApplicationsAreRefusedWhole(t *testing.T) {
	f := newFixture(t)
	api, web := appJSON("api", "v2", `"10.0.0.1"`, ""), appJSON("web", "v2", `"10.0.0.2"`, "")
	for _, c := range []struct{ body, field, says string }{
		{`{"service":"api","applications":[` + api + `]}`, "service", "gives it in each application"},
		{`{"environment":{"A":"1"},"applications":[` + api + `]}`, "environment", "gives it in each application"},
		{applicationsJSON("", api, appJSON("api", "v3", `"10.0.0.3"`, "")), "applications[1].service", `"api" is also applications[0]`},
		{applicationsJSON("", api, strings.Replace(web, strings.Repeat("ab", 32), "nothex", 1)), "applications[1].sha256", ""},
		{applicationsJSON("", appJSON("api", "v2", `"10.0.0.1"`, `,"environment":{"A":"1"},"config":{"A":"2"}`)), "applications[0].config", "A is also given in environment"},
		{applicationsJSON("", appJSON("api", "v2", `"10.0.0.1"`, `,"environment":{"A":"x\"y"}`)), "applications[0].environment.A", "quotes"},
		{applicationsJSON(`,"platform":"k8s"`, api), "platform", "not configured"},
	} {
		code, body := f.do(t, "POST", "/api/v1/deployments", c.body)
		if code != http.StatusBadRequest || body["field"] != c.field || !strings.Contains(fmt.Sprint(body["error"]), c.says) {
			t.Errorf("%s: %d %v", c.field, code, body)
		}
	}
	// 10.0.0.2 is held: nothing of the deployment of several is recorded, and 10.0.0.1 is free after.
	code, held := f.do(t, "POST", "/api/v1/deployments", strings.Replace(deployJSON(`"10.0.0.2"`, ""), `"demo"`, `"web"`, 1))
	if code != http.StatusAccepted {
		t.Fatalf("holder = %d %v", code, held)
	}
	<-f.exec.started
	code, body := f.do(t, "POST", "/api/v1/deployments", applicationsJSON(`,"idempotency_key":"k1"`, api, web))
	if code != http.StatusConflict || body["code"] != "node_busy" || body["deployment_id"] != held["id"] {
		t.Fatalf("busy = %d %v", code, body)
	}
	_, list := f.do(t, "GET", "/api/v1/deployments", "")
	if n := len(list["deployments"].([]any)); n != 1 {
		t.Errorf("recorded %d deployments, want only the holder: %v", n, list)
	}
	close(f.exec.gate)
	f.waitState(t, held["id"].(string))
	if code, body := f.do(t, "POST", "/api/v1/deployments", applicationsJSON(`,"idempotency_key":"k1"`, api, web)); code != http.StatusAccepted {
		t.Fatalf("once free = %d %v (its key was given back, its claims too)", code, body)
	} else {
		again, other := applicationsJSON(`,"idempotency_key":"k1"`, api, web), applicationsJSON(`,"idempotency_key":"k1"`, api, strings.Replace(web, `"v2"`, `"v3"`, 1))
		if c2, b2 := f.do(t, "POST", "/api/v1/deployments", again); c2 != http.StatusAccepted || b2["id"] != body["id"] {
			t.Errorf("same key, same request = %d %v, want %v", c2, b2, body["id"])
		}
		if c3, b3 := f.do(t, "POST", "/api/v1/deployments", other); c3 != http.StatusUnprocessableEntity || b3["code"] != "key_reused" {
			t.Errorf("same key, another application version = %d %v", c3, b3)
		}
		f.waitState(t, body["id"].(string))
	}
}

// The management endpoints answer for a deployment of several as for one, in the specified shapes:
// every application's replicas, checks and lines, each marked with its application.
func TestADeploymentOfSeveralAnswersTheSpecifiedShapesForAllItsApplications(t *testing.T) {
	journal := &journalExecutor{asked: make(chan executor.JournalRequest, 8)}
	f := newFixture(t, withOps, func(c *Config) {
		journal.opsExecutor = c.Executor.(*opsExecutor)
		c.Executor = journal
	})
	close(f.exec.gate)
	code, acc := f.do(t, "POST", "/api/v1/deployments", applicationsJSON("",
		appJSON("api", "v2", `"10.0.0.1","10.0.0.2"`, ""), appJSON("web", "v2", `"10.0.0.1"`, ""))) // the fake's units run v2
	if code != http.StatusAccepted {
		t.Fatalf("deploy = %d %v", code, acc)
	}
	id := acc["id"].(string)
	if end := f.waitState(t, id); end["state"] != "success" {
		t.Fatalf("end = %v", end)
	}
	info := f.conforms(t, contract.Info, "/internal/v1/deploy/info/"+id)
	pods := info["details"].(map[string]any)["pods"].([]any)
	if info["status"] != "succeeded" || info["replicas"] != 3.0 || info["ready_replicas"] != 3.0 || len(pods) != 3 ||
		pods[2].(map[string]any)["application"] != "web" || info["summary"].(map[string]any)["success"] != 3.0 {
		t.Errorf("info = %v", info)
	}
	health := f.conforms(t, contract.Health, "/internal/v1/deploy/health/"+id)
	if health["healthy"] != true || !strings.Contains(health["message"].(string), "All 2 applications are healthy") ||
		checkStatuses(health)["pod_status"] != "healthy" {
		t.Errorf("health = %v", health)
	}
	logs := f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id+"?lines=100")
	apps := map[string]int{}
	for _, raw := range logs["logs"].([]any) {
		e := raw.(map[string]any)
		apps[fmt.Sprint(e["application"])+" "+fmt.Sprint(e["container"])]++
	}
	if apps["api api.service"] != 4 || apps["web web.service"] != 2 {
		t.Errorf("lines by application = %v", apps)
	}
	// pod_name picks a node of every application it belongs to; one of none is 404.
	one := f.conforms(t, contract.Logs, "/internal/v1/deploy/logs/"+id+"?pod_name=10.0.0.2")
	if n := len(one["logs"].([]any)); n != 2 {
		t.Errorf("pod_name=10.0.0.2: %d lines, want api's 2", n)
	}
	if code, body := f.do(t, "GET", "/internal/v1/deploy/logs/"+id+"?pod_name=10.9.9.9", ""); code != http.StatusNotFound || body["field"] != "pod_name" {
		t.Errorf("pod_name of none = %d %v", code, body)
	}
}
