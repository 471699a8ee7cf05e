# One lock per service per node, shared by nodeexec, the scheduled cleanup and operators' hand runs.
# The lock is a flock(2) held by a small detached holder process, so the kernel frees it the moment the
# holder dies. The holder lets go when the run that took it ends: it watches the run's connection to the
# node (the sshd session every task of a run shares through its SSH master, or the controller itself for
# connection=local), so a killed run never leaves a node locked; the TTL bounds it in every case.

import datetime
import fcntl
import json
import os
import secrets
import select
import signal
import time

LOCK = "lock"
INFO = "lock.holder.json"
# How often the holder looks at its run's connection: a dead run's lock is free within this.
WATCH_EVERY = 0.5
# The processes a run's tasks hang under on the node: OpenSSH's per-connection process, or (local runs)
# ansible-playbook itself; comm is cut to 15 characters by the kernel.
SSHD_NAMES = ("sshd", "sshd-session")
CONTROLLER_PREFIX = "ansible-playboo"


def _stat(pid):
    """(comm, state, ppid, starttime) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    # comm is in parentheses and may itself contain spaces or parentheses: split at the last ')'.
    head, _, rest = data.rpartition(")")
    comm = head.split("(", 1)[1] if "(" in head else ""
    fields = rest.split()
    try:
        return comm, fields[0], int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def connection_anchor(start=None):
    """The process whose life is the run's: the nearest sshd session above us, else the topmost
    ansible-playbook (connection=local). [pid, starttime], or None when neither is found (then only the
    TTL and an explicit release end the lock)."""
    pid = os.getppid() if start is None else start
    controller = None
    for _ in range(64):
        st = _stat(pid)
        if st is None or pid <= 1:
            break
        comm, _, ppid, started = st
        if comm in SSHD_NAMES:
            return [pid, started]
        if comm.startswith(CONTROLLER_PREFIX):
            controller = [pid, started]
        pid = ppid
    return controller


def anchor_alive(anchor):
    """Whether the run that anchor names still runs (the same process: pids are reused)."""
    if not anchor:
        return True
    st = _stat(anchor[0])
    return st is not None and st[1] != "Z" and st[3] == anchor[1]


def session_open(fd=1):
    """Whether whoever reads our output is still there: the task's SSH session (or the local worker). A
    reader that went away (the run was killed) shows as an error or hang-up on our end of the pipe."""
    try:
        p = select.poll()
        p.register(fd, select.POLLOUT)
        events = p.poll(0)
    except (OSError, ValueError):
        return True
    return not any(ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, ev in events)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_info(d):
    try:
        with open(os.path.join(d, INFO)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_info(d, info):
    tmp = os.path.join(d, ".%s.%d" % (INFO, os.getpid()))
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, os.path.join(d, INFO))


def remove_info_if(d, token):
    if read_info(d).get("token") == token:
        try:
            os.unlink(os.path.join(d, INFO))
        except OSError:
            pass


def _hold(d, info, ttl, anchor, report_fd):
    """Runs in the detached grandchild: take the lock, tell the parent, then keep it while the run lives."""
    fd = os.open(os.path.join(d, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.write(report_fd, b"busy")
        os._exit(0)
    # Named before anyone is told the lock is taken: from then on ps shows who holds it.
    try:
        with open("/proc/self/comm", "w") as f:
            f.write("nodeexec-lock")
    except OSError:
        pass
    info["pid"] = os.getpid()
    write_info(d, info)
    os.write(report_fd, b"ok")
    os.close(report_fd)

    def stop(signum, frame):
        remove_info_if(d, info["token"])
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    deadline = time.monotonic() + ttl
    while time.monotonic() < deadline:
        time.sleep(min(WATCH_EVERY, max(0.0, deadline - time.monotonic())))
        if read_info(d).get("token") != info["token"]:
            break  # someone removed our record: treat it as a release
        if not anchor_alive(anchor):
            break  # the run that took the lock is gone
    remove_info_if(d, info["token"])
    os._exit(0)


def _pidfd(pid):
    """A pidfd for pid (Linux 5.3+, Python 3.9+), or None: gone already, or no pidfds here."""
    if not (isinstance(pid, int) and pid > 1 and hasattr(os, "pidfd_open")):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _wait_readable(fd, timeout):
    """Wait at most timeout seconds for fd to turn readable (a pidfd does when its process exits)."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    p.poll(max(1, int(timeout * 1000)))


class Busy(Exception):
    """The lock is held by someone else; .info is their record and str() says who, for people."""

    def __init__(self, info):
        self.info = info
        super().__init__(
            "locked by %s (%s, since %s, pid %s); wait for it to finish, or release a stale lock with "
            "playbooks/unlock.yml -e nodeexec_force_unlock=true"
            % (info.get("holder", "an unknown holder"), info.get("playbook") or "?", info.get("since", "?"),
               info.get("pid", "?")))

    @property
    def holder(self):
        return self.info.get("holder", "an unknown holder")


def acquire(d, holder, playbook, ttl, anchor):
    """Take the lock for the run anchor names; returns its token, raises Busy when someone has it."""
    os.makedirs(d, mode=0o755, exist_ok=True)
    info = {"holder": holder, "playbook": playbook, "since": now(), "token": secrets.token_hex(8)}
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # Detach fully: own session, stdio on /dev/null (Ansible waits for our stdout to close), cwd /.
        os.close(r)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.chdir("/")
        try:
            _hold(d, info, ttl, anchor, w)
        except Exception:
            os._exit(1)
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    chunks = []
    while True:
        b = os.read(r, 64)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    if b"".join(chunks) == b"ok":
        return info["token"]
    # Busy: say who has it. The holder writes its record just after taking the lock: allow it a moment.
    other = {}
    for _ in range(20):
        other = read_info(d)
        if other:
            break
        time.sleep(0.05)
    raise Busy(other)


def holds(d, token):
    """Whether the holder that acquire returned token for still holds the lock."""
    info = read_info(d)
    if not token or info.get("token") != token:
        return False
    st = _stat(info.get("pid") or 0) if isinstance(info.get("pid"), int) else None
    return st is not None and st[1] != "Z"


def release(d, token="", unlock_holder="", force=False):
    """Stop the holder that token (or unlock_holder, or force: anyone) names and wait until the kernel has
    freed the lock. Returns (released, holder, message)."""
    info = read_info(d)
    if not info:
        return False, "", "not locked"
    ours = (token and info.get("token") == token) or \
        (unlock_holder and info.get("holder") == unlock_holder) or force
    if not ours:
        return False, info.get("holder", ""), "held by %s; not ours to release" % info.get("holder")
    pid = info.get("pid")
    # Opened before the signal, so that it names the holder and no process that gets its pid later.
    pidfd = _pidfd(pid)
    if isinstance(pid, int) and pid > 1:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    # Wait until the kernel has really freed the lock, so the next taker never races the old holder.
    # The holder lets go as it exits, a millisecond or two after the signal: while the lock is held,
    # wait for that exit on the pidfd, else (no pidfd) look again soon and then less often.
    deadline = time.monotonic() + 10
    fd = os.open(os.path.join(d, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                break
            except OSError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OSError("the lock holder (pid %s) did not let go within 10s" % pid)
                if pidfd is not None:
                    _wait_readable(pidfd, left)
                    os.close(pidfd)
                    pidfd = None
                    continue
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
    finally:
        os.close(fd)
        if pidfd is not None:
            os.close(pidfd)
    remove_info_if(d, info.get("token"))
    return True, info.get("holder", ""), "released"
