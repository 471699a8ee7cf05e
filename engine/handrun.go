package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodeexec/nodeexec/executor"
	"github.com/nodeexec/nodeexec/store"
)

// A hand run is an operator's own ansible-playbook run of the bundled playbooks. Its report
// (POST /api/v1/reports) becomes a deployment of kind manual, and each node's record is updated from
// it as a deployment's end updates it.

// HandRun is a hand run's report, as the playbook built it from each node's module result.
type HandRun struct {
	// ReportID is the playbook's id of its run (optional): a report posted again with it is recorded once.
	ReportID string
	// Playbook is the playbook that ran: deploy, rollback or restart.
	Playbook string
	Service  string
	// Version is the version asked: a deploy's nodeexec_version, a rollback's nodeexec_rollback_to ("":
	// each node's previous), none for a restart.
	Version string
	// User and Controller are who ran the playbook and where, as the playbook saw them.
	User, Controller string
	Nodes            []HandNode
}

// HandNode is one node's outcome of a hand run, as the role's module reported it.
type HandNode struct {
	Host                string
	Failed, Unreachable bool
	Changed             bool
	Msg                 string
	Report              *NodeReport // nil when the node sent none (unreachable, or failed before the module ran)
}

// NodeReport is the part of the module's report (docs/node-contract.md) a node's record is made of.
type NodeReport struct {
	Current, Previous, State, LastError string
}

// Bounds of a hand run's report: as many nodes as one inventory reasonably holds, and messages long
// enough for a failure's sentence and its last journal lines.
const (
	MaxHandRunNodes   = 1000
	MaxHandRunMessage = 8192
)

// handPlaybooks are the playbooks a hand run may report, each with the state its nodes end in when the
// playbook went through on them.
var handPlaybooks = map[string]executor.State{
	"deploy":   executor.StateSuccess,
	"rollback": executor.StateRolledBack,
	"restart":  executor.StateSuccess,
}

// Validate checks a report before anything is recorded; the error names the field.
func (r HandRun) Validate() error {
	if _, ok := handPlaybooks[r.Playbook]; !ok {
		return &executor.ValidationError{Field: "playbook", Reason: fmt.Sprintf("%q is not deploy, rollback or restart", r.Playbook)}
	}
	if err := executor.ValidateService(r.Service); err != nil {
		return err
	}
	if r.Playbook == "deploy" || r.Version != "" { // a rollback's may be empty, a restart's is
		if err := executor.ValidateVersion(r.Version); err != nil {
			return err
		}
	}
	for field, v := range map[string]string{"user": r.User, "controller": r.Controller} {
		if v == "" {
			return &executor.ValidationError{Field: field, Reason: "is required"}
		}
		if err := executor.ValidateLabel(field, v); err != nil {
			return err
		}
	}
	if err := executor.ValidateLabel("requested_by", r.requestedBy()); err != nil {
		return &executor.ValidationError{Field: "user", Reason: "user@controller is " + err.(*executor.ValidationError).Reason}
	}
	if err := executor.ValidateLabel("report_id", r.ReportID); err != nil {
		return err
	}
	return validateHandNodes(r.Nodes)
}

func validateHandNodes(nodes []HandNode) error {
	if len(nodes) == 0 || len(nodes) > MaxHandRunNodes {
		return &executor.ValidationError{Field: "nodes", Reason: fmt.Sprintf("from 1 to %d nodes, not %d", MaxHandRunNodes, len(nodes))}
	}
	seen := make(map[string]bool, len(nodes))
	for i, n := range nodes {
		field := fmt.Sprintf("nodes[%d]", i)
		if err := executor.ValidateHost(n.Host); err != nil {
			return &executor.ValidationError{Field: field + ".host", Reason: err.(*executor.ValidationError).Reason}
		}
		if seen[n.Host] {
			return &executor.ValidationError{Field: field + ".host", Reason: fmt.Sprintf("%q is listed twice", n.Host)}
		}
		seen[n.Host] = true
		if err := message(field+".msg", n.Msg); err != nil {
			return err
		}
		if n.Report == nil {
			continue
		}
		for name, v := range map[string]string{"current": n.Report.Current, "previous": n.Report.Previous} {
			if v == "" {
				continue
			}
			if err := executor.ValidateVersion(v); err != nil {
				return &executor.ValidationError{Field: field + ".report." + name, Reason: err.(*executor.ValidationError).Reason}
			}
		}
		if st := executor.State(n.Report.State); st != "" && !st.Terminal() {
			return &executor.ValidationError{Field: field + ".report.state", Reason: fmt.Sprintf("%q is not success, failed or rolled_back", st)}
		}
		if err := message(field+".report.last_error", n.Report.LastError); err != nil {
			return err
		}
	}
	return nil
}

