package k8s

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// A deploy's environment variables go into the container with its image, as one strategic-merge patch:
// the container's env list merges by name, so variables the deploy does not name stay as they are.

// envEntries are the patch entries that set env, in name order (one patch, the same bytes every time).
func envEntries(env map[string]string) []map[string]any {
	out := make([]map[string]any, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, map[string]any{"name": k, "value": env[k]})
	}
	return out
}

// envRestore are the patch entries that put back what the container had, before, for the names env
// set: the old value (or reference), or no variable at all where there was none.
func envRestore(before []corev1.EnvVar, env map[string]string) []map[string]any {
	out := make([]map[string]any, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		i := slices.IndexFunc(before, func(v corev1.EnvVar) bool { return v.Name == k })
		switch {
		case i < 0:
			out = append(out, map[string]any{"name": k, "$patch": "delete"})
		case before[i].ValueFrom != nil:
			out = append(out, map[string]any{"name": k, "value": nil, "valueFrom": before[i].ValueFrom})
		default:
			out = append(out, map[string]any{"name": k, "value": before[i].Value, "valueFrom": nil})
		}
	}
	return out
}

// envHolds reports whether the container already has every variable of env, with that value.
func envHolds(have []corev1.EnvVar, env map[string]string) bool {
	for k, v := range env {
		i := slices.IndexFunc(have, func(e corev1.EnvVar) bool { return e.Name == k })
		if i < 0 || have[i].ValueFrom != nil || have[i].Value != v {
			return false
		}
	}
	return true
}
