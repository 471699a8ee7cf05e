package config

import (
	"fmt"
	"net/url"

	"github.com/nodeexec/nodeexec/notify"
)

// Webhook is a receiver told how deployments end (a notify.Event), signed with the key in its
// SecretFile. Webhooks are set in the file only: no environment variable or flag, so a secret never
// sits in a value that gets printed.
type Webhook struct {
	URL string `yaml:"url"`
	// Events it wants: failed, rolled_back, succeeded, drifted; none: the three of deployments.
	Events []string `yaml:"events"`
	// SecretFile holds the HMAC-SHA256 key its events are signed with (never the key itself).
	SecretFile string `yaml:"secret_file"`
}

func checkWebhooks(hooks []Webhook) []Problem {
	var out []Problem
	for i, w := range hooks {
		bad := func(field, format string, a ...any) {
			out = append(out, Problem{fmt.Sprintf("webhooks[%d].%s", i, field), fmt.Sprintf(format, a...)})
		}
		switch u, err := url.Parse(w.URL); {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("url", "%q is not an http:// or https:// URL", notify.Shown(w.URL))
		case u.User != nil:
			bad("url", "carries credentials (user@ or user:password@): remove them; the receiver checks the signature instead")
		}
		for _, e := range w.Events {
			if _, err := notify.ParseType(e); err != nil {
				bad("events", "%v", err)
			}
		}
		if w.SecretFile == "" {
			bad("secret_file", "missing: every webhook's events are signed; put a long random key in a file (openssl rand -hex 32)")
		} else if _, err := notify.ReadSecret(w.SecretFile); err != nil {
			bad("secret_file", "%v", err)
		}
	}
	return out
}

// maskWebhooks is hooks as Masked shows them: each URL's query, which may hold a credential, as ****.
func maskWebhooks(hooks []Webhook) []Webhook {
	out := make([]Webhook, len(hooks))
	for i, w := range hooks {
		w.URL = notify.Shown(w.URL)
		out[i] = w
	}
	return out
}

// Notify is the webhooks ready for the notifier, their secrets read from their files.
func (c Config) Notify() (notify.Config, error) {
	var nc notify.Config
	for i, w := range c.Webhooks {
		hook := notify.Webhook{URL: w.URL}
		for _, e := range w.Events {
			t, err := notify.ParseType(e)
			if err != nil {
				return nc, fmt.Errorf("webhooks[%d].events: %w", i, err)
			}
			hook.Events = append(hook.Events, t)
		}
		secret, err := notify.ReadSecret(w.SecretFile)
		if err != nil {
			return nc, fmt.Errorf("webhooks[%d].secret_file: %w", i, err)
		}
		hook.Secret = secret
		nc.Webhooks = append(nc.Webhooks, hook)
	}
	return nc, nil
}
