package ansible

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The checks that nothing of a run is left look at every process on this machine. They overlook only
// what is provably on its way out: a zombie (it has exited; its parent has yet to reap it), and a
// process that has SIGKILL pending or is already in the kernel's exit path, which runs no more of its own
// code. A run kills its process group without waiting for every member, so these may still be seen for
// a moment after it returns; anything else still there is a leak.

// pfExiting is the kernel's PF_EXITING task flag: set as a process starts to exit.
const pfExiting = 0x4

// sigkillMask is SIGKILL's bit in /proc/<pid>/status's signal masks.
const sigkillMask = 1 << (9 - 1)

// processesWith lists the processes whose command line mentions s and that are neither gone nor provably
// exiting.
func processesWith(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), s) || exiting(ent.Name()) {
			continue
		}
		found = append(found, ent.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return found
}

// exiting reports whether process pid is gone, a zombie, or provably exiting. Its status is read before
// its flags: a SIGKILL no longer pending in the first has set PF_EXITING by the second.
func exiting(pid string) bool {
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, value, _ := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		switch key {
		case "State":
			if strings.HasPrefix(value, "Z") || strings.HasPrefix(value, "X") {
				return true
			}
		case "SigPnd", "ShdPnd":
			if mask, err := strconv.ParseUint(value, 16, 64); err == nil && mask&sigkillMask != 0 {
				return true
			}
		}
	}
	return processFlags(pid)&pfExiting != 0
}

// processFlags is the flags field of /proc/<pid>/stat (the 9th; the command name before it, in
// parentheses, may itself contain spaces and parentheses). A process gone meanwhile has PF_EXITING.
func processFlags(pid string) uint64 {
	stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return pfExiting
	}
	afterName := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	fields := strings.Fields(afterName) // state, ppid, pgrp, session, tty_nr, tpgid, flags, ...
	if len(fields) < 7 {
		return 0
	}
	flags, _ := strconv.ParseUint(fields[6], 10, 64)
	return flags
}
