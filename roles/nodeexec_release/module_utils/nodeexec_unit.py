# The service's systemd unit on the node: what systemd says of it, restarting it, and verifying a release
# by watching it. Verification polls inside the module (no Ansible `until` loop): the unit's process and
# the health checks every `interval` seconds, so a release whose process dies is failed at once.

import datetime
import os
import socket
import subprocess
import time

# The step names are what a node that fails verification reports, and what metrics count as checks.
STEP_ACTIVE = "Wait for the unit to be active"
STEP_HTTP = "Check the HTTP health endpoint"
STEP_TCP = "Check the TCP port"
STEP_STEADY = "Check the release holds steady"

# systemd's "no value": accounting off, or the unit not running ("[not set]" in newer versions).
UNSET = 2**64 - 1
SHOW = ("ActiveState", "SubState", "Result", "MainPID", "NRestarts", "ExecMainCode", "ExecMainStatus",
        "ActiveEnterTimestampMonotonic", "MemoryCurrent", "CPUUsageNSec", "TasksCurrent")


def unit_name(service):
    return service + ".service"


def systemctl(*args, timeout=60):
    """Run systemctl; (rc, stdout, stderr). A systemctl that cannot run is rc 127 with the reason."""
    try:
        r = subprocess.run(["systemctl"] + list(args), capture_output=True, text=True, errors="replace",
                           timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return 127, "", str(e)
    return r.returncode, r.stdout, r.stderr


def props(service):
    """systemctl show of the unit, the properties in SHOW ({} if it cannot run)."""
    args = ["show"]
    for p in SHOW:
        args += ["-p", p]
    rc, out, _ = systemctl(*(args + [unit_name(service)]), timeout=10)
    if rc == 127:
        return {}
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def as_int(p, key):
    try:
        return int(p.get(key, "0") or "0")
    except ValueError:
        return 0


def resources(p):
    """What the unit uses now, as systemd accounts it: only the figures systemd knows (accounting may be
    off for some), none when the unit is not running."""
    if p.get("ActiveState") != "active":
        return {}
    out = {}
    for key, name in (("MemoryCurrent", "memory_bytes"), ("CPUUsageNSec", "cpu_nsec"), ("TasksCurrent", "tasks")):
        try:
            v = int(p.get(key, ""))
        except ValueError:
            continue
        if 0 <= v < UNSET:
            out[name] = v
    return out


def active_since(active_state, enter_monotonic_usec, now_real, now_monotonic):
    """When the unit became active (UTC ISO 8601) and how many seconds ago; ("", 0) when it is not active.
    From systemd's monotonic timestamp, not its printed ActiveEnterTimestamp, whose format follows the
    node's locale and time zone."""
    if active_state != "active" or enter_monotonic_usec <= 0:
        return "", 0
    up = max(0.0, now_monotonic - enter_monotonic_usec / 1e6)
    since = datetime.datetime.fromtimestamp(now_real - up, datetime.timezone.utc)
    return since.strftime("%Y-%m-%dT%H:%M:%SZ"), int(up)


def install_unit(service, src):
    """Install a release's unit file as the service's unit; daemon-reload only when it changed. Returns
    whether it changed."""
    dest = os.path.join("/etc/systemd/system", unit_name(service))
    with open(src, "rb") as f:
        want = f.read()
    try:
        with open(dest, "rb") as f:
            if f.read() == want:
                return False
    except OSError:
        pass
    tmp = dest + ".nodeexec"
    with open(tmp, "wb") as f:
        f.write(want)
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
    rc, _, err = systemctl("daemon-reload")
    if rc != 0:
        raise RuntimeError("systemctl daemon-reload: %s" % (err.strip() or "exit %d" % rc))
    return True


def restart(service):
    """Enable (if it is not) and restart the unit; raises with systemctl's own words when it fails."""
    unit = unit_name(service)
    rc, out, _ = systemctl("is-enabled", unit, timeout=10)
    if out.strip() != "enabled":
        rc, _, err = systemctl("enable", unit)
        if rc != 0:
            raise RuntimeError("systemctl enable %s: %s" % (unit, err.strip() or "exit %d" % rc))
    # systemd refuses a unit that started too often lately (StartLimitBurst, 5 in 10 s by default): a
    # crash loop and its rollback count, so a deploy right after would be refused. Those limits are for
    # systemd's own restarts; a deliberate one starts the count afresh (a unit never loaded: no-op).
    systemctl("reset-failed", unit, timeout=10)
    rc, _, err = systemctl("restart", unit, timeout=120)
    if rc != 0:
        raise RuntimeError("systemctl restart %s: %s" % (unit, err.strip() or "exit %d" % rc))


def stop(service):
    systemctl("stop", unit_name(service))


class ProcessDied(Exception):
    """The unit's main process exited or was restarted during verification."""


def exit_text(p):
    status = p.get("ExecMainStatus", "")
    code = {"1": "exited", "2": "killed", "3": "dumped core"}.get(p.get("ExecMainCode", ""), "")
    out = "status=%s" % status if status else ""
    if code:
        out = "code=%s, %s" % (code, out) if out else "code=%s" % code
    return out


class ProcessWatch:
    """What a unit's process did since it was restarted: a crash is a restart by systemd (NRestarts grows),
    a failed unit, one waiting to be restarted, or a main process other than the one first seen."""

    def __init__(self, first):
        self.restarts = as_int(first, "NRestarts")
        self.pid = as_int(first, "MainPID")

    def check(self, p):
        """Raise ProcessDied when p (a later props) shows the process died; returns whether it is active."""
        state, sub = p.get("ActiveState", ""), p.get("SubState", "")
        restarts, pid = as_int(p, "NRestarts"), as_int(p, "MainPID")
        why = ""
        if restarts > self.restarts:
            why = "was restarted by systemd %d time(s)" % (restarts - self.restarts)
        elif state == "failed":
            why = "failed (%s)" % (p.get("Result") or "failed")
        elif state == "activating" and sub == "auto-restart":
            why = "exited and systemd is about to restart it"
        elif state in ("inactive", "deactivating"):
            why = "exited (the unit is %s)" % state
        elif self.pid and pid and pid != self.pid:
            why = "was replaced (pid %d, then %d)" % (self.pid, pid)
        if why:
            detail = exit_text(p)
            raise ProcessDied("the service's main process %s%s" % (why, " (last exit: %s)" % detail if detail else ""))
        if not self.pid and pid:
            self.pid = pid
        return state == "active"


def http_check(port, path, want_status, timeout):
    """One HTTP attempt against the node's own port: "" when it answers want_status, else why not."""
    # Imported here, not at the top: urllib.request costs ~30 ms of every module start on the node,
    # and most calls check no health.
    import urllib.error
    import urllib.request

    url = "http://127.0.0.1:%d%s" % (port, path)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=max(0.05, timeout)) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
        if status != want_status:
            return "Status code was %d and not [%d]: HTTP Error %d: %s" % (status, want_status, status, e.reason)
    except (socket.timeout, TimeoutError):
        return "Request failed: timed out"
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "Request failed: timed out"
        return "Request failed: %s" % reason
    if status != want_status:
        return "Status code was %d and not [%d]" % (status, want_status)
    return ""


