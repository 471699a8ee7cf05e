package k8s

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodeexec/nodeexec/retry"
)

// A client-go client behind the retrying transport, against a server that fails on cue.
func TestAPIServerFaultsThatPassAreRetried(t *testing.T) {
	var calls atomic.Int32
	var failFirst atomic.Int32
	var status atomic.Int32
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		if n <= failFirst.Load() {
			w.WriteHeader(int(status.Load()))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"web","namespace":"prod"}}`))
	}))
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL}
	log := logrus.New()
	log.SetOutput(io.Discard)
	WithRetries(cfg, retry.Policy{MaxRetries: 3, InitialDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Factor: 2}, log)
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := []struct {
		name      string
		status    int
		fail      int32
		wantCalls int32
		wantErr   bool
	}{
		{"503 twice, then an answer", 503, 2, 3, false},
		{"429, then an answer", 429, 1, 2, false},
		{"502 past the retries", 502, 10, 4, true},
		{"404 is an answer, not a fault", 404, 10, 1, true},
		{"409 is not retried", 409, 10, 1, true},
	}
	for _, cse := range cases {
		calls.Store(0)
		failFirst.Store(cse.fail)
		status.Store(int32(cse.status))
		_, err := c.AppsV1().Deployments("prod").Get(ctx, "web", metav1.GetOptions{})
		if calls.Load() != cse.wantCalls || (err != nil) != cse.wantErr {
			t.Errorf("%s: %d calls, err %v; want %d calls, error %v", cse.name, calls.Load(), err, cse.wantCalls, cse.wantErr)
		}
	}
	// A patch is sent again whole.
	calls.Store(0)
	failFirst.Store(1)
	status.Store(503)
	bodies = nil
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"web:v2"}]}}}}`
	if _, err := c.AppsV1().Deployments("prod").Patch(ctx, "web", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 || bodies[0] != patch || bodies[1] != patch {
		t.Errorf("patch bodies sent = %q", bodies)
	}
	// A server that is gone: tried again, then the error.
	srv.Close()
	calls.Store(0)
	if _, err := c.AppsV1().Deployments("prod").Get(ctx, "web", metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("a server that is gone: %v", err)
	}
}
