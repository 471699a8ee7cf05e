package ansible

// The guard (guard.go) ends a run's processes when nodeexec dies. Should the guard die with it (killed
// as a group, an OOM kill, a machine under pressure), the next start ends them: every process a run
// starts carries its owner in its environment (NODEEXEC_RUN_OWNER=<pid>:<start time>), inherited by
// ansible-playbook's workers and their ssh clients, and New ends the processes whose owner is gone. An
// SSH master rewrites its command line over its environment ("ssh: <socket> [mux]"), so a run's masters
// directory holds the owner too (a file named owner), and a process naming that directory is the run's.
// An owner is a process id and its start time, so a reused pid is not mistaken for it, and an owner that
// lives (another nodeexec on this machine) keeps its runs.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/sirupsen/logrus"
)

const ownerVar = "NODEEXEC_RUN_OWNER"

var ownerOnce = sync.OnceValue(func() string {
	start, _ := processStart(os.Getpid())
	return fmt.Sprintf("%d:%d", os.Getpid(), start)
})

// ownerEnv is the environment entry that marks a process as one of this nodeexec's runs.
func ownerEnv() string { return ownerVar + "=" + ownerOnce() }

// processStart is a process's start time (clock ticks since boot, /proc/<pid>/stat field 22).
func processStart(pid int) (uint64, error) {
	data, err := procFile(pid, "stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64) // field 22 is the 20th after the name
}

// parseOwner reads an owner mark (pid:start); ok is false for anything nodeexec does not write.
func parseOwner(owner string) (pid int, start uint64, ok bool) {
	pidText, startText, found := strings.Cut(owner, ":")
	pid, err1 := strconv.Atoi(pidText)
	start, err2 := strconv.ParseUint(startText, 10, 64)
	return pid, start, found && err1 == nil && err2 == nil && pid > 0
}

// ownerAlive tells whether the nodeexec a run's process names still runs.
func ownerAlive(pid int, start uint64) bool {
	got, err := processStart(pid)
	return err == nil && got == start
}

// runOwner is the owner a process's environment names, or "".
func runOwner(pid int) string {
	env, err := procFile(pid, "environ")
	if err != nil {
		return "" // gone, or not ours to read: not ours to end
	}
	prefix := []byte(ownerVar + "=")
	for _, kv := range bytes.Split(env, []byte{0}) {
		if bytes.HasPrefix(kv, prefix) {
			return string(kv[len(prefix):])
		}
	}
	return ""
}

// ownerFile names the owner in a run's masters directory.
const ownerFile = "owner"

// markMasters writes this nodeexec's mark into a run's masters directory.
func markMasters(dir string) error {
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(ownerOnce()), 0o600)
}

// mastersDirIn finds a run's masters directory (os.MkdirTemp's nx-cp-*) on a command line.
var mastersDirIn = regexp.MustCompile(`/[^\x00\s]*/nx-cp-[^/\x00\s]+`)

// processOwner is the owner of a run's process: its environment's mark, or its masters directory's.
func processOwner(pid int) string {
	if owner := runOwner(pid); owner != "" {
		return owner
	}
	cmdline, err := procFile(pid, "cmdline")
	if err != nil {
		return ""
	}
	dir := mastersDirIn.Find(cmdline)
	if dir == nil {
		return ""
	}
	owner, err := os.ReadFile(filepath.Join(string(dir), ownerFile))
	if err != nil {
		return ""
	}
	return string(owner)
}

// sweepLeftovers ends every process of a run whose nodeexec is gone, and says which.
func sweepLeftovers(log logrus.FieldLogger) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := ownerOnce()
	alive := map[string]bool{}
	var killed []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		owner := processOwner(pid)
		if owner == "" || owner == self {
			continue
		}
		ownerPid, start, ok := parseOwner(owner)
		if !ok {
			continue // not a mark nodeexec writes: not ours to judge
		}
		live, seen := alive[owner]
		if !seen {
			live = ownerAlive(ownerPid, start)
			alive[owner] = live
		}
		if !live && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	if len(killed) > 0 {
		log.WithField("pids", killed).Warn("ended processes left by runs of a nodeexec that is gone")
	}
	return killed
}
