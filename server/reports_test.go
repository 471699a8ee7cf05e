package server

import (
	"strings"
	"testing"
)

// handReport is a hand deploy's report of v3 on 10.0.0.1 (through) and 10.0.0.2 (failed and rolled
// back to v2), with extra fields spliced in.
func handReport(extra string) string {
	return `{"playbook":"deploy","service":"demo","version":"v3","user":"alice","controller":"ops1",` + extra + `"nodes":[
		{"host":"10.0.0.1","failed":false,"changed":true,"report":{"current":"v3","previous":"v2","state":"success"}},
		{"host":"10.0.0.2","failed":true,"changed":true,"msg":"v3 failed verification and was rolled back to v2: Check the HTTP health endpoint: 503",
		 "report":{"current":"v2","previous":"v1","state":"rolled_back","last_error":"Check the HTTP health endpoint: 503"}}]}`
}

// A hand run's report is recorded as an ended deployment of kind manual, by user@controller, and each
// node's record then says what the node runs, naming that record.
func TestAHandRunReportIsRecordedAsManualAndUpdatesTheNodes(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	_, acc := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1","10.0.0.2"`, ""))
	f.waitState(t, acc["id"].(string))

	code, d := f.do(t, "POST", "/api/v1/reports", handReport(""))
	if code != 201 || d["kind"] != "manual" || d["playbook"] != "deploy" || d["requested_by"] != "alice@ops1" || d["state"] != "failed" ||
		d["version"] != "v3" || d["finished_at"] == nil || !strings.Contains(d["error"].(string), "1 of 2 nodes") {
		t.Fatalf("report = %d %v", code, d)
	}
	nodes := d["nodes"].([]any)
	one, two := nodes[0].(map[string]any), nodes[1].(map[string]any)
	if one["state"] != "success" || one["from_version"] != "v2" || one["current_version"] != "v3" || one["record_kept"] != nil {
		t.Errorf("node 1 of the record = %v", one)
	}
	if two["state"] != "rolled_back" || two["current_version"] != "v2" || !strings.Contains(two["last_error"].(string), "rolled back to v2") {
		t.Errorf("node 2 of the record = %v", two)
	}
	_, n1 := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", "")
	if n1["current_version"] != "v3" || n1["prev_version"] != "v2" || n1["state"] != "success" || n1["deployment_id"] != d["id"] {
		t.Errorf("node 1 = %v", n1)
	}
	_, n2 := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.2", "")
	if n2["current_version"] != "v2" || n2["state"] != "rolled_back" || n2["deployment_id"] != d["id"] || n2["last_error"] == "" {
		t.Errorf("node 2 = %v", n2)
	}
	if code, got := f.do(t, "GET", "/api/v1/deployments/"+d["id"].(string), ""); code != 200 || got["kind"] != "manual" {
		t.Errorf("read back = %d %v", code, got)
	}
	if code, body := f.do(t, "POST", "/api/v1/deployments/"+d["id"].(string)+"/rollback", ""); code != 409 || body["code"] != "nothing_to_roll_back" ||
		!strings.Contains(body["error"].(string), "hand run") {
		t.Errorf("rollback of a manual record = %d %v", code, body)
	}
}

// A report posted again with its report_id (a retry) answers the first record and writes nothing
// again; the same report_id with another report is refused.
func TestAReportPostedTwiceIsRecordedOnce(t *testing.T) {
	f := newFixture(t)
	close(f.exec.gate)
	code, first := f.do(t, "POST", "/api/v1/reports", handReport(`"report_id":"run-17@ops1",`))
	if code != 201 || first["report_id"] != "run-17@ops1" {
		t.Fatalf("first = %d %v", code, first)
	}
	// A deployment of nodeexec's lands v4 on 10.0.0.1 after the report: the retry must not undo it.
	_, acc := f.do(t, "POST", "/api/v1/deployments", strings.Replace(deployJSON(`"10.0.0.1"`, ""), `"v2"`, `"v4"`, 1))
	f.waitState(t, acc["id"].(string))
	code, again := f.do(t, "POST", "/api/v1/reports", handReport(`"report_id":"run-17@ops1",`))
	if code != 200 || again["id"] != first["id"] {
		t.Errorf("retry = %d %v, want 200 with %v", code, again, first["id"])
	}
	if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); n["current_version"] != "v4" {
		t.Errorf("the retry overwrote the later deploy: %v", n)
	}
	if _, list := f.do(t, "GET", "/api/v1/deployments?service=demo", ""); len(list["deployments"].([]any)) != 2 {
		t.Errorf("deployments = %v", list)
	}
	other := strings.Replace(handReport(`"report_id":"run-17@ops1",`), `"v3"`, `"v5"`, 1)
	if code, body := f.do(t, "POST", "/api/v1/reports", other); code != 422 || body["field"] != "report_id" || body["deployment_id"] != first["id"] {
		t.Errorf("reused report_id = %d %v", code, body)
	}
}

