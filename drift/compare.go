package drift

import (
	"fmt"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Observation is what a node says and runs, as a drift pass reads it.
type Observation struct {
	// Error says why the node could not be read ("" when it was).
	Error string
	// Active says the unit is active (physical; ActiveState is systemd's word for it). A workload
	// whose rollout is not done is still active: only its image is compared.
	Active      bool
	ActiveState string
	// Current, Prev and State are the node's own record (physical: .nodeexec/state.json; k8s: the
	// live image's version); Running is the version its main process runs ("" when stopped or unknown).
	Current string
	Prev    string
	State   executor.State
	Running string
}

// Finding is what a drift pass concludes about one node: its drift (nil: none), what it does about it
// (Change), and the record's new versions when the node's truth replaces them.
type Finding struct {
	Drift    *store.Drift
	Change   string
	Versions *store.VersionUpdate
	Message  string
}

// Compare sets a node's record (as it was before the pass held it) against what the node says and
// runs. Three truths: the record, the node's own record, the running process (k8s: the live image).
//   - unreachable: the node could not be read; nothing of the record changes but the drift.
//   - version (physical) / image_changed (k8s): the node runs or records another version; the record
//     takes the node's versions (its own record drives the next deploy anyway).
//   - unit_inactive: the record says success but the unit is not active.
//
// A drift like the one the record already has keeps its Since; one the record had and the node no
// longer shows is cleared. Pure: the pass does the I/O.
func Compare(rec store.Node, obs Observation, now time.Time) Finding {
	var f Finding
	switch {
	case obs.Error != "":
		f.Drift = &store.Drift{Kind: store.DriftUnreachable, Recorded: rec.CurrentVersion}
		f.Message = "could not read the node (its record is left as it is): " + obs.Error
	case rec.Platform == executor.PlatformK8s && obs.Current != rec.CurrentVersion:
		f.Drift = &store.Drift{Kind: store.DriftImageChanged, Recorded: rec.CurrentVersion, Observed: obs.Current}
		// The live image replaced the recorded version: that one ran before it.
		f.Versions = &store.VersionUpdate{FromCurrent: rec.CurrentVersion, FromPrev: rec.PrevVersion,
			Current: obs.Current, Prev: rec.CurrentVersion, State: settled(obs.State, rec.State)}
		f.Message = fmt.Sprintf("the live image is %s, not the recorded %s: record updated to %s", obs.Current, shown(rec.CurrentVersion), obs.Current)
	case rec.Platform != executor.PlatformK8s && versionDiffers(rec, obs):
		observed := obs.Running
		if observed == "" {
			observed = obs.Current
		}
		f.Drift = &store.Drift{Kind: store.DriftVersion, Recorded: rec.CurrentVersion, Observed: observed}
		f.Versions = &store.VersionUpdate{FromCurrent: rec.CurrentVersion, FromPrev: rec.PrevVersion,
			Current: obs.Current, Prev: obs.Prev, State: settled(obs.State, rec.State)}
		f.Message = fmt.Sprintf("the node records %s and runs %s, the database said %s: record updated to the node's (current %s, previous %s)",
			shown(obs.Current), shown(obs.Running), shown(rec.CurrentVersion), shown(obs.Current), shown(obs.Prev))
	case rec.Platform != executor.PlatformK8s && rec.State == executor.StateSuccess && !obs.Active:
		state := obs.ActiveState
		if state == "" {
			state = "inactive"
		}
		f.Drift = &store.Drift{Kind: store.DriftUnitInactive, Recorded: "active", Observed: state}
		f.Message = "the record says " + shown(rec.CurrentVersion) + " was deployed, but the unit is " + state
	}
	switch {
	case f.Drift != nil && same(rec.Drift, f.Drift):
		f.Drift.Since, f.Change = rec.Drift.Since, store.DriftKept
	case f.Drift != nil:
		f.Drift.Since, f.Change = now.UTC(), store.DriftFound
	case rec.Drift != nil:
		f.Change, f.Message = store.DriftCleared, "no drift any more (was "+rec.Drift.Kind+")"
	}
	return f
}

// versionDiffers: the node's own record, or the release its process runs, is not the recorded version.
func versionDiffers(rec store.Node, obs Observation) bool {
	return obs.Current != rec.CurrentVersion || (obs.Running != "" && obs.Running != rec.CurrentVersion)
}

// settled is the state a record takes with the node's versions: the node's own when it is an end
// state, else the record's (a pass never leaves a node looking held).
func settled(node, rec executor.State) executor.State {
	switch node {
	case executor.StateSuccess, executor.StateFailed, executor.StateRolledBack:
		return node
	}
	return rec
}

func same(a, b *store.Drift) bool {
	return a != nil && a.Kind == b.Kind && a.Recorded == b.Recorded && a.Observed == b.Observed
}

func shown(v string) string {
	if v == "" {
		return "none"
	}
	return v
}
