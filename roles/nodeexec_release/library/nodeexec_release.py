#!/usr/bin/python3
# nodeexec_release: everything the playbooks do on a node, one module call per phase. Each Ansible task
# costs the controller a process and an SSH round trip per host, so the node's real work happens here,
# in a few calls, and each call reports its sub-steps (name, start, duration, result) for the live view.
# One file, Python's standard library only, no ansible.module_utils: Ansible pipes it to the node as it is
# (see ARGS below). Its parts, in order: the node lock, the releases and the record, the unit, the phases.
# The interpreter is python3 by name: Ansible runs it as the shebang says (ansible_python3_interpreter
# overrides it), without its interpreter discovery, which costs two more round trips to every node.

DOCUMENTATION = r"""
module: nodeexec_release
short_description: Deploy, roll back, restart, clean up and report a service's releases on a node
description:
  - Layout under I(root) (= <base>/<service>) - releases/<version>/, current -> releases/<version>,
    .nodeexec/state.json (the node's deploy record), .nodeexec/lock (see docs/node-contract.md).
  - C(prepare) checks the request, takes the node lock, reads the record and, unless the node already runs
    the version, downloads and checks the package (skipped when the release is on the node from a package
    with that SHA256), unpacks it and renders its unit; C(activate) switches, restarts and verifies, and on
    failure keeps the evidence and goes back to the previous release; then records and unlocks.
  - C(rollback), C(restart), C(cleanup) run whole under the lock in one call; C(status) reads; C(journal)
    reads the unit's last journal lines; C(unlock) releases a lock by holder or by force.
  - Every result carries C(steps) and C(report) (the node's record and what it runs).
options:
  phase: {description: What to do, type: str, required: true,
          choices: [prepare, activate, rollback, restart, cleanup, status, unlock, journal]}
  root: {description: The service's directory, type: path, required: true}
  service: {description: Service name (the systemd unit is <service>.service), type: str, required: true}
  version: {description: prepare/activate - the release to deploy, type: str, default: ""}
  package_url: {description: prepare (pull) - http(s) URL of the package, type: str, default: ""}
  package_sha256: {description: prepare - 64 hex characters, type: str, default: ""}
  delivery: {description: prepare - pull or push (the package was copied to package_path), type: str, default: pull}
  package_file: {description: prepare (push) - where the package is on the controller (checked only), type: str, default: ""}
  download_timeout: {description: prepare - seconds a connection or read of the download may take, type: int, default: 60}
  max_unpack_bytes: {description: prepare - the most a package may unpack to, in bytes (bigger is refused unread), type: int, default: 4294967296}
  max_unpack_files: {description: prepare - the most members a package may have, type: int, default: 100000}
  unit: {description: prepare - the role's own unit, rendered (used when the package ships none), type: str, default: ""}
  exec_args: {description: "prepare - the role's unit - arguments of the service, kept in the release's .nodeexec.env",
              type: str, default: ""}
  service_env: {description: "prepare - the role's unit - environment of the service, kept in the release's .nodeexec.env",
                type: dict, default: {}}
  journal_lines: {description: "activate - journal lines a failed deploy keeps; journal - lines to read (1 to 1000)", type: int, default: 50}
  token: {description: activate - the lock token prepare returned, type: str, default: ""}
  rollback_to: {description: rollback - the version to go back to (default the recorded previous), type: str, default: ""}
  keep: {description: cleanup - releases to keep (at least 2), type: int, default: 5}
  health: {description: "activate/rollback/restart - http_port, http_path, http_status, tcp_port, window,
           interval, attempt_timeout, steady (seconds)", type: dict, default: {}}
  lock_dir: {description: Directory of the node lock, type: path, required: true}
  lock_holder: {description: Who asks (shown to whoever finds the lock taken), type: str, default: someone}
  lock_ttl: {description: Seconds the lock may be held at most, type: int, default: 3600}
  lock_reclaim: {description: "Take over a lock of the same holder from an earlier run whose connection runs
                 nothing (nodeexec's retries; never two live runs of one holder)", type: bool, default: false}
  playbook: {description: What runs under the lock, type: str, default: ""}
  unlock_holder: {description: unlock - release only a lock held by this holder, type: str, default: ""}
  force_unlock: {description: unlock - release whoever holds it, type: bool, default: false}
"""

RETURN = r"""
steps: {description: the sub-steps, each {name, status, start, duration, msg[, stdout, stderr]}, type: list}
report: {description: the node's record and what it runs (docs/node-contract.md), type: dict}
done: {description: prepare - nothing more to do on this node in this run, type: bool}
token: {description: prepare - the lock token, for activate, type: str}
journal: {description: "journal - the unit's last lines, oldest first, each {time, unit, message}", type: list}
"""

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time


# ==============================================================================================================
# The node lock
# ==============================================================================================================

# One lock per service per node, shared by nodeexec, the scheduled cleanup and operators' hand runs.
# The lock is a flock(2) held by a small detached holder process, so the kernel frees it the moment the
# holder dies. The holder lets go when the run that took it ends: it watches the run's connection to the
# node (the sshd session every task of a run shares through its SSH master, or the controller itself for
# connection=local), so a killed run never leaves a node locked; the TTL bounds it in every case.


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

    def __init__(self, info, advice="wait for it to finish, or release a stale lock with "
                                    "playbooks/unlock.yml -e nodeexec_force_unlock=true"):
        self.info = info
        super().__init__(
            "locked by %s (%s, since %s, pid %s); %s"
            % (info.get("holder", "an unknown holder"), info.get("playbook") or "?", info.get("since", "?"),
               info.get("pid", "?"), advice))

    @property
    def holder(self):
        return self.info.get("holder", "an unknown holder")


def session_idle(anchor):
    """Whether the connection anchor names runs nothing on the node now: no task of its run is here (a
    task's processes hang under its session)."""
    if not anchor or not anchor_alive(anchor):
        return True
    for ent in os.listdir("/proc"):
        if ent.isdigit():
            st = _stat(int(ent))
            if st is not None and st[2] == anchor[0] and st[1] != "Z":
                return False
    return True


