package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

const secret = "0123456789abcdef-test-secret"

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver answers with statuses in turn (the last one from then on) and reports every request on got.
func receiver(t *testing.T, statuses ...int) (*httptest.Server, chan received) {
	t.Helper()
	got := make(chan received, 16)
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		status := statuses[min(calls, len(statuses)-1)]
		calls++
		w.WriteHeader(status)
		got <- received{r.Header.Clone(), body}
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func finished(kind string, state executor.State, nodes ...store.DeploymentNode) *store.Deployment {
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	end := start.Add(90 * time.Second)
	return &store.Deployment{ID: "d-abc", Kind: kind, Service: "demo", Version: "v2", Platform: executor.PlatformPhysical,
		State: state, Nodes: nodes, CreatedAt: start, StartedAt: &start, FinishedAt: &end}
}

func node(host string, st executor.State) store.DeploymentNode {
	return store.DeploymentNode{Host: host, State: st, TargetVersion: "v2"}
}

func quick(hooks ...Webhook) Config {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return Config{Webhooks: hooks, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, MaxAttempts: 4, Logger: log}
}

func TestClassifyNamesWhatHappened(t *testing.T) {
	ok, failed, back := executor.StateSuccess, executor.StateFailed, executor.StateRolledBack
	for _, tc := range []struct {
		name         string
		d            *store.Deployment
		want         Type
		wantRollback string
	}{
		{"every node deployed", finished(store.KindDeploy, ok, node("a", ok), node("b", ok)), Succeeded, ""},
		{"a scale reached its size", finished(store.KindScale, ok, node("ns/w", ok)), Succeeded, ""},
		{"a node failed and stayed failed", finished(store.KindDeploy, failed, node("a", ok), node("b", failed)), Failed, ""},
		{"one failed outright, one was put back", finished(store.KindDeploy, failed, node("a", back), node("b", failed)), Failed, ""},
		{"the deploy put its failed node back", finished(store.KindDeploy, failed, node("a", ok), node("b", back)), RolledBack, "automatic"},
		{"cancelled before it started", finished(store.KindDeploy, failed, node("a", failed)), Failed, ""},
		{"a requested rollback brought every node back", finished(store.KindRollback, back, node("a", back)), RolledBack, "requested"},
		{"a requested rollback failed on a node", finished(store.KindRollback, failed, node("a", back), node("b", failed)), Failed, ""},
		{"a scale failed", finished(store.KindScale, failed, node("ns/w", failed)), Failed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, rollback := Classify(tc.d)
			if got != tc.want || rollback != tc.wantRollback {
				t.Errorf("Classify = %s %q, want %s %q", got, rollback, tc.want, tc.wantRollback)
			}
		})
	}
}

func TestParseTypeTakesShortAndFullNames(t *testing.T) {
	for in, want := range map[string]Type{"failed": Failed, "rolled_back": RolledBack, "succeeded": Succeeded, "deployment.failed": Failed} {
		if got, err := ParseType(in); err != nil || got != want {
			t.Errorf("ParseType(%q) = %s %v", in, got, err)
		}
	}
	if _, err := ParseType("success"); err == nil {
		t.Error(`"success" is not an event, but parsed`)
	}
}

func TestTheSignatureVerifiesWithItsSecretOnly(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ts := "1700000000"
	body := []byte(`{"type":"deployment.failed"}`)
	sig := Sign([]byte(secret), ts, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q is not sha256=<64 hex>", sig)
	}
	if err := Verify([]byte(secret), ts, sig, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Errorf("the right secret: %v", err)
	}
	for name, err := range map[string]error{
		"another secret":      Verify([]byte("another-secret-of-16+"), ts, sig, body, now, 5*time.Minute),
		"a changed body":      Verify([]byte(secret), ts, sig, []byte(`{"type":"deployment.succeeded"}`), now, 5*time.Minute),
		"a changed timestamp": Verify([]byte(secret), "1700000001", sig, body, now, 5*time.Minute),
	} {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}
	if err := Verify([]byte(secret), ts, sig, body, now.Add(time.Hour), 5*time.Minute); err == nil || !strings.Contains(err.Error(), "replay") {
		t.Errorf("a replay an hour later: %v", err)
	}
}

