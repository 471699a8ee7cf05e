package ansible

import (
	"context"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// MaxJournalLines is the most lines Journal reads per node (the module's bound too).
const MaxJournalLines = 1000

// journalLine is one line as the module's journal phase reports it.
type journalLine struct {
	Time    string `json:"time"`
	Unit    string `json:"unit"`
	Message string `json:"message"`
}

// Journal reads the service's own log on each node: its unit's last req.Lines journal lines (at most
// MaxJournalLines), one module call per node, no lock. A node that could not be read says why.
func (e *Executor) Journal(ctx context.Context, req executor.JournalRequest) ([]executor.NodeJournal, error) {
	if err := (executor.StatusRequest{Service: req.Service, Nodes: req.Nodes}).Validate(); err != nil {
		return nil, err
	}
	if req.Lines < 1 {
		return nil, &executor.ValidationError{Field: "lines", Reason: "must be at least 1"}
	}
	vars := e.nodeVars(req.Service)
	vars["nodeexec_journal_lines"] = min(req.Lines, MaxJournalLines)
	res, stderr, err := e.run(ctx, []string{"journal.yml"}, vars, req.Nodes, nil)
	if res == nil && err != nil {
		return nil, err
	}
	results := nodeResults(res, opStatus, req.Service, req.Nodes, stderr)
	out := make([]executor.NodeJournal, len(results))
	for i, r := range results {
		out[i] = executor.NodeJournal{Host: r.Host, Error: r.LastError}
		lines, ok := journalOf(res, r.Host)
		if !ok {
			if out[i].Error == "" {
				out[i].Error = "the node sent no journal"
			}
			continue
		}
		for _, l := range lines {
			at, _ := time.Parse(time.RFC3339Nano, l.Time)
			out[i].Lines = append(out[i].Lines, executor.JournalLine{Time: at, Unit: l.Unit, Message: l.Message})
		}
	}
	return out, nil
}

// journalOf finds host's journal lines in the run's module results.
func journalOf(res *runResults, host string) ([]journalLine, bool) {
	for _, play := range res.modules.Plays {
		for _, task := range play.Tasks {
			if m, ok := task.Hosts[host]; ok && m.Journal != nil {
				return m.Journal, true
			}
		}
	}
	return nil, false
}

var _ executor.JournalReader = (*Executor)(nil)