def acquire(d, holder, playbook, ttl, anchor, reclaim=False):
    """Take the lock for the run anchor names; returns its token, raises Busy when someone has it.
    reclaim: a lock of the same holder taken by an earlier run is taken over when that run's connection
    runs nothing. A network cut leaves the node's sshd holding a dead connection open (it sends nothing,
    so it learns nothing) and the lock held with it; nodeexec's retry of the same deployment, which
    starts only once the earlier run has ended, reclaims it. Never for operators' runs: theirs may share
    a holder text and be alive between two tasks."""
    os.makedirs(d, mode=0o755, exist_ok=True)
    try:
        return _acquire(d, holder, playbook, ttl, anchor)
    except Busy as e:
        earlier = e.info.get("anchor")
        if not (reclaim and e.info.get("holder") == holder and earlier != anchor):
            raise
        if not session_idle(earlier):
            raise Busy(e.info, "an earlier run of the same holder is still working on the node; it "
                               "releases the lock when it ends")
        release(d, unlock_holder=holder)
        return _acquire(d, holder, playbook, ttl, anchor)


def _acquire(d, holder, playbook, ttl, anchor):
    info = {"holder": holder, "playbook": playbook, "since": now(), "token": secrets.token_hex(8), "anchor": anchor}
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
        backoff = 0.001
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
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.05)
    finally:
        os.close(fd)
        if pidfd is not None:
            os.close(pidfd)
    remove_info_if(d, info.get("token"))
    return True, info.get("holder", ""), "released"


# ==============================================================================================================
# The releases and the record
# ==============================================================================================================

# The node's own record of a service's releases, and the filesystem steps that must be atomic, in the
# ansistrano/Capistrano layout (docs/node-contract.md):
#   <root>/releases/<version>/        one unpacked release per version (.nodeexec.sha256: its package's)
#   <root>/current -> releases/<v>    switched atomically (symlink + rename)
#   <root>/.nodeexec/state.json       the node's deploy record
# Plain functions on paths: they raise, the module turns that into a failed step.


# Bounds of the evidence a failed deploy keeps: it goes into the run's report and nodeexec's records.
MAX_JOURNAL_LINES = 1000
MAX_LINE = 1000
MAX_JOURNAL_BYTES = 64 * 1024
MAX_STATUS_LINES = 40
MAX_REASON = 2000


def state_path(root):
    return os.path.join(root, ".nodeexec", "state.json")


def load_state(root, service):
    try:
        with open(state_path(root)) as f:
            st = json.load(f)
    except (OSError, ValueError):
        st = {}
    st = st if isinstance(st, dict) else {}  # valid JSON but no record ([], null): as corrupt
    st.setdefault("service", service)
    for k in ("current", "previous", "state", "last_error"):
        st.setdefault(k, "")
    st.setdefault("history", [])
    if not isinstance(st.get("failed"), dict) or not st["failed"].get("version"):
        st["failed"] = {}
    return st


def save_state(root, st):
    os.makedirs(os.path.join(root, ".nodeexec"), exist_ok=True)
    st["updated_at"] = now()
    if not st.get("failed"):
        st.pop("failed", None)
    tmp = state_path(root) + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, state_path(root))


def releases(root):
    try:
        return sorted(e for e in os.listdir(os.path.join(root, "releases")) if not e.startswith("."))
    except OSError:
        return []


def version_of(root, path):
    """releases/<v>/... -> v, for a path under root; "" otherwise."""
    rel_root = os.path.join(os.path.realpath(root), "releases") + os.sep
    path = os.path.realpath(path) if path else ""
    if not path.startswith(rel_root):
        return ""
    return path[len(rel_root):].split(os.sep, 1)[0]


def running_version(root, pid):
    if pid <= 0:
        return ""
    for what in ("cwd", "exe"):
        try:
            v = version_of(root, os.readlink("/proc/%d/%s" % (pid, what)))
        except OSError:
            v = ""
        if v:
            return v
    return ""


def _parts(path):
    return [p for p in path.split("/") if p not in ("", ".")]


def resolve(parts, links):
    """Where a path inside the release leads once the package's own symlinks exist (links: member path ->
    link target), following every link on the way: the path's components, or None if it leaves the
    release or loops."""
    cur, todo, hops = [], list(parts), 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not cur:
                return None
            cur.pop()
            continue
        cur.append(part)
        target = links.get("/".join(cur))
        if target is not None:
            hops += 1
            if hops > 40 or target.startswith("/"):
                return None
            cur.pop()
            todo = target.split("/") + todo
    return cur


# What one package may unpack to, by default (the role's nodeexec_max_unpack_bytes and _files): a
# package past either is refused before anything is written, so that a bomb cannot fill the node.
MAX_UNPACK_BYTES = 4 << 30
MAX_UNPACK_FILES = 100000


def bounded_members(tar, max_bytes=MAX_UNPACK_BYTES, max_files=MAX_UNPACK_FILES):
    """The package's members, read one header at a time and refused as soon as they are more than
    max_files or would unpack to more than max_bytes (a member's size is what it unpacks to: a sparse
    one counts at its full size). Stopping there bounds the decompression too, not only the disk."""
    members, total = [], 0
    for m in tar:
        members.append(m)
        if len(members) > max_files:
            raise ValueError("the package has more than %d members (nodeexec_max_unpack_files); nothing was unpacked"
                             % max_files)
        total += m.size if m.isreg() else 0
        if total > max_bytes:
            raise ValueError("the package unpacks to more than %d bytes (nodeexec_max_unpack_bytes); nothing was "
                             "unpacked" % max_bytes)
    return members


