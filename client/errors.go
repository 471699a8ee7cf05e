package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/nodeexec/nodeexec/api"
)

// The codes of the API's error bodies (docs/api.md, "Errors").
const (
	CodeInvalid            = "invalid"              // 400: a field is wrong (Error.Field names it)
	CodeBadJSON            = "bad_json"             // 400: the body is not JSON for the request
	CodeTooLarge           = "too_large"            // 413: the body is over the server's limit
	CodeUnauthorized       = "unauthorized"         // 401: no bearer token, or one the server does not know
	CodeForbidden          = "forbidden"            // 403: the token lacks the scope
	CodeNotFound           = "not_found"            // 404
	CodeMethodNotAllowed   = "method_not_allowed"   // 405
	CodeNodeBusy           = "node_busy"            // 409: a node is held by another deployment (Error.DeploymentID)
	CodeKeyInFlight        = "key_in_flight"        // 409: the idempotency key's request is still being recorded; retry
	CodeKeyReused          = "key_reused"           // 422: the idempotency key was first sent with another request (Error.DeploymentID)
	CodeNotFinished        = "not_finished"         // 409: rollback of a deployment still running
	CodeNothingToRollBack  = "nothing_to_roll_back" // 409: the deployment changed no node
	CodeFinished           = "finished"             // 409: cancel of a deployment that already ended
	CodeNotRunningHere     = "not_running_here"     // 409: cancel sent to a replica that does not run it
	CodeCleanupRunning     = "cleanup_running"      // 409: another cleanup pass runs
	CodeDriftRunning       = "drift_running"        // 409: another drift pass runs
	CodeShuttingDown       = "shutting_down"        // 503: the server drains; send it again (elsewhere)
	CodeDatabaseDown       = "database_unavailable" // 503: the database does not answer; retry shortly
	CodeLogsUnavailable    = "logs_unavailable"     // 502: the cluster could not serve a pod's log
	CodeRunFailed          = "run_failed"           // 502: a run on the nodes failed (service status, ad-hoc)
	CodeInternal           = "internal"             // 500
	CodeUnexpectedResponse = "unexpected_response"  // not the server's: an error answer without the API's body
)

// Error is an error answer of the API: its HTTP status and the body's code, sentence and details.
// Use errors.As to get it, or the helpers IsRetryable, HasCode, Holder.
type Error struct {
	Status  int
	Code    string // one of the Code constants; CodeUnexpectedResponse when the body was not the API's
	Message string
	// Field names the request field that is wrong (400 invalid).
	Field string
	// DeploymentID is the deployment that holds a node (409 node_busy), or that owns the idempotency
	// key (409 key_in_flight, 422 key_reused).
	DeploymentID string
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code == CodeNodeBusy && e.DeploymentID != "" && !strings.Contains(msg, e.DeploymentID) {
		msg += " (held by deployment " + e.DeploymentID + ")"
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// Retryable says whether the same request may succeed if sent again shortly: the server drains or its
// database blinked (503), or the idempotency key's first request is still being recorded (409).
func (e *Error) Retryable() bool {
	switch e.Code {
	case CodeShuttingDown, CodeDatabaseDown, CodeKeyInFlight:
		return true
	}
	// A 502/503/504 from something in front of the server (a proxy, a load balancer).
	return e.Code == CodeUnexpectedResponse && (e.Status == http.StatusBadGateway ||
		e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout)
}

// IsRetryable says whether err is worth sending the same request again: an *Error that says so, or a
// request that got no answer (*ConnError). The client already retries reads and the requests that
// start deployments (WithRetry); this is for what a caller does after that.
func IsRetryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Retryable()
	}
	var ce *ConnError
	return errors.As(err, &ce)
}

// HasCode says whether err is an *Error with the code.
func HasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Holder is the deployment that holds the node a request wanted, when err is a 409 node_busy.
func Holder(err error) (deploymentID string, ok bool) {
	var e *Error
	if errors.As(err, &e) && e.Code == CodeNodeBusy {
		return e.DeploymentID, true
	}
	return "", false
}

// errorOf reads an error answer into an *Error; a body that is not the API's error (a proxy's page, a
// truncated answer) becomes CodeUnexpectedResponse with the start of the body, never a panic.
func errorOf(resp *http.Response) *Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxExcerptRead))
	var body api.Error
	if err := json.Unmarshal(data, &body); err != nil || body.Code == "" {
		msg := "the answer is not the API's error body"
		if len(strings.TrimSpace(string(data))) > 0 {
			msg += ": " + excerpt(data)
		}
		return &Error{Status: resp.StatusCode, Code: CodeUnexpectedResponse, Message: msg}
	}
	return &Error{Status: resp.StatusCode, Code: body.Code, Message: body.Error, Field: body.Field, DeploymentID: body.DeploymentID}
}
