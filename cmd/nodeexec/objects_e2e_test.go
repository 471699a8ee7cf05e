//go:build e2e

package main

// The Kubernetes objects commands and the Go client against the real `nodeexec serve --kubeconfig`
// binary (embedded database) on the real control plane (hack/kube up), in a namespace of the test's
// own (kobj-cli-<random>, deleted after it).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor/k8s"
	"github.com/nodeexec/nodeexec/internal/contract"
)

// serveKube builds nodeexec and runs `nodeexec serve --kubeconfig` on a free loopback port until the
// test ends; it returns the server's URL once its "serving" log line names the address.
func serveKube(t *testing.T, kubeconfig string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nodeexec")
	if out, err := osexec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build nodeexec: %v\n%s", err, out)
	}
	cmd := osexec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--kubeconfig", kubeconfig)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "nodeexec serving" {
				addr <- line["listen"].(string)
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatal("nodeexec serve exited before serving")
		}
		return "http://" + a
	case <-time.After(90 * time.Second):
		t.Fatal("nodeexec serve did not start serving within 90s")
	}
	return ""
}

const cliManifest = `apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, labels: {app: kobj-cli}}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: kobj-cli}}
spec:
  replicas: 1
  selector: {matchLabels: {app: kobj-cli}}
  template:
    metadata: {labels: {app: kobj-cli}}
    spec:
      nodeSelector: {type: kwok}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers: [{name: app, image: registry.example/web:v1}]
`

// withStdin runs f with text on standard input.
func withStdin(t *testing.T, text string, f func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = w.WriteString(text)
		w.Close()
	}()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old; r.Close() }()
	f()
}

// aPodReady waits, on a watch, until a pod that selector picks is ready.
func aPodReady(t *testing.T, c kubernetes.Interface, ns, selector string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch of the pods ended")
			}
			if p, isPod := ev.Object.(*corev1.Pod); isPod {
				for _, cond := range p.Status.Conditions {
					if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
						return
					}
				}
			}
		case <-ctx.Done():
			t.Fatal("no pod ready after 90s")
		}
	}
}

func TestObjectsThroughTheCLIAndTheClientOnTheRealControlPlane(t *testing.T) {
	kubeconfig := os.Getenv("NODEEXEC_TEST_KUBECONFIG")
	if kubeconfig == "" {
		t.Skip("set NODEEXEC_TEST_KUBECONFIG (hack/kube up; or `make e2e`)")
	}
	kc, _, err := k8s.NewClient(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := "kobj-cli-" + hex.EncodeToString(b)
	ctx := context.Background()
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kc.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	base := serveKube(t, kubeconfig)
	file := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(file, []byte(cliManifest), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := runCaptured(t, append(args[:1:1], append([]string{"--server", base}, args[1:]...)...))
		if code != wantCode {
			t.Fatalf("nodeexec %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out + errOut
	}

	// The CLI: a dry run from a file, then for real from standard input.
	if out := cli(0, "apply", "-n", ns, "-f", file, "--dry-run"); !strings.Contains(out, "dry run: nothing was changed") || strings.Count(out, "would_create") != 2 {
		t.Errorf("apply --dry-run:\n%s", out)
	}
	if _, err := kc.CoreV1().ConfigMaps(ns).Get(ctx, "web-config", metav1.GetOptions{}); err == nil {
		t.Error("the dry run created the ConfigMap")
	}
	var out string
	withStdin(t, cliManifest, func() { out = cli(0, "apply", "-n", ns, "-f", "-") })
	if strings.Count(out, "created") != 2 {
		t.Errorf("apply -f -:\n%s", out)
	}

	// The client: the same manifest again is unchanged.
	c, err := client.New(base)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Apply(ctx, api.ApplyRequest{Namespace: ns, Manifest: cliManifest})
	if err != nil || d.State != api.StateSuccess || len(d.Objects) != 2 || d.Objects[0].Outcome != api.ObjectUnchanged || d.Objects[1].Outcome != api.ObjectUnchanged {
		t.Fatalf("client Apply again = %+v, %v", d, err)
	}
	if out := cli(0, "status", d.ID); !strings.Contains(out, "apply of "+ns+": success") || !strings.Contains(out, "Deployment  "+ns+"  web         unchanged") {
		t.Errorf("status of the apply:\n%s", out)
	}

	// The pods, through the client (in the contract's shape) and the CLI.
	aPodReady(t, kc, ns, "app=kobj-cli")
	pods, err := c.PodStatus(ctx, ns, "app=kobj-cli")
	if err != nil || len(pods.Pods) != 1 {
		t.Fatalf("PodStatus = %+v, %v", pods, err)
	}
	doc, _ := json.Marshal(pods)
	if err := contract.Validate(contract.Pods, doc); err != nil {
		t.Errorf("PodStatus does not conform: %v\n%s", err, doc)
	}
	if out := cli(0, "pods", "-n", ns, "-l", "app=kobj-cli"); !strings.Contains(out, pods.Pods[0].Name) || !strings.Contains(out, "Running  true") {
		t.Errorf("pods:\n%s", out)
	}

	// Bad input exits 2 and changes nothing; a delete dry run lists; the client deletes.
	bad := cliManifest + "---\napiVersion: example.com/v1\nkind: Frobnicator\nmetadata: {name: x}\n"
	withStdin(t, bad, func() { out = cli(2, "apply", "-n", ns, "-f", "-") })
	if !strings.Contains(out, "document 3 (Frobnicator x)") {
		t.Errorf("a bad kind:\n%s", out)
	}
	cli(2, "delete", "-n", ns, "-l", "")
	if out := cli(0, "delete", "-n", ns, "-l", "app=kobj-cli", "--dry-run"); strings.Count(out, "would_delete") != 2 {
		t.Errorf("delete --dry-run:\n%s", out)
	}
	del, err := c.DeleteResources(ctx, api.DeleteRequest{Namespace: ns, Selector: "app=kobj-cli"})
	if err != nil || del.State != api.StateSuccess || len(del.Objects) != 2 || del.Objects[0].Outcome != api.ObjectDeleted {
		t.Fatalf("client DeleteResources = %+v, %v", del, err)
	}
	if _, err := kc.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{}); err == nil {
		t.Error("the Deployment is still there after the delete")
	}
}