def tcp_check(port, timeout):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=max(0.05, timeout)):
            return ""
    except (socket.timeout, TimeoutError):
        return "connecting to port %d timed out" % port
    except OSError as e:
        return "port %d does not accept connections: %s" % (port, e.strerror or e)


class Health:
    """How a release proves it works: the unit active, then the HTTP and TCP checks, within window
    seconds, polled every interval; then, with steady > 0, all of it passing that long."""

    def __init__(self, http_port=0, http_path="/health", http_status=200, tcp_port=0, window=10.0,
                 interval=0.2, attempt_timeout=5.0, steady=0.0):
        self.http_port, self.http_path, self.http_status = http_port, http_path, http_status
        self.tcp_port = tcp_port
        self.window, self.interval = max(window, 1.0), max(interval, 0.05)
        self.attempt_timeout, self.steady = attempt_timeout, max(steady, 0.0)

    def checks(self):
        """(step name, check(timeout) -> "" or why not) of the checks asked for, in order."""
        out = []
        if self.http_port > 0:
            out.append((STEP_HTTP, lambda t: http_check(self.http_port, self.http_path, self.http_status, t)))
        if self.tcp_port > 0:
            out.append((STEP_TCP, lambda t: tcp_check(self.tcp_port, t)))
        return out


def verify(service, health, steps, alive=lambda: True, clock=time.monotonic, sleep=time.sleep, show=props):
    """Watch the restarted unit until every check passes (then hold steady), recording one step per check.
    Raises StepFailed (from steps) naming the check that failed; a process that dies fails at once."""
    deadline = clock() + health.window
    watch = ProcessWatch(show(service))

    def poll(step_name):
        if not alive():
            raise steps.fail(step_name, "the run that started this verification has ended (its connection closed)")
        try:
            return watch.check(show(service))
        except ProcessDied as e:
            raise steps.fail(step_name, "%s%s" % (e, journal_hint(service)))

    # The unit active first: its process must come up and stay up.
    with steps.step(STEP_ACTIVE) as st:
        while not poll(STEP_ACTIVE):
            if clock() >= deadline:
                raise steps.fail(STEP_ACTIVE, "the unit did not become active within %gs (it is %s)"
                                 % (health.window, show(service).get("ActiveState", "unknown")))
            sleep(health.interval)
        st.msg = "active"

    for name, check in health.checks():
        with steps.step(name) as st:
            attempts = 0
            while True:
                attempts += 1
                why = check(min(health.attempt_timeout, max(0.05, deadline - clock())))
                if not why:
                    break
                poll(name)
                if clock() >= deadline:
                    raise steps.fail(name, "%s (after %d attempts in %gs)" % (why, attempts, health.window))
                sleep(health.interval)
            poll(name)
            st.msg = "passed after %d attempt(s)" % attempts

    if health.steady > 0:
        with steps.step(STEP_STEADY) as st:
            until = clock() + health.steady
            while clock() < until:
                sleep(min(health.interval, max(0.0, until - clock())))
                poll(STEP_STEADY)
                for name, check in health.checks():
                    why = check(health.attempt_timeout)
                    if why:
                        raise steps.fail(STEP_STEADY, "%s stopped passing: %s" % (name, why))
            st.msg = "held steady for %gs" % health.steady


def journal_hint(service, lines=3):
    """The unit's last journal lines, for a message: why a process died is usually there."""
    try:
        r = subprocess.run(["journalctl", "-u", unit_name(service), "-n", str(lines), "--no-pager", "-o", "cat"],
                           capture_output=True, text=True, errors="replace", timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    text = " | ".join(l.strip()[:300] for l in r.stdout.splitlines() if l.strip())
    return "; its journal ends: %s" % text if text else ""
