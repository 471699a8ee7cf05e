package ansible

import (
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestUnsafeYAMLTagsEveryString(t *testing.T) {
	dir := t.TempDir()
	hostile := "{{ lookup('pipe','id') }}'\n\"quoted\""
	path, err := writeUnsafeYAML(dir, "vars.yml", map[string]any{
		"nodeexec_version": hostile,
		"nodeexec_keep":    3,
		"nodeexec_env":     map[string]string{"A": "{{ x }}"},
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if strings.Count(text, "!unsafe") != 2 {
		t.Errorf("want both strings tagged !unsafe:\n%s", text)
	}
	if !strings.Contains(text, "nodeexec_keep: 3") {
		t.Errorf("ints must stay ints:\n%s", text)
	}
	// The value round-trips exactly: quoting cannot be escaped by the value.
	var back map[string]any
	if err := yaml.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back["nodeexec_version"] != hostile {
		t.Errorf("round trip = %q, want %q", back["nodeexec_version"], hostile)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("vars file mode %v, want 0600", info.Mode().Perm())
	}
}
