package engine

import (
	"context"
	"fmt"
	"strings"

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
	flight, err := e.cfg.Store.InFlight(ctx)
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
		if o.Service != d.Service || o.Platform != executor.PlatformPhysical || o.ID == d.ID {
			continue
		}
		width := o.Batch.Width(len(o.Nodes))
		refusal.Total += width
		refusal.InFlight = append(refusal.InFlight, fmt.Sprintf("%s (%d at once)", o.ID, width))
		if refusal.First == "" {
			refusal.First = o.ID
		}
		if o.Batch.MaxUnavailable > 0 {
			bounds = append(bounds, bound{o.Batch.MaxUnavailable, o.ID})
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
