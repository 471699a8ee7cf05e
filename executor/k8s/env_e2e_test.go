//go:build e2e

package k8s

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodeexec/nodeexec/executor"
)

// A deploy's environment goes into the container with the image, in one rollout, beside the variables
// the container already had; a rollout that fails puts the image and those variables back as they
// were (a value, a reference, or no variable); the same image and variables again change nothing.
func TestTheEnvironmentGoesInWithTheImageAndBackWithIt(t *testing.T) {
	k := newCluster(t)
	w := k.createDeployment("web", "registry.example/demo:v1")
	ctx := context.Background()
	// The container has a plain variable the deploy keeps, one it changes, and one from a ConfigMap.
	seed := `{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"KEEP","value":"k"},{"name":"LEVEL","value":"info"},` +
		`{"name":"FROM_MAP","valueFrom":{"configMapKeyRef":{"name":"settings","key":"x","optional":true}}}]}]}}}}`
	if _, err := k.c.AppsV1().Deployments(k.ns).Patch(ctx, "web", types.StrategicMergePatchType, []byte(seed), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	k.waitDone(w)
	envOf := func() (string, string) {
		t.Helper()
		d, err := k.c.AppsV1().Deployments(k.ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c := d.Spec.Template.Spec.Containers[0]
		return c.Image, envText(c.Env)
	}
	deploy := func(version string, env map[string]string) executor.NodeResult {
		t.Helper()
		res, err := k.e.Deploy(ctx, executor.DeployRequest{DeploymentID: "d-" + version, Service: "demo", Version: version,
			K8sDeploy: executor.K8sDeploy{Image: "registry.example/demo:" + version, Workloads: []executor.Workload{w}, Env: env}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}

	res := deploy("v2", map[string]string{"LEVEL": "debug", "MODE": "prod"})
	image, env := envOf()
	if res.State != executor.StateSuccess || image != "registry.example/demo:v2" || env != "FROM_MAP=<configMap settings.x> KEEP=k LEVEL=debug MODE=prod" {
		t.Fatalf("after v2: %s %s (%+v)", image, env, res)
	}
	if n := k.readyPods("registry.example/demo:v2"); n != 3 {
		t.Errorf("%d pods of v2 ready, want 3", n)
	}
	d, _ := k.c.AppsV1().Deployments(k.ns).Get(ctx, "web", metav1.GetOptions{})
	revision := d.Annotations[revisionAnnotation]

	// The same again: nothing to change, no rollout.
	if res := deploy("v2", map[string]string{"LEVEL": "debug"}); res.State != executor.StateSuccess || res.Changed {
		t.Errorf("the same again = %+v", res)
	}
	if d, _ := k.c.AppsV1().Deployments(k.ns).Get(ctx, "web", metav1.GetOptions{}); d.Annotations[revisionAnnotation] != revision {
		t.Errorf("revision %s -> %s for nothing to change", revision, d.Annotations[revisionAnnotation])
	}

	// v3 can never become ready: its image and variables go back, the one it added goes away.
	k.labelNodes(false)
	res = deploy("v3", map[string]string{"LEVEL": "trace", "FROM_MAP": "plain", "NEW": "n"})
	image, env = envOf()
	if res.State != executor.StateRolledBack || image != "registry.example/demo:v2" || env != "FROM_MAP=<configMap settings.x> KEEP=k LEVEL=debug MODE=prod" {
		t.Errorf("after the failed v3: %s %s (%+v)", image, env, res)
	}
	if !strings.Contains(res.LastError, "rolled back") {
		t.Errorf("v3 error = %q", res.LastError)
	}
}

// envText is a container's env, sorted by name: a value as name=value, a reference as name=<kind name.key>.
func envText(env []corev1.EnvVar) string {
	var out []string
	for _, e := range env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
			out = append(out, e.Name+"=<configMap "+e.ValueFrom.ConfigMapKeyRef.Name+"."+e.ValueFrom.ConfigMapKeyRef.Key+">")
		case e.ValueFrom != nil:
			out = append(out, e.Name+"=<ref>")
		default:
			out = append(out, e.Name+"="+e.Value)
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
