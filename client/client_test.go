package client_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/server"
)

func serve(t *testing.T, exec *fleetExecutor, tokens ...server.Token) *testServer {
	t.Helper()
	ts, err := startServer(exec, tokens...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Close)
	return ts
}

func newClient(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func request(version string, hosts ...string) api.DeployRequest {
	return api.DeployRequest{Service: "web", Version: version, Nodes: hosts, PackageURL: "https://pkgs.example/web-" + version + ".tgz",
		SHA256: strings.Repeat("ab", 32)}
}

// Every call of the client against the real server: what it sends is what the server takes, and what
// it reads is every field the server answers.
func TestEveryCallAgainstTheRealServer(t *testing.T) {
	ts := serve(t, &fleetExecutor{})
	c, ctx := newClient(t, ts.URL), testCtx(t)
	acc, err := c.Deploy(ctx, request("v1", "10.0.0.1", "10.0.0.2"))
	if err != nil || !strings.HasPrefix(acc.ID, "d-") {
		t.Fatalf("Deploy = %+v, %v", acc, err)
	}
	var seqs []int64
	d, err := c.Follow(ctx, acc.ID, func(ev api.Event) { seqs = append(seqs, ev.Seq) })
	if err != nil || d.State != api.StateSuccess || d.ID != acc.ID || len(d.Nodes) != 2 {
		t.Fatalf("Follow = %+v, %v", d, err)
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("events %v: want 1, 2, 3… each once", seqs)
		}
	}
	if !strings.HasPrefix(d.IdempotencyKey, "nxc-") {
		t.Errorf("a deploy without a key was sent with %q, want a key of the client's", d.IdempotencyKey)
	}
	if got, err := c.Get(ctx, acc.ID); err != nil || got.State != api.StateSuccess || got.Nodes[1].CurrentVersion != "v1" {
		t.Errorf("Get = %+v, %v", got, err)
	}
	if d, err := c.Wait(ctx, acc.ID); err != nil || d.State != api.StateSuccess {
		t.Errorf("Wait on an ended deployment = %+v, %v", d, err)
	}
	if n, err := c.Node(ctx, "web", "10.0.0.2"); err != nil || n.CurrentVersion != "v1" || n.DeploymentID != acc.ID {
		t.Errorf("Node = %+v, %v", n, err)
	}
	if ns, err := c.Nodes(ctx, "web"); err != nil || len(ns) != 2 {
		t.Errorf("Nodes = %+v, %v", ns, err)
	}
	if info, err := c.Info(ctx, acc.ID); err != nil || info.Status != api.StatusSucceeded || info.State != api.StateSuccess || info.Summary["success"] != 2 ||
		len(info.Nodes) != 2 || info.Replicas != 2 || len(info.Details.Pods) != 2 {
		t.Errorf("Info = %+v, %v", info, err)
	}
	if h, err := c.Health(ctx, acc.ID); err != nil || !h.Healthy || h.Message == "" || h.Checks[0].Name != api.CheckPodStatus || h.Checks[0].Status != api.CheckHealthy ||
		len(h.Details) != 2 || h.Details[0].Type != "node_status" {
		t.Errorf("Health = %+v, %v", h, err)
	}
	if l, err := c.Logs(ctx, acc.ID, client.LogsOptions{Lines: 2, PodName: "10.0.0.2", Source: api.LogSourceEvents}); err != nil || l.Lines != 2 || l.Source != "events" ||
		len(l.Logs) != 2 || l.Logs[0].PodName != "10.0.0.2" || l.Logs[1].PodName != "10.0.0.2" {
		t.Errorf("Logs = %+v, %v", l, err)
	}
	// An executor that cannot read the service's journal: no lines, and why.
	if l, err := c.Logs(ctx, acc.ID, client.LogsOptions{}); err != nil || l.Source != "service" || len(l.Logs) != 0 || !strings.Contains(l.Error, "cannot read the service's journal") {
		t.Errorf("Logs of the service = %+v, %v", l, err)
	}
	v2, err := c.Deploy(ctx, request("v2", "10.0.0.1", "10.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, v2.ID); err != nil {
		t.Fatal(err)
	}
	rb, err := c.Rollback(ctx, v2.ID, api.RollbackRequest{RequestedBy: "plan"})
	if err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if d, err := c.Wait(ctx, rb.ID); err != nil || d.State != api.StateRolledBack || d.RollbackOf != v2.ID || d.RequestedBy != "plan" ||
		d.Nodes[0].CurrentVersion != "v1" || !strings.HasPrefix(d.IdempotencyKey, "nxc-") {
		t.Errorf("the rollback = %+v, %v", d, err)
	}
	page, err := c.List(ctx, client.ListOptions{Service: "web", Limit: 2})
	if err != nil || len(page.Deployments) != 2 || page.Deployments[0].ID != rb.ID || page.NextCursor == "" {
		t.Fatalf("List = %+v, %v", page, err)
	}
	if next, err := c.List(ctx, client.ListOptions{Service: "web", Cursor: page.NextCursor}); err != nil || len(next.Deployments) != 1 || next.Deployments[0].ID != acc.ID {
		t.Errorf("List's next page = %+v, %v", next, err)
	}
	if v, err := c.Version(ctx); err != nil || v.Version == "" || v.GoVersion != runtime.Version() {
		t.Errorf("Version = %+v, %v", v, err)
	}
}

// A deploy without a key gets one of the client's, and a deploy the client sends again after the
// connection dropped before the answer still starts one deployment: the key makes it safe.
func TestADeployRetriedAfterADroppedAnswerStartsOneDeployment(t *testing.T) {
	ts := serve(t, &fleetExecutor{})
	var posts atomic.Int32
	// The first POST reaches the server, which starts the deployment; its answer is lost on the way.
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && posts.Add(1) == 1 {
			rec := httptest.NewRecorder()
			ts.srv.Handler().ServeHTTP(rec, r)
			panic(http.ErrAbortHandler) // the connection drops with no answer
		}
		ts.srv.Handler().ServeHTTP(w, r)
	}))
	defer front.Close()
	c, ctx := newClient(t, front.URL, client.WithRetry(retry.Policy{MaxRetries: 2, InitialDelay: 10 * time.Millisecond, Factor: 1})), testCtx(t)
	acc, err := c.Deploy(ctx, request("v1", "10.0.0.1"))
	if err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	if n := posts.Load(); n != 2 {
		t.Errorf("%d POSTs, want the one dropped and its retry", n)
	}
	page, err := c.List(ctx, client.ListOptions{Service: "web"})
	if err != nil || len(page.Deployments) != 1 || page.Deployments[0].ID != acc.ID {
		t.Errorf("deployments = %+v, %v: want one, the one answered", page, err)
	}
	// The caller's own key is sent as given: the same key again answers with the same deployment.
	again, err := c.Deploy(ctx, api.DeployRequest{IdempotencyKey: page.Deployments[0].IdempotencyKey, Service: "web", Version: "v1",
		Nodes: []string{"10.0.0.1"}, PackageURL: "https://pkgs.example/web-v1.tgz", SHA256: strings.Repeat("ab", 32)})
	if err != nil || again.ID != acc.ID {
		t.Errorf("the same key again = %+v, %v; want %s", again, err, acc.ID)
	}
}

