"""Unit tests of the service's systemd unit as the module sees it (its part of library/nodeexec_release.py): what
systemctl show says, the unit's uptime and resources, crash detection (ProcessWatch), the health checks,
and verify()'s polling loop on a fake clock. No systemd and no Ansible run: `make test`, or
python3 -m unittest discover -s roles/nodeexec_release/tests -p 'test_*.py'
"""

import http.server
import os
import socket
import subprocess
import sys
import threading
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # loader.py, also when run by path
from loader import nr, unit  # noqa: E402


class ActiveSinceTest(unittest.TestCase):
    # 2026-11-25T10:00:00Z, with the monotonic clock at 5000 s.
    NOW_REAL, NOW_MONO = 1795600800.0, 5000.0

    def test_an_active_unit_reports_when_it_started_and_for_how_long(self):
        # Entered active at monotonic 4910 s: 90 s ago.
        self.assertEqual(unit.active_since("active", 4910 * 10**6, self.NOW_REAL, self.NOW_MONO), ("2026-11-25T09:58:30Z", 90))

    def test_a_unit_that_is_not_active_has_no_start(self):
        for state in ("inactive", "failed", "activating", "unknown", ""):
            self.assertEqual(unit.active_since(state, 4910 * 10**6, self.NOW_REAL, self.NOW_MONO), ("", 0), state)

    def test_no_timestamp_means_no_start(self):
        self.assertEqual(unit.active_since("active", 0, self.NOW_REAL, self.NOW_MONO), ("", 0))

    def test_a_timestamp_from_the_future_is_zero_seconds_ago(self):
        self.assertEqual(unit.active_since("active", 5001 * 10**6, self.NOW_REAL, self.NOW_MONO), ("2026-11-25T10:00:00Z", 0))


class SystemctlShowTest(unittest.TestCase):
    def test_systemctl_show_is_parsed_into_numbers(self):
        props = {"ActiveState": "active", "MainPID": "4242", "ActiveEnterTimestampMonotonic": "", "Bad": "x"}
        self.assertEqual((unit.as_int(props, "MainPID"), unit.as_int(props, "ActiveEnterTimestampMonotonic"),
                          unit.as_int(props, "Bad"), unit.as_int(props, "Missing")), (4242, 0, 0, 0))

    def test_props_asks_for_the_properties_it_reads_and_parses_the_answer(self):
        calls = []

        def systemctl(*args, timeout=60):
            calls.append(args)
            return 0, "ActiveState=active\nMainPID=42\nResult=success\nExecMainStatus=\nWeird=a=b\n\nnoise\n", ""
        with mock.patch.object(unit, "systemctl", systemctl):
            p = unit.props("demo")
        self.assertEqual(p, {"ActiveState": "active", "MainPID": "42", "Result": "success", "ExecMainStatus": "", "Weird": "a=b"})
        args = calls[0]
        self.assertEqual((args[0], args[-1]), ("show", "demo.service"))
        self.assertEqual(set(args[2:-1:2]), set(unit.SHOW))
        self.assertEqual(set(args[1:-1:2]), {"-p"})

    def test_a_systemctl_that_cannot_answer_reads_as_nothing(self):
        for answer in [(127, "", "No such file or directory"),
                       (1, "", "System has not been booted with systemd as init system (PID 1). Can't operate.")]:
            with self.subTest(answer), mock.patch.object(unit, "systemctl", lambda *a, **kw: answer):
                self.assertEqual(unit.props("demo"), {})

    def test_systemctl_that_cannot_run_is_rc_127_with_the_reason(self):
        for exc in (FileNotFoundError(2, "No such file or directory", "systemctl"),
                    subprocess.TimeoutExpired(["systemctl"], 10)):
            with self.subTest(exc), mock.patch.object(unit.subprocess, "run", side_effect=exc):
                rc, out, err = unit.systemctl("show", "demo.service")
                self.assertEqual((rc, out), (127, ""))
                self.assertEqual(err, str(exc))

    def test_restart_enables_a_unit_that_is_not_and_says_why_it_failed(self):
        calls = []

        def systemctl(*args, timeout=60):
            calls.append(args[0])
            return {"is-enabled": (1, "disabled\n", ""), "enable": (0, "", ""), "reset-failed": (0, "", ""),
                    "restart": (1, "", "Job for demo.service failed.\n")}[args[0]]
        with mock.patch.object(unit, "systemctl", systemctl), \
                self.assertRaisesRegex(RuntimeError, r"^systemctl restart demo.service: Job for demo.service failed.$"):
            unit.restart_unit("demo")
        # reset-failed first: a deliberate restart is never refused by the start limit of a crash loop.
        self.assertEqual(calls, ["is-enabled", "enable", "reset-failed", "restart"])


