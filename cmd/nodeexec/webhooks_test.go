package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// config check shows the webhooks without their secrets; serve refuses a webhook it could not use.
func TestConfigCheckOfWebhooks(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secret, []byte("webhook-key-do-not-print-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	body := "webhooks:\n  - {url: \"https://hooks.example/n?token=query-credential\", events: [failed], secret_file: " + secret + "}\n"
	if err := os.WriteFile(good, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCaptured(t, []string{"config", "check", "--config", good})
	if code != 0 || !strings.Contains(out, "https://hooks.example/n?****") || !strings.Contains(out, "secret_file: "+secret) ||
		strings.Contains(out, "query-credential") || strings.Contains(out, "do-not-print") {
		t.Errorf("config check = exit %d\n%s", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	body = "webhooks:\n  - {url: \"https://u:pw@hooks.example/n\", events: [sucess], secret_file: " + filepath.Join(dir, "missing") + "}\n"
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCaptured(t, []string{"config", "check", "--config", bad})
	for _, want := range []string{"webhooks[0].url: carries credentials", "webhooks[0].events: \"sucess\" is not an event", "webhooks[0].secret_file: read the webhook secret"} {
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("config check of a bad webhook = exit %d, lacks %q:\n%s", code, want, stderr)
		}
	}
	if ok, err := serveCmd(context.Background(), []string{"--config", bad, "--data-dir", filepath.Join(dir, "data")}); ok || err == nil || !strings.Contains(err.Error(), "webhooks[0].url") {
		t.Errorf("serve with a bad webhook: %v %v", ok, err)
	}
}
