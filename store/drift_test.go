package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
	"github.com/nodeexec/nodeexec/store/storetest"
)

// A drift pass writes its findings as it gives a node back: the drift is recorded, listed by the
// drifted filter, and cleared by a pass that no longer finds it or by a successful deploy (not by a
// failed one). While the pass holds the node, a deploy is told which pass.
func TestDriftIsRecordedFilteredAndCleared(t *testing.T) {
	st := storetest.Open(t)
	ctx := context.Background()
	finish := func(id, host string, state executor.State, version string) {
		t.Helper()
		if _, err := st.Claim(ctx, "web", host, executor.PlatformPhysical, id, version); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Finish(ctx, id, executor.NodeStatus{Service: "web", Host: host, State: state, CurrentVersion: version, PrevVersion: "v0"}); err != nil {
			t.Fatal(err)
		}
	}
	finish("d-1", "h1", executor.StateSuccess, "v1")
	finish("d-1", "h2", executor.StateSuccess, "v1")
	pass := store.NewDriftID()
	since := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	hold := func() *store.Node {
		t.Helper()
		prior, err := st.Claim(ctx, "web", "h1", executor.PlatformPhysical, pass, "")
		if err != nil {
			t.Fatal(err)
		}
		return prior
	}

	prior := hold()
	_, err := st.Claim(ctx, "web", "h1", executor.PlatformPhysical, "d-2", "v3")
	var busy *store.BusyError
	if !errors.As(err, &busy) || !strings.Contains(err.Error(), "drift pass "+pass) {
		t.Errorf("a deploy while the pass holds h1: %v, want busy naming the drift pass", err)
	}
	d := &store.Drift{Kind: store.DriftVersion, Recorded: "v1", Observed: "v2", Since: since}
	if err := st.GiveBack(ctx, pass, prior, store.Observed{Drift: d, Versions: &store.VersionUpdate{Current: "v2", Prev: "v1", State: executor.StateSuccess}}); err != nil {
		t.Fatal(err)
	}
	n, _ := st.Node(ctx, "web", "h1")
	if n.Drift == nil || *n.Drift != *d || n.CurrentVersion != "v2" || n.PrevVersion != "v1" || n.DeploymentID != "d-1" || n.State != executor.StateSuccess {
		t.Errorf("h1 after the pass: %+v drift %+v", n, n.Drift)
	}
	drifted, _, err := st.ListNodes(ctx, store.NodeFilter{Drifted: true, Limit: 10})
	if err != nil || len(drifted) != 1 || drifted[0].Host != "h1" {
		t.Errorf("drifted: %v (%v), want h1", drifted, err)
	}
	if all, _, _ := st.ListNodes(ctx, store.NodeFilter{Limit: 10}); len(all) != 2 {
		t.Errorf("every node: %d, want 2", len(all))
	}
	if err := st.GiveBack(ctx, pass, prior, store.Observed{}); !errors.Is(err, store.ErrNotHeld) {
		t.Errorf("giving back a node the pass no longer holds: %v, want ErrNotHeld", err)
	}

	finish("d-3", "h1", executor.StateFailed, "v2")
	if n, _ := st.Node(ctx, "web", "h1"); n.Drift == nil {
		t.Error("a failed deploy cleared the drift")
	}
	finish("d-4", "h1", executor.StateSuccess, "v4")
	if n, _ := st.Node(ctx, "web", "h1"); n.Drift != nil {
		t.Errorf("drift %+v after a successful deploy", n.Drift)
	}

	prior = hold()
	if err := st.GiveBack(ctx, pass, prior, store.Observed{Drift: d}); err != nil {
		t.Fatal(err)
	}
	prior = hold()
	if err := st.GiveBack(ctx, pass, prior, store.Observed{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := st.Node(ctx, "web", "h1"); n.Drift != nil || n.CurrentVersion != "v4" {
		t.Errorf("h1 after a pass that found nothing: %+v (drift %+v)", n, n.Drift)
	}
}
