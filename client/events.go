package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/internal/readwatch"
)

// Wait follows a deployment's event stream to its end and returns the deployment as it ended (its
// State is api.StateSuccess, StateFailed or StateRolledBack). A stream that drops is resumed where it
// broke (see Follow). ctx bounds the wait; the deployment goes on when it ends.
func (c *Client) Wait(ctx context.Context, id string) (*api.Deployment, error) {
	return c.Follow(ctx, id, nil)
}

// Follow is Wait that hands each event to onEvent (when not nil) as it comes, oldest first, each once.
// The stream is GET /api/v1/deployments/{id}/events (server-sent events): when the connection drops,
// stays silent past the idle limit (WithStreamIdle), or the server says it could not read its events,
// Follow reconnects with Last-Event-ID set to the last event it handed on, so the server sends only
// what came after; it gives up after WithStreamRetry's retries in a row with no event between them.
func (c *Client) Follow(ctx context.Context, id string, onEvent func(api.Event)) (*api.Deployment, error) {
	var last int64
	for fails := 0; ; {
		final, progressed, err := c.streamOnce(ctx, id, &last, onEvent)
		if err == nil {
			return final, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var broken *brokenStreamError
		if !errors.As(err, &broken) {
			return nil, err
		}
		if progressed {
			fails = 0
		}
		if fails++; fails > c.stream.MaxRetries {
			return nil, fmt.Errorf("follow deployment %s: %w (%d reconnects in a row did not help; the deployment goes on: Get it, or Wait again)", id, broken.Err, fails-1)
		}
		if err := c.stream.Wait(ctx, fails); err != nil {
			return nil, err
		}
	}
}

// brokenStreamError is an event stream that ended before its end event in a way that reconnecting may
// mend: the connection dropped or went silent, or the server could not read its events.
type brokenStreamError struct{ Err error }

func (e *brokenStreamError) Error() string { return "the event stream broke: " + e.Err.Error() }
func (e *brokenStreamError) Unwrap() error { return e.Err }

// streamOnce reads one connection of the event stream, from after *last; the deployment when the end
// event came. progressed says whether an event was handed on.
func (c *Client) streamOnce(ctx context.Context, id string, last *int64, onEvent func(api.Event)) (final *api.Deployment, progressed bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	header := http.Header{"Accept": {"text/event-stream"}}
	if *last > 0 {
		header.Set("Last-Event-ID", strconv.FormatInt(*last, 10))
	}
	path := "/api/v1/deployments/" + escape(id) + "/events"
	resp, err := c.send(sctx, http.MethodGet, path, nil, false, header)
	if err != nil {
		var ce *ConnError
		if ctx.Err() == nil && (errors.As(err, &ce) || IsRetryable(err) || errors.Is(err, context.Canceled)) {
			return nil, false, &brokenStreamError{Err: err}
		}
		return nil, false, err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, false, fmt.Errorf("GET %s: HTTP %d is not an event stream (Content-Type %q): %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), excerpt(data))
	}
	// A stream silent past the idle limit is a connection that died without closing: cut it, resume.
	idle := time.AfterFunc(c.idle, cancel)
	defer idle.Stop()
	body := readwatch.OnData(resp.Body, func() { idle.Reset(c.idle) })
	err = readSSE(body, func(ev sseEvent) error {
		switch ev.Event {
		case "end":
			final = &api.Deployment{}
			if err := json.Unmarshal([]byte(ev.Data), final); err != nil {
				return fmt.Errorf("deployment %s: the end event is not a deployment (%v): %s", id, err, excerpt([]byte(ev.Data)))
			}
			return errStreamEnded
		case "error":
			var e api.Error
			_ = json.Unmarshal([]byte(ev.Data), &e)
			return &brokenStreamError{Err: fmt.Errorf("the server could not read the events (%s): %s", e.Code, e.Error)}
		}
		var e api.Event
		if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
			return fmt.Errorf("deployment %s: event %s is not an event (%v): %s", id, ev.ID, err, excerpt([]byte(ev.Data)))
		}
		if e.Seq == 0 {
			e.Seq, _ = strconv.ParseInt(ev.ID, 10, 64)
		}
		if e.Seq <= *last {
			return nil // seen before this connection: handed on once only
		}
		*last, progressed = e.Seq, true
		if onEvent != nil {
			onEvent(e)
		}
		return nil
	})
	var broken *brokenStreamError
	switch {
	case errors.Is(err, errStreamEnded):
		return final, progressed, nil
	case ctx.Err() != nil:
		return nil, progressed, ctx.Err()
	case errors.As(err, &broken):
		return nil, progressed, err
	case errors.Is(err, io.ErrUnexpectedEOF), sctx.Err() != nil, isReadError(err):
		if sctx.Err() != nil {
			err = fmt.Errorf("no event or keep-alive for %s", c.idle)
		}
		return nil, progressed, &brokenStreamError{Err: err}
	}
	return nil, progressed, err
}

// readError is the body failing under readSSE (a reset connection), as opposed to what readSSE's
// callback returned.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func isReadError(err error) bool {
	var re *readError
	return errors.As(err, &re)
}

// sseEvent is one server-sent event.
type sseEvent struct {
	ID    string
	Event string
	Data  string
}

// errStreamEnded stops readSSE at the end event.
var errStreamEnded = errors.New("end")

// readSSE reads server-sent events from r and hands each to fn; comments (keep-alives) are skipped and
// several data lines are joined with newlines, as the format says. A stream that just stops is
// io.ErrUnexpectedEOF; one that fails, a *readError.
func readSSE(r io.Reader, fn func(sseEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if len(data) > 0 || ev.Event != "" {
				ev.Data = strings.Join(data, "\n")
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = sseEvent{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Event = value
		case "data":
			data = append(data, value)
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("an event line over 4 MiB: %w", err)
	} else if err != nil {
		return &readError{err: err}
	}
	return io.ErrUnexpectedEOF
}