class ResourcesTest(unittest.TestCase):
    """What systemctl show says a unit uses, as the report has it."""

    def test_the_figures_systemd_accounts(self):
        props = {"ActiveState": "active", "MemoryCurrent": "12582912", "CPUUsageNSec": "431000000", "TasksCurrent": "7"}
        self.assertEqual(unit.resources(props), {"memory_bytes": 12582912, "cpu_nsec": 431000000, "tasks": 7})

    def test_figures_systemd_does_not_know_are_left_out(self):
        props = {"ActiveState": "active", "MemoryCurrent": "[not set]", "CPUUsageNSec": str(2**64 - 1), "TasksCurrent": "3"}
        self.assertEqual(unit.resources(props), {"tasks": 3})
        self.assertEqual(unit.resources({"ActiveState": "active", "MemoryCurrent": "", "TasksCurrent": "-1"}), {})

    def test_a_unit_that_is_not_running_uses_nothing(self):
        self.assertEqual(unit.resources({"ActiveState": "inactive", "MemoryCurrent": "4096", "TasksCurrent": "1"}), {})
        self.assertEqual(unit.resources({}), {})


def show(state="active", sub=None, pid=100, restarts=0, **more):
    p = {"ActiveState": state, "SubState": sub or {"active": "running", "activating": "start", "failed": "failed"}.get(state, "dead"),
         "MainPID": str(pid), "NRestarts": str(restarts)}
    p.update(more)
    return p


class JournalTest(unittest.TestCase):
    """The service's own log as the journal phase reads it: journalctl's JSON, one entry per line."""

    def read(self, stdout, rc=0, stderr="", **kw):
        done = subprocess.CompletedProcess([], rc, stdout=stdout, stderr=stderr)
        with mock.patch.object(unit.subprocess, "run", return_value=done) as run:
            lines = unit.journal("demo", 100, **kw)
        self.assertEqual(run.call_args[0][0][:5], ["journalctl", "-u", "demo.service", "-n", "100"])
        return lines

    def test_each_line_with_its_time_and_unit_oldest_first(self):
        out = "\n".join([
            '{"__REALTIME_TIMESTAMP":"1733500000000000","_SYSTEMD_UNIT":"demo.service","MESSAGE":"listening on :8080"}',
            'not json: journalctl said something else',
            '{"__REALTIME_TIMESTAMP":"1733500001500000","_SYSTEMD_UNIT":"init.scope","UNIT":"demo.service","MESSAGE":[104,105,255]}',
        ])
        self.assertEqual(self.read(out), [
            {"time": "2024-12-06T15:46:40.000000Z", "unit": "demo.service", "message": "listening on :8080"},
            {"time": "2024-12-06T15:46:41.500000Z", "unit": "demo.service", "message": "hi\ufffd"},
        ])

    def test_bounded_by_bytes_keeping_the_newest(self):
        out = "\n".join('{"__REALTIME_TIMESTAMP":"%d","MESSAGE":"%s"}' % (i, "x" * 99) for i in range(10))
        lines = self.read(out, max_bytes=350)  # room for three messages of 100 bytes
        self.assertEqual([l["time"] for l in lines], ["1970-01-01T00:00:00.00000%dZ" % i for i in (7, 8, 9)])
        long = self.read('{"__REALTIME_TIMESTAMP":"1","MESSAGE":"%s"}' % ("y" * 5000))
        self.assertEqual(len(long[0]["message"]), unit.MAX_LINE)

    def test_journalctl_failing_says_why(self):
        with self.assertRaises(RuntimeError) as cm:
            self.read("", rc=1, stderr="Failed to get journal access: Permission denied")
        self.assertIn("Permission denied", str(cm.exception))


