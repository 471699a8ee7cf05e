package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nodeexec/nodeexec/api"
)

// apiClient talks to a running `nodeexec serve`.
type apiClient struct {
	base  string
	token string // never printed
	http  *http.Client
}

// serverError is an error the API answered with: its body (api.Error), and the HTTP status.
type serverError struct {
	Status       int
	Message      string
	Code         string
	Field        string
	DeploymentID string
}

func (e *serverError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code == "node_busy" && e.DeploymentID != "" && !strings.Contains(msg, e.DeploymentID) {
		msg += " (held by deployment " + e.DeploymentID + ")"
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

func newAPIClient(server, tokenFile string) (*apiClient, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q is not an http(s) URL like http://127.0.0.1:8080", server)
	}
	token := os.Getenv("NODEEXEC_TOKEN")
	if tokenFile != "" {
		data, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(data))
	}
	// No overall timeout: event streams last as long as a deployment. Connecting is bounded.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = 30 * time.Second
	return &apiClient{base: strings.TrimRight(server, "/"), token: token, http: &http.Client{Transport: transport}}, nil
}

func (c *apiClient) request(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach nodeexec at %s: %v (is `nodeexec serve` running? set --server or NODEEXEC_SERVER)", c.base, rootCause(err))
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var body api.Error
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		err := json.Unmarshal(data, &body)
		se := &serverError{Status: resp.StatusCode, Message: body.Error, Code: body.Code, Field: body.Field, DeploymentID: body.DeploymentID}
		if err != nil || se.Message == "" {
			se.Message = strings.TrimSpace(string(data))
		}
		return nil, se
	}
	return resp, nil
}

// call sends a request and decodes the JSON answer into out.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the JSON expected: %w", method, path, err)
	}
	return nil
}

// rootCause drops the URL wrapping of a transport error, keeping what happened ("connection refused").
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// sseEvent is one server-sent event.
type sseEvent struct {
	ID    string
	Event string
	Data  string
}

// readSSE reads server-sent events from r and hands each to fn; comments (keep-alives) are skipped and
// several data lines are joined with newlines, as the format says.
func readSSE(r io.Reader, fn func(sseEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
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
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF // the stream ended without an end event
}

// errStreamEnded stops readSSE at the end event.
var errStreamEnded = errors.New("end")

// follow streams a deployment's events to onEvent until the deployment ends, and returns it. A stream
// that breaks is resumed after the last event seen (Last-Event-ID), a few times.
func (c *apiClient) follow(ctx context.Context, id string, onEvent func(api.Event)) (*api.Deployment, error) {
	var last int64
	var final *api.Deployment
	for attempt := 0; ; attempt++ {
		resp, err := c.request(ctx, http.MethodGet, "/api/v1/deployments/"+url.PathEscape(id)+"/events?after="+strconv.FormatInt(last, 10), nil)
		if err == nil {
			err = readSSE(resp.Body, func(ev sseEvent) error {
				switch ev.Event {
				case "end":
					final = &api.Deployment{}
					if err := json.Unmarshal([]byte(ev.Data), final); err != nil {
						return fmt.Errorf("end event: %w", err)
					}
					return errStreamEnded
				case "error":
					return fmt.Errorf("the server could not read events: %s", ev.Data)
				}
				var e api.Event
				if err := json.Unmarshal([]byte(ev.Data), &e); err != nil {
					return fmt.Errorf("event %s: %w", ev.ID, err)
				}
				if e.Seq > last {
					last = e.Seq
				}
				onEvent(e)
				return nil
			})
			resp.Body.Close()
			if errors.Is(err, errStreamEnded) {
				return final, nil
			}
		}
		var se *serverError
		if ctx.Err() != nil || errors.As(err, &se) || attempt >= 3 {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
	}
}
