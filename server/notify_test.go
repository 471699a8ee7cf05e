package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/notify"
)

// puttingBack is the gated executor, except that the hosts in back fail their verification and are put
// back by the deploy itself: they end rolled_back, as the roles and the K8s executor report it.
type puttingBack struct {
	*gatedExecutor
	back map[string]bool
}

func (p puttingBack) Deploy(ctx context.Context, req executor.DeployRequest) ([]executor.NodeResult, error) {
	res, err := p.gatedExecutor.Deploy(ctx, req)
	for i := range res {
		if p.back[res[i].Host] {
			res[i].State, res[i].CurrentVersion, res[i].LastError = executor.StateRolledBack, "", "health check failed; the previous release was put back"
		}
	}
	return res, err
}

// hookCall is one request a webhook receiver got.
type hookCall struct {
	header http.Header
	body   []byte
	event  notify.Event
}

// hookReceiver is a real HTTP receiver answering with statuses in turn (the last from then on) and
// reporting each request on the channel.
func hookReceiver(t *testing.T, statuses ...int) (string, chan hookCall) {
	t.Helper()
	calls := make(chan hookCall, 32)
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(statuses[min(n, len(statuses)-1)])
		n++
		c := hookCall{header: r.Header.Clone(), body: body}
		if err := json.Unmarshal(body, &c.event); err != nil {
			t.Errorf("webhook body is not an event: %v %s", err, body)
		}
		calls <- c
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

func nextCall(t *testing.T, calls chan hookCall, what string) hookCall {
	t.Helper()
	select {
	case c := <-calls:
		return c
	case <-time.After(20 * time.Second):
		t.Fatalf("no webhook request for %s", what)
		return hookCall{}
	}
}

// quickHooks are webhooks with retries in milliseconds.
func quickHooks(hooks ...notify.Webhook) func(*Config) {
	return func(c *Config) {
		c.Notify = notify.Config{Webhooks: hooks, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Flush: 200 * time.Millisecond}
	}
}

// Each finished deployment gives one event, to the webhooks that asked for its type only: success,
// failure, a deploy that put its failed node back (automatic) and a rollback asked for (requested).
// Every delivery is signed with its webhook's own secret; a receiver that answers 500 twice gets the
// same event a third time.
func TestWebhooksGetTheEventsTheyAskedFor(t *testing.T) {
	secrets := map[string]notify.Secret{"succeeded": notify.Secret("succeeded-secret-0123456789"),
		"failed": notify.Secret("failed-secret-0123456789"), "rolled_back": notify.Secret("rolled-back-secret-0123456789"),
		"all": notify.Secret("all-events-secret-0123456789")}
	okURL, okCalls := hookReceiver(t, 500, 500, 200)
	failURL, failCalls := hookReceiver(t, 200)
	backURL, backCalls := hookReceiver(t, 200)
	allURL, allCalls := hookReceiver(t, 200)
	var g *gatedExecutor
	f := newFixture(t, quickHooks(
		notify.Webhook{URL: okURL, Events: []notify.Type{notify.Succeeded}, Secret: secrets["succeeded"]},
		notify.Webhook{URL: failURL, Events: []notify.Type{notify.Failed}, Secret: secrets["failed"]},
		notify.Webhook{URL: backURL + "/hook?team=ops", Events: []notify.Type{notify.RolledBack}, Secret: secrets["rolled_back"]},
		notify.Webhook{URL: allURL, Secret: secrets["all"]},
	), func(c *Config) {
		g = c.Executor.(*gatedExecutor)
		g.failing = map[string]bool{"10.0.0.2": true}
		c.Executor = puttingBack{g, map[string]bool{"10.0.0.3": true}}
	})
	close(f.exec.gate)
	deploy := func(nodes, version string) string {
		t.Helper()
		code, b := f.do(t, "POST", "/api/v1/deployments", strings.Replace(deployJSON(nodes, ""), `"v2"`, `"`+version+`"`, 1))
		if code != http.StatusAccepted {
			t.Fatalf("deploy = %d %v", code, b)
		}
		id := b["id"].(string)
		f.waitState(t, id)
		return id
	}
	v1 := deploy(`"10.0.0.1"`, "v1")
	v2 := deploy(`"10.0.0.1"`, "v2")
	failed := deploy(`"10.0.0.2"`, "v2")
	putBack := deploy(`"10.0.0.3","10.0.0.4"`, "v2")
	_, b := f.do(t, "POST", "/api/v1/deployments/"+v2+"/rollback", "")
	rollback := b["id"].(string)
	f.waitState(t, rollback)

	type want struct {
		id       string
		typ      notify.Type
		state    executor.State
		rollback string
	}
	wants := map[string][]want{
		"succeeded":   {{v1, notify.Succeeded, "success", ""}, {v2, notify.Succeeded, "success", ""}},
		"failed":      {{failed, notify.Failed, "failed", ""}},
		"rolled_back": {{putBack, notify.RolledBack, "failed", "automatic"}, {rollback, notify.RolledBack, "rolled_back", "requested"}},
	}
	wants["all"] = []want{wants["succeeded"][0], wants["succeeded"][1], wants["failed"][0], wants["rolled_back"][0], wants["rolled_back"][1]}
	calls := map[string]chan hookCall{"succeeded": okCalls, "failed": failCalls, "rolled_back": backCalls, "all": allCalls}
	got := map[string][]hookCall{}
	for hook, ws := range wants {
		for i, w := range ws {
			c := nextCall(t, calls[hook], hook+" "+string(w.typ))
			if hook == "succeeded" && i == 0 {
				// 500, 500, then 200: the same event, signed afresh, three times.
				for attempt := 2; attempt <= 3; attempt++ {
					again := nextCall(t, calls[hook], "a retry")
					if string(again.body) != string(c.body) || again.header.Get(notify.HeaderDelivery) != c.header.Get(notify.HeaderDelivery) {
						t.Errorf("attempt %d differs: %s", attempt, again.body)
					}
					c = again
				}
			}
			ev := c.event
			if ev.DeploymentID != w.id || ev.Type != w.typ || ev.State != w.state || ev.Rollback != w.rollback ||
				c.header.Get(notify.HeaderEvent) != string(w.typ) || ev.ID != w.id+"."+w.typ.Name() {
				t.Errorf("%s hook, event %d = %s %s %s %q (%s), want %+v", hook, i, ev.DeploymentID, ev.Type, ev.State, ev.Rollback, ev.ID, w)
			}
			got[hook] = append(got[hook], c)
		}
	}
	f.srv.Shutdown() // the queues are empty: nothing more may come
	for hook, ch := range calls {
		if len(ch) != 0 {
			c := <-ch
			t.Errorf("%s hook got an event it did not ask for: %s %s", hook, c.event.Type, c.event.DeploymentID)
		}
	}

	// The signature verifies with the webhook's own secret, and with no other.
	for hook, cs := range got {
		for _, c := range cs {
			ts, sig := c.header.Get(notify.HeaderTimestamp), c.header.Get(notify.HeaderSignature)
			if err := notify.Verify(secrets[hook], ts, sig, c.body, time.Now(), 5*time.Minute); err != nil {
				t.Errorf("%s hook: %v", hook, err)
			}
			other := secrets["all"]
			if hook == "all" {
				other = secrets["failed"]
			}
			if err := notify.Verify(other, ts, sig, c.body, time.Now(), 5*time.Minute); !errors.Is(err, notify.ErrBadSignature) {
				t.Errorf("%s hook: another secret verifies it (%v)", hook, err)
			}
		}
	}

	// The payload carries what a person on call needs.
	ev := got["rolled_back"][0].event
	if ev.Service != "demo" || ev.Version != "v2" || ev.Platform != executor.PlatformPhysical || ev.Kind != "deploy" || len(ev.Nodes) != 2 ||
		ev.FinishedAt == nil || ev.StartedAt == nil || ev.Links.Deployment != "/api/v1/deployments/"+putBack {
		t.Errorf("automatic rollback event = %+v", ev)
	}
	for _, n := range ev.Nodes {
		if n.Host == "10.0.0.3" && (n.State != executor.StateRolledBack || !strings.Contains(n.LastError, "put back")) {
			t.Errorf("the node put back = %+v", n)
		}
	}
	if ev := got["rolled_back"][1].event; ev.Kind != "rollback" || ev.RollbackOf != v2 || ev.Nodes[0].CurrentVersion != "v1" {
		t.Errorf("requested rollback event = %+v", ev)
	}
	if ev := got["failed"][0].event; ev.Nodes[0].LastError == "" || ev.Nodes[0].State != executor.StateFailed {
		t.Errorf("failed event = %+v", ev)
	}
}

// A receiver that never answers holds up no deployment: it ends (and the next one runs and ends) while
// the webhook's request is still open; Shutdown then abandons that request and stops the worker.
func TestAHangingWebhookNeverDelaysADeployment(t *testing.T) {
	arrived, released := make(chan struct{}, 8), make(chan struct{}, 8)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices its client gone only once the body is read
		arrived <- struct{}{}
		<-r.Context().Done()
		released <- struct{}{}
	}))
	t.Cleanup(hook.Close)
	f := newFixture(t, quickHooks(notify.Webhook{URL: hook.URL, Secret: notify.Secret("hanging-hook-secret-0123")}))
	close(f.exec.gate)
	_, d := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.1"`, ""))
	if end := f.waitState(t, d["id"].(string)); end["state"] != "success" {
		t.Fatalf("first deployment = %v", end)
	}
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the webhook was never called")
	}
	_, d2 := f.do(t, "POST", "/api/v1/deployments", deployJSON(`"10.0.0.2"`, ""))
	if end := f.waitState(t, d2["id"].(string)); end["state"] != "success" {
		t.Fatalf("second deployment = %v", end)
	}
	select {
	case <-released:
		t.Fatal("the webhook's request ended before Shutdown; the test proves nothing")
	default:
	}
	done := make(chan struct{})
	go func() {
		f.srv.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown waits on a hanging webhook")
	}
	select {
	case <-released:
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown left the webhook's request open")
	}
	if s := f.srv.notifier.Stats(); s.Delivered != 0 || s.Failed != 2 {
		t.Errorf("after Shutdown: %+v, want both events failed", s)
	}
}
