package k8s

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/retry"
)

// retryingTransport tries a request to the API server again, with backoff, when it did not answer (a
// restart, a dropped connection) or answered 429 or a 5xx: faults that pass. Every other answer,
// including every other error status, goes back to the caller at once. A request whose body cannot be
// read again is never retried.
type retryingTransport struct {
	next   http.RoundTripper
	policy retry.Policy
	log    logrus.FieldLogger
}

func (t *retryingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		resp, err := t.next.RoundTrip(req)
		if !transientAnswer(resp, err) || n >= t.policy.MaxRetries || (req.Body != nil && req.GetBody == nil) {
			return resp, err
		}
		reason := "no answer"
		if resp != nil {
			reason = resp.Status
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		} else if err != nil {
			reason = err.Error()
		}
		t.log.WithFields(logrus.Fields{"method": req.Method, "path": req.URL.Path, "reason": reason, "retry": n + 1}).Warn("the Kubernetes API server failed; trying again")
		if werr := t.policy.Wait(req.Context(), n+1); werr != nil {
			return nil, werr
		}
		if req.GetBody != nil {
			body, berr := req.GetBody()
			if berr != nil {
				return nil, berr
			}
			req = req.Clone(req.Context())
			req.Body = body
		}
	}
}

// transientAnswer says whether an answer (or its absence) is worth trying again.
func transientAnswer(resp *http.Response, err error) bool {
	if err != nil {
		// The caller's own deadline or cancel is not a fault of the server.
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
