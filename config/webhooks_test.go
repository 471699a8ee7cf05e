package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodeexec/nodeexec/notify"
)

func secretFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWebhooksLoadWithTheirSecretsFromFiles(t *testing.T) {
	secret := secretFile(t, "a-long-random-webhook-key-0123456789\n")
	cfg, err := Load(write(t, `
webhooks:
  - {url: "https://hooks.example/nodeexec?team=ops", events: [failed, rolled_back], secret_file: `+secret+`}
  - {url: "http://127.0.0.1:9000/all", secret_file: `+secret+`}
`), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Check(); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
	nc, err := cfg.Notify()
	if err != nil || len(nc.Webhooks) != 2 {
		t.Fatalf("Notify = %+v %v", nc, err)
	}
	first := nc.Webhooks[0]
	if first.URL != "https://hooks.example/nodeexec?team=ops" || !slices.Equal(first.Events, []notify.Type{notify.Failed, notify.RolledBack}) ||
		string(first.Secret) != "a-long-random-webhook-key-0123456789" || nc.Webhooks[1].Events != nil {
		t.Errorf("webhooks = %+v", nc.Webhooks)
	}
}

func TestCheckNamesEveryWebhookProblem(t *testing.T) {
	good := secretFile(t, "a-long-random-webhook-key-0123456789")
	c := Default()
	c.Webhooks = []Webhook{
		{URL: "ftp://hooks.example/x", SecretFile: good},
		{URL: "https://user:pw@hooks.example/x", SecretFile: good},
		{URL: "https:///no-host", SecretFile: good},
		{URL: "https://hooks.example/x", Events: []string{"failed", "success"}, SecretFile: good},
		{URL: "https://hooks.example/x"},
		{URL: "https://hooks.example/x", SecretFile: secretFile(t, "short\n")},
		{URL: "https://hooks.example/x", SecretFile: filepath.Join(t.TempDir(), "missing")},
		{URL: "https://hooks.example/fine", Events: []string{"succeeded"}, SecretFile: good},
	}
	var got []string
	for _, p := range c.Check() {
		got = append(got, p.Setting)
		if strings.Contains(p.Reason, "pw") {
			t.Errorf("a problem shows the URL's password: %s", p)
		}
	}
	want := []string{"webhooks[0].url", "webhooks[1].url", "webhooks[2].url", "webhooks[3].events",
		"webhooks[4].secret_file", "webhooks[5].secret_file", "webhooks[6].secret_file"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("problems with %v, want %v", got, want)
	}
}

func TestMaskedShowsNoWebhookSecret(t *testing.T) {
	c := Default()
	c.Webhooks = []Webhook{{URL: "https://hooks.example/nodeexec?token=query-credential", Events: []string{"failed"},
		SecretFile: secretFile(t, "the-webhook-secret-itself-0123")}}
	out := c.Masked()
	if strings.Contains(out, "query-credential") || strings.Contains(out, "the-webhook-secret-itself") {
		t.Errorf("masked output reveals a secret:\n%s", out)
	}
	if !strings.Contains(out, "https://hooks.example/nodeexec?****") || !strings.Contains(out, c.Webhooks[0].SecretFile) {
		t.Errorf("masked output lacks the webhook:\n%s", out)
	}
	if c.Webhooks[0].URL != "https://hooks.example/nodeexec?token=query-credential" {
		t.Error("Masked changed the configuration it shows")
	}
}
