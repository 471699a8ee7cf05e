package k8s

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodeexec/nodeexec/executor"
)

// The test cluster's KWOK nodes have no kubelet, so a log is never served there: the way a log that
// is served comes back (the tail asked of the API server, a bounded size, the lines as they come) is
// proven here against an HTTP server answering the log route as the API server does.
func TestPodLogsAsksForTheTailAndReturnsItsLines(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path+"?"+r.URL.RawQuery)
		if r.URL.Path != "/api/v1/namespaces/prod/pods/web-1/log" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		// A server that sends more than the tail asked for: only the newest lines are kept.
		for i := 1; i <= 5; i++ {
			fmt.Fprintf(w, "line %d\n", i)
		}
		fmt.Fprint(w, "last line without a newline")
	}))
	defer srv.Close()
	c, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Client: c})
	if err != nil {
		t.Fatal(err)
	}

	lines, err := e.PodLogs(context.Background(), "prod", "web-1", "app", 3)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "|"); got != "line 4|line 5|last line without a newline" {
		t.Errorf("lines = %q", got)
	}
	if len(asked) != 1 || !strings.Contains(asked[0], "tailLines=3") || !strings.Contains(asked[0], "container=app") ||
		!strings.Contains(asked[0], "limitBytes=") {
		t.Errorf("asked the API server for %q; want the tail of 3 lines of container app, bounded", asked)
	}

	for _, n := range []int{0, executor.MaxLogLines + 1} {
		if _, err := e.PodLogs(context.Background(), "prod", "web-1", "", n); err == nil || !strings.Contains(err.Error(), "lines must be between 1 and") {
			t.Errorf("lines=%d: %v", n, err)
		}
	}
	if len(asked) != 1 {
		t.Errorf("a bad line count reached the API server: %q", asked)
	}
}