class ProcessWatchTest(unittest.TestCase):
    def test_what_the_process_did(self):
        # (name, the first look after the restart, later looks, None when nothing died or what the message says)
        died = "the service's main process "
        cases = [
            ("active and steady", show(), [show(), show(), show()], None),
            ("restarts before the restart do not count", show(restarts=5), [show(restarts=5)], None),
            ("NRestarts grows", show(), [show(), show(pid=101, restarts=1)], died + "was restarted by systemd 1 time(s)"),
            ("NRestarts grows by two, with how it last exited", show(), [show(pid=102, restarts=2, ExecMainCode="2", ExecMainStatus="9")],
             died + "was restarted by systemd 2 time(s) (last exit: code=killed, status=9)"),
            ("the unit failed", show(), [show("failed", Result="exit-code", ExecMainCode="1", ExecMainStatus="3")],
             died + "failed (exit-code) (last exit: code=exited, status=3)"),
            ("the unit failed, no result given", show(), [show("failed", Result="")], died + "failed (failed)"),
            ("systemd is about to restart it", show(), [show("activating", "auto-restart", pid=0)],
             died + "exited and systemd is about to restart it"),
            ("the unit is inactive", show(), [show("inactive", pid=0, ExecMainStatus="0")],
             died + "exited (the unit is inactive) (last exit: status=0)"),
            ("the unit is deactivating", show(), [show("deactivating", "stop-sigterm")], died + "exited (the unit is deactivating)"),
            ("another main process", show(), [show(), show(pid=101)], died + "was replaced (pid 100, then 101)"),
            ("no pid yet, then one", show("activating", pid=0), [show("activating", pid=0), show(pid=120), show(pid=120)], None),
            ("no pid yet, then one, then another", show("activating", pid=0), [show(pid=120), show(pid=121)],
             died + "was replaced (pid 120, then 121)"),
            ("still starting is not a death", show("activating", pid=100), [show("activating", pid=100)], None),
            ("numbers systemd does not know", show(restarts=""), [dict(show(), NRestarts="[not set]", MainPID="")], None),
        ]
        for name, first, later, want in cases:
            with self.subTest(name):
                watch = unit.ProcessWatch(first)
                if want is None:
                    for p in later:
                        self.assertEqual(watch.check(p), p["ActiveState"] == "active")
                else:
                    with self.assertRaises(unit.ProcessDied) as cm:
                        for p in later:
                            watch.check(p)
                    self.assertEqual(str(cm.exception), want)


class FakeClock:
    """verify()'s clock and sleep: time passes only when it sleeps (or a check takes its time)."""

    def __init__(self):
        self.t, self.slept = 1000.0, []

    def __call__(self):
        return self.t

    def sleep(self, s):
        assert s >= 0
        self.slept.append(s)
        self.t += s


class Looks:
    """verify()'s show: one property dict per look (the first is the look ProcessWatch starts from); the last
    one repeats."""

    def __init__(self, *seq):
        self.seq, self.n = list(seq), 0

    def __call__(self, service):
        assert service == "demo"
        p = self.seq[min(self.n, len(self.seq) - 1)]
        self.n += 1
        return dict(p)


class Check:
    """A fake HTTP or TCP check: answers in turn ("" passes; the last one repeats); calls has the timeouts."""

    def __init__(self, clock, *answers, takes=0.0):
        self.clock, self.answers, self.takes, self.calls = clock, list(answers), takes, []

    def __call__(self, *args):
        self.calls.append(args[-1])
        self.clock.t += self.takes
        return self.answers[min(len(self.calls) - 1, len(self.answers) - 1)]


