package config

import (
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/retry"
)

// Retries and timeouts come from the file, NODEEXEC_RETRY_MAX and NODEEXEC_DEPLOY_TIMEOUT override it,
// and what serve runs with is what config check prints.
func TestRetryAndTimeoutsFromFileAndEnvironment(t *testing.T) {
	path := write(t, `
retry: {max_retries: 5, initial_delay: 500ms, max_delay: 20s, factor: 3}
timeouts: {download: 90s, deploy: 45m, health_check: 2s}
`)
	cfg, err := Load(path, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := retry.Policy{MaxRetries: 5, InitialDelay: 500 * time.Millisecond, MaxDelay: 20 * time.Second, Factor: 3}
	if got := cfg.Retry.Policy(); got != want {
		t.Errorf("retry from the file = %+v, want %+v", got, want)
	}
	if got := cfg.Timeouts; got != (Timeouts{Download: Duration(90 * time.Second), Deploy: Duration(45 * time.Minute), HealthCheck: Duration(2 * time.Second)}) {
		t.Errorf("timeouts from the file = %+v", got)
	}

	cfg, err = Load(path, envOf(map[string]string{"NODEEXEC_RETRY_MAX": "0", "NODEEXEC_DEPLOY_TIMEOUT": "10m"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeouts.Deploy != Duration(10*time.Minute) {
		t.Errorf("NODEEXEC_DEPLOY_TIMEOUT=10m gave %s", time.Duration(cfg.Timeouts.Deploy))
	}
	if cfg.Retry.MaxRetries != 0 {
		t.Errorf("NODEEXEC_RETRY_MAX=0 gave %d retries, want none", cfg.Retry.MaxRetries)
	}
	if m := cfg.Masked(); !strings.Contains(m, "deploy: 10m0s") || !strings.Contains(m, "max_retries: 0") {
		t.Errorf("the effective configuration does not show the overrides:\n%s", m)
	}

	for name, value := range map[string]string{"NODEEXEC_RETRY_MAX": "many", "NODEEXEC_DEPLOY_TIMEOUT": "soon"} {
		if _, err := Load(path, envOf(map[string]string{name: value})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: error %v, want one naming the variable", name, value, err)
		}
	}
}

func TestRetryAndTimeoutsCheckNamesEachProblem(t *testing.T) {
	for _, c := range []struct {
		name    string
		change  func(*Config)
		setting string
		reason  string
	}{
		{"defaults", func(*Config) {}, "", ""},
		{"no retries", func(c *Config) { c.Retry.MaxRetries = 0 }, "", ""},
		{"too many retries", func(c *Config) { c.Retry.MaxRetries = 101 }, "retry", "max_retries: want 0 to 100"},
		{"a negative delay", func(c *Config) { c.Retry.InitialDelay = Duration(-time.Second) }, "retry", "must not be negative"},
		{"first delay past the longest", func(c *Config) {
			c.Retry.InitialDelay, c.Retry.MaxDelay = Duration(time.Minute), Duration(time.Second)
		}, "retry", "longer than max_delay"},
		{"a factor that shrinks", func(c *Config) { c.Retry.Factor = 0.5 }, "retry", "factor: want 1 to 10"},
		{"a download timeout below a second", func(c *Config) { c.Timeouts.Download = Duration(100 * time.Millisecond) }, "timeouts.download", "at least 1s"},
		{"no deploy timeout", func(c *Config) { c.Timeouts.Deploy = 0 }, "timeouts.deploy", "at least 1s"},
		{"no health check timeout", func(c *Config) { c.Timeouts.HealthCheck = 0 }, "timeouts.health_check", "at least 1s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			c.change(&cfg)
			var got []string
			for _, p := range cfg.Check() {
				got = append(got, p.Setting+": "+p.Reason)
			}
			if c.setting == "" {
				if len(got) != 0 {
					t.Errorf("problems: %q", got)
				}
				return
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], c.setting+": ") || !strings.Contains(got[0], c.reason) {
				t.Errorf("problems = %q, want one for %s saying %q", got, c.setting, c.reason)
			}
		})
	}
}
