package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// deploy --applications deploys the services a file lists as one deployment, follows it, and prints
// each application's nodes; --env and --config reach one service's request; mistakes are messages
// and exit 2, with nothing sent.
func TestDeployApplicationsFromAFileAsOneDeployment(t *testing.T) {
	url := apiServer(t, &scriptedExecutor{})
	sum := strings.Repeat("ab", 32)
	file := filepath.Join(t.TempDir(), "apps.json")
	apps := `[{"service":"api","version":"v2","nodes":["10.0.0.1","10.0.0.2"],"package_url":"http://pkgs.example/api.tgz","sha256":"` + sum + `",
	  "environment":{"MODE":"prod"}},
	 {"service":"web","version":"v7","nodes":["10.0.0.1"],"package_url":"http://pkgs.example/web.tgz","sha256":"` + sum + `","config":{"THEME":"dark"}}]`
	if err := os.WriteFile(file, []byte(apps), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCaptured(t, []string{"deploy", "--server", url, "--applications", file})
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"deploy of 2 applications: success", "APPLICATION", "api v2", "web v7", "10.0.0.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCaptured(t, deployArgs(url, "v3", "--env", "MODE=prod", "--config", "POOL=8"))
	if code != 0 {
		t.Fatalf("--env: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"deploy", "--server", url, "--applications", file, "--service", "api"}, "drop --service"},
		{[]string{"deploy", "--server", url, "--applications", filepath.Join(t.TempDir(), "none.json")}, "no such file"},
		{deployArgs(url, "v3", "--env", "MODE"), "want NAME=VALUE"},
		{deployArgs(url, "v3", "--env", "A=1", "--env", "A=2"), "A is given twice"},
		{deployArgs(url, "v3", "--env", "A=1", "--config", "A=2"), "A is also given in environment"},
	} {
		code, out, errOut := runCaptured(t, c.args)
		if code != 2 || !strings.Contains(out+errOut, c.says) {
			t.Errorf("%v: exit %d, want a message saying %q:\n%s%s", c.args[3:], code, c.says, out, errOut)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"service":"api","versoin":"v2"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCaptured(t, []string{"deploy", "--server", url, "--applications", bad}); code != 2 || !strings.Contains(errOut, `unknown field "versoin"`) {
		t.Errorf("a typo: exit %d\n%s%s", code, out, errOut)
	}
}
