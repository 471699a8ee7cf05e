package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/server"
)

var noRetry = client.WithRetry(retry.Policy{})

// The real server's error answers, each as an *Error with its status, code and details.
func TestTheServersErrorsAreTyped(t *testing.T) {
	exec := &fleetExecutor{hold: make(chan struct{})}
	ts := serve(t, exec)
	c, ctx := newClient(t, ts.URL, noRetry), testCtx(t)
	held, err := c.Deploy(ctx, request("v1", "10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	_, busy := c.Deploy(ctx, request("v2", "10.0.0.1"))
	_, stillRunning := c.Rollback(ctx, held.ID, api.RollbackRequest{})
	_, invalid := c.Deploy(ctx, request("v2; reboot", "10.0.0.9"))
	_, missing := c.Get(ctx, "d-nope")
	_, badState := c.List(ctx, client.ListOptions{State: "bogus"})
	_, noCleanups := c.StartCleanup(ctx)
	close(exec.hold)
	if _, err := c.Wait(ctx, held.ID); err != nil {
		t.Fatal(err)
	}
	_, ended := c.Cancel(ctx, held.ID)
	_, nothing := c.Rollback(ctx, held.ID, api.RollbackRequest{})
	keyed := request("v1", "10.0.0.2")
	keyed.IdempotencyKey = "plan-3-batch-1"
	first, err := c.Deploy(ctx, keyed)
	if err != nil {
		t.Fatal(err)
	}
	keyed.Version = "v2"
	_, reused := c.Deploy(ctx, keyed)
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
		check  func(*client.Error) bool
	}{
		{"node held by another deployment", busy, 409, client.CodeNodeBusy, func(e *client.Error) bool {
			holder, ok := client.Holder(busy)
			return ok && holder == held.ID && e.DeploymentID == held.ID && strings.Contains(e.Error(), held.ID)
		}},
		{"rollback of a running deployment", stillRunning, 409, client.CodeNotFinished, nil},
		{"bad version", invalid, 400, client.CodeInvalid, func(e *client.Error) bool { return e.Field == "version" }},
		{"no such deployment", missing, 404, client.CodeNotFound, nil},
		{"bad state filter", badState, 400, client.CodeInvalid, func(e *client.Error) bool { return e.Field == "state" }},
		{"no cleanup passes here", noCleanups, 404, client.CodeNotFound, nil},
		{"cancel of an ended deployment", ended, 409, client.CodeFinished, func(e *client.Error) bool {
			return e.Error() == "deployment "+held.ID+" already ended success (HTTP 409)"
		}},
		{"rollback with nothing to roll back", nothing, 409, client.CodeNothingToRollBack, nil},
		{"idempotency key sent with another request", reused, 422, client.CodeKeyReused, func(e *client.Error) bool {
			return e.DeploymentID == first.ID && strings.Contains(e.Error(), first.ID)
		}},
	} {
		var e *client.Error
		if !errors.As(tc.err, &e) {
			t.Errorf("%s: %v is not a *client.Error", tc.name, tc.err)
			continue
		}
		if e.Status != tc.status || e.Code != tc.code || !client.HasCode(tc.err, tc.code) || client.IsRetryable(tc.err) || e.Message == "" {
			t.Errorf("%s: %+v, want HTTP %d %s, not retryable", tc.name, e, tc.status, tc.code)
		}
		if tc.check != nil && !tc.check(e) {
			t.Errorf("%s: %+v", tc.name, e)
		}
	}
}

// A draining server refuses new deployments with 503 shutting_down: retryable, and retried by the
// client (with the same key) before it gives the error back.
func TestShuttingDownIsRetryableAndRetried(t *testing.T) {
	ts := serve(t, &fleetExecutor{})
	ts.srv.Drain(context.Background(), 0)
	var posts atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		ts.srv.Handler().ServeHTTP(w, r)
	}))
	defer front.Close()
	c := newClient(t, front.URL, client.WithRetry(retry.Policy{MaxRetries: 2, InitialDelay: time.Millisecond, Factor: 1}))
	_, err := c.Deploy(testCtx(t), request("v1", "10.0.0.1"))
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 503 || e.Code != client.CodeShuttingDown || !client.IsRetryable(err) {
		t.Fatalf("Deploy to a draining server = %v", err)
	}
	if n := posts.Load(); n != 3 {
		t.Errorf("%d POSTs, want the first and 2 retries", n)
	}
	// A cancel is not retried: it is sent once.
	posts.Store(0)
	if _, err := c.Cancel(testCtx(t), "d-nope"); !client.HasCode(err, client.CodeNotFound) || posts.Load() != 1 {
		t.Errorf("Cancel = %v after %d POSTs", err, posts.Load())
	}
}

