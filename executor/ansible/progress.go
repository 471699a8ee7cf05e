package ansible

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nodeexec/nodeexec/executor"
)

// progressStream carries the nodeexec_progress callback's JSON lines from ansible-playbook to a
// ProgressFunc while the run goes on. The final per-host results still come from the JSON stdout
// callback; this is only the live view.
type progressStream struct {
	r, w *os.File
	done chan struct{}
}

// progressLine is one line of plugins/callback/nodeexec_progress.py: a task result, or one sub-step of
// a module result that reports its steps (then Task is the sub-step's name).
type progressLine struct {
	Host    string `json:"host"`
	Task    string `json:"task"`
	Action  string `json:"action"`
	Status  string `json:"status"`
	Changed bool   `json:"changed"`
	Msg     string `json:"msg"`
	// Stdout and Stderr come with a failed result only, their end bounded by the callback.
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Start (RFC 3339, UTC) and Duration (seconds) say when the step ran on the node.
	Start    string  `json:"start"`
	Duration float64 `json:"duration"`
}

// startProgress gives the run a pipe as fd 3 and enables the callback that writes to it.
func startProgress(g *groupExec, progress executor.ProgressFunc) (*progressStream, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("progress pipe: %w", err)
	}
	g.extra = append(g.extra, w)
	fd := 3 + len(g.extra) - 1
	g.env = append(g.env, "ANSIBLE_CALLBACKS_ENABLED=nodeexec_progress", "NODEEXEC_PROGRESS_FD="+strconv.Itoa(fd))
	p := &progressStream{r: r, w: w, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l progressLine
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.Host == "" {
				continue
			}
			progress(l.Host, l.step())
		}
	}()
	return p, nil
}

func (l progressLine) step() executor.Step {
	st := executor.Step{Name: taskName(l.Task), Action: l.Action, Changed: l.Changed, Message: l.Msg, Stdout: l.Stdout, Stderr: l.Stderr}
	setStatus(&st, l.Status)
	st.Running = l.Status == "started"
	st.Started, st.Duration = stepTiming(l.Start, l.Duration)
	return st
}

// stop ends the stream once the run is over: the process group is gone, so closing our end of the pipe
// lets the reader see the end. A writer that somehow survived is not waited for long.
func (p *progressStream) stop() {
	p.w.Close()
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
	}
	p.r.Close()
	<-p.done
}
