package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/executor"
)

// Kinds of deployment.
const (
	KindDeploy   = "deploy"
	KindRollback = "rollback"
	// KindScale changes the size of Kubernetes workloads, not their version.
	KindScale = "scale"
	// KindRestart restarts a service on physical nodes and verifies it, not changing its version.
	KindRestart = "restart"
	// KindForget records that a node was forgotten: who did, and what the node ran. It runs nothing.
	KindForget = "forget"
	// KindApply server-side-applies a manifest's Kubernetes objects; KindDelete deletes the objects a
	// label selector picks. Neither holds nodes nor runs through the engine's queue: each runs in its
	// request and records its objects (Objects), never nodes.
	KindApply  = "apply"
	KindDelete = "delete"
)

// IsObjectsKind says whether kind works on Kubernetes objects (apply, delete) rather than on nodes.
func IsObjectsKind(kind string) bool { return kind == KindApply || kind == KindDelete }

// Deployment is one request of the Plan Layer and how it went, node by node.
//
// What the engine hands the executor is stored as a tagged document: exactly one of Deploy, Rollback,
// Scale and Restart is set, the one of Kind ("deploy", "rollback", "scale" or "restart" in the
// document). Targets and Health read it whatever the kind. Documents written before (one "request"
// for every kind, a scale's "replicas" beside it) are read into the same fields (legacy.go).
type Deployment struct {
	ID string `bson:"_id" json:"id"`
	// Kind is KindDeploy, KindScale, KindRestart, or KindRollback of the deployment RollbackOf names.
	Kind       string `bson:"kind" json:"kind"`
	RollbackOf string `bson:"rollback_of,omitempty" json:"rollback_of,omitempty"`
	// ParentID names the deployment of several applications this one carries out one application of.
	ParentID string `bson:"parent_id,omitempty" json:"parent_id,omitempty"`
	// TargetDeploymentID is, on a rollback to a target deployment, that target: each node goes back to
	// the version it left the node on (engine.RollbackTo).
	TargetDeploymentID string            `bson:"target_deployment_id,omitempty" json:"target_deployment_id,omitempty"`
	Service            string            `bson:"service" json:"service"`
	Version            string            `bson:"version" json:"version"`
	Platform           executor.Platform `bson:"platform" json:"platform"`
	// Deploy is a deploy's request (also of a kind this build does not know, which runs as a deploy).
	Deploy *executor.DeployRequest `bson:"deploy,omitempty" json:"-"`
	// Rollback is a rollback's request. Its ToVersion stays empty: each node goes back to what it ran
	// before, its own TargetVersion, and the engine asks the executor for one version at a time.
	Rollback *executor.RollbackRequest `bson:"rollback,omitempty" json:"-"`
	// Scale is a scale's request: its workloads, and the replicas it asks of each.
	Scale *executor.ScaleRequest `bson:"scale,omitempty" json:"-"`
	// Restart is a restart's request.
	Restart *executor.RestartRequest `bson:"restart,omitempty" json:"-"`
	// Apply and Delete are an apply's and a delete's requests; Objects what they touched, each with
	// its outcome (pending until the run ends).
	Apply       *executor.ApplyRequest  `bson:"apply,omitempty" json:"-"`
	Delete      *executor.DeleteRequest `bson:"delete,omitempty" json:"-"`
	Objects     []executor.Object       `bson:"objects,omitempty" json:"objects,omitempty"`
	Batch       Batch                   `bson:"batch" json:"batch"`
	RequestedBy string                  `bson:"requested_by,omitempty" json:"requested_by,omitempty"`
	// Token is the name of the API token the request came with (none when the server runs without auth).
	Token          string `bson:"token,omitempty" json:"token,omitempty"`
	IdempotencyKey string `bson:"idempotency_key,omitempty" json:"idempotency_key,omitempty"`
	// Owner is the replica that runs the deployment ("<name>@<incarnation>", replicas.go); another
	// takes it over if that one dies with it in flight.
	Owner string `bson:"owner,omitempty" json:"owner,omitempty"`
	// CancelRequestedAt is when a cancel was asked of a replica that does not run it: its owner
	// cancels it at its next heartbeat.
	CancelRequestedAt *time.Time     `bson:"cancel_requested_at,omitempty" json:"cancel_requested_at,omitempty"`
	State             executor.State `bson:"state" json:"state"`
	Error             string         `bson:"error,omitempty" json:"error,omitempty"`
	// Nodes is a list, not a map keyed by host: hosts hold dots, which MongoDB field names may not.
	Nodes []DeploymentNode `bson:"nodes" json:"nodes"`
	// Applications makes this a deployment of several applications (applications.go): it runs nothing
	// itself, and has no service, version or nodes of its own.
	Applications []Application `bson:"applications,omitempty" json:"applications,omitempty"`
	CreatedAt    time.Time     `bson:"created_at" json:"created_at"`
	StartedAt    *time.Time    `bson:"started_at,omitempty" json:"started_at,omitempty"`
	FinishedAt   *time.Time    `bson:"finished_at,omitempty" json:"finished_at,omitempty"`

	// HandRun is set on a record of kind manual: the hand run it records (handruns.go).
	HandRun *HandRun `bson:"hand_run,omitempty" json:"hand_run,omitempty"`
}