// cutStream is a proxy in front of the server that cuts the first event stream after `after` events
// (then calls onCut), and records the Last-Event-ID of every stream request.
type cutStream struct {
	next    http.Handler
	after   int
	onCut   func()
	mu      sync.Mutex
	resumes []string
	cut     bool
}

func (p *cutStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/events") {
		p.next.ServeHTTP(w, r)
		return
	}
	p.mu.Lock()
	p.resumes = append(p.resumes, r.Header.Get("Last-Event-ID"))
	first := !p.cut
	p.cut = true
	p.mu.Unlock()
	if !first {
		p.next.ServeHTTP(w, r)
		return
	}
	// Relay the server's stream, event by event, and drop the connection after p.after.
	pr, pw := ioPipe()
	defer pr.Close() // the server's handler, still writing, stops when the connection is gone
	go func() {
		p.next.ServeHTTP(pw, r)
		pw.close()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	sc := bufio.NewScanner(pr)
	events := 0
	for sc.Scan() {
		fmt.Fprintln(w, sc.Text())
		if sc.Text() == "" {
			if events++; events == p.after {
				w.(http.Flusher).Flush()
				p.onCut()
				panic(http.ErrAbortHandler)
			}
		}
	}
}

// A stream that drops mid-way is resumed with Last-Event-ID: every event arrives once, in order, and
// Wait still returns the deployment as it ended.
func TestWaitResumesADroppedStreamWithLastEventID(t *testing.T) {
	exec := &fleetExecutor{hold: make(chan struct{})}
	ts := serve(t, exec)
	proxy := &cutStream{next: ts.srv.Handler(), after: 2, onCut: func() { close(exec.hold) }}
	front := httptest.NewServer(proxy)
	defer front.Close()
	c, ctx := newClient(t, front.URL), testCtx(t)
	acc, err := c.Deploy(ctx, request("v1", "10.0.0.1", "10.0.0.2"))
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	d, err := c.Follow(ctx, acc.ID, func(ev api.Event) { seqs = append(seqs, ev.Seq) })
	if err != nil || d.State != api.StateSuccess {
		t.Fatalf("Follow = %+v, %v", d, err)
	}
	if got := fmt.Sprint(proxy.resumes); got != "[ 2]" {
		t.Errorf("stream requests' Last-Event-ID = %s, want none, then 2", got)
	}
	// The whole stream, read again straight from the server: the resumed one saw exactly it.
	var all []int64
	if _, err := newClient(t, ts.URL).Follow(ctx, acc.ID, func(ev api.Event) { all = append(all, ev.Seq) }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != fmt.Sprint(all) || len(all) < 8 {
		t.Errorf("events through the cut %v, the whole stream %v", seqs, all)
	}
}

// A stream that stays silent (the connection died without closing) is cut and resumed.
func TestASilentStreamIsResumed(t *testing.T) {
	var calls atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if calls.Add(1) == 1 {
			fmt.Fprint(w, "id: 1\nevent: node\ndata: {\"seq\":1,\"type\":\"node\"}\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done() // never another byte
			return
		}
		if got := r.Header.Get("Last-Event-ID"); got != "1" {
			t.Errorf("resumed with Last-Event-ID %q", got)
		}
		fmt.Fprint(w, "id: 2\nevent: deployment\ndata: {\"seq\":2,\"type\":\"deployment\",\"state\":\"success\"}\n\nevent: end\ndata: {\"id\":\"d-1\",\"state\":\"success\"}\n\n")
	}))
	defer hs.Close()
	c := newClient(t, hs.URL, client.WithStreamIdle(100*time.Millisecond))
	var seqs []int64
	d, err := c.Follow(testCtx(t), "d-1", func(ev api.Event) { seqs = append(seqs, ev.Seq) })
	if err != nil || d.State != api.StateSuccess || fmt.Sprint(seqs) != "[1 2]" {
		t.Errorf("Follow = %+v, %v, events %v", d, err, seqs)
	}
}

// A stream that keeps breaking with no event between is given up, saying so; a deployment that does
// not exist is not retried at all.
func TestWaitGivesUpOnAStreamThatKeepsBreaking(t *testing.T) {
	var calls atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: error\ndata: {\"error\":\"reading events failed; reconnect to resume\",\"code\":\"database_unavailable\"}\n\n")
	}))
	defer hs.Close()
	c := newClient(t, hs.URL, client.WithStreamRetry(retry.Policy{MaxRetries: 2, InitialDelay: time.Millisecond, Factor: 1}))
	_, err := c.Wait(testCtx(t), "d-1")
	if err == nil || !strings.Contains(err.Error(), "could not read the events") || calls.Load() != 3 {
		t.Errorf("Wait = %v after %d requests, want an error after 3", err, calls.Load())
	}
	ts := serve(t, &fleetExecutor{})
	if _, err := newClient(t, ts.URL).Wait(testCtx(t), "d-nope"); !client.HasCode(err, client.CodeNotFound) {
		t.Errorf("Wait on no deployment = %v, want not_found", err)
	}
}
