package server

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// Actions a dry run reports for a node.
const (
	dryChange      = "change"
	dryUnchanged   = "unchanged"
	dryHeld        = "held"
	dryUnreachable = "unreachable"
)

// dryRunOf reads ?dry_run: true, false (or absent); anything else is bad input.
func dryRunOf(c *gin.Context) (bool, error) {
	switch v := c.Query("dry_run"); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, &executor.ValidationError{Field: "dry_run", Reason: quote(v) + " is not true or false"}
	}
}

// dryRun answers what deployment d would do to each of its nodes, from each node's own record read
// now (the service's unit and .nodeexec/state.json; a workload's live image) and nodeexec's record of
// who holds it, and changes nothing: no claim, no record, no event.
func (s *Server) dryRun(c *gin.Context, d *store.Deployment) {
	if !targetsFit(c, d) {
		return
	}
	read, err := s.readVersions(c, d)
	if err != nil {
		if c.IsAborted() {
			return // the request ended while it waited for an inspection slot
		}
		s.runFailed(c, "reading the nodes", err)
		return
	}
	out := api.DryRun{DryRun: true, Service: d.Service, Version: d.Version, Platform: string(d.Platform), Nodes: []api.DryRunNode{}}
	for _, dn := range d.Nodes {
		n := api.DryRunNode{Host: dn.Host, To: dn.TargetVersion}
		rec, err := s.cfg.Store.Node(c.Request.Context(), d.Service, dn.Host)
		if err == nil {
			n.Recorded = rec.CurrentVersion
		}
		got, seen := read[dn.Host]
		switch {
		case err == nil && rec.State == executor.StateDeploying:
			n.Action, n.HeldBy = dryHeld, rec.DeploymentID
		case !seen:
			n.Action, n.Error = dryUnreachable, "the node was not reported"
		case got.err != "":
			n.Action, n.Error = dryUnreachable, got.err
		case got.version == dn.TargetVersion:
			n.Action, n.From = dryUnchanged, got.version
		default:
			n.Action, n.From = dryChange, got.version
		}
		out.Nodes = append(out.Nodes, n)
	}
	c.JSON(http.StatusOK, out)
}

// nodeVersion is what one node says it runs, or why it could not be read.
type nodeVersion struct{ version, err string }

// readVersions reads what each node of d runs now: a physical node's unit and own record (readUnits:
// the release its service runs, else the version its record names), a workload's live image.
func (s *Server) readVersions(c *gin.Context, d *store.Deployment) (map[string]nodeVersion, error) {
	out := map[string]nodeVersion{}
	if d.Platform != executor.PlatformK8s {
		units := s.readUnits(c, d)
		if units.unsupported {
			return nil, &executor.ValidationError{Field: "dry_run", Reason: "this server's executor cannot read the nodes"}
		}
		if units.err != nil {
			return nil, units.err
		}
		for host, st := range units.byHost {
			v := st.RunningVersion
			if v == "" {
				v = st.CurrentVersion
			}
			out[host] = nodeVersion{version: v, err: st.Error}
		}
		return out, nil
	}
	exec, err := s.executorFor(d.Platform)
	if err != nil {
		return nil, err
	}
	ctx, done, ok := s.inspection(c)
	if !ok {
		return nil, c.Request.Context().Err()
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, serviceCheckTimeout)
	defer cancel()
	results, err := exec.Status(ctx, executor.StatusRequest{Service: d.Service, Workloads: d.Targets().Workloads})
	for _, r := range results {
		if r.State == executor.StateFailed && r.CurrentVersion == "" {
			out[r.Host] = nodeVersion{err: r.LastError}
			continue
		}
		out[r.Host] = nodeVersion{version: r.CurrentVersion}
	}
	return out, err
}
