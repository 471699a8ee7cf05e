package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// A service's nodes out of service at once, across deployments: each physical deployment in flight
// takes up to its batch's width of the service's nodes out of service (restarting them), so a new one
// is accepted only when the widths of all of them together stay within every bound in play: its own
// max_unavailable and those the deployments in flight were accepted with.

// UnavailableError refuses a deployment that would exceed a max_unavailable bound.
type UnavailableError struct {
	Service string
	// Max is the bound exceeded, and BoundOf the deployment whose bound it is ("": the new one's own).
	Max     int
	BoundOf string
	// Total is how many of the service's nodes would be out of service at once with the new one.
	Total int
	// InFlight are the service's deployments in flight, "d-… (N at once)"; First is the first one's id.
	InFlight []string
	First    string
}

func (e *UnavailableError) Error() string {
	beside := "nothing else in flight"
	if len(e.InFlight) > 0 {
		beside = strings.Join(e.InFlight, ", ") + " in flight"
	}
	whose := "its own max_unavailable"
	if e.BoundOf != "" {
		whose = "the max_unavailable of " + e.BoundOf
	}
	return fmt.Sprintf("max_unavailable: with %s, %d nodes of %s would be out of service at once, more than %d (%s); "+
		"wait for them to end, or send a smaller batch_size", beside, e.Total, e.Service, e.Max, whose)
}

// checkUnavailable refuses d when it and the service's physical deployments in flight would take more of
// its nodes out of service at once than a bound in play allows.
func (e *Engine) checkUnavailable(ctx context.Context, d *store.Deployment) error {
	if d.Platform != executor.PlatformPhysical {
		return nil
	}
	flight, err := e.cfg.Store.FlightOf(ctx, d.Service)
	if err != nil {
		return err
	}
	type bound struct {
		max int
		of  string
	}
	var bounds []bound
	if d.Batch.MaxUnavailable > 0 {
		bounds = append(bounds, bound{d.Batch.MaxUnavailable, ""})
	}
	refusal := &UnavailableError{Service: d.Service, Total: d.Batch.Width(len(d.Nodes))}
	for _, o := range flight {
		if o.Platform != executor.PlatformPhysical || o.ID == d.ID {
			continue
		}
		refusal.Total += o.Width
		refusal.InFlight = append(refusal.InFlight, fmt.Sprintf("%s (%d at once)", o.ID, o.Width))
		if refusal.First == "" {
			refusal.First = o.ID
		}
		if o.MaxUnavailable > 0 {
			bounds = append(bounds, bound{o.MaxUnavailable, o.ID})
		}
	}
	for _, b := range bounds {
		if refusal.Total > b.max {
			refusal.Max, refusal.BoundOf = b.max, b.of
			return refusal
		}
	}
	return nil
}

// Admissions across replicas: how long one may hold a service's admission lease (a replica that died
// holding it delays the others this long at most), and how long another waits for it.
const (
	admissionLeaseTTL = 10 * time.Second
	admissionWait     = 15 * time.Second
)

// admission serializes admissions from the bound's check to the record: two deployments checked at
// once would each count without the other. Within the process a mutex does it; across replicas on a
// shared database, the admission lease of each physical service in play (a unique insert, store.Lease),
// taken in name order so that two replicas never each wait for the other. admitted ends it.
func (e *Engine) admission(ctx context.Context, ds ...*store.Deployment) (admitted func(), err error) {
	e.admit.Lock()
	var held []string
	admitted = sync.OnceFunc(func() {
		for _, name := range held {
			_ = e.cfg.Store.ReleaseLease(context.WithoutCancel(ctx), name, e.Owner(), ds[0].ID, time.Now())
		}
		e.admit.Unlock()
	})
	if e.cfg.Store.Exclusive() {
		return admitted, nil
	}
	var names []string
	for _, d := range ds {
		if d.Platform == executor.PlatformPhysical && !slices.Contains(names, "admission/"+d.Service) {
			names = append(names, "admission/"+d.Service)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if err := e.takeAdmission(ctx, name, ds[0].ID); err != nil {
			admitted()
			return nil, err
		}
		held = append(held, name)
	}
	return admitted, nil
}

// takeAdmission waits (bounded) for a service's admission lease; other admissions hold it milliseconds.
func (e *Engine) takeAdmission(ctx context.Context, name, id string) error {
	deadline := time.Now().Add(admissionWait)
	delay := 2 * time.Millisecond
	for {
		_, err := e.cfg.Store.TakeLease(ctx, name, e.Owner(), id, time.Time{}, time.Now(), admissionLeaseTTL)
		var held *store.LeaseHeldError
		switch {
		case err == nil:
			return nil
		case !errors.As(err, &held):
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("%s: other replicas kept admitting deployments of the service for %s; try again: %w", name, admissionWait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}