// A receiver that answers 500 twice and then 200 gets the same signed event three times, the last one
// delivered; every attempt is signed afresh over the same body.
func TestServerErrorsAreRetriedUntilDelivered(t *testing.T) {
	srv, got := receiver(t, 500, 500, 200)
	n := New(quick(Webhook{URL: srv.URL + "/hook", Secret: Secret(secret)}))
	n.Deployment(finished(store.KindDeploy, executor.StateSuccess, node("a", executor.StateSuccess)))
	var first received
	for i := 1; i <= 3; i++ {
		r := <-got
		if i == 1 {
			first = r
		}
		if !bytes.Equal(r.body, first.body) || r.header.Get(HeaderDelivery) != "d-abc.succeeded" {
			t.Errorf("attempt %d: body or delivery id changed: %s %s", i, r.body, r.header.Get(HeaderDelivery))
		}
		if err := Verify([]byte(secret), r.header.Get(HeaderTimestamp), r.header.Get(HeaderSignature), r.body, time.Now(), time.Minute); err != nil {
			t.Errorf("attempt %d: %v", i, err)
		}
	}
	n.Stop()
	if s := n.Stats(); s != (Stats{Delivered: 1}) {
		t.Errorf("stats = %+v", s)
	}
	select {
	case r := <-got:
		t.Errorf("a fourth request after delivery: %s", r.body)
	default:
	}
	var ev Event
	if err := json.Unmarshal(first.body, &ev); err != nil || ev.Type != Succeeded || ev.DeploymentID != "d-abc" ||
		ev.DurationSeconds != 90 || ev.Links.Deployment != "/api/v1/deployments/d-abc" || len(ev.Nodes) != 1 {
		t.Errorf("event = %+v %v", ev, err)
	}
	if first.header.Get("Content-Type") != "application/json" || first.header.Get(HeaderEvent) != string(Succeeded) {
		t.Errorf("headers = %v", first.header)
	}
}

// Only network errors, 5xx and 429 are worth another try; another 4xx (or a redirect) is final.
func TestWhatIsRetried(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int
		attempts int
		want     Stats
	}{
		{"400 is final", []int{400}, 1, Stats{Failed: 1}},
		{"404 is final", []int{404}, 1, Stats{Failed: 1}},
		{"a redirect is final", []int{308}, 1, Stats{Failed: 1}},
		{"429 is retried", []int{429, 200}, 2, Stats{Delivered: 1}},
		{"503 until the attempts run out", []int{503}, 4, Stats{Failed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := receiver(t, tc.statuses...)
			n := New(quick(Webhook{URL: srv.URL, Secret: Secret(secret)}))
			n.Deployment(finished(store.KindDeploy, executor.StateFailed, node("a", executor.StateFailed)))
			for i := 0; i < tc.attempts; i++ {
				<-got
			}
			n.Stop()
			if s := n.Stats(); s != tc.want {
				t.Errorf("stats = %+v, want %+v", s, tc.want)
			}
			if extra := len(got); extra != 0 {
				t.Errorf("%d requests more than %d", extra, tc.attempts)
			}
		})
	}
}

func TestANetworkErrorIsRetriedThenGivenUp(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now: connection refused
	n := New(quick(Webhook{URL: url, Secret: Secret(secret)}))
	n.Deployment(finished(store.KindDeploy, executor.StateFailed))
	n.Stop()
	if s := n.Stats(); s != (Stats{Failed: 1}) {
		t.Errorf("stats = %+v", s)
	}
}

// hanging is a receiver that holds every request until the client gives up, saying when one arrives
// and when its client went away.
func hanging(t *testing.T) (url string, arrived, abandoned chan struct{}) {
	arrived, abandoned = make(chan struct{}, 16), make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices a client gone only once the body is read
		arrived <- struct{}{}
		<-r.Context().Done()
		abandoned <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, arrived, abandoned
}

// A full queue drops the event (counted) instead of waiting; Stop abandons what a hanging receiver
// holds once the flush time is over, ends the workers, and takes nothing more.
func TestAFullQueueDropsAndStopEndsTheWorkers(t *testing.T) {
	url, arrived, abandoned := hanging(t)
	cfg := quick(Webhook{URL: url, Secret: Secret(secret), Events: []Type{Failed}})
	cfg.QueueSize, cfg.Flush = 1, 10*time.Millisecond
	n := New(cfg)
	d := finished(store.KindDeploy, executor.StateFailed)
	n.Deployment(d)
	<-arrived // the worker holds the first event
	n.Deployment(d)
	n.Deployment(d) // the queue (size 1) is full: dropped
	// An event this webhook does not want is neither queued nor dropped.
	n.Deployment(finished(store.KindDeploy, executor.StateSuccess))
	if s := n.Stats(); s.Dropped != 1 {
		t.Errorf("stats with a full queue = %+v", s)
	}
	n.Stop()
	<-abandoned
	if s := n.Stats(); s != (Stats{Failed: 2, Dropped: 1}) {
		t.Errorf("stats after Stop = %+v", s)
	}
	n.Deployment(d)
	if s := n.Stats(); s.Dropped != 2 {
		t.Errorf("an event after Stop was not dropped: %+v", s)
	}
	n.Stop() // again: nothing to do
}

