package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Stream pacing: a keep-alive comment so proxies keep the connection, and a poll for events written
// by another nodeexec replica (this process's own runs wake the stream at once).
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
		wake := s.engine.Changed(id) // before reading: an event recorded after the read still wakes us
		evs, err := s.cfg.Store.Events(ctx, id, after, 500)
		if err != nil {
			fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(api.Error{Error: "reading events failed; reconnect to resume", Code: "database_unavailable"}))
			w.Flush()
			return
		}
		for _, ev := range evs {
			fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.Seq, ev.Type, mustJSON(renderEvent(ev)))
			after = ev.Seq
		}
		w.Flush()
		if len(evs) == 500 {
			continue // more are waiting
		}
		if d.State.Terminal() || endsDeployment(evs) {
			if d, err = s.cfg.Store.Deployment(ctx, id); err == nil && d.State.Terminal() {
				if rest, err := s.cfg.Store.Events(ctx, id, after, 1); err == nil && len(rest) == 0 {
					fmt.Fprintf(w, "event: end\ndata: %s\n\n", mustJSON(renderDeployment(*d)))
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
