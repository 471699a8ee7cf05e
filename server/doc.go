// Package server will hold the HTTP API the Plan Layer calls (gin): deployments, node status, events and
// the management endpoints. It is the next piece of work (issue 3); until then cmd/nodeexec drives the
// executor directly.
package server
