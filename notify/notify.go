package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/store"
)

// Webhook is one receiver and the events it wants.
type Webhook struct {
	URL string
	// Events it wants; none: all.
	Events []Type
	Secret Secret
}

// Config is the webhooks and how deliveries are made. Zero values take the defaults shown.
type Config struct {
	Webhooks []Webhook
	// QueueSize bounds the events waiting for each webhook (100); more are dropped with a warning.
	QueueSize int
	// MaxAttempts per event and webhook (6), with Backoff (1s) before the second, doubling each time
	// up to MaxBackoff (1m).
	MaxAttempts         int
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one attempt (10s).
	Timeout time.Duration
	// Flush is how long Stop lets queued events go out before it abandons them (5s).
	Flush time.Duration
	// Client sends the requests; default: one that follows no redirects (a redirected POST loses its body).
	Client *http.Client
	Logger logrus.FieldLogger
}

func (c *Config) defaults() {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 100
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 6
	}
	def(&c.Backoff, time.Second)
	def(&c.MaxBackoff, time.Minute)
	def(&c.Timeout, 10*time.Second)
	def(&c.Flush, 5*time.Second)
	if c.Client == nil {
		c.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.Logger == nil {
		c.Logger = logrus.StandardLogger()
	}
}

// Stats count deliveries since start.
type Stats struct {
	// Delivered: a 2xx answer. Failed: given up (a 4xx, or attempts or time ran out). Dropped: never
	// queued, because the webhook's queue was full or the notifier had stopped.
	Delivered, Failed, Dropped uint64
}

// Notifier delivers events to webhooks. Each webhook has its own bounded queue and worker, so one
// slow receiver delays no other. Its owner calls Stop.
type Notifier struct {
	cfg   Config
	hooks []*hook
	// backoff is the wait before each next attempt.
	backoff retry.Policy
	// mu orders enqueues before Stop: once stopping is closed nothing more is queued, so the workers'
	// last drain sees every event.
	mu       sync.RWMutex
	stopping chan struct{}
	stopOnce sync.Once
	// ctx ends every attempt and backoff wait once Stop's flush time is over.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	delivered, failed, dropped atomic.Uint64
}

type hook struct {
	Webhook
	wants map[Type]bool
	queue chan delivery
	// shown is the URL as logs show it: without its query, which may hold a credential.
	shown string
}

// delivery is one event for one webhook: the body is marshalled once, and every attempt sends and
// signs exactly these bytes.
type delivery struct {
	ev   Event
	body []byte
}

// New starts a worker for each webhook.
func New(cfg Config) *Notifier {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	n := &Notifier{cfg: cfg, stopping: make(chan struct{}), ctx: ctx, cancel: cancel,
		backoff: retry.Policy{InitialDelay: cfg.Backoff, MaxDelay: cfg.MaxBackoff, Factor: 2}}
	for _, w := range cfg.Webhooks {
		h := &hook{Webhook: w, wants: map[Type]bool{}, queue: make(chan delivery, cfg.QueueSize), shown: Shown(w.URL)}
		for _, t := range w.Events {
			h.wants[t] = true
		}
		if len(w.Events) == 0 {
			// All the deployments' events; node.drifted only when asked for (its body has no deployment).
			for _, t := range Types {
				h.wants[t] = t != Drifted
			}
		}
		n.hooks = append(n.hooks, h)
		n.wg.Add(1)
		go n.work(h)
	}
	return n
}

// Deployment queues the event of a finished deployment for every webhook that wants it. It never
// blocks: a full queue drops the event, with a warning.
func (n *Notifier) Deployment(d *store.Deployment) {
	if n == nil || len(n.hooks) == 0 {
		return
	}
	ev := NewEvent(d)
	n.send(ev, n.cfg.Logger.WithFields(logrus.Fields{"deployment_id": ev.DeploymentID, "service": ev.Service, "version": ev.Version, "event": ev.Type}))
}

// NodeDrifted queues the event of a drift pass found on a node (n.Drift set), as Deployment does.
func (n *Notifier) NodeDrifted(passID string, node store.DriftNode) {
	if n == nil || len(n.hooks) == 0 || node.Drift == nil {
		return
	}
	ev := NewDriftEvent(passID, node)
	n.send(ev, n.cfg.Logger.WithFields(logrus.Fields{"drift_id": passID, "service": node.Service, "node": node.Host, "kind": node.Drift.Kind, "event": ev.Type}))
}

