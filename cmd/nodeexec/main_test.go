package main

import (
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
		{[]string{"deploy", "--service", "demo", "--version", "{{ lookup('pipe','id') }}", "--nodes", "h1",
			"--package-url", "http://x/p.tgz", "--sha256", strings.Repeat("a", 64)}, "version"},
		{[]string{"deploy", "--service", "../etc", "--version", "v1", "--nodes", "h1",
			"--package-url", "http://x/p.tgz", "--sha256", strings.Repeat("a", 64)}, "service"},
		{[]string{"deploy", "--service", "demo", "--version", "v1", "--nodes", "h1",
			"--package-url", "file:///etc/passwd", "--sha256", strings.Repeat("a", 64)}, "package_url"},
		{[]string{"deploy", "--service", "demo", "--version", "v1", "--nodes", "h1;reboot",
			"--package-url", "http://x/p.tgz", "--sha256", strings.Repeat("a", 64)}, "nodes[0].host"},
		{[]string{"deploy", "--service", "demo", "--version", "v1", "--nodes", "",
			"--package-url", "http://x/p.tgz", "--sha256", "abc"}, "nodes"},
		{[]string{"rollback", "--service", "demo", "--to", "../v1", "--nodes", "h1"}, "to_version"},
		{[]string{"cleanup", "--service", "demo", "--keep", "1", "--nodes", "h1"}, "keep"},
		{[]string{"status", "--nodes", "h1"}, "service"},
		{[]string{"deploy", "--no-such-flag"}, "no-such-flag"},
		{[]string{"frobnicate"}, "unknown command"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[:1], " ")+" "+c.want, func(t *testing.T) {
			code, stderr := runCaptured(t, c.args)
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
	if code, stderr := runCaptured(t, []string{"help"}); code != 0 || !strings.Contains(stderr, "nodeexec deploy") {
		t.Errorf("help: exit %d, %q", code, stderr)
	}
}

func runCaptured(t *testing.T, args []string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	code := run(args)
	os.Stderr = old
	w.Close()
	buf := make([]byte, 64<<10)
	n, _ := r.Read(buf)
	return code, string(buf[:n])
}
