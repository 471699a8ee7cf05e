package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Lease is a lock that nodeexec replicas sharing one database take in turns: a document of its own,
// taken, renewed and given back by one conditional update each. A holder that stops renewing it (its
// process died) loses it when it expires. The expiry is compared with the taker's clock: keep the
// lease's time to live well above the replicas' clock skew.
type Lease struct {
	Name   string `bson:"_id"`
	Holder string `bson:"holder"`
	// Pass is what the holder does under it (a cleanup pass's id).
	Pass string `bson:"pass"`
	// Tick is the newest scheduled time the lease was taken for: a tick is taken once, by one replica.
	Tick    time.Time `bson:"tick"`
	Expires time.Time `bson:"expires"`
}

// CleanupLease is the lease a cleanup pass runs under: one pass at a time across the replicas.
const CleanupLease = "cleanup"

// LeaseHeldError means the lease was not taken: another holder has it, or (TickTaken) the scheduled
// tick asked for was already taken, by this replica or another.
type LeaseHeldError struct {
	Lease     Lease
	TickTaken bool
}

func (e *LeaseHeldError) Error() string {
	if e.TickTaken {
		return fmt.Sprintf("lease %s: the tick was already taken (by %s for %s)", e.Lease.Name, e.Lease.Holder, e.Lease.Pass)
	}
	return fmt.Sprintf("lease %s is held by %s for %s until %s", e.Lease.Name, e.Lease.Holder, e.Lease.Pass, e.Lease.Expires.UTC().Format(time.RFC3339))
}

// ErrLeaseLost means a holder tried to renew or give back a lease that is no longer its own.
var ErrLeaseLost = errors.New("the lease is no longer held by this holder")

func (s *Store) leases() *mongo.Collection { return s.nodes.Database().Collection("leases") }

// TakeLease gives lease name to holder for pass until now+ttl, if no one holds it (it expired or was
// given back). A holder cannot take its own lease again while it holds it: two passes of one replica
// must not overlap either. With a tick (the time a schedule fired), the lease is taken only if no one
// took it for that tick or a later one, so each scheduled tick runs once across the replicas, however
// late one of them wakes. A lease not taken is a *LeaseHeldError naming the holder.
func (s *Store) TakeLease(ctx context.Context, name, holder, pass string, tick, now time.Time, ttl time.Duration) (*Lease, error) {
	return s.takeLease(ctx, name, holder, pass, tick, now, ttl, bson.M{"expires": bson.M{"$lte": now}})
}

// TakeEndedLease takes lease name over from pass ended, which its holder has not given back yet, for
// holder and pass until now+ttl: the caller knows ended is over (its record says so). A pass records its
// end before it gives the lease back, and a pass asked for in between must not be refused for it. The
// tick rule is TakeLease's. A *LeaseHeldError when the lease is held for another pass by then.
func (s *Store) TakeEndedLease(ctx context.Context, name, holder, pass, ended string, tick, now time.Time, ttl time.Duration) (*Lease, error) {
	return s.takeLease(ctx, name, holder, pass, tick, now, ttl, bson.M{"pass": ended})
}

// takeLease takes lease name when it matches free (and the tick rule), in one conditional upsert.
func (s *Store) takeLease(ctx context.Context, name, holder, pass string, tick, now time.Time, ttl time.Duration, free bson.M) (*Lease, error) {
	defer s.lockNode("lease/" + name)() // FerretDB does not run findAndModify atomically; see Store.stripes
	filter := bson.M{"_id": name}
	for k, v := range free {
		filter[k] = v
	}
	set := bson.M{"holder": holder, "pass": pass, "expires": now.Add(ttl)}
	update := bson.M{"$set": set}
	if tick.IsZero() {
		update["$setOnInsert"] = bson.M{"tick": time.Time{}}
	} else {
		filter["tick"] = bson.M{"$lt": tick}
		set["tick"] = tick
	}
	var got Lease
	err := s.leases().FindOneAndUpdate(ctx, filter, update,
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&got)
	if mongo.IsDuplicateKeyError(err) {
		// The lease exists and the filter did not match it: held, or the tick is taken.
		cur, readErr := s.Lease(ctx, name)
		if readErr != nil {
			return nil, fmt.Errorf("take lease %s: held, and reading it failed: %w", name, readErr)
		}
		return nil, &LeaseHeldError{Lease: *cur, TickTaken: !tick.IsZero() && !cur.Tick.Before(tick)}
	}
	if err != nil {
		return nil, fmt.Errorf("take lease %s: %w", name, err)
	}
	return &got, nil
}

// RenewLease moves the expiry of a lease holder holds for pass to now+ttl; ErrLeaseLost if it no
// longer holds it.
func (s *Store) RenewLease(ctx context.Context, name, holder, pass string, now time.Time, ttl time.Duration) error {
	return s.setLeaseExpiry(ctx, name, holder, pass, now.Add(ttl))
}

// ReleaseLease gives back a lease holder holds for pass: it expires now. Its tick stays, so a tick
// the pass ran for is not run again.
func (s *Store) ReleaseLease(ctx context.Context, name, holder, pass string, now time.Time) error {
	return s.setLeaseExpiry(ctx, name, holder, pass, now)
}

func (s *Store) setLeaseExpiry(ctx context.Context, name, holder, pass string, expires time.Time) error {
	defer s.lockNode("lease/" + name)()
	res, err := s.leases().UpdateOne(ctx, bson.M{"_id": name, "holder": holder, "pass": pass},
		bson.M{"$set": bson.M{"expires": expires}})
	if err != nil {
		return fmt.Errorf("lease %s: %w", name, err)
	}
	if res.MatchedCount == 0 {
		return ErrLeaseLost
	}
	return nil
}

// Lease reads a lease.
func (s *Store) Lease(ctx context.Context, name string) (*Lease, error) {
	var l Lease
	err := s.leases().FindOne(ctx, bson.M{"_id": name}).Decode(&l)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, notFound("lease %s", name)
	}
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", name, err)
	}
	return &l, nil
}
