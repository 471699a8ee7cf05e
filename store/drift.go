package store

// Drift: how a node differs from its record (a version deployed by hand, a unit stopped, an image set
// with kubectl), as drift passes find it, and the record of each pass.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/nodeexec/nodeexec/executor"
)

// Drift is one difference between a node's record and the node: Recorded is what the record says,
// Observed what the node says or runs, Since when a pass first saw it (kept while it lasts).
type Drift struct {
	Kind     string    `bson:"kind" json:"kind"`
	Recorded string    `bson:"recorded" json:"recorded"`
	Observed string    `bson:"observed" json:"observed"`
	Since    time.Time `bson:"since" json:"since"`
}

// Kinds of drift.
const (
	// DriftVersion: the node runs, or its own record says, another version than the database.
	DriftVersion = "version"
	// DriftUnitInactive: the database says the deploy succeeded, but the unit is not active.
	DriftUnitInactive = "unit_inactive"
	// DriftImageChanged: a workload's live image is not the version recorded.
	DriftImageChanged = "image_changed"
	// DriftUnreachable: the node could not be read; its record is left as it was.
	DriftUnreachable = "unreachable"
)

// DriftKinds lists every kind, in the order metrics and docs show them.
var DriftKinds = []string{DriftVersion, DriftUnitInactive, DriftImageChanged, DriftUnreachable}

// DriftPass is one drift pass: each node it read, what it found there and what it changed.
type DriftPass struct {
	ID string `bson:"_id" json:"id"`
	// Trigger, Tick, Token: as a cleanup pass's.
	Trigger string     `bson:"trigger" json:"trigger"`
	Tick    *time.Time `bson:"tick,omitempty" json:"tick,omitempty"`
	Token   string     `bson:"token,omitempty" json:"token,omitempty"`
	// Service limits the pass to one service's nodes ("": every service).
	Service    string      `bson:"service,omitempty" json:"service,omitempty"`
	Runner     string      `bson:"runner" json:"runner"`
	State      string      `bson:"state" json:"state"`
	Error      string      `bson:"error,omitempty" json:"error,omitempty"`
	Nodes      []DriftNode `bson:"nodes" json:"nodes"`
	StartedAt  time.Time   `bson:"started_at" json:"started_at"`
	FinishedAt *time.Time  `bson:"finished_at,omitempty" json:"finished_at,omitempty"`
}

// States of a drift pass (as a cleanup pass's).
const (
	DriftRunning = CleanupRunning
	DriftSuccess = CleanupSuccess
	DriftFailed  = CleanupFailed
)

// States of a node within a drift pass.
const (
	DriftNodePending = "pending" // not reached yet
	DriftNodeReading = "reading" // held by the pass while it is read
	DriftNodeRead    = "read"    // read (or found unreachable): Drift and Change say what came of it
	DriftNodeSkipped = "skipped" // not read (held by a deployment, or the pass stopped first): Error says why
	DriftNodeFailed  = "failed"  // the record could not be written: Error says why
)

// What a pass did about a node's drift.
const (
	DriftFound   = "found"   // new drift (or another kind than before)
	DriftKept    = "kept"    // the same drift as the last pass saw; its Since stays
	DriftCleared = "cleared" // the drift the record had is gone
)

// DriftNode is one node's outcome within a drift pass.
type DriftNode struct {
	Service  string            `bson:"service" json:"service"`
	Host     string            `bson:"host" json:"host"`
	Platform executor.Platform `bson:"platform" json:"platform"`
	State    string            `bson:"state" json:"state"`
	// Drift is the drift found (nil: none); Change is what the pass did about it ("" : nothing changed).
	Drift  *Drift `bson:"drift,omitempty" json:"drift,omitempty"`
	Change string `bson:"change,omitempty" json:"change,omitempty"`
	// Updated says the record's versions were set to the node's (from, to: the current versions).
	Updated *VersionUpdate `bson:"updated,omitempty" json:"updated,omitempty"`
	Message string         `bson:"message,omitempty" json:"message,omitempty"`
	Error   string         `bson:"error,omitempty" json:"error,omitempty"`
	// Prior is the node's record before the pass held it, given back when its read ends (or by the
	// next pass, if the nodeexec running this one stopped first).
	Prior *Node `bson:"prior,omitempty" json:"-"`
}

// VersionUpdate is a record's versions set to what the node says it runs.
type VersionUpdate struct {
	FromCurrent string         `bson:"from_current" json:"from_current"`
	FromPrev    string         `bson:"from_prev" json:"from_prev"`
	Current     string         `bson:"current" json:"current"`
	Prev        string         `bson:"prev" json:"prev"`
	State       executor.State `bson:"state" json:"state"`
}

// DriftLease is the lease a drift pass runs under: one pass at a time across the replicas.
const DriftLease = "drift"

// driftIDPrefix marks the ids of drift passes, which hold nodes as deployments do.
const driftIDPrefix = "r-"

// NewDriftID is a new drift pass's id.
func NewDriftID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return driftIDPrefix + hex.EncodeToString(b)
}