// message checks a node's text for people: bounded, UTF-8. Lines are allowed: a failure's message
// ends with the unit's last journal lines.
func message(field, s string) error {
	switch {
	case len(s) > MaxHandRunMessage:
		return &executor.ValidationError{Field: field, Reason: fmt.Sprintf("longer than %d characters", MaxHandRunMessage)}
	case !utf8.ValidString(s):
		return &executor.ValidationError{Field: field, Reason: "is not valid UTF-8"}
	}
	return nil
}

func (r HandRun) requestedBy() string { return r.User + "@" + r.Controller }

// fingerprint is a digest of the whole report: a report_id sent again with another report is refused.
func (r HandRun) fingerprint() string {
	b, _ := json.Marshal(r) // plain data: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// handRunID is the manual record's id for a report_id: the same on every retry and every replica, so
// a retry finds the record of its first post, and two posts at once write one record.
func handRunID(reportID string) string {
	sum := sha256.Sum256([]byte(reportID))
	return "d-hand-" + hex.EncodeToString(sum[:10])
}

// handOutcome is the state a node ends in by a hand run, and why when it did not go through: the way
// the executor decides a run of its own (executor/ansible decide).
func handOutcome(playbook string, n HandNode) (executor.State, string) {
	reason := n.Msg
	if reason == "" && n.Report != nil {
		reason = n.Report.LastError
	}
	switch {
	case n.Unreachable:
		return executor.StateFailed, strings.TrimSuffix("host unreachable: "+reason, ": ")
	case n.Failed:
		if playbook == "deploy" && n.Report != nil && n.Report.State == string(executor.StateRolledBack) {
			return executor.StateRolledBack, reason
		}
		if reason == "" {
			reason = "the playbook failed on this node without saying why"
		}
		return executor.StateFailed, reason
	}
	return handPlaybooks[playbook], ""
}

// ReportReusedError is a report_id posted again with another report: DeploymentID recorded the first.
type ReportReusedError struct {
	ReportID, DeploymentID string
}

func (e *ReportReusedError) Error() string {
	return fmt.Sprintf("report_id %q was first posted with another report (recorded as %s): give each run its own report_id", e.ReportID, e.DeploymentID)
}

// Report records a hand run as a deployment of kind manual (id, unless the report has a report_id,
// whose own id it gets) and updates each node's record from its outcome, except a node a deployment or
// a pass holds now: the record says so for that node (RecordKept), beside its outcome. A node that
// sent no report keeps its record too. created is false when the report_id was recorded already: the
// first record is returned, and nothing is written again.
func (e *Engine) Report(ctx context.Context, id string, r HandRun, token string) (d *store.Deployment, created bool, err error) {
	if err := r.Validate(); err != nil {
		return nil, false, err
	}
	fp := r.fingerprint()
	if r.ReportID != "" {
		id = handRunID(r.ReportID)
		if prior, err := e.recordedReport(ctx, id, r.ReportID, fp); prior != nil || err != nil {
			return prior, false, err
		}
	}
	log := e.cfg.Logger.WithFields(map[string]any{"deployment_id": id, "service": r.Service, "playbook": r.Playbook,
		"version": r.Version, "requested_by": r.requestedBy()})
	now := time.Now().UTC()
	d = &store.Deployment{ID: id, Kind: store.KindManual, Service: r.Service, Version: r.Version, Platform: executor.PlatformPhysical,
		RequestedBy: r.requestedBy(), Token: token, CreatedAt: now, StartedAt: &now, FinishedAt: &now,
		HandRun: &store.HandRun{Playbook: r.Playbook, ReportID: r.ReportID, Fingerprint: fp}}
	failed := 0
	for _, n := range r.Nodes {
		dn, err := e.recordHandNode(ctx, id, r, n)
		if err != nil {
			log.WithError(err).Error("hand run report: a node's record could not be updated")
			return nil, false, err
		}
		if dn.State != handPlaybooks[r.Playbook] {
			failed++
		}
		d.Nodes = append(d.Nodes, dn)
	}
	d.State = executor.StateSuccess
	if failed > 0 {
		d.State = executor.StateFailed
		d.Error = fmt.Sprintf("the hand run of playbooks/%s.yml did not go through on %d of %d nodes", r.Playbook, failed, len(r.Nodes))
	}
	if _, _, err := e.cfg.Store.CreateDeployment(ctx, d); err != nil {
		// A retry of the same report_id may have written it in between: that record is this one.
		if prior, perr := e.recordedReport(ctx, id, r.ReportID, fp); prior != nil && perr == nil {
			return prior, false, nil
		}
		log.WithError(err).Error("hand run report: the nodes are updated but the record could not be written")
		return nil, false, fmt.Errorf("record the hand run (its nodes are updated; post the report again with its report_id to record it): %w", err)
	}
	log.WithField("nodes", len(d.Nodes)).WithField("state", d.State).Info("hand run recorded")
	return d, true, nil
}

// recordedReport is the record of a report_id already posted (nil when there is none).
func (e *Engine) recordedReport(ctx context.Context, id, reportID, fp string) (*store.Deployment, error) {
	if reportID == "" {
		return nil, nil
	}
	prior, err := e.cfg.Store.Deployment(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case prior.HandRun == nil || prior.HandRun.Fingerprint != fp:
		return nil, &ReportReusedError{ReportID: reportID, DeploymentID: id}
	}
	return prior, nil
}

// recordHandNode is a node's line of the manual record, after updating the node's record from it.
func (e *Engine) recordHandNode(ctx context.Context, id string, r HandRun, n HandNode) (store.DeploymentNode, error) {
	state, reason := handOutcome(r.Playbook, n)
	dn := store.DeploymentNode{Host: n.Host, State: state, TargetVersion: r.Version, Changed: n.Changed, LastError: reason}
	if n.Report == nil {
		dn.RecordKept = "the node sent no report of what it runs: its record is left as it was"
		return dn, nil
	}
	dn.CurrentVersion, dn.PrevVersion = n.Report.Current, n.Report.Previous
	prior, err := e.cfg.Store.RecordHandRun(ctx, id, executor.NodeStatus{Host: n.Host, Service: r.Service, Platform: executor.PlatformPhysical,
		CurrentVersion: n.Report.Current, PrevVersion: n.Report.Previous, State: state, LastError: reason})
	var busy *store.BusyError
	switch {
	case errors.As(err, &busy):
		dn.RecordKept = fmt.Sprintf("deployment %s holds the node: its record is left to that deployment", busy.DeploymentID)
		if store.IsCleanupID(busy.DeploymentID) {
			dn.RecordKept = fmt.Sprintf("cleanup pass %s holds the node: its record is left to that pass", busy.DeploymentID)
		}
	case err != nil:
		return dn, err
	case prior != nil:
		dn.FromVersion = prior.CurrentVersion
	}
	return dn, nil
}

// manualOp is the record of a hand run (Report): nodeexec ran none of it, and takes none of it back.
type manualOp struct{}

func (manualOp) groups(*store.Deployment) []group { return nil }

func (manualOp) run(_ context.Context, _ executor.Executor, d *store.Deployment, _ group, _ executor.ProgressFunc) ([]executor.NodeResult, error) {
	return nil, fmt.Errorf("%s records a hand run of a playbook; it runs nothing", d.ID)
}

func (manualOp) goal() executor.State { return executor.StateSuccess }

func (manualOp) describe(d *store.Deployment) string {
	return fmt.Sprintf("hand run of playbooks/%s.yml for %s on %s", playbookOf(d), d.Service, targetsText(d))
}

func (manualOp) claimed(*store.DeploymentNode, *store.Node) {}

func (manualOp) irreversible(d *store.Deployment) string {
	return "deployment " + d.ID + " records a hand run of playbooks/" + playbookOf(d) + ".yml by " + d.RequestedBy +
		", which nodeexec did not run: deploy the version you want, or roll back a deployment of nodeexec's"
}

func playbookOf(d *store.Deployment) string {
	if d.HandRun == nil {
		return "?"
	}
	return d.HandRun.Playbook
}