class VerifyTest(unittest.TestCase):
    def setUp(self):
        self.clock = FakeClock()
        self.steps = nr.Steps()
        p = mock.patch.object(unit, "journal_hint", lambda service, lines=3: "; its journal ends: panic: boom")
        p.start()
        self.addCleanup(p.stop)

    def verify(self, health, looks, http=None, tcp=None, alive=lambda: True):
        patches = [mock.patch.object(unit, "http_check", http or Check(self.clock, "")),
                   mock.patch.object(unit, "tcp_check", tcp or Check(self.clock, ""))]
        for p in patches:
            p.start()
        self.start = self.clock.t
        try:
            unit.verify("demo", health, self.steps, alive=alive, clock=self.clock, sleep=self.clock.sleep, show=looks)
        finally:
            for p in patches:
                p.stop()

    def failure(self, *args, **kw):
        with self.assertRaises(nr.StepFailed) as cm:
            self.verify(*args, **kw)
        e = cm.exception
        # The step that failed is the last one recorded, with the same reason.
        self.assertEqual((self.steps.items[-1]["name"], self.steps.items[-1]["status"], self.steps.items[-1]["msg"]),
                         (e.step, "failed", e.reason))
        return e

    def recorded(self):
        return [(i["name"], i["status"], i["msg"]) for i in self.steps.items]

    def elapsed(self):
        return self.clock.t - self.start

    def test_a_healthy_release_passes_every_check(self):
        http = Check(self.clock, "Request failed: [Errno 111] Connection refused", "Status code was 503 and not [200]", "")
        self.verify(unit.Health(http_port=8080, tcp_port=9090, window=10, interval=0.5),
                    Looks(show("activating", pid=0), show("activating", pid=0), show(pid=100)), http=http)
        self.assertEqual(self.recorded(), [(unit.STEP_ACTIVE, "ok", "active"),
                                           (unit.STEP_HTTP, "ok", "passed after 3 attempt(s)"),
                                           (unit.STEP_TCP, "ok", "passed after 1 attempt(s)")])
        self.assertEqual(self.clock.slept, [0.5, 0.5, 0.5])
        # Each attempt may take what is left of the window, at most attempt_timeout.
        self.assertEqual(http.calls, [5.0, 5.0, 5.0])

    def test_a_crash_fails_the_step_at_once_not_after_the_window(self):
        looks = Looks(show("activating", pid=300), show("activating", pid=300),
                      show("activating", "auto-restart", pid=0, ExecMainCode="1", ExecMainStatus="3"))
        http = Check(self.clock, "")
        e = self.failure(unit.Health(http_port=8080, window=10, interval=0.5), looks, http=http)
        self.assertEqual(e.step, unit.STEP_ACTIVE)
        self.assertEqual(e.reason, "the service's main process exited and systemd is about to restart it "
                                   "(last exit: code=exited, status=3); its journal ends: panic: boom")
        self.assertEqual(self.elapsed(), 0.5)  # the second look, one interval in
        self.assertEqual(http.calls, [])
        self.assertEqual([n for n, _, _ in self.recorded()], [unit.STEP_ACTIVE])

    def test_a_crash_while_the_http_check_fails_fails_that_check_at_once(self):
        looks = Looks(show(), show(), show(), show(pid=101, restarts=1))
        e = self.failure(unit.Health(http_port=8080, window=10, interval=0.5), looks,
                         http=Check(self.clock, "Request failed: [Errno 111] Connection refused"))
        self.assertEqual(e.step, unit.STEP_HTTP)
        self.assertTrue(e.reason.startswith("the service's main process was restarted by systemd 1 time(s)"), e.reason)
        self.assertLess(self.elapsed(), 2)

    def test_an_http_check_that_never_passes_fails_after_the_window(self):
        http = Check(self.clock, "Status code was 503 and not [200]")
        e = self.failure(unit.Health(http_port=8080, window=2, interval=0.5), Looks(show()), http=http)
        self.assertEqual(e.step, unit.STEP_HTTP)
        self.assertEqual(e.reason, "Status code was 503 and not [200] (after 5 attempts in 2s)")
        self.assertGreaterEqual(self.elapsed(), 2)
        self.assertLess(self.elapsed(), 2.5)
        self.assertEqual(self.recorded()[0], (unit.STEP_ACTIVE, "ok", "active"))

    def test_an_attempt_never_outlasts_the_window(self):
        http = Check(self.clock, "Request failed: timed out", takes=1.5)
        e = self.failure(unit.Health(http_port=8080, window=4, interval=0.2, attempt_timeout=5), Looks(show()), http=http)
        self.assertIn("(after 3 attempts in 4s)", e.reason)
        self.assertEqual(http.calls[0], 4.0)
        self.assertTrue(all(0.05 <= t <= 4.0 for t in http.calls), http.calls)
        self.assertEqual(http.calls, sorted(http.calls, reverse=True))

    def test_a_tcp_port_that_never_opens_fails_its_step(self):
        e = self.failure(unit.Health(tcp_port=9090, window=1, interval=0.25), Looks(show()),
                         tcp=Check(self.clock, "port 9090 does not accept connections: Connection refused"))
        self.assertEqual(e.step, unit.STEP_TCP)
        self.assertIn("(after 5 attempts in 1s)", e.reason)

    def test_a_unit_that_never_becomes_active_fails_after_the_window(self):
        e = self.failure(unit.Health(window=2, interval=0.5), Looks(show("activating", pid=0)))
        self.assertEqual(e.step, unit.STEP_ACTIVE)
        self.assertEqual(e.reason, "the unit did not become active within 2s (it is activating)")
        self.assertGreaterEqual(self.elapsed(), 2)

    def test_a_check_that_stops_passing_while_steady_fails_the_steady_step(self):
        http = Check(self.clock, "", "", "", "Request failed: [Errno 111] Connection refused")
        e = self.failure(unit.Health(http_port=8080, window=10, interval=0.5, steady=5), Looks(show()), http=http)
        self.assertEqual(e.step, unit.STEP_STEADY)
        self.assertEqual(e.reason, "%s stopped passing: Request failed: [Errno 111] Connection refused" % unit.STEP_HTTP)
        self.assertEqual([(n, s) for n, s, _ in self.recorded()],
                         [(unit.STEP_ACTIVE, "ok"), (unit.STEP_HTTP, "ok"), (unit.STEP_STEADY, "failed")])
        self.assertEqual(self.elapsed(), 1.5)

    def test_a_crash_while_steady_fails_the_steady_step(self):
        looks = Looks(show(), show(), show(), show(), show("failed", Result="signal", ExecMainCode="2", ExecMainStatus="11"))
        e = self.failure(unit.Health(http_port=8080, window=10, interval=0.5, steady=5), looks)
        self.assertEqual(e.step, unit.STEP_STEADY)
        self.assertTrue(e.reason.startswith("the service's main process failed (signal) (last exit: code=killed, status=11)"), e.reason)

    def test_a_release_that_holds_steady_passes(self):
        self.verify(unit.Health(http_port=8080, window=10, interval=0.5, steady=2), Looks(show()))
        self.assertEqual(self.recorded()[-1], (unit.STEP_STEADY, "ok", "held steady for 2s"))
        self.assertEqual(self.elapsed(), 2.0)

    def test_a_run_that_ended_stops_verifying(self):
        e = self.failure(unit.Health(http_port=8080, window=10, interval=0.5), Looks(show("activating", pid=0)),
                         alive=lambda: False)
        self.assertEqual(e.step, unit.STEP_ACTIVE)
        self.assertIn("connection closed", e.reason)
        self.assertEqual(self.elapsed(), 0)

        looks_left = iter([True, True])
        self.steps = nr.Steps()
        e = self.failure(unit.Health(http_port=8080, window=10, interval=0.5), Looks(show()),
                         http=Check(self.clock, "Status code was 503 and not [200]"), alive=lambda: next(looks_left, False))
        self.assertEqual(e.step, unit.STEP_HTTP)
        self.assertIn("connection closed", e.reason)

    def test_health_bounds(self):
        h = unit.Health(window=0, interval=0, steady=-1)
        self.assertEqual((h.window, h.interval, h.steady), (1.0, 0.05, 0.0))
        self.assertEqual(h.checks(), [])
        self.assertEqual([n for n, _ in unit.Health(http_port=1, tcp_port=2).checks()], [unit.STEP_HTTP, unit.STEP_TCP])


