package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/retry"
	"github.com/nodeexec/nodeexec/store"
)

// hub wakes the event streams of a deployment when its run records new events. Streams read the
// events themselves from the store; the hub only says "look again", so a slow reader never holds up
// a run, and a reader on another replica still sees everything (it polls instead).
type hub struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
}

// wait returns a channel closed at the next notify for id.
func (h *hub) wait(id string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters == nil {
		h.waiters = map[string]chan struct{}{}
	}
	ch, ok := h.waiters[id]
	if !ok {
		ch = make(chan struct{})
		h.waiters[id] = ch
	}
	return ch
}

func (h *hub) notify(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, ok := h.waiters[id]; ok {
		close(ch)
		delete(h.waiters, id)
	}
}

// recorder numbers and stores one deployment's events; one writer per deployment.
type recorder struct {
	e  *Engine
	id string
	// mu orders events from the run and from the executor's live progress.
	mu  sync.Mutex
	seq int64
}

func (e *Engine) recorder(id string, lastSeq int64) *recorder {
	return &recorder{e: e, id: id, seq: lastSeq}
}

func (r *recorder) emit(ctx context.Context, evs ...store.Event) {
	if len(evs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now().UTC()
	for i := range evs {
		r.seq++
		evs[i].DeploymentID, evs[i].Seq = r.id, r.seq
		if evs[i].Time.IsZero() {
			evs[i].Time = now
		}
	}
	if err := r.e.cfg.Store.AppendEvents(ctx, evs); err != nil {
		r.e.cfg.Logger.WithField("deployment_id", r.id).WithError(err).Error("could not record events")
	}
	r.e.hub.notify(r.id)
}

// finishNode records one node's outcome on its record and in the deployment, and returns its events:
// the steps that ran on it, then its new state.
func (e *Engine) finishNode(ctx context.Context, x *run, r executor.NodeResult) []store.Event {
	r.Service = x.d.Service
	if err := e.persist(ctx, func(ctx context.Context) error { _, err := e.cfg.Store.Finish(ctx, x.d.ID, r.NodeStatus); return err }); err != nil {
		x.log.WithField("node", r.Host).WithError(err).Error("could not record the node's end")
	}
	var evs []store.Event
	// Steps the executor did not stream live (or all, for one that cannot) are recorded now.
	for i := x.streamedSteps(r.Host); i < len(r.Steps); i++ {
		step := r.Steps[i]
		e.metrics.Step(x.d.Platform, x.d.Service, step)
		step = boundStep(step)
		evs = append(evs, store.Event{Type: store.EventStep, Node: r.Host, Step: &step, Message: stepLine(step)})
	}
	if ev := r.Evidence; ev != nil {
		ev = boundEvidence(*ev)
		evs = append(evs, store.Event{Type: store.EventEvidence, Node: r.Host, Evidence: ev, Message: evidenceLine(ev)})
	}
	if r.Stderr != "" && r.State != executor.StateSuccess && r.State != executor.StateRolledBack {
		evs = append(evs, store.Event{Type: store.EventStep, Node: r.Host, Message: "ansible-playbook stderr: " + truncate(r.Stderr, 4096)})
	}
	msg := "runs " + OrNothing(r.CurrentVersion)
	if r.LastError != "" {
		msg = r.LastError
	}
	evs = append(evs, store.Event{Type: store.EventNode, Node: r.Host, State: r.State, Message: msg})
	if n := x.d.Node(r.Host); n != nil {
		n.State, n.CurrentVersion, n.PrevVersion, n.Changed, n.LastError = r.State, r.CurrentVersion, r.PrevVersion, r.Changed, r.LastError
		if foundBefore(x.d, n, r) {
			n.FromVersion = r.PrevVersion
		}
	}
	return evs
}

// end records the deployment's final state, then announces it: the last event is written after the
// record, so whoever sees it reads the final record.
func (e *Engine) end(ctx context.Context, x *run, evs []store.Event) {
	d := x.d
	d.State = overallState(d)
	d.Error = executor.CleanError(d.Error)
	now := time.Now().UTC()
	d.FinishedAt = &now
	if err := e.persist(ctx, func(ctx context.Context) error { return e.cfg.Store.UpdateDeployment(ctx, d) }); err != nil {
		x.log.WithError(err).Error("could not record the deployment's end")
	}
	// Counted before the last event: whoever sees the end sees it in the metrics too.
	e.metrics.Ended(d)
	x.flight.Done()
	msg := fmt.Sprintf("%s ended %s", d.Kind, d.State)
	if d.Error != "" {
		msg += ": " + d.Error
	}
	x.rec.emit(ctx, append(evs, store.Event{Type: store.EventDeployment, State: d.State, Message: msg})...)
	e.refreshParent(ctx, d)
	if e.cfg.Notifier != nil {
		e.cfg.Notifier.Deployment(d) // queued, never waited on
	}
	x.log.WithField("state", d.State).Info("deployment finished")
}

// save records the deployment and then its events.
func (e *Engine) save(ctx context.Context, x *run, evs ...store.Event) {
	if err := e.persist(ctx, func(ctx context.Context) error { return e.cfg.Store.UpdateDeployment(ctx, x.d) }); err != nil {
		x.log.WithError(err).Error("could not record the deployment")
	}
	x.rec.emit(ctx, evs...)
	e.refreshParent(ctx, x.d)
}

// persist writes one of a run's records, through a database blip: transient failures are retried
// with backoff (StoreRetry, about 40 s in all).
func (e *Engine) persist(ctx context.Context, write func(context.Context) error) error {
	return e.cfg.StoreRetry.Do(ctx, func() (bool, error) {
		err := write(ctx)
		if store.IsTransient(err) && e.cfg.Hooks.PersistFailed != nil {
			e.cfg.Hooks.PersistFailed()
		}
		return store.IsTransient(err), err
	})
}

// overallState: a deployment reaches its goal when every node did; otherwise it failed.
func overallState(d *store.Deployment) executor.State {
	for _, n := range d.Nodes {
		if n.State != goal(d) {
			return executor.StateFailed
		}
	}
	return goal(d)
}

// storeBackoff paces the writes that must reach the database once it answers again (the claims and
// the key a failed request leaves behind): 200 ms, doubling up to 30 s, until the engine stops.
var storeBackoff = retry.Policy{MaxRetries: retry.Forever, InitialDelay: 200 * time.Millisecond, MaxDelay: 30 * time.Second, Factor: 2}

// releaseLater gives back nodes a request claimed but could not record, once the database answers
// again: until then they would look held by a deployment that does not exist. It retries with backoff
// until done or the engine stops.
func (e *Engine) releaseLater(deploymentID string, claimed map[string]*store.Node) {
	if len(claimed) == 0 {
		return
	}
	log := e.cfg.Logger.WithField("deployment_id", deploymentID)
	log.WithField("nodes", len(claimed)).Warn("the database failed mid-request: releasing the nodes it claimed once it answers")
	e.background.Add(1)
	go func() {
		defer e.background.Done()
		err := storeBackoff.Do(e.ctx, func() (bool, error) {
			return true, e.cfg.Store.ReleaseAll(e.ctx, deploymentID, claimed)
		})
		if err != nil {
			log.WithError(err).Error("stopping with nodes still claimed by an unrecorded request; a later deploy takes them over")
			return
		}
		log.Info("released the nodes of the unrecorded request")
		if e.cfg.Hooks.Released != nil {
			e.cfg.Hooks.Released(deploymentID)
		}
	}()
}

// foundBefore says whether what the executor found running before a deploy should be what a rollback
// of it goes back to, rather than nodeexec's record: when there is no record (a workload nodeexec never
// deployed, a node deployed by hand), and on Kubernetes, where the cluster is the truth (an image set
// with kubectl or Helm between two deploys is what really ran before the second).
func foundBefore(d *store.Deployment, n *store.DeploymentNode, r executor.NodeResult) bool {
	if d.Kind != store.KindDeploy || !r.Changed || r.PrevVersion == "" || r.CurrentVersion != n.TargetVersion {
		return false
	}
	return n.FromVersion == "" || (d.Platform == executor.PlatformK8s && r.PrevVersion != n.TargetVersion)
}
