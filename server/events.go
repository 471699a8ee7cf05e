package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// hub wakes the event streams of a deployment when its runner records new events. Streams read the
// events themselves from the store; the hub only says "look again", so a slow reader never holds up
// a runner, and a reader on another replica still sees everything (it polls instead).
type hub struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
}

// wait returns a channel closed at the next notify for id.
func (h *hub) wait(id string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters == nil {
		h.waiters = map[string]chan struct{}{}
	}
	ch, ok := h.waiters[id]
	if !ok {
		ch = make(chan struct{})
		h.waiters[id] = ch
	}
	return ch
}

func (h *hub) notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.waiters[id]; ok {
		close(ch)
		delete(h.waiters, id)
	}
}

// recorder numbers and stores one deployment's events; one writer per deployment.
type recorder struct {
	s  *Server
	id string
	// mu orders events from the runner and from the executor's live progress.
	mu  sync.Mutex
	seq int64
}

func (s *Server) recorder(id string, lastSeq int64) *recorder {
	return &recorder{s: s, id: id, seq: lastSeq}
}

func (r *recorder) emit(ctx context.Context, evs ...store.Event) {
	if len(evs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now().UTC()
	for i := range evs {
		r.seq++
		evs[i].DeploymentID, evs[i].Seq = r.id, r.seq
		if evs[i].Time.IsZero() {
			evs[i].Time = now
		}
	}
	if err := r.s.cfg.Store.AppendEvents(ctx, evs); err != nil {
		r.s.cfg.Logger.WithField("deployment_id", r.id).WithError(err).Error("could not record events")
	}
	r.s.hub.notify(r.id)
}

// Stream pacing: a keep-alive comment so proxies keep the connection, and a poll for events written
// by another nodeexec replica (this process's own runner wakes the stream at once).
const (
	keepAliveEvery = 15 * time.Second
	pollEvery      = 2 * time.Second
)

// streamEvents serves a deployment's events as server-sent events, from the start or after
// Last-Event-ID / ?after=, and ends with an "end" event carrying the deployment once it has ended.
func (s *Server) streamEvents(c *gin.Context) {
	id := c.Param("id")
	ctx := c.Request.Context()
	d, err := s.cfg.Store.Deployment(ctx, id)
	if err != nil {
		s.failErr(c, err)
		return
	}
	after, err := resumeFrom(c)
	if err != nil {
		s.failErr(c, err)
		return
	}
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()

	keepAlive := time.NewTicker(keepAliveEvery)
	defer keepAlive.Stop()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	for {
		wake := s.hub.wait(id) // before reading: an event recorded after the read still wakes us
		evs, err := s.cfg.Store.Events(ctx, id, after, 500)
		if err != nil {
			fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(apiError{Error: "reading events failed; reconnect to resume", Code: "database_unavailable"}))
			w.Flush()
			return
		}
		for _, ev := range evs {
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, mustJSON(ev))
			after = ev.Seq
		}
		w.Flush()
		if len(evs) == 500 {
			continue // more are waiting
		}
		if d.State.Terminal() || endsDeployment(evs) {
			if d, err = s.cfg.Store.Deployment(ctx, id); err == nil && d.State.Terminal() {
				if rest, err := s.cfg.Store.Events(ctx, id, after, 1); err == nil && len(rest) == 0 {
					fmt.Fprintf(w, "event: end\ndata: %s\n\n", mustJSON(d))
					w.Flush()
					return
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-poll.C:
			if d, err = s.cfg.Store.Deployment(ctx, id); err != nil {
				return
			}
		case <-keepAlive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			w.Flush()
		}
	}
}

// endsDeployment reports whether evs hold the deployment's final state change.
func endsDeployment(evs []store.Event) bool {
	for _, ev := range evs {
		if ev.Type == store.EventDeployment && ev.State.Terminal() {
			return true
		}
	}
	return false
}

func resumeFrom(c *gin.Context) (int64, error) {
	v := c.GetHeader("Last-Event-ID")
	if q := c.Query("after"); q != "" {
		v = q
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, &executor.ValidationError{Field: "after", Reason: fmt.Sprintf("%q is not an event number", v)}
	}
	return n, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{}`)
	}
	return b
}
