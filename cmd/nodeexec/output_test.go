package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/api"
)

func TestWantsJSONReadsEverySpellingOfTheOutputFlag(t *testing.T) {
	cases := []struct {
		args []string
		want bool
	}{
		{[]string{"-o", "json"}, true},
		{[]string{"d-1", "--output=json"}, true},
		{[]string{"-o=json"}, true},
		{[]string{"--json"}, true},
		{[]string{"--json=false"}, false},
		{[]string{"-o", "wide"}, false},
		{[]string{"--json", "-o", "table"}, false}, // the last one wins, as the flags do
		{[]string{"--", "-o", "json"}, false},
		{nil, false},
	}
	for _, c := range cases {
		if got := wantsJSON(c.args); got != c.want {
			t.Errorf("wantsJSON(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}

// -o json prints the API's objects: every line of a followed deploy is one (NDJSON), and nodes and
// services print the API's list objects, not bare arrays.
func TestOutputJSONIsTheAPIsObjectsOneALine(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	code, out, _ := runCaptured(t, deployArgs(url, "v1", "-o", "json"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var final api.Deployment
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &final); code != 0 || err != nil || final.State != api.StateSuccess || len(lines) < 3 {
		t.Fatalf("deploy -o json: exit %d, %v, last line %q", code, err, lines[len(lines)-1])
	}
	for _, l := range lines[:len(lines)-1] {
		var ev api.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.DeploymentID != final.ID {
			t.Errorf("not an event of %s: %q (%v)", final.ID, l, err)
		}
	}
	var nodes api.NodeList
	code, out, _ = runCaptured(t, []string{"nodes", "--server", url, "-o", "json"})
	if err := json.Unmarshal([]byte(out), &nodes); code != 0 || err != nil || len(nodes.Nodes) != 2 || nodes.Nodes[0].CurrentVersion != "v1" {
		t.Errorf("nodes -o json: exit %d, %v\n%s", code, err, out)
	}
	var services api.ServiceList
	code, out, _ = runCaptured(t, []string{"services", "--server", url, "--output=json"})
	if err := json.Unmarshal([]byte(out), &services); code != 0 || err != nil || len(services.Services) != 1 || services.Services[0].Nodes != 2 {
		t.Errorf("services -o json: exit %d, %v\n%s", code, err, out)
	}
	var page api.DeploymentList
	code, out, _ = runCaptured(t, []string{"list", "--server", url, "-o", "json"})
	if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil || len(page.Deployments) != 1 || page.Deployments[0].ID != final.ID {
		t.Errorf("list -o json: exit %d, %v\n%s", code, err, out)
	}
}

// -o wide adds columns; table is the default.
func TestOutputWideAddsColumns(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	if code, out, errOut := runCaptured(t, deployArgs(url, "v1", "--requested-by", "ana")); code != 0 {
		t.Fatalf("deploy: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, c := range []struct {
		args       []string
		wideHeader string
		wideValue  string
	}{
		{[]string{"list"}, "REQUESTED BY", "ana"},
		{[]string{"nodes"}, "DEPLOYING", "physical"},
	} {
		_, table, _ := runCaptured(t, append(c.args, "--server", url))
		_, wide, _ := runCaptured(t, append(c.args, "--server", url, "-o", "wide"))
		if strings.Contains(table, c.wideHeader) || !strings.Contains(wide, c.wideHeader) || !strings.Contains(wide, c.wideValue) {
			t.Errorf("%v: table\n%s\nwide\n%s", c.args, table, wide)
		}
	}
}

// Under -o json an error is the API's error body on stderr, with the exit status it has otherwise.
func TestErrorsUnderOutputJSONAreTheAPIsErrorBody(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	cases := []struct {
		args        []string
		code        int
		wantCode    string
		wantField   string
		wantInError string
	}{
		{[]string{"status", "d-nosuch"}, 1, "not_found", "", "d-nosuch"},
		{[]string{"list", "--limit", "0"}, 2, "invalid", "limit", "1 to 200"},
		{[]string{"list", "--bogus"}, 2, "usage", "", "-bogus"},
		{[]string{"status"}, 2, "usage", "", "deployment id"},
		{[]string{"list", "--server", "http://127.0.0.1:1"}, 1, "unreachable", "", "NODEEXEC_SERVER"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			args := append(append([]string{}, c.args...), "-o", "json")
			if !flagGiven(args, "server") {
				args = append(args, "--server", url)
			}
			code, _, stderr := runCaptured(t, args)
			var body api.Error
			if err := json.Unmarshal([]byte(stderr), &body); err != nil {
				t.Fatalf("stderr is not one JSON object: %v\n%s", err, stderr)
			}
			if code != c.code || body.Code != c.wantCode || body.Field != c.wantField || !strings.Contains(body.Error, c.wantInError) {
				t.Errorf("exit %d, body %+v; want exit %d, code %s, field %q, error naming %q", code, body, c.code, c.wantCode, c.wantField, c.wantInError)
			}
		})
	}
	if code, _, stderr := runCaptured(t, []string{"list", "--server", url, "-o", "yaml"}); code != 2 || !strings.Contains(stderr, "want table, wide or json") {
		t.Errorf("-o yaml: exit %d %s", code, stderr)
	}
}
