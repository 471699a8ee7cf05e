package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/executor"
)

// Hand runs: an operator's own ansible-playbook run of the bundled playbooks, reported to nodeexec
// afterwards (POST /api/v1/reports) and recorded as a deployment of kind manual.

// KindManual records a hand run of a playbook as its report told it: who ran it, and each node's
// outcome. nodeexec ran nothing of it, so it is recorded already ended, and never run or rolled back.
const KindManual = "manual"

// HandRun is what a manual record knows of the run beyond a deployment's fields.
type HandRun struct {
	// Playbook is the playbook the operator ran: deploy, rollback or restart.
	Playbook string `bson:"playbook" json:"playbook"`
	// ReportID is the id the playbook gave its report, so a report posted twice is recorded once.
	ReportID string `bson:"report_id,omitempty" json:"report_id,omitempty"`
	// Fingerprint is a digest of the report: the same ReportID with another report is refused.
	Fingerprint string `bson:"fingerprint,omitempty" json:"-"`
}

// RecordHandRun records a hand run's outcome on a node's record, as Finish records a deployment's end
// (versions, state, last error), naming deploymentID, the manual record, in one conditional update. A
// node that a deployment or a pass holds now is left as it is (a *BusyError naming the holder): its
// holder's end will record what the node runs. A node nodeexec did not know is recorded. It returns
// the record as it was before (nil when this call created it).
func (s *Store) RecordHandRun(ctx context.Context, deploymentID string, st executor.NodeStatus) (*Node, error) {
	id := NodeID(st.Service, st.Host)
	release, err := s.holdBriefly(ctx, id, st.Host, deploymentID)
	if err != nil {
		return nil, err
	}
	defer release()
	defer s.lockNode(id)()
	defer s.writing(id)
	now := time.Now().UTC()
	held := bson.A{executor.StateDeploying, executor.StatePending}
	filter := bson.M{"_id": id, "state": bson.M{"$nin": held}}
	update := bson.M{
		"$set": bson.M{"service": st.Service, "host": st.Host, "platform": st.Platform, "state": st.State,
			"current_version": st.CurrentVersion, "prev_version": st.PrevVersion, "deploying_version": "",
			"last_error": st.LastError, "deployment_id": deploymentID, "updated_at": now},
		"$setOnInsert": bson.M{"created_at": now},
	}
	var before Node
	err = s.nodes.FindOneAndUpdate(ctx, filter, update,
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.Before)).Decode(&before)
	switch {
	case mongo.IsDuplicateKeyError(err):
		// The node exists and the filter did not match it: a deployment or a pass holds it.
		holder, getErr := s.readNode(ctx, id)
		if getErr != nil {
			return nil, fmt.Errorf("record hand run on %s: held, and reading the holder failed: %w", id, getErr)
		}
		return nil, &BusyError{Node: st.Host, DeploymentID: holder.DeploymentID}
	case errors.Is(err, mongo.ErrNoDocuments):
		return nil, nil // created by this call
	case err != nil:
		return nil, fmt.Errorf("record hand run on %s: %w", id, err)
	}
	return &before, nil
}

// holdBriefly takes node id's claim for a write of one record on behalf of what (a manual record's id,
// "forget"), and returns how to give it back. A node held by another is a *BusyError naming host and
// the holder.
func (s *Store) holdBriefly(ctx context.Context, id, host, what string) (release func(), err error) {
	holder := briefHolder(what)
	now := time.Now().UTC()
	if _, _, err := s.take(ctx, id, holder, func(c *claimTicket) bool { return s.orphaned(ctx, c, now) }); err != nil {
		if busy := (*BusyError)(nil); errors.As(err, &busy) {
			busy.Node = host
		}
		return nil, err
	}
	return func() { _ = s.giveBack(context.WithoutCancel(ctx), id, holder) }, nil
}