// A node a deployment holds is not overwritten by a hand run's report: the record says so for that
// node, with its outcome, and the other nodes are updated. A node nodeexec did not know is recorded.
func TestAHeldNodeIsNotOverwrittenByAReport(t *testing.T) {
	f := newFixture(t)
	_, acc := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	<-f.exec.started
	code, d := f.do(t, "POST", "/api/v1/reports", handReport(""))
	if code != 201 {
		t.Fatalf("report = %d %v", code, d)
	}
	held := d["nodes"].([]any)[0].(map[string]any)
	if held["state"] != "success" || held["current_version"] != "v3" || !strings.Contains(held["record_kept"].(string), acc["id"].(string)) {
		t.Errorf("the held node's line = %v", held)
	}
	if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); n["state"] != "deploying" || n["deployment_id"] != acc["id"] {
		t.Errorf("the held node = %v", n)
	}
	if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.2", ""); n["current_version"] != "v2" || n["deployment_id"] != d["id"] {
		t.Errorf("the new node = %v", n)
	}
	close(f.exec.gate)
	if end := f.waitState(t, acc["id"].(string)); end["state"] != "success" {
		t.Errorf("the holder's end = %v", end)
	}
	if _, n := f.do(t, "GET", "/api/v1/nodes/demo/10.0.0.1", ""); n["current_version"] != "v2" || n["deployment_id"] != acc["id"] {
		t.Errorf("after the holder ended = %v", n)
	}
}

// Bad reports are 400 naming the field, and record nothing.
func TestABadReportIs400NamingTheFieldAndRecordsNothing(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBody = 1 << 20 }) // the default: room for a big report to be refused for itself
	close(f.exec.gate)
	good := handReport("")
	node := `{"host":"10.0.0.1","failed":false,"changed":true,"report":{"current":"v3","previous":"v2","state":"success"}}`
	for _, c := range []struct{ name, body, field string }{
		{"unknown playbook", strings.Replace(good, `"deploy"`, `"cleanup"`, 1), "playbook"},
		{"bad service", strings.Replace(good, `"demo"`, `"de mo"`, 1), "service"},
		{"deploy without a version", strings.Replace(good, `"version":"v3",`, "", 1), "version"},
		{"no user", strings.Replace(good, `"alice"`, `""`, 1), "user"},
		{"controller with a newline", strings.Replace(good, `"ops1"`, `"ops\n1"`, 1), "controller"},
		{"long report_id", handReport(`"report_id":"` + strings.Repeat("r", 201) + `",`), "report_id"},
		{"bad host", strings.Replace(good, `"10.0.0.2"`, `"h;id"`, 1), "nodes[1].host"},
		{"host twice", strings.Replace(good, `"10.0.0.2"`, `"10.0.0.1"`, 1), "nodes[1].host"},
		{"bad current", strings.Replace(good, `"current":"v3"`, `"current":"../v3"`, 1), "nodes[0].report.current"},
		{"unknown state", strings.Replace(good, `"state":"success"`, `"state":"deploying"`, 1), "nodes[0].report.state"},
		{"long msg", strings.Replace(good, `"msg":"v3`, `"msg":"`+strings.Repeat("x", 8193), 1), "nodes[1].msg"},
		{"no nodes", `{"playbook":"restart","service":"demo","user":"a","controller":"b","nodes":[]}`, "nodes"},
		{"too many nodes", `{"playbook":"restart","service":"demo","user":"a","controller":"b","nodes":[` +
			strings.TrimSuffix(strings.Repeat(node+",", 1001), ",") + `]}`, "nodes"},
	} {
		code, body := f.do(t, "POST", "/api/v1/reports", c.body)
		if code != 400 || body["field"] != c.field || body["code"] != "invalid" {
			t.Errorf("%s = %d %v, want 400 naming %s", c.name, code, body, c.field)
		}
	}
	if code, body := f.do(t, "POST", "/api/v1/reports", `{"playbook":"deploy","token":"x"}`); code != 400 || body["code"] != "bad_json" {
		t.Errorf("unknown field = %d %v", code, body)
	}
	if _, list := f.do(t, "GET", "/api/v1/deployments", ""); len(list["deployments"].([]any)) != 0 {
		t.Errorf("bad reports recorded %v", list)
	}
	if _, list := f.do(t, "GET", "/api/v1/nodes", ""); len(list["nodes"].([]any)) != 0 {
		t.Errorf("bad reports wrote nodes %v", list)
	}
}
