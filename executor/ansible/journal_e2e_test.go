//go:build e2e

package ansible

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// The service's own log on each node, read through the journal playbook: the unit's newest lines,
// as many as asked, each with its time and unit; a bad count is refused before anything runs.
func TestE2EJournalReadsTheServicesOwnLog(t *testing.T) {
	env := setupE2E(t, map[string]bool{"v1": false})
	ctx := context.Background()
	start := time.Now().Add(-time.Minute)
	if res, err := env.exec.Deploy(ctx, env.deployRequest("v1")); err != nil || res[0].State != executor.StateSuccess {
		t.Fatalf("deploy v1 = %v, %v", res, err)
	}
	got, err := env.exec.Journal(ctx, executor.JournalRequest{Service: env.service, Nodes: env.nodes, Lines: 3})
	if err != nil || len(got) != len(env.nodes) {
		t.Fatalf("journal = %v, %v", got, err)
	}
	for i, nj := range got {
		if nj.Host != env.nodes[i].Host || nj.Error != "" || len(nj.Lines) == 0 || len(nj.Lines) > 3 {
			t.Errorf("node %s: %d lines, error %q; want 1 to 3 lines", nj.Host, len(nj.Lines), nj.Error)
			continue
		}
		text := ""
		for j, l := range nj.Lines {
			if l.Time.Before(start) || l.Time.After(time.Now().Add(time.Minute)) || l.Unit == "" {
				t.Errorf("node %s line %d: %+v", nj.Host, j, l)
			}
			if j > 0 && l.Time.Before(nj.Lines[j-1].Time) {
				t.Errorf("node %s: lines not oldest first: %+v", nj.Host, nj.Lines)
			}
			text += l.Message + "\n"
		}
		if !strings.Contains(text, "demo v1") {
			t.Errorf("node %s: the last lines are not the service's own (it logs \"demo v1 ... listening\"): %q", nj.Host, text)
		}
	}
	var bad *executor.ValidationError
	if _, err := env.exec.Journal(ctx, executor.JournalRequest{Service: env.service, Nodes: env.nodes, Lines: 0}); !errors.As(err, &bad) {
		t.Errorf("0 lines: %v; want a validation error", err)
	}
}
