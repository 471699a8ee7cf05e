# nodeexec_progress: streams each task result to nodeexec while a run goes on, one JSON line per host
# and task, on the file descriptor named by NODEEXEC_PROGRESS_FD. A result that carries the module's own
# sub-steps (`steps`, docs/node-contract.md) is one line per sub-step instead, in the same order the Go
# side reads them from the final report, so what streamed live and what the report holds line up.
# nodeexec enables it for its own runs (ANSIBLE_CALLBACKS_ENABLED); an operator's run by hand does not
# load it, and without the variable it does nothing. The stdout callback (the final JSON report) is
# unaffected.
from __future__ import annotations

DOCUMENTATION = """
name: nodeexec_progress
type: notification
short_description: stream task results to nodeexec as JSON lines
description:
  - Writes one JSON object per task result (or per sub-step of a result with C(steps)) to the file
    descriptor in NODEEXEC_PROGRESS_FD.
requirements:
  - enabled in callbacks_enabled, with NODEEXEC_PROGRESS_FD set (nodeexec does both)
"""

import json
import os
import time
from datetime import datetime, timezone

from ansible.plugins.callback import CallbackBase

MAX_MSG = 2000
# A failed task's own output is part of the evidence nodeexec keeps: its end, where the error usually is.
MAX_OUTPUT = 4000


def tail(text, n):
    if not isinstance(text, str):
        text = json.dumps(text, default=str)
    return text if len(text) <= n else "…" + text[-n:]


def as_text(v):
    return v if isinstance(v, str) else json.dumps(v, default=str)


def utc_ms(t):
    """A wall-clock time as the modules write a step's start: UTC, RFC 3339, milliseconds."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sub_steps(res):
    """The module's own sub-steps of a result, [] when it reports none."""
    steps = res.get("steps")
    return [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else []


def seconds(v):
    try:
        return float(v or 0)
    except (TypeError, ValueError):
        return 0.0


def is_meta(action):
    # end_host and the like are flow control, not steps (the Go side drops them too).
    return action == "meta" or action.endswith(".meta")


def with_output(line, res, failed):
    """A failed step's own output is part of the evidence nodeexec keeps: its end, where the error is."""
    if failed:
        for k in ("stdout", "stderr"):
            if res.get(k):
                line[k] = tail(res[k], MAX_OUTPUT)
    return line


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "nodeexec_progress"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._out = None
        self._started = {}  # (host, task uuid) -> when the task was handed to that host
        fd = os.environ.get("NODEEXEC_PROGRESS_FD", "")
        if fd.isdigit():
            try:
                # Not inherited by ssh and other programs Ansible starts: the stream must end when
                # ansible-playbook does, not when a persistent ssh connection finally exits.
                os.set_inheritable(int(fd), False)
                self._out = os.fdopen(int(fd), "w", buffering=1, encoding="utf-8")
            except OSError:
                self._out = None

    def _lines(self, result, status):
        """The lines of one result: its sub-steps when it has them, else the task itself."""
        res = result._result if isinstance(result._result, dict) else {}
        host, action = result._host.get_name(), result._task.action
        began = self._started.pop((host, result._task._uuid), None)
        subs = sub_steps(res)
        failed = status in ("failed", "ignored", "unreachable")
        lines = [self._sub_line(host, action, s) for s in subs]
        if subs and (not failed or any(s.get("status") == "failed" for s in subs)):
            return lines
        # The task as one step: it has no sub-steps, or it failed though none of them did.
        line = {"host": host, "task": result._task.get_name(), "action": action, "status": status,
                "changed": bool(res.get("changed", False)), "msg": as_text(res.get("msg") or "")[:MAX_MSG]}
        if began is not None:
            line["start"], line["duration"] = utc_ms(began), round(time.time() - began, 3)
        return lines + [with_output(line, res, failed)]

    @staticmethod
    def _sub_line(host, action, sub):
        status = str(sub.get("status") or "ok")
        line = {"host": host, "task": str(sub.get("name") or ""), "action": action, "status": status,
                "changed": status == "changed", "msg": as_text(sub.get("msg") or "")[:MAX_MSG],
                "start": str(sub.get("start") or ""), "duration": seconds(sub.get("duration"))}
        return with_output(line, sub, status == "failed")

    def _emit(self, result, status):
        if self._out is None or is_meta(result._task.action):
            return
        try:
            for line in self._lines(result, status):
                self._out.write(json.dumps(line) + "\n")
        except (OSError, ValueError):
            self._out = None  # nodeexec stopped reading: keep the run going

    def v2_runner_on_start(self, host, task):
        began = time.time()
        self._started[(host.get_name(), task._uuid)] = began
        # A module call may take long (a download, a verification): say at once that it runs, so the
        # live view shows where each node is before the call's steps come back.
        if self._out is None or is_meta(task.action):
            return
        try:
            self._out.write(json.dumps({"host": host.get_name(), "task": task.get_name(), "action": task.action,
                                        "status": "started", "start": utc_ms(began)}) + "\n")
        except (OSError, ValueError):
            self._out = None

    def v2_runner_on_ok(self, result):
        self._emit(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._emit(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._emit(result, "unreachable")
