// Package client is a typed Go client of nodeexec's HTTP API, for the Plan Layer and the command line:
// it sends and reads the api package's types, turns every error body into an *Error with its code, puts
// an idempotency key on every request that starts a deployment (so a request retried after a dropped
// connection never runs twice), and follows a deployment's event stream to its end, resuming with
// Last-Event-ID after a dropped connection.
//
//	c, err := client.New("https://nodeexec.internal:8080", client.WithToken(token))
//	acc, err := c.Deploy(ctx, api.DeployRequest{Service: "web", Version: "v2", Nodes: hosts, ...})
//	d, err := c.Wait(ctx, acc.ID)
//	if d.State == api.StateFailed { c.Rollback(ctx, d.ID, api.RollbackRequest{}) }
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nodeexec/nodeexec/retry"
)

// Client calls one nodeexec server. It is safe for concurrent use.
type Client struct {
	base  string
	token string // sent, never printed
	http  *http.Client
	// retry is how a request that failed on a transient fault (IsRetryable) is sent again: reads,
	// and requests that start a deployment (they carry an idempotency key). Cancels, ad-hoc commands
	// and cleanup passes are sent once.
	retry retry.Policy
	// stream is how a dropped event stream is reconnected: retries in a row without an event between.
	stream retry.Policy
	// idle is how long an event stream may stay silent (the server sends a keep-alive every 15 s)
	// before it is taken as dropped and resumed.
	idle time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends token as the bearer token of every request (Authorization: Bearer <token>).
func WithToken(token string) Option { return func(c *Client) { c.token = strings.TrimSpace(token) } }

// WithHTTPClient sends the requests with h. Give it no overall Timeout: an event stream lasts as long
// as the deployment it follows (bound each call with its context instead).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRetry sets how requests that failed on a transient fault are retried (MaxRetries 0: never).
// The default tries three more times, after 0.5 s, 1 s and 2 s.
func WithRetry(p retry.Policy) Option { return func(c *Client) { c.retry = p } }

// WithStreamRetry sets how a dropped event stream is reconnected: the retries allowed in a row with no
// event received between them (an event resets the count). The default allows 8, backing off from
// 0.25 s to 5 s.
func WithStreamRetry(p retry.Policy) Option { return func(c *Client) { c.stream = p } }

// WithStreamIdle sets how long an event stream may stay silent before it is reconnected (default 45 s,
// three of the server's keep-alives).
func WithStreamIdle(d time.Duration) Option { return func(c *Client) { c.idle = d } }

// New is a client of the server at baseURL (http or https, e.g. http://127.0.0.1:8080).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("nodeexec URL %q is not an http(s) URL like http://127.0.0.1:8080", baseURL)
	}
	c := &Client{base: strings.TrimRight(baseURL, "/"),
		retry:  retry.Policy{MaxRetries: 3, InitialDelay: 500 * time.Millisecond, MaxDelay: 2 * time.Second, Factor: 2},
		stream: retry.Policy{MaxRetries: 8, InitialDelay: 250 * time.Millisecond, MaxDelay: 5 * time.Second, Factor: 2},
		idle:   45 * time.Second}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		// No overall timeout (see WithHTTPClient); waiting for an answer's headers is bounded.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = 30 * time.Second
		c.http = &http.Client{Transport: t}
	}
	return c, nil
}

// BaseURL is the server this client calls.
func (c *Client) BaseURL() string { return c.base }

// NewIdempotencyKey is a random key for a request that starts a deployment. The client makes one for
// every such request that has none; a caller that may send the same request again later (after its
// own restart, say) makes its own, keeps it, and sends it each time.
func NewIdempotencyKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "nxc-" + hex.EncodeToString(b)
}

// ConnError is a request that got no answer: the server could not be reached, or the connection broke
// before the answer came.
type ConnError struct {
	URL string // the server's base URL
	Err error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("cannot reach nodeexec at %s: %v", e.URL, e.Err)
}
func (e *ConnError) Unwrap() error { return e.Err }

// retried says whether a call may be sent again after a transient fault.
type retried bool

const (
	once      retried = false
	retryable retried = true
)

// call sends a request (body as JSON unless nil) and decodes a 2xx answer's JSON into out (unless
// nil); retried on transient faults when again says so.
func (c *Client) call(ctx context.Context, method, path string, body, out any, again retried) error {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s %s: encode the request: %w", method, path, err)
		}
	}
	p := c.retry
	if !again {
		p.MaxRetries = 0
	}
	return p.Do(ctx, func() (bool, error) {
		resp, err := c.send(ctx, method, path, data, body != nil, nil)
		if err != nil {
			return ctx.Err() == nil && IsRetryable(err), err
		}
		defer resp.Body.Close()
		return false, decodeAnswer(resp, method, path, out)
	})
}

// callFor is call for an answer of type T.
func callFor[T any](ctx context.Context, c *Client, method, path string, body any, again retried) (*T, error) {
	var out T
	if err := c.call(ctx, method, path, body, &out, again); err != nil {
		return nil, err
	}
	return &out, nil
}

// keyed gives a request that starts a deployment a new idempotency key when it has none.
func keyed(key *string) {
	if *key == "" {
		*key = NewIdempotencyKey()
	}
}

// send sends one request; an answer of 400 or more is returned as an *Error (its body read and closed).
func (c *Client) send(ctx context.Context, method, path string, body []byte, isJSON bool, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if isJSON {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // keep what happened ("connection refused"), not the URL again
		}
		return nil, &ConnError{URL: c.base, Err: err}
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, errorOf(resp)
	}
	return resp, nil
}

// maxAnswer bounds the JSON answer the client reads (a Logs answer is the largest).
const maxAnswer = 64 << 20

// decodeAnswer reads a 2xx answer's JSON into out; an answer that is not the JSON expected is an error
// quoting the status and the start of the body.
func decodeAnswer(resp *http.Response, method, path string, out any) error {
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: HTTP %d, reading the answer: %w", method, path, resp.StatusCode, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: HTTP %d, the answer is not the JSON expected (%v): %s", method, path, resp.StatusCode, err, excerpt(data))
	}
	return nil
}

// excerpt is the start of a body, quoted, for an error message.
func excerpt(data []byte) string {
	const most = 256
	s := strings.TrimSpace(string(data))
	if len(s) > most {
		more := ""
		if len(data) >= maxExcerptRead {
			more = " or more"
		}
		return fmt.Sprintf("%q… (%d bytes%s)", s[:most], len(data), more)
	}
	return fmt.Sprintf("%q", s)
}

// maxExcerptRead bounds what is read of a body only quoted in an error.
const maxExcerptRead = 64 << 10

// escape is one path segment (a Kubernetes workload's node name "namespace/name" stays one segment).
func escape(s string) string { return url.PathEscape(s) }
