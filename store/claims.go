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
	t, err := s.newestTicket(ctx, id)
	if t != nil || err != nil {
		return t, err
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

// Finding a node's newest ticket by _id alone: FerretDB runs no other filter in SQLite (the embedded
// default), where a query by node reads every ticket of every node (90 ms a claim at 1,200 tickets).
// The claim_heads collection holds, per node, a generation at or a little behind its newest (a hint
// written after each pass; two writers may race it backwards); the chain is read forward from it.

// claimHead is the hint of a node's newest generation.
type claimHead struct {
	Node       string `bson:"_id"`
	Generation int64  `bson:"generation"`
}

func (s *Store) claimHeads() *mongo.Collection { return s.nodes.Database().Collection("claim_heads") }

// ticket reads one generation of node's chain; nil when there is none.
func (s *Store) ticket(ctx context.Context, node string, generation int64) (*claimTicket, error) {
	return s.findTicket(ctx, node, bson.M{"_id": claimTicketID(node, generation)})
}

// findTicket reads the ticket of node's chain that filter finds first; nil when it finds none.
func (s *Store) findTicket(ctx context.Context, node string, filter bson.M, opts ...options.Lister[options.FindOneOptions]) (*claimTicket, error) {
	var t claimTicket
	err := s.claimTickets().FindOne(ctx, filter, opts...).Decode(&t)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read who holds %s: %w", node, err)
	}
	return &t, nil
}

// newestTicket reads node's newest ticket, nil when it has none: from its head hint (no hint: no
// ticket was written, or the first one's hint was not; the chain then starts at 1), forward.
func (s *Store) newestTicket(ctx context.Context, node string) (*claimTicket, error) {
	var head claimHead
	err := s.claimHeads().FindOne(ctx, bson.M{"_id": node}).Decode(&head)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("read who holds %s: %w", node, err)
	}
	start := max(head.Generation, 1)
	t, err := s.ticket(ctx, node, start)
	if err != nil {
		return nil, err
	}
	if t == nil {
		if head.Generation == 0 {
			return nil, nil // never claimed: a chain's first ticket is pruned only after a hint was written
		}
		return s.scanNewestTicket(ctx, node) // the hint raced back below what was pruned
	}
	for {
		next, err := s.ticket(ctx, node, t.Generation+1)
		if err != nil || next == nil {
			return t, err
		}
		t = next
	}
}

// scanNewestTicket finds node's newest ticket by a query on the node: correct whatever the hint says,
// but a scan of every ticket on SQLite.
func (s *Store) scanNewestTicket(ctx context.Context, node string) (*claimTicket, error) {
	return s.findTicket(ctx, node, bson.M{"node": node}, options.FindOne().SetSort(bson.D{{Key: "generation", Value: -1}}))
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
	_, err = s.claimHeads().UpdateOne(ctx, bson.M{"_id": next.Node}, bson.M{"$max": bson.M{"generation": next.Generation}}, options.UpdateOne().SetUpsert(true))
	if err == nil && next.Generation%32 == 0 {
		// Generations before the one before this are history no one reads again (the hint is past them).
		for g := max(next.Generation-33, 1); g < next.Generation-1; g++ {
			_, _ = s.claimTickets().DeleteOne(ctx, bson.M{"_id": claimTicketID(next.Node, g)})
		}
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