// send queues ev for every webhook that wants it; it never blocks.
func (n *Notifier) send(ev Event, log logrus.FieldLogger) {
	body, err := json.Marshal(ev)
	if err != nil {
		log.WithError(err).Error("webhook event not sent: it does not encode")
		return
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, h := range n.hooks {
		if !h.wants[ev.Type] {
			continue
		}
		select {
		case <-n.stopping:
			n.dropped.Add(1)
			log.WithField("webhook", h.shown).Warn("webhook event dropped: nodeexec is stopping")
			continue
		default:
		}
		select {
		case h.queue <- delivery{ev: ev, body: body}:
		default:
			n.dropped.Add(1)
			log.WithFields(logrus.Fields{"webhook": h.shown, "queue_size": cap(h.queue)}).
				Warn("webhook event dropped: its queue is full (the receiver is slow or down)")
		}
	}
}

// Stats are the counts so far.
func (n *Notifier) Stats() Stats {
	return Stats{Delivered: n.delivered.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load()}
}

// Stop takes no more events, lets the queued ones go out for up to the flush time, then abandons the
// rest (each logged) and returns once every worker has ended. Calling it again does nothing.
func (n *Notifier) Stop() {
	if n == nil {
		return
	}
	n.stopOnce.Do(func() {
		n.mu.Lock()
		close(n.stopping)
		n.mu.Unlock()
		done := make(chan struct{})
		go func() {
			n.wg.Wait()
			close(done)
		}()
		timer := time.NewTimer(n.cfg.Flush)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			n.cancel()
			<-done
		}
		n.cancel()
	})
}

func (n *Notifier) work(h *hook) {
	defer n.wg.Done()
	for {
		select {
		case d := <-h.queue:
			n.deliver(h, d)
		case <-n.stopping:
			for {
				select {
				case d := <-h.queue:
					n.deliver(h, d)
				default:
					return
				}
			}
		}
	}
}

// deliver sends one event to one webhook, retrying network errors, 5xx and 429 with exponential
// backoff; any other answer is final.
func (n *Notifier) deliver(h *hook, d delivery) {
	log := n.cfg.Logger.WithFields(logrus.Fields{"deployment_id": d.ev.DeploymentID, "service": d.ev.Service,
		"version": d.ev.Version, "event": d.ev.Type, "webhook": h.shown})
	for attempt := 1; ; attempt++ {
		status, wait, err := n.post(h, d)
		alog := log.WithField("attempt", attempt)
		if status != 0 {
			alog = alog.WithField("status", status)
		}
		var final *finalError
		switch {
		case err == nil:
			n.delivered.Add(1)
			alog.Info("webhook delivered")
			return
		case n.ctx.Err() != nil:
			n.failed.Add(1)
			alog.WithError(err).Error("webhook not delivered: nodeexec stopped before the receiver answered")
			return
		case errors.As(err, &final):
			n.failed.Add(1)
			alog.WithError(err).Error("webhook not delivered, and not retried: fix the receiver or the webhook's URL")
			return
		case attempt >= n.cfg.MaxAttempts:
			n.failed.Add(1)
			alog.WithError(err).Error("webhook not delivered: giving up after the last attempt")
			return
		}
		// The receiver may ask for a longer wait than the backoff's (Retry-After), never past the cap.
		wait = min(max(wait, n.backoff.Delay(attempt)), n.cfg.MaxBackoff)
		alog.WithError(err).WithField("retry_in", wait.String()).Warn("webhook delivery failed; retrying")
		if retry.Sleep(n.ctx, wait) != nil {
			n.failed.Add(1)
			log.WithError(err).Error("webhook not delivered: nodeexec stopped while waiting to retry")
			return
		}
	}
}

// finalError is a failure that retrying will not change.
type finalError struct{ msg string }

func (e *finalError) Error() string { return e.msg }

// post makes one attempt. It returns the status (0: none), how long the receiver asked to wait
// (Retry-After on 429 or 503), and nil for a 2xx.
func (n *Notifier) post(h *hook, d delivery) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(d.body))
	if err != nil {
		return 0, 0, &finalError{"the webhook URL cannot be requested: check it with nodeexec config check"}
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "nodeexec-webhook/1")
	req.Header.Set(HeaderEvent, string(d.ev.Type))
	req.Header.Set(HeaderDelivery, d.ev.ID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(h.Secret, ts, d.body))
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is in the log already, without its query
		}
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return s, 0, nil
	case s == http.StatusTooManyRequests || s >= 500:
		var wait time.Duration
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			wait = time.Duration(secs) * time.Second
		}
		return s, wait, fmt.Errorf("the receiver answered %d %s", s, http.StatusText(s))
	default:
		return s, 0, &finalError{fmt.Sprintf("the receiver answered %d %s", s, http.StatusText(s))}
	}
}

// Shown is a webhook URL as logs and `nodeexec config check` show it: the query, which may hold a
// credential, replaced by ****.
func Shown(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	u.User = nil
	if u.RawQuery != "" {
		u.RawQuery = "****"
	}
	u.Fragment = ""
	return u.String()
}