def safe_members(tar, dest, max_bytes=MAX_UNPACK_BYTES, max_files=MAX_UNPACK_FILES):
    """Refuse anything that would land outside the release: absolute paths, '..', links out, devices;
    and a package bigger than the bounds (bounded_members).
    Paths are resolved against the package's own symlinks too: checked against the empty directory
    alone, a -> . then a/b -> .. then a/b/x would each look inside, and x would land beside the release."""
    members = bounded_members(tar, max_bytes, max_files)
    links = {}
    for m in members:
        if os.path.isabs(m.name) or ".." in m.name.split("/"):
            raise ValueError("package member %r would land outside the release" % m.name)
        if m.issym():
            links["/".join(_parts(m.name))] = m.linkname
    # tarfile writes a member where the links made before it lead, not where its name says: a member
    # under a link, or a link defined twice, could land anywhere. A package has no need of either.
    seen = set()
    for m in members:
        parts = _parts(m.name)
        name = "/".join(parts)
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise ValueError("package member %r lies under the symbolic link %r: it could land outside the release"
                                 % (m.name, "/".join(parts[:i])))
        if name in seen and name in links:
            raise ValueError("package member %r is a symbolic link defined more than once: it could lead outside the release" % m.name)
        seen.add(name)
    for m in members:
        if m.isdev() or m.isfifo():
            raise ValueError("package member %r is a device or fifo" % m.name)
        parts = _parts(m.name)
        # The member itself is written where its directory really is (a link it replaces is checked below).
        where = resolve(parts[:-1], links)
        if where is None:
            raise ValueError("package member %r would land outside the release" % m.name)
        if m.issym() or m.islnk():
            # A symlink's target is relative to its directory; a hardlink's to the top of the package.
            start = where if m.issym() else []
            if os.path.isabs(m.linkname) or resolve(start + m.linkname.split("/"), links) is None:
                raise ValueError("package member %r links outside the release" % m.name)
        yield m


def failed_dir(root, version):
    """Where a failed deploy's evidence is kept on the node (docs/node-contract.md)."""
    return os.path.join(root, ".nodeexec", "failed", version)


def keep_set(st, present, keep):
    """Current and previous always; then the newest good releases by the node's own record.
    A failed release never takes a slot from a good one; but the newest failed one, while no successful
    deploy has followed it, is kept on top of them for inspection."""
    keep_list = [v for v in (st["current"], st["previous"]) if v]
    for entry in reversed(st["history"]):
        if len(keep_list) >= keep:
            break
        v = entry.get("version")
        if entry.get("result") == "success" and v in present and v not in keep_list:
            keep_list.append(v)
    failed = (st.get("failed") or {}).get("version")
    if failed and failed in present and failed not in keep_list:
        keep_list.append(failed)
    return keep_list


def bound_lines(text, max_lines, max_bytes):
    """The newest max_lines lines of text, each cut at MAX_LINE characters, at most max_bytes in all."""
    lines = [l if len(l) <= MAX_LINE else l[:MAX_LINE] + "…" for l in text.splitlines()][-max_lines:]
    total, start = 0, len(lines)
    while start > 0 and total + len(lines[start - 1].encode()) + 1 <= max_bytes:
        start -= 1
        total += len(lines[start].encode()) + 1
    return lines[start:]


def capture(argv):
    """A command's output for the evidence; its failure is evidence too, never an error of the deploy."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        return "%s: %s" % (" ".join(argv), e)
    return r.stdout if r.stdout.strip() else (r.stderr or "(%s printed nothing)" % " ".join(argv))


def write_text(path, text, mode=0o644):
    """Write path whole (aside, then renamed), created with mode; text may be str or bytes."""
    tmp = path + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)
    os.replace(tmp, path)


def remove_old_releases(root, service, keep):
    """Remove the releases keep_set does not keep, and what belonged to them; (kept, removed)."""
    if keep < 2:
        raise ValueError("keep must be at least 2 (current and previous are always kept)")
    st = load_state(root, service)
    present = releases(root)
    kept = keep_set(st, present, keep)
    removed = [v for v in present if v not in kept]
    for v in removed:
        shutil.rmtree(os.path.join(root, "releases", v))
    # Leftovers of interrupted unpacks and verified downloads of removed releases.
    rel_dir = os.path.join(root, "releases")
    for e in os.listdir(rel_dir) if os.path.isdir(rel_dir) else []:
        if e.startswith("."):
            shutil.rmtree(os.path.join(rel_dir, e), ignore_errors=True)
    dl = os.path.join(root, ".nodeexec")
    for e in os.listdir(dl) if os.path.isdir(dl) else []:
        if e.startswith("package-") and e.endswith(".tar.gz") and e[len("package-"):-len(".tar.gz")] not in kept:
            os.unlink(os.path.join(dl, e))
    # Evidence of failures a later successful deploy (or a newer failure) has superseded.
    fd = os.path.join(dl, "failed")
    for e in os.listdir(fd) if os.path.isdir(fd) else []:
        if e != st["failed"].get("version"):
            shutil.rmtree(os.path.join(fd, e), ignore_errors=True)
    return kept, removed


def link_version(root):
    """The release the current symlink points at ("" when none)."""
    try:
        return version_of(root, os.path.join(root, os.readlink(os.path.join(root, "current"))))
    except OSError:
        return ""


def release_dir(root, version):
    return os.path.join(root, "releases", version)


SHA_FILE = ".nodeexec.sha256"
UNIT_FILE = ".nodeexec.service"
# How the role's unit starts this release (its arguments and environment), read through current/.
ENV_FILE = ".nodeexec.env"


def env_file_text(args, env):
    """The release's environment file, in systemd's EnvironmentFile= syntax: each value double-quoted,
    with the four characters that are special there escaped."""
    def quoted(v):
        return '"%s"' % re.sub(r'(["\\`$])', r"\\\1", v)
    lines = ["# Written by nodeexec: how the role's unit starts this release (templates/service.j2)."]
    lines.append("NODEEXEC_EXEC_ARGS=" + quoted(args))
    lines += ["%s=%s" % (k, quoted(str(env[k]))) for k in sorted(env)]
    return "\n".join(lines) + "\n"


def release_sha256(root, version):
    """The SHA256 of the package a release was unpacked from ("" when unknown)."""
    try:
        with open(os.path.join(release_dir(root, version), SHA_FILE)) as f:
            return f.read().strip()
    except OSError:
        return ""


def unpack(root, service, version, src, sha256, max_bytes=MAX_UNPACK_BYTES, max_files=MAX_UNPACK_FILES):
    """Unpack the verified package into releases/<version>, never half: aside first, then renamed into
    place. Returns the unit file the package ships ("" when none)."""
    rel_dir = os.path.join(root, "releases")
    os.makedirs(rel_dir, exist_ok=True)
    final = release_dir(root, version)
    tmp = os.path.join(rel_dir, ".%s.unpacking" % version)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        with tarfile.open(src, "r:*") as tar:
            tar.extractall(tmp, members=list(safe_members(tar, tmp, max_bytes, max_files)))
        write_text(os.path.join(tmp, SHA_FILE), sha256 + "\n")
    except (tarfile.TarError, ValueError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError("cannot unpack %s: %s" % (src, e))
    if os.path.lexists(final):
        old = os.path.join(rel_dir, ".%s.replaced" % version)
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    unit = os.path.join(final, "deploy", service + ".service")
    return unit if os.path.isfile(unit) else ""


def switch(root, version):
    """Point current at releases/<version> atomically; returns whether it changed."""
    target = os.path.join("releases", version)
    if not os.path.isdir(os.path.join(root, target)):
        raise ValueError("release %s is not on this node; present: %s" % (version, ", ".join(releases(root)) or "none"))
    link = os.path.join(root, "current")
    try:
        if os.readlink(link) == target:
            return False
    except OSError:
        pass
    # symlink + rename is atomic: readers see the old release or the new one, never nothing.
    tmp = link + ".switching"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return True


def record(root, service, version, previous, state, last_error="", history_version="", history_result="success",
           clear_failed=False):
    """Write the node's record of the operation that just ended."""
    st = load_state(root, service)
    st["current"], st["previous"] = version, previous
    st["state"], st["last_error"] = state, last_error[:MAX_REASON]
    if history_version:
        st["history"].append({"version": history_version, "result": history_result, "at": now()})
        st["history"] = st["history"][-200:]
    if clear_failed:
        # A later successful deploy: the failed release and its evidence may go like any old release.
        st["failed"] = {}
    save_state(root, st)
    return st


