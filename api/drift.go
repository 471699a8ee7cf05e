package api

import "time"

// Drift is how a node differs from its record, as the last drift pass found it: Kind is version,
// unit_inactive, image_changed or unreachable; Recorded what the record said, Observed what the node
// says or runs; Since when a pass first saw it.
type Drift struct {
	Kind     string    `json:"kind"`
	Recorded string    `json:"recorded"`
	Observed string    `json:"observed"`
	Since    time.Time `json:"since"`
}

// DriftPass is one drift pass (POST /api/v1/drift answers with the pass as it starts; GET
// /api/v1/drift/{id}): each node it read, what it found and what it changed.
type DriftPass struct {
	ID      string     `json:"id"`
	Trigger string     `json:"trigger"`
	Tick    *time.Time `json:"tick,omitempty"`
	Token   string     `json:"token,omitempty"`
	// Service limits the pass to one service's nodes (none: every service).
	Service    string      `json:"service,omitempty"`
	Runner     string      `json:"runner"`
	State      string      `json:"state"`
	Error      string      `json:"error,omitempty"`
	Nodes      []DriftNode `json:"nodes"`
	StartedAt  time.Time   `json:"started_at"`
	FinishedAt *time.Time  `json:"finished_at,omitempty"`
}

// DriftNode is one node's outcome within a drift pass: State pending, reading, read, skipped (Error
// says why) or failed; Drift what it found (none: nothing); Change found, kept or cleared; Updated the
// record's versions set to the node's.
type DriftNode struct {
	Service  string         `json:"service"`
	Host     string         `json:"host"`
	Platform Platform       `json:"platform"`
	State    string         `json:"state"`
	Drift    *Drift         `json:"drift,omitempty"`
	Change   string         `json:"change,omitempty"`
	Updated  *VersionUpdate `json:"updated,omitempty"`
	Message  string         `json:"message,omitempty"`
	Error    string         `json:"error,omitempty"`
}

// VersionUpdate is a node record's versions set to what the node says it runs.
type VersionUpdate struct {
	FromCurrent string `json:"from_current"`
	FromPrev    string `json:"from_prev"`
	Current     string `json:"current"`
	Prev        string `json:"prev"`
	State       State  `json:"state"`
}

// DriftPassList is GET /api/v1/drift: a page, newest first, and the cursor of the next one.
type DriftPassList struct {
	Passes     []DriftPass `json:"passes"`
	NextCursor string      `json:"next_cursor"`
}

// DriftRequest is POST /api/v1/drift's body (optional): Service limits the pass to one service.
type DriftRequest struct {
	Service string `json:"service,omitempty"`
}
