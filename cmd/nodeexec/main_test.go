package main

import (
	"io"
	"os"
	"strings"
	"testing"
)

// Bad input is refused with exit status 2 and a message naming the problem, before anything runs.
func TestBadInputExitsTwoWithAClearMessage(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"direct", "deploy", "--service", "demo", "--version", "{{ lookup('pipe','id') }}", "--nodes", "h1",
			"--package-url", "http://x/p.tgz", "--sha256", strings.Repeat("a", 64)}, "version"},
		{[]string{"direct", "deploy", "--service", "../etc", "--version", "v1", "--nodes", "h1",
			"--package-url", "http://x/p.tgz", "--sha256", strings.Repeat("a", 64)}, "service"},
		{[]string{"direct", "deploy", "--service", "demo", "--version", "v1", "--nodes", "h1",
			"--package-url", "file:///etc/passwd", "--sha256", strings.Repeat("a", 64)}, "package_url"},
		{[]string{"direct", "deploy", "--service", "demo", "--version", "v1", "--nodes", "h1;reboot",
			"--package-url", "http://x/p.tgz", "--sha256", strings.Repeat("a", 64)}, "nodes[0].host"},
		{[]string{"direct", "deploy", "--service", "demo", "--version", "v1", "--nodes", "",
			"--package-url", "http://x/p.tgz", "--sha256", "abc"}, "nodes"},
		{[]string{"direct", "rollback", "--service", "demo", "--to", "../v1", "--nodes", "h1"}, "to_version"},
		{[]string{"direct", "cleanup", "--service", "demo", "--keep", "1", "--nodes", "h1"}, "keep"},
		{[]string{"direct", "status", "--nodes", "h1"}, "service"},
		{[]string{"direct", "deploy", "--no-such-flag"}, "no-such-flag"},
		{[]string{"direct", "reboot"}, "unknown operation"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"apply", "-n", "shop"}, "-f FILE"},
		{[]string{"apply", "-n", "Shop_1", "-f", "-"}, "namespace"},
		{[]string{"apply", "-n", "shop", "-f", "/no/such/manifest.yaml"}, "no such file"},
		{[]string{"delete", "-n", "shop"}, "selector"},
		{[]string{"delete", "-n", "shop", "-l", "app in (web"}, "not a label selector"},
		{[]string{"pods"}, "namespace"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[:min(2, len(c.args))], " ")+" "+c.want, func(t *testing.T) {
			code, _, stderr := runCaptured(t, c.args)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr %q does not name %q", stderr, c.want)
			}
		})
	}
}

// Asking for help is not an error: it goes to standard output, exit status 0, for every way of asking.
func TestHelpGoesToStdoutAndExitsZero(t *testing.T) {
	cases := []struct {
		args []string
		want string // what the help must show
	}{
		{[]string{"--help"}, "nodeexec deploy   --service S"},
		{[]string{"-h"}, "nodeexec direct deploy"},
		{[]string{"help"}, "nodeexec version"},
		{[]string{"help", "deploy"}, "-package-url"},
		{[]string{"deploy", "-h"}, "-package-url"},
		{[]string{"deploy", "--help"}, "-package-url"},
		{[]string{"status", "d-1", "--help"}, "-watch"},
		{[]string{"help", "direct"}, "nodeexec direct rollback"},
		{[]string{"direct", "status", "-h"}, "-ssh-key"},
		{[]string{"help", "direct", "cleanup"}, "nodeexec direct cleanup  --service S --keep N"},
		{[]string{"config", "check", "-h"}, "-tokens-file"},
		{[]string{"serve", "--help"}, "-listen"},
		{[]string{"database", "-h"}, "FerretDB"},
		{[]string{"playbooks", "-h"}, "-dir"},
		{[]string{"version", "-h"}, "-remote"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCaptured(t, c.args)
			if code != 0 || !strings.Contains(stdout, c.want) || stderr != "" {
				t.Errorf("exit %d, stdout lacks %q or stderr is not empty:\nstdout: %s\nstderr: %s", code, c.want, stdout, stderr)
			}
		})
	}
	// A command's help is its own: its lines of the usage, not the others'.
	if _, stdout, _ := runCaptured(t, []string{"help", "cancel"}); strings.Contains(stdout, "nodeexec deploy") {
		t.Errorf("help cancel shows other commands:\n%s", stdout)
	}
}

// What is not a command or a flag is bad input: exit status 2, and the usage that says what is, on
// standard error only.
func TestWrongWordsExitTwoWithTheUsageOnStderr(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{nil, []string{"nodeexec serve", "nodeexec deploy"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`, "nodeexec deploy"}},
		{[]string{"help", "frobnicate"}, []string{`unknown command "frobnicate"`}},
		{[]string{"list", "--bogus"}, []string{"flag provided but not defined: -bogus", "nodeexec list", "-service"}},
		{[]string{"direct"}, []string{"want one of deploy, rollback", "nodeexec direct status"}},
		{[]string{"direct", "status", "--bogus"}, []string{"-bogus", "nodeexec direct status", "-ssh-key"}},
		{[]string{"config"}, []string{"want one of check"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCaptured(t, c.args)
			if code != 2 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 2 and nothing on stdout", code, stdout)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// runCaptured runs the command as main would and returns its exit status, stdout and stderr.
func runCaptured(t *testing.T, args []string) (int, string, string) {
	t.Helper()
	capture := func(f **os.File) (restore func() string) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		old := *f
		*f = w
		done := make(chan string)
		go func() {
			data, _ := io.ReadAll(r)
			done <- string(data)
		}()
		return func() string {
			*f = old
			w.Close()
			return <-done
		}
	}
	stopOut, stopErr := capture(&os.Stdout), capture(&os.Stderr)
	code := run(args)
	return code, stopOut(), stopErr()
}

// Every command of the table answers `help NAME` with its own usage lines: none is missing from the help.
func TestEveryCommandHasItsHelp(t *testing.T) {
	for _, c := range commands {
		if c.name == "help" {
			continue
		}
		code, stdout, stderr := runCaptured(t, []string{"help", c.name})
		if code != 0 || !strings.Contains(stdout, "nodeexec "+c.name) {
			t.Errorf("help %s: exit %d\nstdout: %s\nstderr: %s", c.name, code, stdout, stderr)
		}
	}
}
