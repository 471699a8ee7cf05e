package drift

import (
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

func TestCompareFindsKeepsAndClearsDrift(t *testing.T) {
	now := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	earlier := now.Add(-time.Hour)
	phys := func(cur, prev string, st executor.State, d *store.Drift) store.Node {
		return store.Node{Platform: executor.PlatformPhysical, CurrentVersion: cur, PrevVersion: prev, State: st, Drift: d}
	}
	k8s := func(cur, prev string, d *store.Drift) store.Node {
		return store.Node{Platform: executor.PlatformK8s, CurrentVersion: cur, PrevVersion: prev, State: executor.StateSuccess, Drift: d}
	}
	running := func(cur, prev string) Observation {
		return Observation{Active: true, ActiveState: "active", Current: cur, Prev: prev, Running: cur, State: executor.StateSuccess}
	}
	cases := []struct {
		name       string
		rec        store.Node
		obs        Observation
		kind       string // "" : no drift
		observed   string
		change     string
		since      time.Time
		updatedTo  string // current version the record takes ("" : versions untouched)
		updatedPre string
	}{
		{name: "in step", rec: phys("v1", "v0", executor.StateSuccess, nil), obs: running("v1", "v0")},
		{name: "deployed by hand", rec: phys("v1", "v0", executor.StateSuccess, nil), obs: running("v2", "v1"),
			kind: store.DriftVersion, observed: "v2", change: store.DriftFound, since: now, updatedTo: "v2", updatedPre: "v1"},
		{name: "record file changed but the old release still runs", rec: phys("v1", "v0", executor.StateSuccess, nil),
			obs:  Observation{Active: true, Current: "v2", Prev: "v1", Running: "v1", State: executor.StateSuccess},
			kind: store.DriftVersion, observed: "v1", change: store.DriftFound, since: now, updatedTo: "v2", updatedPre: "v1"},
		{name: "unit stopped", rec: phys("v2", "v1", executor.StateSuccess, nil), obs: Observation{ActiveState: "inactive", Current: "v2", Prev: "v1", State: executor.StateSuccess},
			kind: store.DriftUnitInactive, observed: "inactive", change: store.DriftFound, since: now},
		{name: "unit still stopped keeps since", rec: phys("v2", "v1", executor.StateSuccess, &store.Drift{Kind: store.DriftUnitInactive, Recorded: "active", Observed: "inactive", Since: earlier}),
			obs:  Observation{ActiveState: "inactive", Current: "v2", Prev: "v1"},
			kind: store.DriftUnitInactive, observed: "inactive", change: store.DriftKept, since: earlier},
		{name: "unit started again clears", rec: phys("v2", "v1", executor.StateSuccess, &store.Drift{Kind: store.DriftUnitInactive, Recorded: "active", Observed: "inactive", Since: earlier}),
			obs: running("v2", "v1"), change: store.DriftCleared},
		{name: "a failed node's stopped unit is no drift", rec: phys("v1", "v0", executor.StateFailed, nil), obs: Observation{ActiveState: "failed", Current: "v1", Prev: "v0"}},
		{name: "unreachable leaves versions", rec: phys("v1", "v0", executor.StateSuccess, nil), obs: Observation{Error: "ssh: connection refused"},
			kind: store.DriftUnreachable, change: store.DriftFound, since: now},
		{name: "still unreachable keeps since", rec: phys("v1", "v0", executor.StateSuccess, &store.Drift{Kind: store.DriftUnreachable, Recorded: "v1", Since: earlier}),
			obs: Observation{Error: "timeout"}, kind: store.DriftUnreachable, change: store.DriftKept, since: earlier},
		{name: "unreachable then stopped is a new drift", rec: phys("v1", "v0", executor.StateSuccess, &store.Drift{Kind: store.DriftUnreachable, Recorded: "v1", Since: earlier}),
			obs: Observation{ActiveState: "inactive", Current: "v1", Prev: "v0"}, kind: store.DriftUnitInactive, observed: "inactive", change: store.DriftFound, since: now},
		{name: "image set with kubectl", rec: k8s("v1", "v0", nil), obs: Observation{Active: true, Current: "v2", Prev: "v0", State: executor.StateSuccess},
			kind: store.DriftImageChanged, observed: "v2", change: store.DriftFound, since: now, updatedTo: "v2", updatedPre: "v1"},
		{name: "workload in step", rec: k8s("v1", "v0", nil), obs: Observation{Active: true, Current: "v1", State: executor.StateSuccess}},
		{name: "workload version drift healed last pass is cleared", rec: k8s("v2", "v1", &store.Drift{Kind: store.DriftImageChanged, Recorded: "v1", Observed: "v2", Since: earlier}),
			obs: Observation{Active: true, Current: "v2", State: executor.StateSuccess}, change: store.DriftCleared},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := Compare(tc.rec, tc.obs, now)
			if tc.kind == "" {
				if f.Drift != nil {
					t.Fatalf("drift %+v, want none", *f.Drift)
				}
			} else {
				if f.Drift == nil {
					t.Fatalf("no drift, want %s", tc.kind)
				}
				if f.Drift.Kind != tc.kind || f.Drift.Observed != tc.observed || !f.Drift.Since.Equal(tc.since) {
					t.Errorf("drift %+v, want kind %s observed %q since %s", *f.Drift, tc.kind, tc.observed, tc.since)
				}
				if f.Drift.Recorded == "" && tc.kind != store.DriftUnreachable {
					t.Errorf("drift %+v says nothing of what was recorded", *f.Drift)
				}
			}
			if f.Change != tc.change {
				t.Errorf("change %q, want %q", f.Change, tc.change)
			}
			switch {
			case tc.updatedTo == "" && f.Versions != nil:
				t.Errorf("record updated to %+v, want it left as it is", *f.Versions)
			case tc.updatedTo != "" && (f.Versions == nil || f.Versions.Current != tc.updatedTo || f.Versions.Prev != tc.updatedPre):
				t.Errorf("record update %+v, want current %s prev %s", f.Versions, tc.updatedTo, tc.updatedPre)
			}
			if f.Change != "" && f.Message == "" {
				t.Error("a change with no message")
			}
		})
	}
}
