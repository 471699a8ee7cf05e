package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCleanupSettingsFromFileAndEnvironment(t *testing.T) {
	path := write(t, `
cleanup:
  schedule: "0 3 * * *"
  keep: 3
  per_service: {billing: 10, demo-api_2.x: 2}
  retention: 240h
`)
	cfg, err := Load(path, envOf(map[string]string{"NODEEXEC_CLEANUP_KEEP": "4", "NODEEXEC_CLEANUP_BATCH_SIZE": "7", "NODEEXEC_CLEANUP_RETENTION": "48h"}))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cleanup
	if c.Schedule != "0 3 * * *" || c.Keep != 4 || c.BatchSize != 7 || c.Retention != Duration(48*time.Hour) ||
		len(c.PerService) != 2 || c.PerService["billing"] != 10 || c.PerService["demo-api_2.x"] != 2 {
		t.Errorf("cleanup = %+v", c)
	}
	if p := cfg.Check(); len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
	if !strings.Contains(cfg.Masked(), "billing: 10") {
		t.Errorf("the effective configuration does not show per_service:\n%s", cfg.Masked())
	}
}

func TestCleanupCheckNamesEachProblem(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*Cleanup)
		want   string // the settings named, sorted
		reason string
	}{
		{"defaults are fine (no schedule)", func(*Cleanup) {}, "", ""},
		{"a daily schedule", func(c *Cleanup) { c.Schedule = "0 3 * * *" }, "", ""},
		{"a schedule in a time zone", func(c *Cleanup) { c.Schedule = "CRON_TZ=Europe/Berlin 30 2 * * 1-5" }, "", ""},
		{"a descriptor", func(c *Cleanup) { c.Schedule = "@daily" }, "", ""},
		{"not a cron spec", func(c *Cleanup) { c.Schedule = "every night" }, "cleanup.schedule", "not a cron spec"},
		{"six fields: seconds first", func(c *Cleanup) { c.Schedule = "30 0 3 * * *" }, "", ""},
		{"every second", func(c *Cleanup) { c.Schedule = "* * * * * *" }, "", ""},
		{"seven fields", func(c *Cleanup) { c.Schedule = "0 0 0 3 * * *" }, "cleanup.schedule", "not a cron spec"},
		{"four fields", func(c *Cleanup) { c.Schedule = "0 3 * *" }, "cleanup.schedule", "not a cron spec"},
		{"seconds out of range", func(c *Cleanup) { c.Schedule = "60 0 3 * * *" }, "cleanup.schedule", "not a cron spec"},
		{"@every in six fields' clothing", func(c *Cleanup) { c.Schedule = "CRON_TZ=UTC @every 1s" }, "cleanup.schedule", "@every is not supported"},
		{"@every drifts between replicas", func(c *Cleanup) { c.Schedule = "@every 1h" }, "cleanup.schedule", "@every is not supported"},
		{"a date that never comes", func(c *Cleanup) { c.Schedule = "0 0 30 2 *" }, "cleanup.schedule", "never fires"},
		{"keep 1 would remove the previous release", func(c *Cleanup) { c.Keep = 1 }, "cleanup.keep", "want 2"},
		{"per service keep too low", func(c *Cleanup) { c.PerService = map[string]int{"web": 1} }, "cleanup.per_service", "web: want 2"},
		{"per service name invalid", func(c *Cleanup) { c.PerService = map[string]int{"../etc": 3} }, "cleanup.per_service", "service"},
		{"negative retention", func(c *Cleanup) { c.Retention = Duration(-time.Hour) }, "cleanup.retention", "at least 1h"},
		{"a retention that would prune what just finished", func(c *Cleanup) { c.Retention = Duration(time.Minute) }, "cleanup.retention", "at least 1h"},
		{"retention 0 keeps records", func(c *Cleanup) { c.Retention = 0 }, "", ""},
		{"batch size 0", func(c *Cleanup) { c.BatchSize = 0 }, "cleanup.batch_size", "1 to 500"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			c.change(&cfg.Cleanup)
			var got []string
			reasons := ""
			for _, p := range cfg.Check() {
				got = append(got, p.Setting)
				reasons += p.Reason + "\n"
			}
			slices.Sort(got)
			if strings.Join(got, ",") != c.want || !strings.Contains(reasons, c.reason) {
				t.Errorf("problems %v (%s); want %q saying %q", got, reasons, c.want, c.reason)
			}
		})
	}
}

// A six-field spec counts seconds: its ticks are whole seconds, the same on every replica.
func TestASixFieldScheduleTicksOnTheSecond(t *testing.T) {
	s, err := ParseSchedule("CRON_TZ=UTC */2 * * * * *")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 12, 7, 3, 0, 0, 500_000_000, time.UTC)
	first := s.Next(from)
	if want := time.Date(2026, 12, 7, 3, 0, 2, 0, time.UTC); !first.Equal(want) {
		t.Errorf("first tick after %s: %s, want %s", from, first, want)
	}
	if next := s.Next(first); next.Sub(first) != 2*time.Second {
		t.Errorf("ticks %s then %s: want 2s apart", first, next)
	}
	daily, err := ParseSchedule("CRON_TZ=UTC 0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := daily.Next(from), time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("five fields still count minutes: next %s, want %s", got, want)
	}
}
