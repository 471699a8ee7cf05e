# The node's own record of a service's releases, and the filesystem steps that must be atomic, in the
# ansistrano/Capistrano layout (docs/node-contract.md):
#   <root>/releases/<version>/        one unpacked release per version (.nodeexec.sha256: its package's)
#   <root>/current -> releases/<v>    switched atomically (symlink + rename)
#   <root>/.nodeexec/state.json       the node's deploy record
# Plain functions on paths: they raise, the module turns that into a failed step.

import contextlib
import datetime
import json
import os
import re
import shutil
import subprocess
import tarfile

def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def cleanup(root, service, keep):
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
