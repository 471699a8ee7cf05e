package server

import (
	"strings"
	"testing"
)

// The inventory through the API: the services with their versions, every node in pages and by filter,
// and a node forgotten (recorded, with who did it), refused while a deployment holds it.
func TestInventoryServicesNodesAndForget(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	for _, body := range []string{
		deployJSON(`"10.0.0.1","10.0.0.2","10.0.0.3"`, ""),
		strings.Replace(deployJSON(`"10.0.0.1"`, ""), `"demo"`, `"web"`, 1),
	} {
		_, acc := f.do(t, "POST", "/api/v1/deployments", body)
		f.waitState(t, acc["id"].(string))
	}
	code, list := f.do(t, "GET", "/api/v1/services", "")
	services, _ := list["services"].([]any)
	if code != 200 || len(services) != 2 {
		t.Fatalf("services = %d %v", code, list)
	}
	demo := services[0].(map[string]any)
	versions := demo["versions"].([]any)
	if demo["service"] != "demo" || demo["nodes"] != 3.0 || len(versions) != 1 || versions[0].(map[string]any)["version"] != "v2" ||
		len(versions[0].(map[string]any)["hosts"].([]any)) != 3 {
		t.Errorf("demo = %v", demo)
	}
	code, page := f.do(t, "GET", "/api/v1/nodes?limit=3", "")
	if code != 200 || len(page["nodes"].([]any)) != 3 || page["next_cursor"] == "" {
		t.Fatalf("first page = %d %v", code, page)
	}
	if _, rest := f.do(t, "GET", "/api/v1/nodes?limit=3&cursor="+page["next_cursor"].(string), ""); len(rest["nodes"].([]any)) != 1 || rest["next_cursor"] != "" {
		t.Errorf("second page = %v", rest)
	}
	if _, web := f.do(t, "GET", "/api/v1/nodes?service=web&version=v2&state=success", ""); len(web["nodes"].([]any)) != 1 {
		t.Errorf("web on v2 = %v", web)
	}
	for _, bad := range []struct{ path, field string }{
		{"/api/v1/nodes?state=sleeping", "state"}, {"/api/v1/nodes?version=v%202", "version"}, {"/api/v1/nodes?cursor=%21", "cursor"},
		{"/api/v1/nodes?limit=0", "limit"},
	} {
		if code, body := f.do(t, "GET", bad.path, ""); code != 400 || body["field"] != bad.field {
			t.Errorf("%s = %d %v", bad.path, code, body)
		}
	}

	code, forgot := f.do(t, "DELETE", "/api/v1/nodes/demo/10.0.0.3?requested_by=ops", "")
	if code != 200 || forgot["kind"] != "forget" || forgot["requested_by"] != "ops" || forgot["version"] != "v2" {
		t.Fatalf("forget = %d %v", code, forgot)
	}
	if code, _ := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.3", ""); code != 404 {
		t.Errorf("the forgotten node reads %d", code)
	}
	if _, d := f.do(t, "GET", "/api/v1/deployments/"+forgot["id"].(string), ""); d["kind"] != "forget" {
		t.Errorf("the record of the forget = %v", d)
	}
	if code, body := f.do(t, "DELETE", "/api/v1/nodes/demo/10.0.0.3", ""); code != 404 || body["code"] != "not_found" {
		t.Errorf("forget again = %d %v", code, body)
	}
	// Held by a running deployment: 409 naming it.
	held := make(chan struct{})
	f.exec.gate = held
	_, acc := f.do(t, "POST", "/api/v1/deployments", strings.Replace(deployJSON(`"10.0.0.1"`, ""), `"v2"`, `"v3"`, 1))
	<-f.exec.started
	if code, body := f.do(t, "DELETE", "/api/v1/nodes/demo/10.0.0.1", ""); code != 409 || body["code"] != "node_busy" || body["deployment_id"] != acc["id"] {
		t.Errorf("forget a held node = %d %v", code, body)
	}
	close(held)
	f.waitState(t, acc["id"].(string))
	if code, body := f.do(t, "POST", "/api/v1/deployments/"+forgot["id"].(string)+"/rollback", ""); code != 409 || body["code"] != "nothing_to_roll_back" {
		t.Errorf("rollback of a forget = %d %v", code, body)
	}
}