// The token goes in the Authorization header of every request, the event stream's too: without it
// 401, with one that lacks the scope 403.
func TestTheTokenIsSent(t *testing.T) {
	const deployer, reader = "deploy-token-0123456789", "read-token-0123456789"
	ts := serve(t, &fleetExecutor{}, server.Token{Name: "plan", Token: deployer, Scopes: []server.Scope{server.ScopeDeploy}},
		server.Token{Name: "dash", Token: reader, Scopes: []server.Scope{server.ScopeRead}})
	ctx := testCtx(t)
	if _, err := newClient(t, ts.URL, noRetry).Deploy(ctx, request("v1", "10.0.0.1")); !client.HasCode(err, client.CodeUnauthorized) {
		t.Errorf("without a token: %v", err)
	}
	if _, err := newClient(t, ts.URL, noRetry, client.WithToken(reader)).Deploy(ctx, request("v1", "10.0.0.1")); !client.HasCode(err, client.CodeForbidden) {
		t.Errorf("with a read token: %v", err)
	}
	c := newClient(t, ts.URL, client.WithToken(deployer))
	acc, err := c.Deploy(ctx, request("v1", "10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := newClient(t, ts.URL, client.WithToken(reader)).Wait(ctx, acc.ID)
	if err != nil || d.State != api.StateSuccess || d.Token != "plan" {
		t.Errorf("Wait with the read token = %+v, %v", d, err)
	}
}

// Answers that are not the API's never panic the client: the error quotes the status and a bounded
// piece of the body.
func TestMalformedAnswersAreClearErrors(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		name, contentType string
		status            int
		body              string
		want              []string
		retryable         bool
	}{
		{"a proxy's error page", "text/html", 502, "<html><body>Bad Gateway</body></html>", []string{"HTTP 502", "<html><body>Bad Gateway"}, true},
		{"an empty error", "", 500, "", []string{"HTTP 500", "not the API's error body"}, false},
		{"JSON without a code", "application/json", 418, `{"message":"teapot"}`, []string{"HTTP 418", "teapot"}, false},
		{"a huge error body", "text/plain", 500, huge, []string{"HTTP 500", "65536 bytes or more"}, false},
		{"a truncated answer", "application/json", 200, `{"id":"d-1","sta`, []string{"HTTP 200", "not the JSON expected", `{\"id\":\"d-1\",\"sta`}, false},
		{"a huge answer that is not JSON", "application/json", 200, huge, []string{"HTTP 200", "1048576 bytes"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer hs.Close()
			_, err := newClient(t, hs.URL, noRetry).Get(testCtx(t), "d-1")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if len(err.Error()) > 600 {
				t.Errorf("error of %d bytes: the body's piece is not bounded", len(err.Error()))
			}
			if client.IsRetryable(err) != tc.retryable {
				t.Errorf("IsRetryable = %v", !tc.retryable)
			}
		})
	}
	// An event stream that answers something else.
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>login</html>")) }))
	defer hs.Close()
	if _, err := newClient(t, hs.URL).Wait(testCtx(t), "d-1"); err == nil || !strings.Contains(err.Error(), "not an event stream") || !strings.Contains(err.Error(), "login") {
		t.Errorf("Wait on a page = %v", err)
	}
}

// Every code the server writes that is worth sending again says so; no other does.
func TestRetryableCodes(t *testing.T) {
	for code, want := range map[string]bool{client.CodeShuttingDown: true, client.CodeDatabaseDown: true, client.CodeKeyInFlight: true,
		client.CodeNodeBusy: false, client.CodeInvalid: false, client.CodeInternal: false, client.CodeUnauthorized: false} {
		if got := (&client.Error{Status: 503, Code: code}).Retryable(); got != want {
			t.Errorf("%s: Retryable = %v", code, got)
		}
	}
	hs := httptest.NewServer(http.NotFoundHandler())
	hs.Close() // nothing listens there now
	_, err := newClient(t, hs.URL, noRetry).Get(testCtx(t), "d-1")
	var ce *client.ConnError
	if !errors.As(err, &ce) || !client.IsRetryable(err) || !strings.Contains(err.Error(), "cannot reach nodeexec at "+hs.URL) {
		t.Errorf("unreachable: %v", err)
	}
	if _, err := client.New("ftp://x"); err == nil {
		t.Error("New took an ftp URL")
	}
}