// Batch says how a deployment's nodes are run: Size nodes per ansible-playbook run (0: all in one), one
// batch after another; with StopOnFailure, no batch starts after one in which a node failed.
type Batch struct {
	Size          int  `bson:"size" json:"size"`
	StopOnFailure bool `bson:"stop_on_failure" json:"stop_on_failure"`
	// MaxUnavailable is the most nodes of the service this deployment lets be out of service at once,
	// with the other deployments in flight (0: no bound of its own).
	MaxUnavailable int `bson:"max_unavailable,omitempty" json:"max_unavailable,omitempty"`
}

// Width is how many of n nodes run at once.
func (b Batch) Width(n int) int {
	if b.Size <= 0 || b.Size > n {
		return n
	}
	return b.Size
}

// Split cuts a deployment's hosts into the batches they run in.
func (b Batch) Split(hosts []string) [][]string {
	size := b.Width(len(hosts))
	var out [][]string
	for start := 0; start < len(hosts); start += size {
		out = append(out, hosts[start:min(start+size, len(hosts))])
	}
	return out
}

// DeploymentNode is one node's outcome within a deployment.
type DeploymentNode struct {
	Host  string         `bson:"host" json:"host"`
	State executor.State `bson:"state" json:"state"`
	// TargetVersion is what this deployment puts on the node (a restart: the version it ran, which it
	// keeps); FromVersion what the node ran before it.
	TargetVersion  string `bson:"target_version" json:"target_version"`
	FromVersion    string `bson:"from_version,omitempty" json:"from_version,omitempty"`
	CurrentVersion string `bson:"current_version,omitempty" json:"current_version,omitempty"`
	PrevVersion    string `bson:"prev_version,omitempty" json:"prev_version,omitempty"`
	Changed        bool   `bson:"changed" json:"changed"`
	LastError      string `bson:"last_error,omitempty" json:"last_error,omitempty"`

	// RecordKept says, on a manual record, why the node's own record was not updated from it (a
	// deployment or a pass held the node).
	RecordKept string `bson:"record_kept,omitempty" json:"record_kept,omitempty"`
}

// DryRun says whether d is an apply or a delete that was to change nothing.
func (d *Deployment) DryRun() bool {
	switch {
	case d.Apply != nil:
		return d.Apply.DryRun
	case d.Delete != nil:
		return d.Delete.DryRun
	}
	return false
}

// Node finds a node of the deployment by host; nil if the deployment does not touch it.
func (d *Deployment) Node(host string) *DeploymentNode {
	for i := range d.Nodes {
		if d.Nodes[i].Host == host {
			return &d.Nodes[i]
		}
	}
	return nil
}

func (s *Store) deployments() *mongo.Collection { return s.nodes.Database().Collection("deployments") }
func (s *Store) idempotency() *mongo.Collection { return s.nodes.Database().Collection("idempotency") }

