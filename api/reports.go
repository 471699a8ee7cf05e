package api

// HandRunReport is POST /api/v1/reports: what a hand run of a bundled playbook (ansible-playbook
// playbooks/deploy.yml, rollback.yml, restart.yml by an operator) did, as the playbook reports it when
// nodeexec_report_url is set. It is recorded as a deployment of kind manual.
type HandRunReport struct {
	// ReportID is the run's own id, the same on every post of its report: a retry gets the first
	// record back (optional).
	ReportID string `json:"report_id,omitempty"`
	// Playbook is deploy, rollback or restart.
	Playbook string `json:"playbook"`
	Service  string `json:"service"`
	// Version is the version asked: a deploy's, a rollback's nodeexec_rollback_to ("" for each node's
	// previous); none for a restart.
	Version string `json:"version,omitempty"`
	// User and Controller are who ran the playbook and on which host: the record's requested_by is
	// "<user>@<controller>".
	User       string        `json:"user"`
	Controller string        `json:"controller"`
	Nodes      []HandRunNode `json:"nodes"`
}

// HandRunNode is one node's outcome of a hand run, from its module result.
type HandRunNode struct {
	Host        string `json:"host"`
	Failed      bool   `json:"failed"`
	Unreachable bool   `json:"unreachable,omitempty"`
	Changed     bool   `json:"changed"`
	// Msg is the failed task's message.
	Msg string `json:"msg,omitempty"`
	// Report is the module's report of the node (docs/node-contract.md); absent when the node sent none.
	Report *HandRunNodeReport `json:"report,omitempty"`
}

// HandRunNodeReport is the part of the module's report the node's record is made of.
type HandRunNodeReport struct {
	Current   string `json:"current"`
	Previous  string `json:"previous"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
}
