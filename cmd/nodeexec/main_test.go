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

func TestHelpExitsZero(t *testing.T) {
	if code, _, stderr := runCaptured(t, []string{"help"}); code != 0 || !strings.Contains(stderr, "nodeexec deploy") {
		t.Errorf("help: exit %d, %q", code, stderr)
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
