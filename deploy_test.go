package nodeexec

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// deploy/nodeexec-replicas.yaml runs several replicas on a shared database: each document must be a
// valid Kubernetes object (strictly: a misspelt field fails), and the objects must fit together.
func TestReplicasManifestRunsThreeReplicasOnADatabaseFromASecret(t *testing.T) {
	const file = "deploy/nodeexec-replicas.yaml"
	objs := decodeManifest(t, file)
	var dep *appsv1.Deployment
	var pdb *policyv1.PodDisruptionBudget
	var svc *corev1.Service
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment:
			dep = o
		case *policyv1.PodDisruptionBudget:
			pdb = o
		case *corev1.Service:
			svc = o
		case *corev1.PersistentVolumeClaim:
			t.Errorf("%s claims a volume (%s): the replicas keep nothing on disk", file, o.Name)
		}
	}
	if dep == nil || pdb == nil || svc == nil {
		t.Fatalf("%s: want a Deployment, a PodDisruptionBudget and a Service, got %d objects", file, len(objs))
	}
	if r := dep.Spec.Replicas; r == nil || *r != 3 {
		t.Errorf("replicas = %s, want 3", ptrString(r))
	}
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
		t.Errorf("strategy = %q, want RollingUpdate (nothing on disk to hand over)", dep.Spec.Strategy.Type)
	}
	pod := dep.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	t.Run("the database URI comes from a Secret", func(t *testing.T) {
		for _, a := range c.Args {
			if strings.HasPrefix(a, "--mongo-uri") {
				t.Errorf("the URI is on the command line (%q): it carries a password", a)
			}
		}
		for _, e := range c.Env {
			if e.Name == "NODEEXEC_MONGO_URI" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("NODEEXEC_MONGO_URI is not from a secretKeyRef: %+v", e)
			}
		}
		config := argValue(c.Args, "--config")
		if config == "" {
			t.Fatalf("no --config in %q: the URI is read from a configuration file in a Secret", c.Args)
		}
		secret := secretMountedAt(pod.Spec, c, path.Dir(config))
		if secret == "" {
			t.Fatalf("--config=%s is not in a directory a Secret volume is mounted on", config)
		}
		if !strings.Contains(manifestComments(t, file), "create secret generic "+secret+" --from-file="+path.Base(config)) {
			t.Errorf("the comments do not say how to create Secret %s with %s", secret, path.Base(config))
		}
	})

	t.Run("each replica is named after its pod", func(t *testing.T) {
		var name *corev1.EnvVar
		for i := range c.Env {
			if c.Env[i].Name == "NODEEXEC_REPLICA_NAME" {
				name = &c.Env[i]
			}
		}
		if name == nil || name.ValueFrom == nil || name.ValueFrom.FieldRef == nil || name.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Errorf("NODEEXEC_REPLICA_NAME = %+v, want it from fieldRef metadata.name", name)
		}
	})

	t.Run("no embedded database", func(t *testing.T) {
		if d := argValue(c.Args, "--data-dir"); d != "" {
			t.Errorf("--data-dir=%s given: the replicas share a database, none is embedded", d)
		}
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				t.Errorf("volume %s is a claim: the replicas keep nothing on disk", v.Name)
			}
		}
		for _, m := range c.VolumeMounts {
			if m.MountPath == "/var/lib/nodeexec" {
				t.Errorf("volume %s is mounted on the embedded database's directory", m.Name)
			}
		}
	})

	t.Run("the budget, the Service and the anti-affinity select the pods", func(t *testing.T) {
		podLabels := labels.Set(pod.Labels)
		if !selects(t, pdb.Spec.Selector, podLabels) {
			t.Errorf("the PodDisruptionBudget's selector %v does not select the pods (%v)", pdb.Spec.Selector, podLabels)
		}
		if pdb.Namespace != dep.Namespace || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 {
			t.Errorf("PodDisruptionBudget in %q, minAvailable %v: want %q and 2", pdb.Namespace, pdb.Spec.MinAvailable, dep.Namespace)
		}
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("the Service's selector %v does not select the pods (%v)", svc.Spec.Selector, podLabels)
		}
		aff := pod.Spec.Affinity
		if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Fatalf("want one preferred pod anti-affinity term, got %+v", aff)
		}
		term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
		if term.TopologyKey != "kubernetes.io/hostname" || !selects(t, term.LabelSelector, podLabels) {
			t.Errorf("anti-affinity by %q selecting %v: want by hostname, selecting the pods", term.TopologyKey, term.LabelSelector)
		}
	})

	t.Run("probes on the health endpoints", func(t *testing.T) {
		for probe, want := range map[string]struct {
			p    *corev1.Probe
			path string
		}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
			if want.p == nil || want.p.HTTPGet == nil || want.p.HTTPGet.Path != want.path || !hasPort(c, want.p.HTTPGet.Port.String()) {
				t.Errorf("%s probe = %+v, want GET %s on a port the container has", probe, want.p, want.path)
			}
		}
	})

	t.Run("rbac.yaml binds the pods' service account", func(t *testing.T) {
		var bound bool
		for _, o := range decodeManifest(t, "deploy/rbac.yaml") {
			if b, ok := o.(*rbacv1.ClusterRoleBinding); ok {
				for _, s := range b.Subjects {
					bound = bound || (s.Kind == "ServiceAccount" && s.Name == pod.Spec.ServiceAccountName && s.Namespace == dep.Namespace)
				}
			}
		}
		if !bound {
			t.Errorf("rbac.yaml binds no role to service account %s/%s", dep.Namespace, pod.Spec.ServiceAccountName)
		}
	})
}

// decodeManifest decodes every document of a manifest into its typed object, refusing unknown fields.
func decodeManifest(t *testing.T, file string) []runtime.Object {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []runtime.Object
	for i := 0; ; i++ {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		out = append(out, obj)
	}
}

var commentLine = regexp.MustCompile(`(?m)^\s*#.*$`)

func stripComments(doc []byte) []byte { return commentLine.ReplaceAll(doc, nil) }

// manifestComments is the text of a manifest's comment lines, '#' and indentation removed.
func manifestComments(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range commentLine.FindAllString(string(b), -1) {
		out = append(out, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#")))
	}
	return strings.Join(out, "\n")
}

// argValue is the value of a --name=value argument, or "".
func argValue(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// secretMountedAt is the Secret whose volume the container mounts on dir, or "".
func secretMountedAt(pod corev1.PodSpec, c corev1.Container, dir string) string {
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName
			}
		}
	}
	return ""
}

func selects(t *testing.T, s *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	if s == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Errorf("selector %v: %v", s, err)
		return false
	}
	return !sel.Empty() && sel.Matches(set)
}

// hasPort reports whether a probe's port (a name or a number) is one the container declares.
func hasPort(c corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return true
		}
	}
	return false
}

func ptrString(n *int32) string {
	if n == nil {
		return "unset"
	}
	return strconv.Itoa(int(*n))
}
