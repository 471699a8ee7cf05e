package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Replica is one nodeexec process among those that share the database, as its heartbeat says. Name is
// the replica's own (kept across its restarts); Incarnation is new at each start, so the deployments a
// previous incarnation left in flight are known to be nobody's the moment the replica starts again.
type Replica struct {
	Name        string    `bson:"_id" json:"name"`
	Incarnation string    `bson:"incarnation" json:"incarnation"`
	StartedAt   time.Time `bson:"started_at" json:"started_at"`
	HeartbeatAt time.Time `bson:"heartbeat_at" json:"heartbeat_at"`
}

// Owner is what a deployment this incarnation runs records as its owner: "<name>@<incarnation>".
func (r Replica) Owner() string { return r.Name + "@" + r.Incarnation }

// SplitOwner cuts an owner into the replica's name and incarnation.
func SplitOwner(owner string) (name, incarnation string) {
	i := strings.LastIndex(owner, "@")
	if i < 0 {
		return owner, ""
	}
	return owner[:i], owner[i+1:]
}

func (s *Store) replicas() *mongo.Collection { return s.nodes.Database().Collection("replicas") }

// Heartbeat records that replica r is alive at r.HeartbeatAt. Each replica writes only its own document.
func (s *Store) Heartbeat(ctx context.Context, r Replica) error {
	_, err := s.replicas().UpdateOne(ctx, bson.M{"_id": r.Name},
		bson.M{"$set": bson.M{"incarnation": r.Incarnation, "started_at": r.StartedAt, "heartbeat_at": r.HeartbeatAt}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("heartbeat of replica %s: %w", r.Name, err)
	}
	return nil
}

// Replicas lists every replica that ever heartbeat, by name.
func (s *Store) Replicas(ctx context.Context) (map[string]Replica, error) {
	cur, err := s.replicas().Find(ctx, bson.M{})
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	var all []Replica
	if err := cur.All(ctx, &all); err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	out := make(map[string]Replica, len(all))
	for _, r := range all {
		out[r.Name] = r
	}
	return out, nil
}

func (s *Store) deploymentTakeovers() *mongo.Collection {
	return s.nodes.Database().Collection("deployment_takeovers")
}

// deploymentTakeover is the ticket of one deployment's takeover from one owner: of replicas that take
// over a dead replica's deployment at once, the one whose insert gets in owns it.
type deploymentTakeover struct {
	ID string    `bson:"_id"` // "<deployment id> from <owner>"
	To string    `bson:"to"`
	At time.Time `bson:"at"`
}

// TakeOverDeployment makes to the owner of deployment id, which from owned and left in flight (it died,
// or an earlier incarnation of to did). False when another replica took it over first, or the
// deployment is owned by someone else by now. A taker that won the ticket and died before it wrote the
// owner (alive says it is not) is passed over with the next ticket in the chain.
func (s *Store) TakeOverDeployment(ctx context.Context, id, from, to string, alive func(owner string) bool) (bool, error) {
	ticket := id + " from " + from
	for range 5 {
		_, err := s.deploymentTakeovers().InsertOne(ctx, deploymentTakeover{ID: ticket, To: to, At: time.Now().UTC()})
		if mongo.IsDuplicateKeyError(err) {
			var won deploymentTakeover
			if err := s.deploymentTakeovers().FindOne(ctx, bson.M{"_id": ticket}).Decode(&won); err != nil {
				return false, fmt.Errorf("take over deployment %s: %w", id, err)
			}
			switch {
			case won.To == to: // this replica won it before and did not get to write the owner
			case alive(won.To):
				return false, nil
			default:
				ticket += " then " + won.To
				continue
			}
		} else if err != nil {
			return false, fmt.Errorf("take over deployment %s: %w", id, err)
		}
		// The ticket's winner is the only writer of the owner while from owns it.
		res, err := s.deployments().UpdateOne(ctx, bson.M{"_id": id, "owner": ownerFilter(from)}, bson.M{"$set": bson.M{"owner": to}})
		if err != nil {
			return false, fmt.Errorf("take over deployment %s: %w", id, err)
		}
		return res.MatchedCount == 1, nil
	}
	return false, nil
}

// ownerFilter matches owner; "" also matches a deployment recorded before owners were.
func ownerFilter(owner string) any {
	if owner == "" {
		return bson.M{"$in": bson.A{"", nil}}
	}
	return owner
}
