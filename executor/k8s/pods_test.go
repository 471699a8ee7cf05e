package k8s

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

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
	e := executorOn(t, srv.URL)

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

// The logs endpoint gives each line its time: PodLogLines asks the API server to stamp the lines, and
// splits the stamp from the message; with no container named, the pod's first container is asked for
// and named.
func TestPodLogLinesAsksForTimestampsAndSplitsThem(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path+"?"+r.URL.RawQuery)
		switch r.URL.Path {
		case "/api/v1/namespaces/prod/pods/web-1":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-1","namespace":"prod"},"spec":{"containers":[{"name":"app","image":"demo:v2"},{"name":"sidecar","image":"proxy"}]}}`)
		case "/api/v1/namespaces/prod/pods/web-1/log":
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, "2026-01-02T03:04:05.123456789Z Server started on port 8080\nno stamp here\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	e := executorOn(t, srv.URL)
	lines, err := e.PodLogLines(context.Background(), "prod", "web-1", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []executor.JournalLine{
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), Unit: "app", Message: "Server started on port 8080"},
		{Unit: "app", Message: "no stamp here"},
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("lines = %+v, want %+v", lines, want)
	}
	if len(asked) != 2 || !strings.Contains(asked[1], "timestamps=true") || !strings.Contains(asked[1], "container=app") {
		t.Errorf("asked the API server for %q; want the stamped log of container app", asked)
	}
}

// executorOn is an executor whose API server is the test's stand-in at url.
func executorOn(t *testing.T, url string) *Executor {
	t.Helper()
	c, err := kubernetes.NewForConfig(&rest.Config{Host: url})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Client: c})
	if err != nil {
		t.Fatal(err)
	}
	return e
}
