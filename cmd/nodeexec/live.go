package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

// board is what the live view knows of a deployment: each node's state, version and latest step.
// It changes only through apply, so what it shows is a pure function of the events seen.
type board struct {
	title string
	state api.State
	order []string
	rows  map[string]*boardRow
}

type boardRow struct {
	host, version, step, err string
	state                    api.State
	// retry is "retry N of M" once the node failed transiently and is tried again; waiting is how long
	// until that try, while it has not started.
	retry, waiting string
}

func newBoard(d *api.Deployment) *board {
	b := &board{title: fmt.Sprintf("%s %s %s %s", d.ID, d.Kind, d.Service, d.Version), state: d.State, rows: map[string]*boardRow{}}
	for _, n := range d.Nodes {
		b.row(n.Host).state = n.State
		b.row(n.Host).version = n.TargetVersion
	}
	return b
}

func (b *board) row(host string) *boardRow {
	r, ok := b.rows[host]
	if !ok {
		r = &boardRow{host: host}
		b.rows[host] = r
		b.order = append(b.order, host)
	}
	return r
}

func (b *board) apply(ev api.Event) {
	switch ev.Type {
	case api.EventDeployment:
		b.state = ev.State
	case api.EventNode:
		r := b.row(ev.Node)
		r.state = ev.State
		if reason, retry, in, ok := parseRetry(ev.Message); ok && !executor.State(ev.State).Terminal() {
			r.retry, r.waiting, r.err, r.step = retry, in, reason, ""
		}
		if executor.State(ev.State).Terminal() {
			r.step, r.waiting = "", ""
			if ev.State == api.StateFailed || ev.State == api.StateRolledBack {
				r.err = ev.Message
			}
		}
	case api.EventStep:
		if ev.Step != nil {
			r := b.row(ev.Node)
			r.step, r.waiting = stepSummary(*ev.Step), ""
		}
	}
}

// lines renders the board as a table.
func (b *board) lines() []string {
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NODE\tSTATE\tVERSION\tLAST STEP\tERROR\n")
	for _, h := range b.order {
		r := b.rows[h]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.host, r.state, dash(r.version), dash(clip(r.stepCell(), 48)), clip(r.err, 80))
	}
	tw.Flush()
	out := []string{fmt.Sprintf("%s: %s", b.title, b.state)}
	return append(out, strings.Split(strings.TrimRight(sb.String(), "\n"), "\n")...)
}

// stepCell is the node's latest step, or the retry it waits for; a node being tried again says so.
func (r *boardRow) stepCell() string {
	switch {
	case r.waiting != "":
		return r.retry + " in " + r.waiting
	case r.retry != "" && r.step != "":
		return r.step + " [" + r.retry + "]"
	}
	return r.step
}

// retryMessage is how the engine says a node failed transiently and will be tried again:
// "<why>; retry N of M in <delay>" (engine/run.go).
var retryMessage = regexp.MustCompile(`^(.*); (retry [0-9]+ of [0-9]+) in ([^ ]+)$`)

// parseRetry reads a node event's message as a retry: why the last try failed, "retry N of M", and
// the delay before it.
func parseRetry(msg string) (reason, retry, in string, ok bool) {
	m := retryMessage.FindStringSubmatch(msg)
	if m == nil {
		return "", "", "", false
	}
	return m[1], m[2], m[3], true
}

func stepSummary(st api.Step) string {
	outcome := executor.Step{Changed: st.Changed, Failed: st.Failed, Skipped: st.Skipped, Running: st.Running}
	if status := outcome.Status(); status != "ok" {
		return st.Name + " (" + status + ")"
	}
	return st.Name
}

// clip is s on one line, cut to n-1 bytes (up to a whole character) and marked when longer than n.
func clip(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	head, _ := executor.Cut(s, n-1)
	return head + "…"
}

// eventLine is one event as a plain line, for output that is not a terminal.
func eventLine(ev api.Event) string {
	what := string(ev.State)
	if ev.Type == api.EventStep && ev.Step != nil {
		what = "step"
	}
	if ev.Type == api.EventEvidence {
		what = "evidence"
	}
	who := ev.Node
	if who == "" {
		who = "deployment"
	}
	return strings.TrimSpace(fmt.Sprintf("%s %s %s %s", ev.Time.Format("15:04:05"), who, what, ev.Message))
}

// view shows a deployment's progress in one of three forms: a table redrawn in place (terminal), one
// plain line per event, or one JSON object per event (--json).
type view struct {
	out   io.Writer
	mode  viewMode
	board *board
	drawn int // lines of the table on screen, to redraw over them
}

type viewMode int

const (
	viewLines viewMode = iota
	viewTable
	viewJSON
)

func newView(out io.Writer, asJSON bool, d *api.Deployment) *view {
	v := &view{out: out, board: newBoard(d), mode: viewLines}
	switch {
	case asJSON:
		v.mode = viewJSON
	case isTerminal(out):
		v.mode = viewTable
	}
	if v.mode == viewTable {
		v.redraw()
	}
	return v
}

func (v *view) event(ev api.Event) {
	v.board.apply(ev)
	switch v.mode {
	case viewJSON:
		_ = json.NewEncoder(v.out).Encode(ev)
	case viewTable:
		v.redraw()
	default:
		fmt.Fprintln(v.out, eventLine(ev))
	}
}

// redraw moves the cursor back over the table it drew and draws it again, line by line.
func (v *view) redraw() {
	var sb strings.Builder
	if v.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", v.drawn)
	}
	lines := v.board.lines()
	for _, l := range lines {
		sb.WriteString("\r\x1b[2K" + l + "\n")
	}
	v.drawn = len(lines)
	_, _ = io.WriteString(v.out, sb.String())
}

// isTerminal reports whether w is a character device (a terminal), without a terminal library.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// dash stands for an empty value in a table.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