// CreateDeployment records a new deployment. With an idempotency key, the caller reserved the key
// first (ReserveKey); a key another deployment holds gets that deployment back, and created=false,
// unless that deployment's request was another (a *KeyReusedError).
func (s *Store) CreateDeployment(ctx context.Context, d *Deployment) (got *Deployment, created bool, err error) {
	if d.IdempotencyKey != "" {
		fingerprint := d.Fingerprint()
		holder, err := s.ReserveKey(ctx, d.IdempotencyKey, d.ID, fingerprint, d.CreatedAt)
		if err != nil {
			return nil, false, err
		}
		if holder.DeploymentID != d.ID {
			if holder.Reused(fingerprint) {
				return nil, false, &KeyReusedError{Key: d.IdempotencyKey, DeploymentID: holder.DeploymentID}
			}
			existing, err := s.Deployment(ctx, holder.DeploymentID)
			return existing, false, err
		}
	}
	if err := s.enterFlight(ctx, d); err != nil {
		return nil, false, err
	}
	if _, err := s.deployments().InsertOne(ctx, d); err != nil {
		s.leaveFlight(ctx, d.ID)
		return nil, false, fmt.Errorf("record deployment: %w", err)
	}
	return d, true, nil
}

// Deployment reads one deployment.
func (s *Store) Deployment(ctx context.Context, id string) (*Deployment, error) {
	var d Deployment
	err := s.deployments().FindOne(ctx, bson.M{"_id": id}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, notFound("deployment %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read deployment %s: %w", id, err)
	}
	return &d, nil
}

// UpdateDeployment writes a deployment's state and node outcomes (only its runner writes them), and a
// deployment of several's applications.
func (s *Store) UpdateDeployment(ctx context.Context, d *Deployment) error {
	set := bson.M{"state": d.State, "error": d.Error, "nodes": d.Nodes, "started_at": d.StartedAt, "finished_at": d.FinishedAt}
	if d.HasApplications() {
		set["applications"] = d.Applications
	}
	_, err := s.deployments().UpdateOne(ctx, bson.M{"_id": d.ID}, bson.M{"$set": set})
	if err != nil {
		return fmt.Errorf("update deployment %s: %w", d.ID, err)
	}
	if d.State.Terminal() {
		s.leaveFlight(ctx, d.ID)
	}
	return nil
}

// UpdateObjects writes an apply's or a delete's state and objects (only its runner writes them).
func (s *Store) UpdateObjects(ctx context.Context, d *Deployment) error {
	_, err := s.deployments().UpdateOne(ctx, bson.M{"_id": d.ID}, bson.M{"$set": bson.M{
		"state": d.State, "error": d.Error, "objects": d.Objects, "started_at": d.StartedAt, "finished_at": d.FinishedAt,
	}})
	if err != nil {
		return fmt.Errorf("update %s %s: %w", d.Kind, d.ID, err)
	}
	if d.State.Terminal() {
		s.leaveFlight(ctx, d.ID)
	}
	return nil
}

// Release gives a claimed node back as it was before the claim, when its deployment never ran on it.
// A node the deployment does not hold (any more) is left as it is.
func (s *Store) Release(ctx context.Context, deploymentID string, before *Node) error {
	id := before.ID
	if held, err := s.holds(ctx, id, deploymentID); err != nil || !held {
		return err
	}
	if err := s.restore(ctx, deploymentID, before); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	return s.giveBack(ctx, id, deploymentID)
}

// restore writes back the record a holder claimed (removes it if the claim created it), if the record
// still names holder as deploying it.
func (s *Store) restore(ctx context.Context, holder string, before *Node) error {
	id := before.ID
	defer s.lockNode(id)()
	defer s.writing(id)
	mine := bson.M{"_id": id, "deployment_id": holder, "state": executor.StateDeploying}
	if before.State == "" {
		_, err := s.nodes.DeleteOne(ctx, mine)
		return err
	}
	set := bson.M{"state": before.State, "deploying_version": "", "deployment_id": before.DeploymentID, "last_error": before.LastError}
	_, err := s.nodes.UpdateOne(ctx, mine, bson.M{"$set": set})
	return err
}

