# nodeexec_progress: streams each task result to nodeexec while a run goes on, one JSON line per host
# and task, on the file descriptor named by NODEEXEC_PROGRESS_FD. nodeexec enables it for its own runs
# (ANSIBLE_CALLBACKS_ENABLED); an operator's run by hand does not load it, and without the variable it
# does nothing. The stdout callback (the final JSON report) is unaffected.
from __future__ import annotations

DOCUMENTATION = """
name: nodeexec_progress
type: notification
short_description: stream task results to nodeexec as JSON lines
description:
  - Writes one JSON object per task result to the file descriptor in NODEEXEC_PROGRESS_FD.
requirements:
  - enabled in callbacks_enabled, with NODEEXEC_PROGRESS_FD set (nodeexec does both)
"""

import json
import os

from ansible.plugins.callback import CallbackBase

MAX_MSG = 2000
# A failed task's own output is part of the evidence nodeexec keeps: its end, where the error usually is.
MAX_OUTPUT = 4000


def tail(text, n):
    if not isinstance(text, str):
        text = json.dumps(text, default=str)
    return text if len(text) <= n else "…" + text[-n:]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "nodeexec_progress"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._out = None
        fd = os.environ.get("NODEEXEC_PROGRESS_FD", "")
        if fd.isdigit():
            try:
                # Not inherited by ssh and other programs Ansible starts: the stream must end when
                # ansible-playbook does, not when a persistent ssh connection finally exits.
                os.set_inheritable(int(fd), False)
                self._out = os.fdopen(int(fd), "w", buffering=1, encoding="utf-8")
            except OSError:
                self._out = None

    def _emit(self, result, status):
        if self._out is None:
            return
        res = result._result if isinstance(result._result, dict) else {}
        msg = res.get("msg") or ""
        if not isinstance(msg, str):
            msg = json.dumps(msg, default=str)
        line = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "action": result._task.action,
            "status": status,
            "changed": bool(res.get("changed", False)),
            "msg": msg[:MAX_MSG],
        }
        if status in ("failed", "unreachable"):
            for k in ("stdout", "stderr"):
                if res.get(k):
                    line[k] = tail(res[k], MAX_OUTPUT)
        try:
            self._out.write(json.dumps(line) + "\n")
        except (OSError, ValueError):
            self._out = None  # nodeexec stopped reading: keep the run going

    def v2_runner_on_ok(self, result):
        self._emit(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._emit(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._emit(result, "unreachable")
