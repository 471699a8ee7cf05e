package executor

import (
	"errors"
	"strings"
	"testing"
)

func TestAllowListCheckNamesEveryBadEntry(t *testing.T) {
	good := AllowList{
		"disk":    {"df", "-h"},
		"journal": {"journalctl", "-u", PlaceholderService, "-n", "50", "--no-pager"},
		"literal": {"echo", "$(id); rm -rf /", "*"},
	}
	if problems := good.Check(); len(problems) != 0 {
		t.Fatalf("a good allow-list has problems: %v", problems)
	}
	for _, c := range []struct {
		name string
		argv []string
		want string
	}{
		{"Disk", []string{"df"}, "not a command name"},
		{"a b", []string{"df"}, "not a command name"},
		{"empty", nil, "is empty"},
		{"blank-program", []string{"", "-h"}, "must be a name or a path"},
		{"option-program", []string{"-rf"}, "must be a name or a path"},
		{"placeholder-program", []string{PlaceholderService}, "not the program"},
		{"typo", []string{"journalctl", "-u", "{servce}"}, "the only placeholder is {service}"},
		{"inside", []string{"journalctl", "-u", "{service}.service"}, "as a whole argument"},
		{"template", []string{"echo", "{{ lookup('pipe','id') }}"}, "must not contain"},
		{"newline", []string{"echo", "a\nb"}, "control characters"},
		{"nul", []string{"echo", "a\x00b"}, "control characters"},
	} {
		problems := AllowList{c.name: c.argv}.Check()
		if len(problems) != 1 || !strings.Contains(problems[0].Error(), c.want) {
			t.Errorf("%s %q: problems %v, want one saying %q", c.name, c.argv, problems, c.want)
		}
	}
}

func TestResolveFillsOnlyValidatedNamesIntoWholeArguments(t *testing.T) {
	allow := AllowList{"disk": {"df", "-h"}, "journal": {"journalctl", "-u", PlaceholderService, "-n", "50"}}
	for _, c := range []struct {
		name, service string
		want          string // argv joined by "|", or the error's text
		field         string // a validation error's field
	}{
		{"disk", "", "df|-h", ""},
		{"disk", "demo", "df|-h", ""}, // a service is checked, and unused
		{"journal", "demo", "journalctl|-u|demo|-n|50", ""},
		{"journal", "", "runs with the service's name", "service"},
		{"journal", "demo;reboot", "not allowed", "service"},
		{"journal", "../etc", "not allowed", "service"},
		{"journal", "{{ lookup('pipe','id') }}", "not allowed", "service"},
		{"disk", "-rf", "not allowed", "service"},
		{"nope", "", "no such command", ""},
		{"", "", "is required", "name"},
		{"DISK", "", "not a command name", "name"},
		{"rm -rf /", "", "not a command name", "name"},
	} {
		argv, err := allow.Resolve(c.name, c.service)
		got := strings.Join(argv, "|")
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, c.want) {
			t.Errorf("Resolve(%q, %q) = %q, want %q", c.name, c.service, got, c.want)
		}
		var v *ValidationError
		if (c.field != "") != errors.As(err, &v) || (c.field != "" && v.Field != c.field) {
			t.Errorf("Resolve(%q, %q): error %v, want a validation error of field %q", c.name, c.service, err, c.field)
		}
	}
	if _, err := allow.Resolve("nope", ""); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("an unknown name: %v, want ErrUnknownCommand", err)
	}
	// The allow-list itself is never changed by a resolution.
	if allow["journal"][2] != PlaceholderService {
		t.Errorf("Resolve changed the allow-list: %q", allow["journal"])
	}
}

func TestOperationRequestsAreValidated(t *testing.T) {
	nodes := []Node{{Host: "10.0.0.1"}}
	for _, c := range []struct {
		name  string
		err   error
		field string
	}{
		{"restart ok", RestartRequest{Service: "demo", Nodes: nodes}.Validate(), ""},
		{"restart bad service", RestartRequest{Service: "a/b", Nodes: nodes}.Validate(), "service"},
		{"restart no nodes", RestartRequest{Service: "demo"}.Validate(), "nodes"},
		{"restart bad health", RestartRequest{Service: "demo", Nodes: nodes, Health: HealthCheck{HTTPPath: "x"}}.Validate(), "health.http_path"},
		{"command ok", CommandRequest{Name: "disk", Argv: []string{"df"}, Nodes: nodes}.Validate(), ""},
		{"command unresolved placeholder", CommandRequest{Name: "j", Argv: []string{"journalctl", PlaceholderService}, Nodes: nodes}.Validate(), "argv"},
		{"command bad host", CommandRequest{Name: "disk", Argv: []string{"df"}, Nodes: []Node{{Host: "a;b"}}}.Validate(), "nodes[0].host"},
		{"delivery push", ValidateDelivery(DeliveryPush), ""},
		{"delivery other", ValidateDelivery("scp"), "delivery"},
		{"delivery with workloads", DeployRequest{
			Service:        "web",
			Version:        "v1",
			PhysicalDeploy: PhysicalDeploy{Delivery: DeliveryPush},
			K8sDeploy:      K8sDeploy{Image: "web:v1", Workloads: []Workload{{Namespace: "prod", Kind: KindDeployment, Name: "web"}}},
		}.Validate(), "delivery"},
	} {
		var v *ValidationError
		switch {
		case c.field == "" && c.err != nil:
			t.Errorf("%s: %v", c.name, c.err)
		case c.field != "" && (!errors.As(c.err, &v) || v.Field != c.field):
			t.Errorf("%s: %v, want a validation error of field %s", c.name, c.err, c.field)
		}
	}
}
