package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/nodeexec/nodeexec/executor"
)

// Who holds a node (a deployment, a cleanup or drift pass, or for a moment a hand run's report or a
// forget) is a chain of claim tickets, one document per change of holder, "<node>#<generation>",
// inserted with a unique _id. Of two replicas that take a node at once, both read generation g and
// insert g+1: the database lets one in. That holds on MongoDB and on FerretDB over PostgreSQL or SQLite
// alike, where a conditional update is a read and then a write. Giving a node back is inserting the next
// generation with no holder, so a stale holder can never give back (or overwrite) a newer claim: its
// insert collides with the generation that replaced it. The node's record (state, versions) is written
// only by the ticket's holder, between taking and giving back.
type claimTicket struct {
	ID         string    `bson:"_id"`
	Node       string    `bson:"node"`
	Generation int64     `bson:"generation"`
	Holder     string    `bson:"holder"` // "": no one holds the node
	At         time.Time `bson:"at"`
}

func (s *Store) claimTickets() *mongo.Collection { return s.nodes.Database().Collection("claims") }

func claimTicketID(node string, generation int64) string {
	return fmt.Sprintf("%s#%012d", node, generation)
}

// briefPrefix marks a holder that holds a node only while it writes one record: a hand run's report, a
// forget. Such a holder left behind (its process died mid-write) is taken over after OrphanGrace.
const briefPrefix = "recording:"

// briefHolder is the holder name of a write that holds a node for a moment (what names it: a manual
// record's id, "forget").
func briefHolder(what string) string {
	return fmt.Sprintf("%s%s@%d", briefPrefix, what, time.Now().UnixNano())
}

// holding reads who holds node id now: its newest ticket. A node with no ticket yet (never claimed, or
// recorded before tickets) is held by what its record says: the deployment it names while deploying.
func (s *Store) holding(ctx context.Context, id string) (*claimTicket, error) {
	var t claimTicket
	err := s.claimTickets().FindOne(ctx, bson.M{"node": id}, options.FindOne().SetSort(bson.D{{Key: "generation", Value: -1}})).Decode(&t)
	if err == nil {
		return &t, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("read who holds %s: %w", id, err)
	}
	n, err := s.readNode(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return &claimTicket{Node: id}, nil
	case err != nil:
		return nil, err
	case n.State == executor.StateDeploying:
		return &claimTicket{Node: id, Holder: n.DeploymentID, At: n.UpdatedAt}, nil
	}
	return &claimTicket{Node: id}, nil
}

// pass inserts the generation after cur, held by holder ("": given back). False when another insert
// of that generation got in first: whoever made it holds the node now.
func (s *Store) pass(ctx context.Context, cur *claimTicket, holder string) (*claimTicket, bool, error) {
	next := &claimTicket{Node: cur.Node, Generation: cur.Generation + 1, Holder: holder, At: time.Now().UTC()}
	next.ID = claimTicketID(next.Node, next.Generation)
	_, err := s.claimTickets().InsertOne(ctx, next)
	if mongo.IsDuplicateKeyError(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("write the claim on %s: %w", cur.Node, err)
	}
	if next.Generation%32 == 0 {
		// Generations before the one before this are history no one reads again.
		_, _ = s.claimTickets().DeleteMany(ctx, bson.M{"node": next.Node, "generation": bson.M{"$lt": next.Generation - 1}})
	}
	return next, true, nil
}

// take makes holder the holder of node id when no one holds it, or when orphaned says the present
// holder left its claim behind (tookOver is then that claim). Holding it already, it succeeds with
// fresh false. Otherwise a *BusyError naming the holder.
func (s *Store) take(ctx context.Context, id, holder string, orphaned func(*claimTicket) bool) (fresh bool, tookOver *claimTicket, err error) {
	for range 8 {
		cur, err := s.holding(ctx, id)
		if err != nil {
			return false, nil, err
		}
		if cur.Holder == holder {
			return false, nil, nil
		}
		var over *claimTicket
		if cur.Holder != "" {
			if orphaned == nil || !orphaned(cur) {
				return false, nil, &BusyError{Node: id, DeploymentID: cur.Holder}
			}
			over = cur
		}
		_, won, err := s.pass(ctx, cur, holder)
		if err != nil {
			return false, nil, err
		}
		if won {
			return true, over, nil
		}
		// Another took the generation first: read who holds the node now.
	}
	return false, nil, fmt.Errorf("claim %s: it changed hands too often while claimed; try again", id)
}

// giveBack frees node id if holder holds it: nil when it does not (any more), ErrNotHeld when another
// took it while giving back.
func (s *Store) giveBack(ctx context.Context, id, holder string) error {
	cur, err := s.holding(ctx, id)
	if err != nil {
		return err
	}
	if cur.Holder != holder {
		return nil
	}
	if _, won, err := s.pass(ctx, cur, ""); err != nil {
		return err
	} else if !won {
		return fmt.Errorf("give back %s: %s: %w", id, holder, ErrNotHeld)
	}
	return nil
}

// holds says whether holder holds node id now.
func (s *Store) holds(ctx context.Context, id, holder string) (bool, error) {
	cur, err := s.holding(ctx, id)
	if err != nil {
		return false, err
	}
	return cur.Holder == holder, nil
}

// orphaned says whether claim c was left behind: older than OrphanGrace, and its holder is a request
// that failed before recording its deployment, a deployment that ended without giving the node back,
// a pass that no longer runs (its nodeexec stopped, and with it the renewal of its lease), or a brief
// write whose process died.
func (s *Store) orphaned(ctx context.Context, c *claimTicket, now time.Time) bool {
	if c.Holder == "" || now.Sub(c.At) < OrphanGrace {
		return false
	}
	switch {
	case strings.HasPrefix(c.Holder, briefPrefix):
		return true
	case IsCleanupID(c.Holder):
		return !s.cleanupAlive(ctx, c.Holder, now)
	case IsDriftID(c.Holder):
		return !s.driftAlive(ctx, c.Holder, now)
	}
	d, err := s.Deployment(ctx, c.Holder)
	if errors.Is(err, ErrNotFound) {
		return true
	}
	return err == nil && d.State.Terminal()
}

// orphanedBefore is what a node claimed over orphan was before: the versions on its record are still
// the node's, but the state the orphan claimed it from is lost. If this claim is given back too, the
// node says what happened rather than pretend a state.
func orphanedBefore(before *Node, orphan *claimTicket) {
	before.State, before.DeploymentID = executor.StateFailed, ""
	switch {
	case IsCleanupID(orphan.Holder):
		before.LastError = "cleanup pass " + orphan.Holder + " held this node and stopped before giving it back"
	case IsDriftID(orphan.Holder):
		before.LastError = "drift pass " + orphan.Holder + " held this node and stopped before giving it back"
	default:
		before.LastError = "a request claimed this node and failed before it was recorded; it did not touch the node"
	}
}
