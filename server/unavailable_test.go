package server

import (
	"net/http"
	"strings"
	"testing"
)

// max_unavailable bounds a service's nodes out of service at once across deployments: each deployment
// in flight counts its batch's width. A deployment is refused (409 max_unavailable, naming the one in
// the way) when it would exceed its own bound or one a deployment in flight was accepted with, and
// accepted when it fits, or once the others have ended.
func TestMaxUnavailableBoundsAServicesNodesOutOfServiceAcrossDeployments(t *testing.T) {
	f := newFixture(t)
	post := func(nodes, extra string) (int, map[string]any) {
		t.Helper()
		return f.do(t, "POST", "/api/v1/deployments", deployJSON(nodes, extra))
	}
	code, first := post(`"10.0.0.1","10.0.0.2"`, `,"max_unavailable":3`)
	if code != http.StatusAccepted {
		t.Fatalf("first = %d %v", code, first)
	}
	<-f.exec.started // in flight: 2 nodes at once

	for _, c := range []struct{ name, nodes, extra string }{
		{"its own bound", `"10.0.0.3","10.0.0.4"`, `,"max_unavailable":3`},
		{"the first one's bound", `"10.0.0.3","10.0.0.4"`, ``},
		{"a tighter bound of its own", `"10.0.0.3"`, `,"max_unavailable":2`},
	} {
		code, body := post(c.nodes, c.extra)
		msg, _ := body["error"].(string)
		if code != http.StatusConflict || body["code"] != "max_unavailable" || body["deployment_id"] != first["id"] ||
			!strings.Contains(msg, first["id"].(string)+" (2 at once) in flight") {
			t.Errorf("%s: %d %v", c.name, code, body)
		}
	}
	// One node at a time fits beside the first (2 + 1 <= 3), and other services are not counted.
	if code, body := post(`"10.0.0.3","10.0.0.4"`, `,"batch_size":1,"max_unavailable":3`); code != http.StatusAccepted {
		t.Errorf("a batch of one beside it = %d %v", code, body)
	}
	other := strings.Replace(deployJSON(`"10.0.0.9"`, `,"max_unavailable":1`), `"demo"`, `"other"`, 1)
	if code, body := f.do(t, "POST", "/api/v1/deployments", other); code != http.StatusAccepted {
		t.Errorf("another service = %d %v", code, body)
	}
	close(f.exec.gate)
	d := f.waitState(t, first["id"].(string))
	if d["state"] != "success" || d["batch"].(map[string]any)["max_unavailable"] != 3.0 {
		t.Fatalf("first = %v", d)
	}
	// The first has ended: what it refused fits now (the batch of one may still be in flight: 1 + 2 <= 3).
	if code, body := post(`"10.0.0.5","10.0.0.6"`, `,"max_unavailable":3`); code != http.StatusAccepted {
		t.Errorf("after the first ended = %d %v", code, body)
	}
}

// A bound that could never be kept, or that is not for physical nodes, is refused before anything is
// recorded.
func TestMaxUnavailableThatCannotBeKeptIsRefused(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ extra, field, says string }{
		{`,"max_unavailable":1`, "batch_size", "3 nodes at once is more than max_unavailable 1"},
		{`,"batch_size":3,"max_unavailable":2`, "batch_size", "send a batch_size of at most 2"},
		{`,"max_unavailable":-1`, "max_unavailable", "want 0 (no bound) to 500"},
		{`,"max_unavailable":501`, "max_unavailable", "want 0 (no bound) to 500"},
	} {
		code, body := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2","10.0.0.3"`, c.extra))
		if code != http.StatusBadRequest || body["field"] != c.field || !strings.Contains(body["error"].(string), c.says) {
			t.Errorf("%s: %d %v", c.extra, code, body)
		}
	}
	if code, list := f.do(t, "GET", "/api/v1/deployments", ""); code != 200 || len(list["deployments"].([]any)) != 0 {
		t.Errorf("recorded after refusals: %d %v", code, list)
	}
}