class HealthServer:
    """/health answers 200, /broken 503, /slow only when the test ends."""

    def __init__(self):
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/slow":
                    outer.release.wait(10)
                code = {"/health": 200, "/broken": 503, "/slow": 200}.get(self.path, 404)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ChecksTest(unittest.TestCase):
    def setUp(self):
        self.server = HealthServer()
        self.addCleanup(self.server.close)

    def test_http_check(self):
        port = self.server.port
        # A proxy configured on the node must not see the node's own health checks.
        with mock.patch.dict(os.environ, {"http_proxy": "http://127.0.0.1:%d" % closed_port(), "no_proxy": ""}):
            self.assertEqual(unit.http_check(port, "/health", 200, 2), "")
        self.assertEqual(unit.http_check(port, "/broken", 503, 2), "")
        self.assertEqual(unit.http_check(port, "/broken", 200, 2),
                         "Status code was 503 and not [200]: HTTP Error 503: Service Unavailable")
        self.assertEqual(unit.http_check(port, "/health", 204, 2), "Status code was 200 and not [204]")
        self.assertEqual(unit.http_check(port, "/slow", 200, 0.3), "Request failed: timed out")
        self.assertRegex(unit.http_check(closed_port(), "/health", 200, 2), r"^Request failed: .*(refused|Errno)")

    def test_tcp_check(self):
        self.assertEqual(unit.tcp_check(self.server.port, 2), "")
        port = closed_port()
        self.assertRegex(unit.tcp_check(port, 2), r"^port %d does not accept connections: " % port)


if __name__ == "__main__":
    unittest.main()
