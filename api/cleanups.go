package api

import "time"

// Cleanup is one cleanup pass: which nodes it cleaned and what each kept and removed, and which records
// it pruned (POST /api/v1/cleanups answers with the pass as it starts; GET /api/v1/cleanups/{id}).
type Cleanup struct {
	ID string `json:"id"`
	// Trigger is TriggerSchedule (Tick is the time the schedule fired) or TriggerAPI (Token names the
	// API token that asked, when the server has tokens).
	Trigger string     `json:"trigger"`
	Tick    *time.Time `json:"tick,omitempty"`
	Token   string     `json:"token,omitempty"`
	// Runner names the nodeexec replica that ran the pass.
	Runner string `json:"runner"`
	State  string `json:"state"`
	Error  string `json:"error,omitempty"`
	// Keep is how many releases a node keeps unless its service has its own number (each node says).
	Keep       int           `json:"keep"`
	Nodes      []CleanupNode `json:"nodes"`
	Pruned     Pruned        `json:"pruned"`
	StartedAt  time.Time     `json:"started_at"`
	FinishedAt *time.Time    `json:"finished_at,omitempty"`
}

// What started a cleanup pass.
const (
	TriggerSchedule = "schedule"
	TriggerAPI      = "api"
)

// States of a cleanup pass: running, then success or failed.
const (
	CleanupRunning = "running"
	CleanupSuccess = "success"
	CleanupFailed  = "failed"
)

// States of a node within a cleanup pass.
const (
	NodePending  = "pending"  // not reached yet
	NodeCleaning = "cleaning" // held by the pass
	NodeCleaned  = "cleaned"  // Kept and Removed say what the pass did
	NodeSkipped  = "skipped"  // not touched: Error says why
	NodeFailed   = "failed"   // Error says why
)

// CleanupNode is one node's outcome within a cleanup pass.
type CleanupNode struct {
	Service string `json:"service"`
	Host    string `json:"host"`
	State   string `json:"state"`
	// Keep is the number of releases the node was asked to keep.
	Keep int `json:"keep"`
	// Kept are the releases on the node after the cleanup; Removed the ones it deleted.
	Kept    []string `json:"kept,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Pruned counts the records a pass deleted because they finished before Before.
type Pruned struct {
	Before          *time.Time `json:"before,omitempty"`
	Deployments     int64      `json:"deployments"`
	EventChunks     int64      `json:"event_chunks"`
	IdempotencyKeys int64      `json:"idempotency_keys"`
	Cleanups        int64      `json:"cleanups"`
	DriftPasses     int64      `json:"drift_passes"`
}

// CleanupList is GET /api/v1/cleanups: a page, newest first, and the cursor of the next one.
type CleanupList struct {
	Cleanups   []Cleanup `json:"cleanups"`
	NextCursor string    `json:"next_cursor"`
}
