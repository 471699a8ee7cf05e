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

// Lease is a lock that nodeexec replicas sharing one database take in turns. Each taking is a document
// of its own, the lease's next generation, inserted with a unique _id ("<name>#<generation>"): two
// replicas that take it at once insert the same _id, and the database lets one of them in. That holds
// on MongoDB and on FerretDB over PostgreSQL or SQLite alike, where an update that matches on a field
// is a read and then a write. The newest generation is the lease; only its holder ever writes to it
// (to renew or give it back), and a holder whose generation is no longer the newest has lost it: the
// generation is its fencing token. A holder that stops renewing (its process died) loses the lease when
// it expires. The expiry is compared with the taker's clock: keep the lease's time to live well above
// the replicas' clock skew.
type Lease struct {
	ID         string `bson:"_id"`
	Name       string `bson:"name"`
	Generation int64  `bson:"generation"`
	Holder     string `bson:"holder"`
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
	return s.takeLease(ctx, name, holder, pass, tick, now, ttl, func(cur *Lease) bool { return !cur.Expires.After(now) })
}

// TakeEndedLease takes lease name over from pass ended, which its holder has not given back yet, for
// holder and pass until now+ttl: the caller knows ended is over (its record says so). A pass records its
// end before it gives the lease back, and a pass asked for in between must not be refused for it. The
// tick rule is TakeLease's. A *LeaseHeldError when the lease is held for another pass by then.
func (s *Store) TakeEndedLease(ctx context.Context, name, holder, pass, ended string, tick, now time.Time, ttl time.Duration) (*Lease, error) {
	return s.takeLease(ctx, name, holder, pass, tick, now, ttl, func(cur *Lease) bool { return cur.Pass == ended })
}

// takeLease inserts the lease's next generation for holder when free says the newest one may be
// taken (and the tick rule allows): one insert, which one taker wins.
func (s *Store) takeLease(ctx context.Context, name, holder, pass string, tick, now time.Time, ttl time.Duration, free func(*Lease) bool) (*Lease, error) {
	cur, err := s.Lease(ctx, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("take lease %s: %w", name, err)
	}
	next := &Lease{Name: name, Generation: 1, Holder: holder, Pass: pass, Tick: tick, Expires: now.Add(ttl)}
	if cur != nil {
		if err := refusal(cur, tick, free); err != nil {
			return nil, err
		}
		next.Generation = cur.Generation + 1
		if cur.Tick.After(next.Tick) {
			next.Tick = cur.Tick // ticks only move forward: an unscheduled pass does not open old ticks again
		}
	}
	next.ID = leaseID(name, next.Generation)
	_, err = s.leases().InsertOne(ctx, next)
	if mongo.IsDuplicateKeyError(err) {
		// Another taker inserted this generation first: it holds the lease now.
		won, readErr := s.Lease(ctx, name)
		if readErr != nil {
			return nil, fmt.Errorf("take lease %s: taken by another, and reading it failed: %w", name, readErr)
		}
		return nil, refusal(won, tick, func(*Lease) bool { return false })
	}
	if err != nil {
		return nil, fmt.Errorf("take lease %s: %w", name, err)
	}
	// Generations before the one before this are history no one writes again.
	_, _ = s.leases().DeleteMany(ctx, bson.M{"name": name, "generation": bson.M{"$lt": next.Generation - 1}})
	return next, nil
}

// refusal says why the newest generation cur may not be taken for tick (nil: it may).
func refusal(cur *Lease, tick time.Time, free func(*Lease) bool) error {
	if !tick.IsZero() && !cur.Tick.Before(tick) {
		return &LeaseHeldError{Lease: *cur, TickTaken: true}
	}
	if !free(cur) {
		return &LeaseHeldError{Lease: *cur}
	}
	return nil
}

func leaseID(name string, generation int64) string { return fmt.Sprintf("%s#%012d", name, generation) }

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

// setLeaseExpiry writes the expiry of holder's generation, which only holder writes. Read again after
// the write: a newer generation taken in between (the lease had expired) is the lease, and holder has
// lost it whatever it wrote on its own.
func (s *Store) setLeaseExpiry(ctx context.Context, name, holder, pass string, expires time.Time) error {
	cur, err := s.Lease(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("lease %s: %w", name, err)
	}
	if cur.Holder != holder || cur.Pass != pass {
		return ErrLeaseLost
	}
	if _, err := s.leases().UpdateOne(ctx, bson.M{"_id": cur.ID, "holder": holder, "pass": pass},
		bson.M{"$set": bson.M{"expires": expires}}); err != nil {
		return fmt.Errorf("lease %s: %w", name, err)
	}
	after, err := s.Lease(ctx, name)
	if err != nil {
		return fmt.Errorf("lease %s: %w", name, err)
	}
	if after.Generation != cur.Generation {
		return ErrLeaseLost
	}
	return nil
}

// Lease reads a lease: its newest generation. (A lease recorded before generations, one document
// whose _id is the lease's name, reads as generation 0.)
func (s *Store) Lease(ctx context.Context, name string) (*Lease, error) {
	var l Lease
	err := s.leases().FindOne(ctx, bson.M{"$or": bson.A{bson.M{"name": name}, bson.M{"_id": name}}},
		options.FindOne().SetSort(bson.D{{Key: "generation", Value: -1}})).Decode(&l)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, notFound("lease %s", name)
	}
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", name, err)
	}
	l.Name = name
	return &l, nil
}
