package k8s

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// A deploy's environment variables go into the container with its image, as one strategic-merge patch:
// the container's env list merges by name, so variables the deploy does not name stay as they are.

// envEntries are the patch entries that set env, in name order (one patch, the same bytes every time).
// Each drops a valueFrom the variable had: the API server refuses a variable with both.
func envEntries(env map[string]string) []any {
	out := make([]any, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, map[string]any{"name": k, "value": env[k], "valueFrom": nil})
	}
	return out
}

// envRestore is the patch's env list that puts back the container's env as it was, before: the whole
// list in its order (a "replace" directive), so the template is the one before to the byte and the
// rollout goes back to its ReplicaSet instead of starting a new one.
func envRestore(before []corev1.EnvVar) []any {
	out := make([]any, 0, len(before)+1)
	out = append(out, map[string]any{"$patch": "replace"})
	for _, v := range before {
		out = append(out, v)
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

// restoreEnv is the env change that undoes a deploy's: none when it set no variable.
func restoreEnv(before []corev1.EnvVar, set map[string]string) []any {
	if len(set) == 0 {
		return nil
	}
	return envRestore(before)
}

// envNote says which variables a deploy sets, for its step: their names, never their values.
func envNote(env map[string]string) string {
	if len(env) == 0 {
		return ""
	}
	return fmt.Sprintf(", environment %s", strings.Join(slices.Sorted(maps.Keys(env)), ", "))
}
