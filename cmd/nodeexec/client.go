package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/nodeexec/nodeexec/client"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/retry"
)

// newAPIClient is the client of a running `nodeexec serve` at server (package client), with the token
// from tokenFile or $NODEEXEC_TOKEN.
func newAPIClient(server, tokenFile string) (*client.Client, error) {
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
		if token = strings.TrimSpace(string(data)); token == "" {
			return nil, &executor.ValidationError{Field: "--token-file", Reason: tokenFile + " is empty: put the API token in it"}
		}
	}
	// A person runs the command and sees its answer at once: a refused request is not sent again
	// (the same command again is safe; a deploy carries an idempotency key). A dropped event stream
	// is still resumed.
	return client.New(server, client.WithToken(token), client.WithRetry(retry.Policy{}))
}

// withHint adds what to do to an error of a server that did not answer, or that wants a token.
func withHint(err error) error {
	var ce *client.ConnError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w (is `nodeexec serve` running? set --server or NODEEXEC_SERVER)", err)
	}
	if client.HasCode(err, client.CodeUnauthorized) {
		return fmt.Errorf("%w: give an API token the server knows with --token-file FILE or in $NODEEXEC_TOKEN", err)
	}
	return err
}