// Deliveries are logged with the deployment's fields; the secret never is.
func TestDeliveriesAreLoggedWithoutTheSecret(t *testing.T) {
	srv, got := receiver(t, 500, 400)
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	log.SetFormatter(&logrus.JSONFormatter{})
	cfg := quick(Webhook{URL: srv.URL + "/hook?token=query-credential", Secret: Secret(secret)})
	cfg.Logger = log
	n := New(cfg)
	n.Deployment(finished(store.KindDeploy, executor.StateFailed))
	<-got
	<-got
	n.Stop()
	logs := out.String()
	for _, want := range []string{`"deployment_id":"d-abc"`, `"service":"demo"`, `"version":"v2"`, `"status":500`, `"status":400`,
		`"attempt":2`, `"event":"deployment.failed"`, `"webhook":"` + srv.URL + `/hook?****"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, secret) || strings.Contains(logs, "query-credential") {
		t.Errorf("logs reveal a secret:\n%s", logs)
	}
}

func TestReadSecretWantsALongOne(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s, err := ReadSecret(write("ok", secret+"\n")); err != nil || string(s) != secret {
		t.Errorf("ReadSecret = %q %v", s, err)
	}
	if _, err := ReadSecret(write("short", "abc\n")); err == nil {
		t.Error("a 3-character secret was accepted")
	}
	if _, err := ReadSecret(dir + "/missing"); err == nil {
		t.Error("a missing file was accepted")
	}
	if got := Secret(secret); strings.Contains(fmt.Sprintf("%v %+v %#v %s", got, got, got, got), secret) {
		t.Error("a Secret prints itself")
	}
}

// The wait before each next attempt doubles from Backoff up to MaxBackoff; a receiver that asks for a
// longer one (Retry-After) gets it, never past MaxBackoff.
func TestRetriesWaitLongerEachTimeUpToTheCap(t *testing.T) {
	for _, tc := range []struct {
		name       string
		retryAfter string
		want       string
	}{
		{"doubling", "", "1ms 2ms 4ms 4ms"},
		{"the receiver asks for longer", "1", "4ms 4ms 4ms 4ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan struct{}, 16)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				got <- struct{}{}
			}))
			t.Cleanup(srv.Close)
			var out bytes.Buffer
			cfg := quick(Webhook{URL: srv.URL, Secret: Secret(secret)})
			cfg.MaxAttempts = 5
			log := logrus.New()
			log.SetOutput(&out)
			log.SetFormatter(&logrus.JSONFormatter{})
			cfg.Logger = log
			n := New(cfg)
			n.Deployment(finished(store.KindDeploy, executor.StateFailed))
			for range 5 {
				<-got
			}
			n.Stop()
			var waits []string
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				var entry map[string]any
				if err := json.Unmarshal([]byte(line), &entry); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if w, ok := entry["retry_in"].(string); ok {
					waits = append(waits, w)
				}
			}
			if got := strings.Join(waits, " "); got != tc.want {
				t.Errorf("waits = %q, want %q", got, tc.want)
			}
			if s := n.Stats(); s != (Stats{Failed: 1}) {
				t.Errorf("stats = %+v", s)
			}
		})
	}
}

// node.drifted goes to a webhook that asks for drifted, not to one that asked for nothing (which gets
// the deployments' events).
func TestDriftEventsGoOnlyToWebhooksThatAskForThem(t *testing.T) {
	asked, gotAsked := receiver(t, http.StatusOK)
	all, gotAll := receiver(t, http.StatusOK)
	n := New(quick(Webhook{URL: asked.URL, Events: []Type{Drifted}}, Webhook{URL: all.URL}))
	n.NodeDrifted("r-1", store.DriftNode{Service: "web", Host: "h1", Platform: executor.PlatformPhysical,
		Drift: &store.Drift{Kind: store.DriftUnitInactive, Recorded: "active", Observed: "inactive"}})
	n.Deployment(finished(store.KindDeploy, executor.StateSuccess))
	r := <-gotAsked
	var ev Event
	if err := json.Unmarshal(r.body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != Drifted || ev.Drift == nil || ev.Drift.Kind != store.DriftUnitInactive || ev.Drift.Host != "h1" || ev.Links.Drift != "/api/v1/drift/r-1" {
		t.Errorf("drift event %+v", ev)
	}
	r = <-gotAll
	if err := json.Unmarshal(r.body, &ev); err != nil || ev.Type != Succeeded {
		t.Errorf("the webhook without events got %s first (%v), want the deployment's", ev.Type, err)
	}
	n.Stop() // flushes: whatever else was queued has been sent
	if len(gotAsked) != 0 || len(gotAll) != 0 {
		t.Errorf("more events than asked for: %d to the drifted webhook, %d to the other", len(gotAsked), len(gotAll))
	}
}
