package config

import (
	"strings"
	"testing"
	"time"
)

func TestAdhocAndPushSettingsFromTheFile(t *testing.T) {
	path := write(t, `
push: {max_bytes: 2097152}
adhoc:
  commands:
    disk: [df, -h]
    journal: [journalctl, -u, "{service}", -n, "50", --no-pager]
  max_output: 4096
  timeout: 30s
`)
	cfg, err := Load(path, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Adhoc
	if cfg.Push.MaxBytes != 2<<20 || a.MaxOutput != 4096 || a.Timeout != Duration(30*time.Second) || len(a.Commands) != 2 ||
		strings.Join(a.Commands["journal"], " ") != "journalctl -u {service} -n 50 --no-pager" {
		t.Errorf("push %+v, adhoc %+v", cfg.Push, a)
	}
	if p := cfg.Check(); len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
	if out := cfg.Masked(); !strings.Contains(out, "- '{service}'") || !strings.Contains(out, "max_bytes: 2097152") {
		t.Errorf("the effective configuration does not show the allow-list and push:\n%s", out)
	}
}

func TestAdhocAndPushCheckNamesEachProblem(t *testing.T) {
	for _, c := range []struct {
		name    string
		yaml    string
		setting string
		reason  string
	}{
		{"a placeholder inside an argument", `adhoc: {commands: {journal: [journalctl, -u, "{service}.service"]}}`, "adhoc.commands", "as a whole argument"},
		{"an unknown placeholder", `adhoc: {commands: {journal: [journalctl, -u, "{unit}"]}}`, "adhoc.commands", "the only placeholder is {service}"},
		{"a shell string as the program", `adhoc: {commands: {disk: [""]}}`, "adhoc.commands", "must be a name or a path"},
		{"a name with spaces", `adhoc: {commands: {"disk usage": [df]}}`, "adhoc.commands", "not a command name"},
		{"an empty argv", `adhoc: {commands: {disk: []}}`, "adhoc.commands", "is empty"},
		{"a template", `adhoc: {commands: {x: [echo, "{{ lookup('pipe','id') }}"]}}`, "adhoc.commands", "must not contain"},
		{"output bound too small", `adhoc: {max_output: 10}`, "adhoc.max_output", "want 1024"},
		{"no timeout", `adhoc: {timeout: 0s}`, "adhoc.timeout", "want 1s to 1h"},
		{"push bound too small", `push: {max_bytes: 1000}`, "push.max_bytes", "want 1 MiB"},
	} {
		cfg, err := Load(write(t, c.yaml), envOf(nil))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		problems := cfg.Check()
		if len(problems) != 1 || problems[0].Setting != c.setting || !strings.Contains(problems[0].Reason, c.reason) {
			t.Errorf("%s: problems %v, want one of %s saying %q", c.name, problems, c.setting, c.reason)
		}
	}
	if _, err := Load(write(t, `adhoc: {commands: {disk: "df -h"}}`), envOf(nil)); err == nil {
		t.Error("a command given as one string was loaded; want an error (an argv list only)")
	}
}
