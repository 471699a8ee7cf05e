package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every command of the table is completed, in every shell, and so is every flag it parses.
func TestCompletionCoversEveryCommandAndItsFlags(t *testing.T) {
	for _, shell := range completionShells {
		code, script, stderr := runCaptured(t, []string{"completion", shell})
		if code != 0 {
			t.Fatalf("completion %s: exit %d %s", shell, code, stderr)
		}
		for _, c := range commands {
			own := "\n    " + c.name + ")" // its case in bash's function
			if shell == "fish" {
				own = "__nodeexec_at " + c.name
			}
			if !strings.Contains(script, own) || !strings.Contains(script, commandNames()) {
				t.Errorf("completion %s does not complete the command %s", shell, c.name)
			}
		}
		if !strings.Contains(script, "stop-on-failure") || !strings.Contains(script, "ssh-key") {
			t.Errorf("completion %s lacks flags:\n%s", shell, script)
		}
	}
	if code, _, stderr := runCaptured(t, []string{"completion", "tcsh"}); code != 2 || !strings.Contains(stderr, "bash, zsh or fish") {
		t.Errorf("completion tcsh: exit %d %s", code, stderr)
	}
}

// The bash script, run by bash, completes commands, subcommands and each command's own flags.
func TestBashCompletionCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	_, script, _ := runCaptured(t, []string{"completion", "bash"})
	file := filepath.Join(t.TempDir(), "nodeexec.bash")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		line     []string
		want     string
		wantNot  string
		describe string
	}{
		{[]string{"nodeexec", "dep"}, "deploy", "", "a command"},
		{[]string{"nodeexec", "deploy", "--stop"}, "--stop-on-failure", "", "a flag of deploy"},
		{[]string{"nodeexec", "status", "--"}, "--watch", "--stop-on-failure", "only status's flags"},
		{[]string{"nodeexec", "direct", "ro"}, "rollback", "", "a subcommand"},
		{[]string{"nodeexec", "direct", "cleanup", "--ke"}, "--keep", "", "a flag of a subcommand"},
		{[]string{"nodeexec", "help", "serv"}, "service-status", "", "help's command names"},
		{[]string{"nodeexec", "completion", "f"}, "fish", "", "a shell"},
	}
	for _, c := range cases {
		words := "'" + strings.Join(c.line, "' '") + "'"
		cmd := exec.Command(bash, "-c", `source "$1"; COMP_WORDS=(`+words+`); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _nodeexec; printf '%s\n' "${COMPREPLY[@]}"`, "_", file)
		out, err := cmd.CombinedOutput()
		got := string(out)
		if err != nil || !strings.Contains(got, c.want+"\n") || (c.wantNot != "" && strings.Contains(got, c.wantNot)) {
			t.Errorf("%s: %q completes to %q (%v); want %s", c.describe, c.line, got, err, c.want)
		}
	}
}
