package contract

import (
	"strings"
	"testing"
)

// The specification's own examples conform; the shapes nodeexec answered before the contract do not,
// so a test that validates an answer would catch a step back to them.
func TestTheSpecificationsExamplesConformAndTheOldShapesDoNot(t *testing.T) {
	cases := []struct {
		name   string
		schema Schema
		doc    string
		bad    string // "": conforms; else a part of the error
	}{
		{"the specified info", Info, `{"deployment_id": "dep_123456", "status": "running", "replicas": 3, "ready_replicas": 2,
			"updated_at": "2024-10-24T10:05:00Z",
			"details": {"pods": [{"name": "app-abc123", "phase": "Running", "ready": true},
			                     {"name": "app-ghi789", "phase": "Pending", "ready": false}]}}`, ""},
		{"info with nodeexec's own fields beside", Info, `{"deployment_id": "d-1", "status": "succeeded", "state": "success", "replicas": 0,
			"ready_replicas": 0, "updated_at": "2024-10-24T10:05:00.123Z", "details": {"pods": []}, "nodes": []}`, ""},
		{"info of before: nodeexec's state as status, no replicas", Info, `{"deployment_id": "d-1", "status": "deploying", "summary": {}}`, "status"},
		{"info with an updated_at that is no time", Info, `{"deployment_id": "d-1", "status": "running", "replicas": 1, "ready_replicas": 1,
			"updated_at": "yesterday", "details": {"pods": []}}`, "date-time"},
		{"the specified health", Health, `{"healthy": true, "message": "All replicas are healthy",
			"checks": [{"name": "pod_status", "status": "healthy", "message": "3/3 pods running"},
			           {"name": "http_endpoint", "status": "healthy", "message": "HTTP 200 OK"},
			           {"name": "resource_usage", "status": "healthy", "message": "CPU: 45%, Memory: 60%"}]}`, ""},
		{"health of before: pass and fail, no message", Health, `{"healthy": true, "checks": [{"name": "10.0.0.1", "type": "node_status", "status": "pass"}]}`, "message"},
		{"the specified logs", Logs, `{"logs": [{"timestamp": "2024-10-24T10:05:00Z", "pod_name": "app-abc123", "container": "app",
			"message": "Server started on port 8080"}]}`, ""},
		{"pods with exactly their fields", Pods, `{"namespace": "web", "selector": "app=web", "pods": [{"name": "web-1", "phase": "Running",
			"ready": true, "restarts": 0, "node": "kwok-1", "created": "2024-10-24T10:05:00Z"}]}`, ""},
		{"pods cut at the bound", Pods, `{"namespace": "web", "selector": "", "pods": [], "truncated": true}`, ""},
		{"a pod with the management endpoints' image beside", Pods, `{"namespace": "web", "selector": "", "pods": [{"name": "web-1",
			"phase": "Running", "ready": true, "restarts": 0, "node": "", "created": "2024-10-24T10:05:00Z", "image": "web:v1"}]}`, "image"},
		{"a pod without its node", Pods, `{"namespace": "web", "selector": "", "pods": [{"name": "web-1", "phase": "Running",
			"ready": true, "restarts": 0, "created": "2024-10-24T10:05:00Z"}]}`, "node"},
		{"logs of before: a node's lines", Logs, `{"logs": [{"name": "10.0.0.1", "lines": ["2024-10-24T10:05:00Z node success"]}]}`, "timestamp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Validate(c.schema, []byte(c.doc))
			switch {
			case c.bad == "" && err != nil:
				t.Errorf("does not conform: %v", err)
			case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
				t.Errorf("error = %v, want one about %s", err, c.bad)
			}
		})
	}
}
