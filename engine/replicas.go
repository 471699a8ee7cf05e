package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/nodeexec/nodeexec/store"
)

// ReplicaConfig places the engine among the nodeexec replicas that share its database.
type ReplicaConfig struct {
	// Name tells this replica from the others and stays across its restarts; default: the host name.
	Name string
	// Lease is how long a replica may go without a heartbeat before another takes over its deployments
	// in flight; it heartbeats every sixth of it. Default DefaultReplicaLease.
	Lease time.Duration
}

// DefaultReplicaLease is the replica lease unless configured.
const DefaultReplicaLease = 30 * time.Second

// errReplicaDied is why a deployment taken over from a dead replica ended.
const errReplicaDied = "interrupted: the nodeexec replica that ran it stopped (no heartbeat within its lease); another replica read each node's outcome from the node"

// newReplica is this process as a replica: its name, and an incarnation no earlier start had.
func newReplica(cfg *ReplicaConfig) store.Replica {
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultReplicaLease
	}
	if cfg.Name == "" {
		cfg.Name, _ = os.Hostname()
		if cfg.Name == "" {
			cfg.Name = "nodeexec"
		}
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	now := time.Now().UTC()
	return store.Replica{Name: cfg.Name, Incarnation: hex.EncodeToString(b), StartedAt: now, HeartbeatAt: now}
}

// Owner is what the deployments this process runs record as their owner.
func (e *Engine) Owner() string { return e.self.Owner() }

// heartbeat records that this replica is alive now.
func (e *Engine) heartbeat(ctx context.Context) error {
	r := e.self
	r.HeartbeatAt = time.Now().UTC()
	return e.cfg.Store.Heartbeat(ctx, r)
}

// adopt takes over the deployments in flight whose owner is dead: a replica whose heartbeat is older
// than the lease, an earlier incarnation of this replica or of another, nobody (recorded before owners
// were), or any other process when this one is the database's only user. Of replicas that adopt one at once, one gets it (store.TakeOverDeployment); it reads
// each node's outcome from the node and gives the deployment a true end, as a restart does.
func (e *Engine) adopt(ctx context.Context, why string) error {
	flight, err := e.cfg.Store.InFlight(ctx)
	if err != nil {
		return err
	}
	if len(flight) == 0 {
		return nil
	}
	replicas, err := e.cfg.Store.Replicas(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	alive := func(owner string) bool {
		if owner == e.Owner() {
			return true
		}
		if e.cfg.Store.Exclusive() {
			return false // no other process uses the database: whoever owned it died
		}
		name, incarnation := store.SplitOwner(owner)
		r, ok := replicas[name]
		return ok && r.Incarnation == incarnation && now.Sub(r.HeartbeatAt) < e.cfg.Replica.Lease
	}
	// A ticket's winner may have started after replicas was read: read them again before counting it dead.
	aliveNow := func(owner string) bool {
		if alive(owner) {
			return true
		}
		if fresh, err := e.cfg.Store.Replicas(ctx); err == nil {
			replicas = fresh
		}
		return alive(owner)
	}
	var lost []store.Deployment
	for _, d := range flight {
		if d.Owner == e.Owner() && d.CancelRequestedAt != nil && e.Cancel(d.ID) {
			e.cfg.Logger.WithFields(logrus.Fields{"deployment_id": d.ID, "service": d.Service, "version": d.Version}).
				Info("cancelling a deployment as asked of another replica")
		}
		if alive(d.Owner) {
			continue
		}
		won, err := e.cfg.Store.TakeOverDeployment(ctx, d.ID, d.Owner, e.Owner(), aliveNow)
		if err != nil {
			return err
		}
		if !won {
			continue
		}
		e.cfg.Logger.WithFields(logrus.Fields{"deployment_id": d.ID, "service": d.Service, "version": d.Version,
			"from": d.Owner, "to": e.Owner()}).Warn("taking over a deployment its replica left in flight")
		d.Owner = e.Owner()
		lost = append(lost, d)
	}
	return e.settleLost(ctx, lost, why)
}

// WatchReplicas heartbeats for this replica, cancels its runs whose cancel was asked of another
// replica, and adopts what dead replicas left in flight, every sixth of the lease, until Shutdown. Start it after Reconcile.
func (e *Engine) WatchReplicas() {
	e.watching.Add(1)
	go func() {
		defer e.watching.Done()
		t := time.NewTicker(e.cfg.Replica.Lease / 6)
		defer t.Stop()
		for {
			select {
			case <-e.stopWatch:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Replica.Lease/2)
			if err := e.heartbeat(ctx); err != nil {
				e.cfg.Logger.WithError(err).Warn("replica heartbeat failed; past the lease, other replicas take over this one's deployments")
			} else if err := e.adopt(ctx, errReplicaDied); err != nil {
				e.cfg.Logger.WithError(err).Warn("taking over the deployments of a dead replica failed; tried again at the next heartbeat")
			}
			cancel()
		}
	}()
}

// create records a deployment this replica runs, as its owner.
func (e *Engine) create(ctx context.Context, d *store.Deployment) (*store.Deployment, bool, error) {
	d.Owner = e.Owner()
	return e.cfg.Store.CreateDeployment(ctx, d)
}

// ReplicaLease is how long a replica may be silent before it counts as dead.
func (e *Engine) ReplicaLease() time.Duration { return e.cfg.Replica.Lease }