def keep_failed(root, service, version, reason, journal, journal_lines):
    """Record the newest failed release on the node, so cleanup keeps it until a later successful deploy,
    and keep the unit's journal excerpt and status beside the record (captured before any rollback).
    Returns the evidence: the failed entry with the journal and the unit status."""
    reason = reason[:MAX_REASON]
    lines = min(max(journal_lines, 1), MAX_JOURNAL_LINES)
    d = failed_dir(root, version)
    entry = {"version": version, "at": now(), "reason": reason, "dir": d}
    journal_text, status = [], []
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if journal:
        unit = service + ".service"
        journal_text = bound_lines(capture(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "short-iso"]),
                                   lines, MAX_JOURNAL_BYTES)
        status = bound_lines(capture(["systemctl", "status", unit, "--no-pager", "--full", "-n", "0"]),
                             MAX_STATUS_LINES, 8 * 1024)
        write_text(os.path.join(d, "journal.txt"), "\n".join(journal_text) + "\n")
        write_text(os.path.join(d, "unit-status.txt"), "\n".join(status) + "\n")
    write_text(os.path.join(d, "failure.json"), json.dumps(entry, indent=1) + "\n")
    st = load_state(root, service)
    st["failed"] = entry
    save_state(root, st)
    return dict(entry, journal=journal_text, unit_status=status)


# ==============================================================================================================
# The unit
# ==============================================================================================================

# The service's systemd unit on the node: what systemd says of it, restarting it, and verifying a release
# by watching it. Verification polls inside the module (no Ansible `until` loop): the unit's process and
# the health checks every `interval` seconds, so a release whose process dies is failed at once.


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


def restart_unit(service):
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


def journal(service, lines, max_bytes=MAX_JOURNAL_BYTES * 4):
    """The unit's last lines, oldest first, each {time, unit, message}; at most max_bytes of messages
    (the oldest go first). unit is the one a line is about: systemd's own lines on the unit ("Started
    ...") come from init.scope but name it in UNIT. Raises when journalctl cannot be run."""
    r = subprocess.run(["journalctl", "-u", unit_name(service), "-n", str(lines), "--no-pager", "-o", "json",
                        "--output-fields=MESSAGE,_SYSTEMD_UNIT,UNIT"],
                       capture_output=True, text=True, errors="replace", timeout=30)
    if r.returncode != 0 and not r.stdout:
        raise RuntimeError("journalctl: %s" % (r.stderr.strip() or "exit %d" % r.returncode))
    out = []
    for line in r.stdout.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        message = e.get("MESSAGE", "")
        if isinstance(message, list):  # journald gives bytes that are not UTF-8 as a list of numbers
            message = bytes(b for b in message if isinstance(b, int) and 0 <= b < 256).decode("utf-8", "replace")
        usec = int(e.get("__REALTIME_TIMESTAMP") or 0)
        at = datetime.datetime.fromtimestamp(usec / 1e6, datetime.timezone.utc)
        out.append({"time": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "unit": e.get("UNIT") or e.get("_SYSTEMD_UNIT") or unit_name(service),
                    "message": str(message)[:MAX_LINE]})
    size, kept = 0, []
    for e in reversed(out):
        size += len(e["message"]) + 1
        if size > max_bytes:
            break
        kept.append(e)
    return kept[::-1]