// ClaimAll claims every node of d (each for its TargetVersion), or none: on the first node held by
// someone else, the nodes already claimed are released and the BusyError says who holds it. It returns
// each node as it was before.
func (s *Store) ClaimAll(ctx context.Context, d *Deployment) (map[string]*Node, error) {
	before := make(map[string]*Node, len(d.Nodes))
	for _, n := range d.Nodes {
		prior, err := s.Claim(ctx, d.Service, n.Host, d.Platform, d.ID, n.TargetVersion)
		if err != nil {
			if relErr := s.ReleaseAll(ctx, d.ID, before); relErr != nil {
				return nil, &UnreleasedError{Claimed: before, Err: errors.Join(err, relErr)}
			}
			return nil, err
		}
		before[n.Host] = prior
	}
	return before, nil
}

// ReleaseAll gives back every node a deployment claimed but never ran on. The nodes it could not give
// back (the database did not answer) stay in claimed, and the error says why; the others are removed.
func (s *Store) ReleaseAll(ctx context.Context, deploymentID string, claimed map[string]*Node) error {
	var errs []error
	for host, prior := range claimed {
		if err := s.Release(context.WithoutCancel(ctx), deploymentID, prior); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", prior.ID, err))
			continue
		}
		delete(claimed, host)
	}
	return errors.Join(errs...)
}

// UnreleasedError means a claim failed half-way and some nodes it had claimed could not be given back;
// Claimed holds them, for the caller to release once the database answers again.
type UnreleasedError struct {
	Claimed map[string]*Node
	Err     error
}

func (e *UnreleasedError) Error() string { return e.Err.Error() }
func (e *UnreleasedError) Unwrap() error { return e.Err }

// DeploymentFilter selects deployments for a listing.
type DeploymentFilter struct {
	Service string
	// Node picks the deployments that had this node (its host, or a workload's namespace/name).
	Node  string
	State executor.State
	Limit int
	// Cursor is the last deployment of the previous page, as NextCursor returned it.
	Cursor string
}

// ListDeployments returns deployments newest first, one page at a time; next is "" on the last page.
func (s *Store) ListDeployments(ctx context.Context, f DeploymentFilter) (page []Deployment, next string, err error) {
	filter := bson.M{}
	if f.Service != "" {
		filter["service"] = f.Service
	}
	if f.State != "" {
		filter["state"] = f.State
	}
	if f.Node != "" {
		filter["nodes.host"] = f.Node
	}
	if f.Cursor != "" {
		at, id, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		filter["$or"] = bson.A{
			bson.M{"created_at": bson.M{"$lt": at}},
			bson.M{"created_at": at, "_id": bson.M{"$lt": id}},
		}
	}
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(f.Limit) + 1)
	cur, err := s.deployments().Find(ctx, filter, opts)
	if err != nil {
		return nil, "", fmt.Errorf("list deployments: %w", err)
	}
	page = []Deployment{}
	if err := cur.All(ctx, &page); err != nil {
		return nil, "", fmt.Errorf("list deployments: %w", err)
	}
	if len(page) > f.Limit {
		page = page[:f.Limit]
		last := page[len(page)-1]
		next = encodeCursor(last.CreatedAt, last.ID)
	}
	return page, next, nil
}

// ErrBadCursor means a listing cursor was not one this server made.
var ErrBadCursor = errors.New("cursor is not valid")

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	at, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", ErrBadCursor
	}
	return at, id, nil
}

// RequestCancel asks the replica that runs deployment id to cancel it (CancelRequestedAt).
func (s *Store) RequestCancel(ctx context.Context, id string) error {
	_, err := s.deployments().UpdateOne(ctx, bson.M{"_id": id, "state": inFlightStates()},
		bson.M{"$set": bson.M{"cancel_requested_at": time.Now().UTC()}})
	if err != nil {
		return fmt.Errorf("request the cancel of %s: %w", id, err)
	}
	return nil
}

// Nodes lists a service's node records (a scan: keep it off hot paths).
func (s *Store) Nodes(ctx context.Context, service string) ([]Node, error) {
	cur, err := s.nodes.Find(ctx, bson.M{"service": service}, options.Find().SetSort(bson.M{"_id": 1}))
	if err != nil {
		return nil, fmt.Errorf("list nodes of %s: %w", service, err)
	}
	var out []Node
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list nodes of %s: %w", service, err)
	}
	return out, nil
}
