package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/nodeexec/nodeexec/api"
)

// openPTY opens a pseudo-terminal pair: what the view writes to the terminal end comes out of the
// controlling end, as a terminal emulator would receive it.
func openPTY(t *testing.T) (controller, terminal *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	ioctl := func(req uintptr, arg unsafe.Pointer) error {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), req, uintptr(arg)); e != 0 {
			return e
		}
		return nil
	}
	var unlock int32
	var n uint32
	if err := ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Fatal(err)
	}
	if err := ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// On a terminal the live view is a table redrawn in place: each event moves the cursor back over the
// table it drew and draws every line again, so the screen always shows one current table.
func TestLiveViewRedrawsItsTableInPlaceOnATerminal(t *testing.T) {
	controller, terminal := openPTY(t)
	d := &api.Deployment{ID: "d-1", Kind: "deploy", Service: "demo", Version: "v2", State: api.StatePending,
		Nodes: []api.DeploymentNode{{Host: "h1", TargetVersion: "v2", State: api.StatePending}, {Host: "h2", TargetVersion: "v2", State: api.StatePending}}}
	v := newView(terminal, false, d)
	if v.mode != viewTable {
		t.Fatalf("a terminal got view mode %d, want the table", v.mode)
	}
	v.event(api.Event{Type: api.EventNode, Node: "h1", State: api.StateDeploying})
	v.event(api.Event{Type: api.EventStep, Node: "h1", Step: &api.Step{Name: "Download the package", Changed: true}})
	terminal.Close() // the controller's reads end once it has read what was written
	raw, err := io.ReadAll(controller)
	var errno syscall.Errno
	if err != nil && !(errors.As(err, &errno) && errno == syscall.EIO) {
		t.Fatal(err)
	}
	out := strings.ReplaceAll(string(raw), "\r\n", "\n") // the terminal's own newline translation

	const tableLines = 4 // title, header, a row per node
	if got := strings.Count(out, fmt.Sprintf("\x1b[%dA", tableLines)); got != 2 {
		t.Errorf("the table was drawn over %d times, want once per event (2):\n%q", got, out)
	}
	// What the screen shows at the end: the last drawing, every line cleared before it is written.
	last := out[strings.LastIndex(out, fmt.Sprintf("\x1b[%dA", tableLines))+len(fmt.Sprintf("\x1b[%dA", tableLines)):]
	lines := strings.Split(strings.TrimSuffix(last, "\n"), "\n")
	if len(lines) != tableLines {
		t.Fatalf("last drawing has %d lines: %q", len(lines), last)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "\r\x1b[2K") {
			t.Errorf("a line is not cleared before it is drawn: %q", l)
		}
	}
	if row := lines[2]; !strings.Contains(row, "h1") || !strings.Contains(row, "deploying") || !strings.Contains(row, "Download the package (changed)") {
		t.Errorf("h1's row on screen: %q", row)
	}

	// Not a terminal: plain lines, no escape sequences.
	var plain strings.Builder
	p := newView(&plain, false, d)
	p.event(api.Event{Type: api.EventNode, Node: "h1", State: api.StateDeploying, Message: "deploy v2"})
	if p.mode != viewLines || strings.Contains(plain.String(), "\x1b") || !strings.Contains(plain.String(), "h1") {
		t.Errorf("not a terminal: mode %d, output %q", p.mode, plain.String())
	}
}

// A node the engine tries again after a transient failure shows the retry it waits for, then the
// retry it is on.
func TestBoardShowsRetries(t *testing.T) {
	b := newBoard(&api.Deployment{ID: "d-1", Kind: "deploy", Service: "demo", Version: "v2", State: api.StateDeploying,
		Nodes: []api.DeploymentNode{{Host: "h1", TargetVersion: "v2", State: api.StateDeploying}}})
	row := func() string { return b.lines()[2] }
	b.apply(api.Event{Type: api.EventNode, Node: "h1", State: api.StateDeploying, Message: "UNREACHABLE: ssh timed out; retry 1 of 3 in 2s"})
	if got := row(); !strings.Contains(got, "retry 1 of 3 in 2s") || !strings.Contains(got, "UNREACHABLE: ssh timed out") {
		t.Errorf("waiting to retry: %q", got)
	}
	b.apply(api.Event{Type: api.EventStep, Node: "h1", Step: &api.Step{Name: "Download the package", Changed: true}})
	if got := row(); !strings.Contains(got, "Download the package (changed) [retry 1 of 3]") || strings.Contains(got, "in 2s") {
		t.Errorf("retrying: %q", got)
	}
	b.apply(api.Event{Type: api.EventNode, Node: "h1", State: api.StateSuccess})
	if got := row(); strings.Contains(got, "retry") || !strings.Contains(got, "success") {
		t.Errorf("done: %q", got)
	}
}

func TestParseRetryReadsTheEnginesRetryMessage(t *testing.T) {
	cases := []struct {
		msg, reason, retry, in string
		ok                     bool
	}{
		{"UNREACHABLE: timed out; retry 2 of 5 in 1.5s", "UNREACHABLE: timed out", "retry 2 of 5", "1.5s", true},
		{"a; b; retry 1 of 1 in 1m0s", "a; b", "retry 1 of 1", "1m0s", true},
		{"Check health: 503", "", "", "", false},
		{"retry 1 of 3 in 2s", "", "", "", false},
	}
	for _, c := range cases {
		reason, retry, in, ok := parseRetry(c.msg)
		if reason != c.reason || retry != c.retry || in != c.in || ok != c.ok {
			t.Errorf("parseRetry(%q) = %q, %q, %q, %v", c.msg, reason, retry, in, ok)
		}
	}
}