def journal_hint(service, lines=3):
    """The unit's last journal lines, for a message: why a process died is usually there."""
    try:
        r = subprocess.run(["journalctl", "-u", unit_name(service), "-n", str(lines), "--no-pager", "-o", "cat"],
                           capture_output=True, text=True, errors="replace", timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    text = " | ".join(l.strip()[:300] for l in r.stdout.splitlines() if l.strip())
    return "; its journal ends: %s" % text if text else ""


# ==============================================================================================================
# The module: its phases
# ==============================================================================================================

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
URL = re.compile(r"^https?://\S+$")
MAX_STEP_OUTPUT = 4000


class StepFailed(Exception):
    """A sub-step failed; str() is the sentence a node reports: "<step>: <why>"."""

    def __init__(self, step, reason):
        self.step, self.reason = step, reason
        super().__init__("%s: %s" % (step, reason))


class Step:
    def __init__(self, name):
        self.name, self.msg, self.changed = name, "", False


class Steps:
    """The phase's sub-steps as they run: each with its start, duration and result."""

    def __init__(self):
        self.items = []

    def _add(self, name, status, start, duration, msg="", stdout="", stderr=""):
        item = {"name": name, "status": status, "duration": round(duration, 3), "msg": msg[:2000],
                "start": datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"}
        if stdout:
            item["stdout"] = stdout[-MAX_STEP_OUTPUT:]
        if stderr:
            item["stderr"] = stderr[-MAX_STEP_OUTPUT:]
        self.items.append(item)

    @contextlib.contextmanager
    def step(self, name):
        st, wall, t0 = Step(name), time.time(), time.monotonic()
        try:
            yield st
        except StepFailed as e:
            self._add(e.step, "failed", wall, time.monotonic() - t0, e.reason)
            raise
        except (OSError, ValueError, RuntimeError) as e:
            self._add(name, "failed", wall, time.monotonic() - t0, str(e))
            raise StepFailed(name, str(e))
        self._add(name, "changed" if st.changed else "ok", wall, time.monotonic() - t0, st.msg)

    def skipped(self, name, why):
        self._add(name, "skipped", time.time(), 0, why)

    def fail(self, name, reason):
        return StepFailed(name, reason)


class Run:
    """One phase on one node: its parameters, its steps, the lock it holds, and how it ends."""

    def __init__(self, module):
        self.module, self.p = module, module.params
        self.root, self.service = self.p["root"], self.p["service"]
        self.lock_dir = self.p["lock_dir"]
        self.steps = Steps()
        self.token = ""
        self.evidence = {}
        self.removed = []
        self.locked_by = ""
        self.anchor = connection_anchor()

    # --- how a phase ends: a report always, the lock released unless the next phase needs it ----------
    def report(self):
        st = load_state(self.root, self.service)
        p = props(self.service)
        active, pid = p.get("ActiveState", "unknown"), as_int(p, "MainPID")
        since, uptime = active_since(active, as_int(p, "ActiveEnterTimestampMonotonic"), time.time(), time.monotonic())
        return {
            "service": self.service, "current": st["current"], "previous": st["previous"], "state": st["state"],
            "last_error": st["last_error"], "link": link_version(self.root),
            "running_version": running_version(self.root, pid), "active": active == "active",
            "active_state": active, "main_pid": pid, "active_since": since, "uptime_seconds": uptime,
            "resources": resources(p), "releases": releases(self.root), "failed": st["failed"],
            "evidence": self.evidence, "removed": self.removed, "locked_by": self.locked_by,
        }

    def unlock(self):
        if not self.token:
            return
        with self.steps.step("Release the node lock"):
            release(self.lock_dir, token=self.token)
        self.token = ""

    def exit(self, changed, **extra):
        self.unlock()
        self.module.exit_json(changed=changed, steps=self.steps.items, report=self.report(), **extra)

    def fail(self, msg, changed=False):
        try:
            self.unlock()
        except StepFailed:
            pass  # the run's connection ends soon and the holder with it; the failure says more
        self.module.fail_json(msg=msg, changed=changed, steps=self.steps.items, report=self.report())

    def lock(self):
        with self.steps.step("Take the node lock") as st:
            before = read_info(self.lock_dir)
            try:
                self.token = acquire(self.lock_dir, self.p["lock_holder"], self.p["playbook"],
                                     self.p["lock_ttl"], self.anchor, reclaim=self.p["lock_reclaim"])
            except Busy as e:
                self.locked_by = e.holder
                raise StepFailed("Take the node lock", str(e))
            st.msg = "held by %s" % self.p["lock_holder"]
            if before.get("holder") == self.p["lock_holder"] and before.get("token"):
                st.msg += "; taken over from an earlier run of it whose connection runs nothing (since %s)" % before.get("since", "?")

    def alive(self):
        """Whether the run this call belongs to still runs: its task's session is open and the connection
        the lock's holder watches is up. A killed run's module stops instead of acting on the node."""
        return session_open() and anchor_alive(self.anchor)

    def health(self):
        h = self.p["health"] or {}
        return Health(
            http_port=int(h.get("http_port") or 0), http_path=str(h.get("http_path") or "/health"),
            http_status=int(h.get("http_status") or 200), tcp_port=int(h.get("tcp_port") or 0),
            window=float(h.get("window") or 10), interval=float(h.get("interval") or 0.2),
            attempt_timeout=float(h.get("attempt_timeout") or 5), steady=float(h.get("steady") or 0))

    def start(self, version, step_name):
        """Install the release's own unit and restart the service on it."""
        with self.steps.step(step_name) as st:
            install_unit(self.service, os.path.join(release_dir(self.root, version), UNIT_FILE))
            restart_unit(self.service)
            st.changed, st.msg = True, "%s restarted on %s" % (unit_name(self.service), version)

    def switch(self, version, step_name):
        with self.steps.step(step_name) as st:
            st.changed = switch(self.root, version)
            st.msg = "current -> releases/%s" % version

    def verify(self):
        verify(self.service, self.health(), self.steps, alive=self.alive)


# --- checking requests (nodeexec checks in Go first; hand runs get the same rules here) ---------------
def check_name(value, what, pattern=NAME):
    if not pattern.match(value or "") or ".." in value:
        raise ValueError("set %s to a plain name (letters, digits, '.', '_', '-'%s); got '%s'"
                         % (what, ", '+'" if pattern is VERSION else "", value))


def check_deploy(p):
    check_name(p["version"], "nodeexec_version", VERSION)
    if p["delivery"] not in ("pull", "push"):
        raise ValueError("nodeexec_delivery is pull (the node downloads nodeexec_package_url) or push (the "
                         "controller copies nodeexec_package_file); got '%s'" % p["delivery"])
    if p["delivery"] == "pull" and not URL.match(p["package_url"] or ""):
        raise ValueError("deploy needs nodeexec_package_url (http:// or https://); got '%s'" % p["package_url"])
    if p["delivery"] == "push" and not re.match(r"^/\S*[^/]$", p["package_file"] or ""):
        raise ValueError("push needs nodeexec_package_file, an absolute path on the controller; got '%s'" % p["package_file"])
    if not SHA256.match(p["package_sha256"] or ""):
        raise ValueError("deploy needs nodeexec_package_sha256 (64 hex characters); got '%s'" % p["package_sha256"])
    if not 1 <= p["journal_lines"] <= 1000:
        raise ValueError("nodeexec_journal_lines must be from 1 to 1000; got %d" % p["journal_lines"])


def package_path(root, version):
    return os.path.join(root, ".nodeexec", "package-%s.tar.gz" % version)


def incoming_path(root, package_file):
    """Where push.yml's copy of package_file lands on the node."""
    return os.path.join(root, ".nodeexec", "incoming", os.path.basename(package_file))


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url, dest, want, timeout):
    """Fetch url into dest, checking its SHA256 as it streams; a mismatch leaves nothing behind.
    timeout bounds the connection and each read."""
    import urllib.request  # here: its import is ~30 ms of every module start, and most download nothing

    class HTTPOnlyRedirects(urllib.request.HTTPRedirectHandler):
        """Follows a redirect only to another http(s) URL: urllib would follow one to ftp:// too."""

        def redirect_request(self, req, fp, code, msg, headers, newurl):
            if not newurl.lower().startswith(("http://", "https://")):
                raise ValueError("the package server redirected to %r: only http and https are followed" % newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    tmp = dest + ".part"
    h = hashlib.sha256()
    try:
        opener = urllib.request.build_opener(HTTPOnlyRedirects())
        with opener.open(url, timeout=timeout) as r, open(tmp, "wb") as f:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
    except Exception as e:  # urllib raises many kinds; every one is a failed download
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        reason = getattr(e, "reason", None) or e
        raise ValueError("Request failed: %s" % ("timed out" if "timed out" in str(reason) else reason))
    got = h.hexdigest()
    if got != want:
        os.unlink(tmp)
        raise ValueError("The checksum for %s did not match %s; it was %s; nothing was unpacked" % (url, want, got))
    os.chmod(tmp, 0o600)
    os.replace(tmp, dest)


# --- phases ------------------------------------------------------------------------------------------
def prepare(run):
    p, steps = run.p, run.steps
    version, want = p["version"], (p["package_sha256"] or "").lower()
    with steps.step("Check the request"):
        check_deploy(p)
    run.lock()
    with steps.step("Read the node's release record") as st:
        rec = load_state(run.root, run.service)
        active = props(run.service).get("ActiveState") == "active"
        runs = (rec["current"] == version and link_version(run.root) == version and active
                and version in releases(run.root))
        st.msg = "current %s, previous %s" % (rec["current"] or "none", rec["previous"] or "none")
    if runs:
        # Idempotent: the node's verified current release, switched to and active: nothing to do.
        steps.skipped("Download the package and check its SHA256", "%s already runs here" % version)
        run.exit(False, done=True)

    unpacked = False
    try:
        if release_sha256(run.root, version) == want:
            steps.skipped("Download the package and check its SHA256",
                          "releases/%s already holds the package with this SHA256" % version)
            if p["delivery"] == "push":
                with contextlib.suppress(OSError):
                    os.unlink(incoming_path(run.root, p["package_file"]))
            shipped = os.path.join(release_dir(run.root, version), "deploy", run.service + ".service")
            shipped = shipped if os.path.isfile(shipped) else ""
        else:
            pkg = package_path(run.root, version)
            os.makedirs(os.path.dirname(pkg), exist_ok=True)
            if p["delivery"] == "push":
                with steps.step("Check the SHA256 of the copied package") as st:
                    # The copy task put it in incoming/ before the lock was taken: checked, then moved.
                    incoming = incoming_path(run.root, p["package_file"])
                    got = file_sha256(incoming) if os.path.isfile(incoming) else "(none)"
                    if got != want:
                        raise StepFailed("Check the SHA256 of the copied package",
                                         "the package on the node has SHA256 %s, want %s; nothing was unpacked" % (got, want))
                    os.replace(incoming, pkg)
                    st.msg = "sha256 %s" % want
            else:
                with steps.step("Download the package and check its SHA256") as st:
                    if os.path.isfile(pkg) and file_sha256(pkg) == want:
                        st.msg = "already downloaded"
                    else:
                        download(p["package_url"], pkg, want, p["download_timeout"])
                        st.changed, st.msg = True, "sha256 %s" % want
            with steps.step("Unpack the release") as st:
                shipped = unpack(run.root, run.service, version, pkg, want, p["max_unpack_bytes"], p["max_unpack_files"])
                st.changed, st.msg = True, "releases/%s" % version
            unpacked = True
        with steps.step("Render the unit of the release") as st:
            dest = os.path.join(release_dir(run.root, version), UNIT_FILE)
            if shipped:
                with open(shipped, "rb") as f:
                    write_text(dest, f.read())
                st.msg = "with the unit its package ships (deploy/%s.service)" % run.service
            else:
                write_text(dest, p["unit"])
                # Its arguments and environment, when the unit reads them from the release (a switch
                # then changes no unit file); kept either way as the record of how the release starts.
                write_text(os.path.join(release_dir(run.root, version), ENV_FILE),
                                env_file_text(p["exec_args"], p["service_env"]), mode=0o600)
                st.msg = "with the role's unit (templates/service.j2)"
    except StepFailed as e:
        if unpacked:
            keep_evidence(run, str(e), journal=False)
        run.fail(str(e), changed=unpacked)
    run.module.exit_json(changed=True, done=False, token=run.token, steps=steps.items, report=run.report())


def keep_evidence(run, reason, journal):
    """Keeping evidence never stops what follows (the rollback): its own failure is one more step."""
    with contextlib.suppress(StepFailed):
        with run.steps.step("Keep the failed release and its evidence") as st:
            run.evidence = keep_failed(run.root, run.service, run.p["version"], reason, journal, run.p["journal_lines"])
            st.changed, st.msg = True, "kept in %s" % run.evidence["dir"]


def activate(run):
    p, steps, version = run.p, run.steps, run.p["version"]
    run.token = p["token"]
    with steps.step("Check the node lock"):
        if not holds(run.lock_dir, run.token):
            run.token = ""
            raise ValueError("the node lock taken by this run is no longer held (the run's SSH connection closed "
                             "between its tasks, or the lock's TTL passed); nothing was switched")
    rec = load_state(run.root, run.service)
    switched = False
    try:
        run.switch(version, "Switch current to the new release")
        switched = True
        run.start(version, "Restart on the new release")
        run.verify()
        with steps.step("Record the deploy on the node") as st:
            previous = rec["current"] if rec["current"] not in ("", version) else rec["previous"]
            record(run.root, run.service, version, previous, "success", history_version=version, clear_failed=True)
            st.changed = True
    except StepFailed as e:
        failure = str(e)
        if not run.alive():
            # The run is gone: no one reads this, and the lock is no longer ours to act under.
            run.fail("the run ended during verification: %s" % failure, changed=True)
        keep_evidence(run, failure, journal=switched)
        auto_rollback(run, rec, failure)
    run.exit(True)


def auto_rollback(run, rec, failure):
    """The new release was switched to and failed: put the previous one back in the same run."""
    version = run.p["version"]
    back_to = rec["current"] if rec["current"] not in ("", version) and rec["current"] in releases(run.root) else ""
    if not back_to:
        # Nothing older to switch to: a first deploy, or a redeploy of the recorded current version (a
        # repair). The failed release is stopped; a redeploy keeps the record's versions as they were.
        stop(run.service)
        record(run.root, run.service, rec["current"] if rec["current"] == version else "", rec["previous"],
                    "failed", failure, history_version=version, history_result="failed")
        hint = ""
        if rec["current"] == version:
            hint = " (it was already the current release; it is stopped%s)" % (
                "; roll back to %s with playbooks/rollback.yml or deploy a fixed version" % rec["previous"]
                if rec["previous"] else "")
        run.fail("%s failed and there is no earlier release to switch back to%s: %s" % (version, hint, failure), changed=True)
    try:
        run.switch(back_to, "Switch current back to the previous release")
        run.start(back_to, "Restart on the previous release")
        run.verify()
    except StepFailed as e:
        record(run.root, run.service, back_to, rec["previous"], "failed",
                    "%s; going back to %s failed too: %s" % (failure, back_to, e), history_version=version, history_result="failed")
        run.fail("%s failed verification, and going back to %s failed too: %s; the first failure: %s"
                 % (version, back_to, e, failure), changed=True)
    with run.steps.step("Record the automatic rollback on the node") as st:
        record(run.root, run.service, back_to, rec["previous"], "rolled_back", failure,
                    history_version=version, history_result="failed")
        st.changed = True
    run.fail("%s failed verification and was rolled back to %s: %s" % (version, back_to, failure), changed=True)


def rollback(run):
    p, steps = run.p, run.steps
    with steps.step("Check the request"):
        if p["rollback_to"]:
            check_name(p["rollback_to"], "nodeexec_rollback_to", VERSION)
    run.lock()
    rec = load_state(run.root, run.service)
    present = releases(run.root)
    target = p["rollback_to"] or rec["previous"]
    try:
        with steps.step("Check the release to roll back to is on the node") as st:
            if not target:
                raise ValueError("no previous version is recorded on this node; present: %s" % (", ".join(present) or "none"))
            if target not in present:
                raise ValueError(missing_release(rec, target, present))
            st.msg = target
    except StepFailed as e:
        run.fail(str(e))
    if rec["current"] == target and link_version(run.root) == target and props(run.service).get("ActiveState") == "active":
        run.exit(False)
    try:
        run.switch(target, "Switch current to the release rolled back to")
        run.start(target, "Restart on the release rolled back to")
        run.verify()
        with steps.step("Record the rollback on the node") as st:
            record(run.root, run.service, target, rec["current"], "rolled_back", history_version=target)
            st.changed = True
    except StepFailed as e:
        if not run.alive():
            run.fail("the run ended during the rollback: %s" % e, changed=True)
        back = rec["current"]
        if back in releases(run.root):
            with contextlib.suppress(StepFailed):
                run.switch(back, "Switch current back to where it was")
                run.start(back, "Restart on the release it was on")
        run.fail("rollback to %s failed and the node was put back on %s: %s" % (target, back or "nothing", e), changed=True)
    run.exit(True)


def missing_release(rec, target, present):
    """Why the node cannot go back to target, and what to do instead: cleanup removed it (the node's
    history has it), or it was never here."""
    kept = ", ".join(present) or "none"
    if any(h.get("version") == target for h in rec["history"]):
        return "release %s is no longer on the node (kept: %s): deploy %s again" % (target, kept, target)
    return "release %s was never on the node (kept: %s): deploy %s" % (target, kept, target)


def restart(run):
    """Restart the release the node runs and verify it as a deploy does. The record is not touched: a
    restart changes no version. A unit that fails verification is left as systemd has it."""
    run.lock()
    rec = load_state(run.root, run.service)
    try:
        with run.steps.step("Check the node runs a recorded release"):
            link = link_version(run.root)
            if not rec["current"]:
                raise ValueError("no release of %s is recorded on this node: deploy one first" % run.service)
            if rec["current"] not in releases(run.root) or link != rec["current"]:
                raise ValueError("the record says %s but current points at %s: deploy or roll back to repair the "
                                 "node before restarting it" % (rec["current"], link or "nothing"))
        with run.steps.step("Restart the service") as st:
            restart_unit(run.service)
            st.changed = True
        run.verify()
    except StepFailed as e:
        run.fail(str(e), changed=True)
    run.exit(True)


def cleanup(run):
    run.lock()
    try:
        with run.steps.step("Remove old releases") as st:
            _, run.removed = remove_old_releases(run.root, run.service, run.p["keep"])
            st.changed, st.msg = bool(run.removed), "removed %s" % (", ".join(run.removed) or "nothing")
    except StepFailed as e:
        run.fail(str(e))
    run.exit(bool(run.removed))


def read_journal(run):
    """The service's own log on the node: its unit's last journal_lines lines. Reads only, no lock."""
    try:
        with run.steps.step("Read the unit's journal") as st:
            lines = journal(run.service, min(max(run.p["journal_lines"], 1), MAX_JOURNAL_LINES))
            st.msg = "%d lines" % len(lines)
    except StepFailed as e:
        run.fail(str(e))
    run.exit(False, journal=lines)


def unlock(run):
    p = run.p
    try:
        with run.steps.step("Release the node lock held by the given holder") as st:
            if not p["unlock_holder"] and not p["force_unlock"]:
                raise ValueError("say whose lock to release: -e nodeexec_unlock_holder='<holder>' or "
                                 "-e nodeexec_force_unlock=true")
            released, holder, st.msg = release(run.lock_dir, unlock_holder=p["unlock_holder"], force=p["force_unlock"])
            st.changed = released
    except StepFailed as e:
        run.fail(str(e))
    run.exit(False)


PHASES = {"prepare": prepare, "activate": activate, "rollback": rollback, "restart": restart,
          "cleanup": cleanup, "status": lambda run: run.exit(False), "unlock": unlock, "journal": read_journal}


SPEC = dict(
    phase=dict(type="str", required=True, choices=list(PHASES)),
    root=dict(type="path", required=True),
    service=dict(type="str", required=True),
    version=dict(type="str", default=""),
    package_url=dict(type="str", default=""),
    package_sha256=dict(type="str", default=""),
    delivery=dict(type="str", default="pull"),
    package_file=dict(type="str", default=""),
    download_timeout=dict(type="int", default=60),
    max_unpack_bytes=dict(type="int", default=MAX_UNPACK_BYTES),
    max_unpack_files=dict(type="int", default=MAX_UNPACK_FILES),
    unit=dict(type="str", default=""),
    exec_args=dict(type="str", default=""),
    service_env=dict(type="dict", default={}),
    journal_lines=dict(type="int", default=50),
    token=dict(type="str", default=""),
    rollback_to=dict(type="str", default=""),
    keep=dict(type="int", default=5),
    health=dict(type="dict", default={}),
    lock_dir=dict(type="path", required=True),
    lock_holder=dict(type="str", default="someone"),
    lock_ttl=dict(type="int", default=3600),
    lock_reclaim=dict(type="bool", default=False),
    playbook=dict(type="str", default=""),
    unlock_holder=dict(type="str", default=""),
    force_unlock=dict(type="bool", default=False),
)

# Ansible runs this file as a "jsonargs" module: it writes the task's arguments, as JSON, over the marker
# below and pipes the file to the node's python. There is no AnsiballZ payload to build, ship and unzip and
# no ansible.module_utils to compile on every call, which was most of what a task cost. A raw triple-quoted
# string holds any JSON text as it is: JSON escapes every quote inside its strings with a backslash, so
# three quotes in a row never occur in it. (The quoted "complex args" marker is not used: Ansible fills it
# in first, so an argument holding the JSON marker would be expanded inside it, unescaped.)
ARGS = r"""<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>"""

TRUE = ("1", "true", "yes", "on", "y", "t")
FALSE = ("0", "false", "no", "off", "n", "f", "")


def as_type(name, kind, value):
    """One argument as its type says, accepting what Ansible's own modules accept (operators pass
    -e keep=3 as a string)."""
    if kind in ("str", "path"):
        if isinstance(value, (dict, list)):
            raise ValueError("%s must be a string, got %s" % (name, type(value).__name__))
        value = "" if value is None else str(value)
        return os.path.expanduser(os.path.expandvars(value)) if kind == "path" and value else value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not re.match(r"^\s*-?\d+\s*$", value)):
            raise ValueError("%s must be a whole number, got %r" % (name, value))
        return int(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE or text in FALSE:
            return text in TRUE
        raise ValueError("%s must be true or false, got %r" % (name, value))
    if kind == "dict":
        if isinstance(value, str) and value.strip().startswith("{"):
            value = json.loads(value)
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise ValueError("%s must be a mapping, got %r" % (name, value))
        return value
    raise ValueError("%s: unknown type %s" % (name, kind))


def parse_args(raw, spec=SPEC):
    """The task's arguments checked against spec, defaults filled in; ValueError says what is wrong.
    Ansible's own keys (_ansible_*) are not arguments."""
    given = {k: v for k, v in raw.items() if not k.startswith("_ansible_")}
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ValueError("unsupported parameters: %s (supported: %s)" % (", ".join(unknown), ", ".join(sorted(spec))))
    params = {}
    for name, opt in spec.items():
        if given.get(name) is None:
            if opt.get("required"):
                raise ValueError("missing required argument: %s" % name)
            params[name] = opt.get("default")
            continue
        params[name] = as_type(name, opt["type"], given[name])
        if opt.get("choices") and params[name] not in opt["choices"]:
            raise ValueError("%s must be one of %s, got %r" % (name, ", ".join(opt["choices"]), params[name]))
    return params


def answer(result, failed=False):
    """Ends the module with its result, the JSON Ansible reads on stdout."""
    print(json.dumps(dict(result, failed=True) if failed else result, default=str))
    sys.exit(1 if failed else 0)


class Module:
    """What the phases need of a module: the arguments, and the two ways to end."""

    def __init__(self, raw):
        self.check_mode = bool(raw.get("_ansible_check_mode"))
        self.params = parse_args(raw)

    def exit_json(self, **result):
        answer(result)

    def fail_json(self, **result):
        answer(result, failed=True)


def main(args=None):
    """args: the task's arguments as JSON; Ansible's, written into ARGS, unless given."""
    try:
        module = Module(json.loads(ARGS if args is None else args))
    except ValueError as e:
        answer({"msg": "Check the request: %s" % e, "steps": [], "report": {}}, failed=True)
    if module.check_mode:
        # Nothing here can be previewed without doing it; Ansible's own modules answer the same.
        module.exit_json(skipped=True, changed=False, msg="nodeexec_release does not support check mode")
    run = Run(module)
    try:
        check_name(run.service, "nodeexec_service")
    except ValueError as e:
        module.fail_json(msg="Check the request: %s" % e, steps=[], report={})
    try:
        PHASES[module.params["phase"]](run)
    except StepFailed as e:
        # A step that failed before the phase changed anything (the request, the lock, a check).
        run.fail(str(e))


if __name__ == "__main__":
    main()