// IsDriftID reports whether the holder of a node is a drift pass.
func IsDriftID(id string) bool { return strings.HasPrefix(id, driftIDPrefix) }

// HolderName names what holds a node, by its id: "cleanup pass c-…", "drift pass r-…" or "deployment d-…".
func HolderName(id string) string {
	switch {
	case IsCleanupID(id):
		return "cleanup pass " + id
	case IsDriftID(id):
		return "drift pass " + id
	}
	return "deployment " + id
}

func (s *Store) driftPasses() *mongo.Collection { return s.nodes.Database().Collection("drift") }

// CreateDriftPass records a pass as it starts.
func (s *Store) CreateDriftPass(ctx context.Context, p *DriftPass) error {
	if _, err := s.driftPasses().InsertOne(ctx, p); err != nil {
		return fmt.Errorf("record drift pass: %w", err)
	}
	return nil
}

// SaveDriftPass writes a running pass's progress, or its end: only while the record still says running
// (a pass found abandoned was ended by another).
func (s *Store) SaveDriftPass(ctx context.Context, p *DriftPass) error {
	return savePass(ctx, s.driftPasses(), "drift pass", p.ID, DriftRunning, bson.M{
		"state": p.State, "error": p.Error, "nodes": p.Nodes, "finished_at": p.FinishedAt,
	}, errDriftPassEnded)
}

// errDriftPassEnded means a drift pass's record was already ended.
var errDriftPassEnded = errors.New("it was already ended")

// DriftPass reads one pass.
func (s *Store) DriftPass(ctx context.Context, id string) (*DriftPass, error) {
	return readPass[DriftPass](ctx, s.driftPasses(), "drift pass", id)
}

// ListDriftPasses returns passes newest first, a page at a time (cursor: as ListCleanups).
func (s *Store) ListDriftPasses(ctx context.Context, limit int, cursor string) (page []DriftPass, next string, err error) {
	return listPasses(ctx, s.driftPasses(), "drift pass", limit, cursor, func(p DriftPass) (time.Time, string) { return p.StartedAt, p.ID })
}

// RunningDriftPasses lists the passes whose record says running.
func (s *Store) RunningDriftPasses(ctx context.Context) ([]DriftPass, error) {
	return runningPasses[DriftPass](ctx, s.driftPasses(), "drift pass", DriftRunning)
}

// driftAlive reports whether a drift pass still runs: its record says so and its runner holds the
// drift lease for it.
func (s *Store) driftAlive(ctx context.Context, id string, now time.Time) bool {
	p, err := s.DriftPass(ctx, id)
	return err == nil && s.passAlive(ctx, DriftLease, id, p.Runner, p.State == DriftRunning, now)
}

// KnownNodes lists every node record, by service then host, or one service's (a scan: for drift
// passes, never a request's hot path).
func (s *Store) KnownNodes(ctx context.Context, service string) ([]Node, error) {
	filter := bson.M{}
	if service != "" {
		filter["service"] = service
	}
	out, err := s.nodesWhere(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// Observed is what a drift pass writes on a node it holds as it gives it back: its drift (nil: none),
// and, when Versions is set, the node's own versions and state in place of the record's.
type Observed struct {
	Drift    *Drift
	Versions *VersionUpdate
}

// GiveBack gives a node a drift pass held back as it was before (as Release does), with what the pass
// observed written on it: the only fields a drift pass changes.
func (s *Store) GiveBack(ctx context.Context, passID string, prior *Node, o Observed) error {
	if prior.State == "" {
		return s.Release(ctx, passID, prior) // the claim created the record (it was forgotten meanwhile)
	}
	id := prior.ID
	if held, err := s.holds(ctx, id, passID); err != nil {
		return fmt.Errorf("give back %s: %w", id, err)
	} else if !held {
		return fmt.Errorf("give back %s: drift pass %s: %w", id, passID, ErrNotHeld)
	}
	if err := s.writeObserved(ctx, passID, prior, o); err != nil {
		return err
	}
	return s.giveBack(ctx, id, passID)
}

// writeObserved writes back the record of a node a drift pass held, with what it observed.
func (s *Store) writeObserved(ctx context.Context, passID string, prior *Node, o Observed) error {
	id := prior.ID
	defer s.lockNode(id)()
	defer s.writing(id)
	set := bson.M{"state": prior.State, "deploying_version": "", "deployment_id": prior.DeploymentID, "last_error": prior.LastError}
	update := bson.M{"$set": set}
	if o.Drift != nil {
		set["drift"] = o.Drift
	} else {
		update["$unset"] = bson.M{"drift": ""}
	}
	if v := o.Versions; v != nil {
		set["current_version"], set["prev_version"], set["updated_at"] = v.Current, v.Prev, time.Now().UTC()
		if v.State != "" {
			set["state"] = v.State
		}
	}
	res, err := s.nodes.UpdateOne(ctx, bson.M{"_id": id, "deployment_id": passID, "state": executor.StateDeploying}, update)
	if err != nil {
		return fmt.Errorf("give back %s: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("give back %s: drift pass %s: %w", id, passID, ErrNotHeld)
	}
	return nil
}
