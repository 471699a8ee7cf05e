package config

import (
	"strings"
	"testing"
	"time"
)

// A replica's name reaches logs, records and the API: it is refused unless plain; a lease outside 3s to
// 1h is refused (shorter: a slow database makes live replicas look dead; longer: a dead one's deployments
// wait an hour).
func TestReplicaSettingsAreChecked(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(*Replica)
		reason string
	}{
		{"defaults", func(*Replica) {}, ""},
		{"a pod's name", func(r *Replica) { r.Name = "nodeexec-0" }, ""},
		{"host and port", func(r *Replica) { r.Name = "vm/127.0.0.1:8080" }, ""},
		{"a shell word", func(r *Replica) { r.Name = "a b;rm" }, "replica.name"},
		{"a leading dot", func(r *Replica) { r.Name = ".hidden" }, "replica.name"},
		{"too long", func(r *Replica) { r.Name = strings.Repeat("a", 129) }, "replica.name"},
		{"a lease of 3s", func(r *Replica) { r.Lease = Duration(3 * time.Second) }, ""},
		{"a lease too short", func(r *Replica) { r.Lease = Duration(time.Millisecond) }, "replica.lease"},
		{"a lease too long", func(r *Replica) { r.Lease = Duration(2 * time.Hour) }, "replica.lease"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			c.change(&cfg.Replica)
			var got []string
			for _, p := range cfg.Check() {
				got = append(got, p.Setting+": "+p.Reason)
			}
			if c.reason == "" && len(got) != 0 || c.reason != "" && (len(got) != 1 || !strings.HasPrefix(got[0], c.reason+": ") || !strings.Contains(got[0], "want")) {
				t.Errorf("problems %v; want %q", got, c.reason)
			}
		})
	}
}
