package engine

import (
	"fmt"
	"slices"
	"unicode/utf8"

	"github.com/nodeexec/nodeexec/executor"
)

func stepLine(st executor.Step) string {
	line := st.Name + ": " + st.Status()
	if st.Message != "" && (st.Failed || st.Changed) {
		line += ": " + st.Message
	}
	return line
}

// Bounds of what one step or one node's evidence adds to the events: each event is part of a stored
// document of 64 events, which must stay far below the database's 16 MiB. Readers of the events may
// rely on the exported ones.
const (
	maxStepMessage     = 2000
	MaxStepOutput      = 4000
	maxJournalLines    = 1000
	maxEvidenceLine    = 1000
	MaxEvidenceBytes   = 64 << 10
	maxUnitStatusLines = 40
)

// boundStep keeps a step's message and the end of its output (where an error usually is), bounded.
func boundStep(st executor.Step) executor.Step {
	st.Message = truncate(st.Message, maxStepMessage)
	st.Stdout, st.Stderr = tail(st.Stdout, MaxStepOutput), tail(st.Stderr, MaxStepOutput)
	return st
}

// boundEvidence keeps the newest journal lines and the first status lines, each line and all of them
// bounded (the role bounds them already; a node is not trusted to).
func boundEvidence(e executor.FailedRelease) *executor.FailedRelease {
	e.Reason = truncate(e.Reason, maxStepMessage)
	e.Journal = boundLines(e.Journal[max(0, len(e.Journal)-maxJournalLines):], true)
	e.UnitStatus = boundLines(e.UnitStatus[:min(len(e.UnitStatus), maxUnitStatusLines)], false)
	return &e
}

// boundLines cuts each line and keeps at most MaxEvidenceBytes of them: the newest, or the first.
func boundLines(lines []string, newest bool) []string {
	out := make([]string, 0, len(lines))
	total := 0
	for i := range lines {
		j := i
		if newest {
			j = len(lines) - 1 - i
		}
		l := truncate(lines[j], maxEvidenceLine)
		if total += len(l) + 1; total > MaxEvidenceBytes {
			break
		}
		out = append(out, l)
	}
	if newest {
		slices.Reverse(out)
	}
	return out
}

// evidenceLine is an evidence event's line in the node's log.
func evidenceLine(e *executor.FailedRelease) string {
	line := fmt.Sprintf("release %s failed and is kept on the node until a later successful deploy", e.Version)
	if e.Dir != "" {
		line += "; evidence in " + e.Dir
	}
	if len(e.Journal) > 0 {
		line += fmt.Sprintf(" (journal excerpt: %d lines)", len(e.Journal))
	}
	if e.Reason != "" {
		line += ": " + e.Reason
	}
	return line
}

// tail is the last n bytes of s (from a whole character on), marked as cut.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := len(s) - n
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return "…" + s[i:]
}

// OrNothing is s as the messages show a value that may be empty (a version, a unit state): "nothing" for none.
func OrNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// truncate is the first n bytes of s (up to a whole character), marked as cut.
func truncate(s string, n int) string {
	if head, cut := executor.Cut(s, n); cut {
		return head + "…"
	}
	return s
}
