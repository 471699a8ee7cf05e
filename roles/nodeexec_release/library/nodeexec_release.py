#!/usr/bin/python3
# The node's own record of a service's releases, and the few filesystem steps that must be atomic.
# One call is one SSH round trip: reading everything a decision needs at once keeps deploys fast.

DOCUMENTATION = r"""
module: nodeexec_release
short_description: Read and change a service's releases on a node (ansistrano layout)
description:
  - Layout under I(root) (= <base>/<service>) - releases/<version>/, current -> releases/<version>,
    .nodeexec/state.json (the node's deploy record, see docs/node-contract.md).
options:
  root: {description: The service's directory, type: path, required: true}
  service: {description: Service name (the systemd unit is <service>.service), type: str, required: true}
  action:
    description: What to do
    type: str
    required: true
    choices: [read, install, switch, record, keep_failed, cleanup]
  version:
    description: install/switch - the release; record - the new current version; keep_failed - the release that failed
    type: str
    default: ""
  src: {description: install - the verified package (.tar.gz) on the node, type: path}
  previous: {description: record - the new previous version, type: str, default: ""}
  state: {description: record - success, failed or rolled_back, type: str, default: success}
  last_error: {description: record - why the operation failed; keep_failed - why the deploy failed, type: str, default: ""}
  history_version: {description: record - a release to append to the history, type: str, default: ""}
  history_result: {description: record - its result (success or failed), type: str, default: success}
  clear_failed: {description: record - a successful deploy - the kept failed release may now go, type: bool, default: false}
  journal: {description: keep_failed - capture the unit's journal and status (the release was started), type: bool, default: false}
  journal_lines: {description: keep_failed - the newest this many journal lines (1 to 1000), type: int, default: 50}
  keep: {description: cleanup - how many releases to keep (at least 2), type: int, default: 5}
"""

EXAMPLES = r"""
- nodeexec_release: {root: /opt/demo, service: demo, action: read}
  register: node
- nodeexec_release: {root: /opt/demo, service: demo, action: switch, version: v2}
"""

RETURN = r"""
current: {description: read - the recorded current version, type: str}
previous: {description: read - the recorded previous version, type: str}
link: {description: read - the version the current symlink points at, type: str}
releases: {description: read - release directories present, type: list}
running_version: {description: read - the release the unit's main process runs, type: str}
active_since: {description: read - when the unit last became active, UTC ISO 8601 ("" when it is not active), type: str}
uptime_seconds: {description: read - seconds since then (0 when it is not active), type: int}
resources:
  description: read - what the unit uses now, the figures systemd accounts (memory_bytes, cpu_nsec, tasks); {} when it is not active
  type: dict
removed: {description: cleanup - releases removed, type: list}
failed_release: {description: read/keep_failed - the newest failed release kept for inspection (empty when none), type: dict}
evidence: {description: keep_failed - the failed entry with the journal excerpt and unit status captured, type: dict}
"""

import datetime
import json
import os
import shutil
import subprocess
import tarfile
import time

from ansible.module_utils.basic import AnsibleModule


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


def unit_props(service):
    """systemctl show of the unit: ActiveState, MainPID, ActiveEnterTimestampMonotonic and what the unit
    uses now (MemoryCurrent, CPUUsageNSec, TasksCurrent) ({} if it cannot run)."""
    try:
        out = subprocess.run(
            ["systemctl", "show", "-p", "ActiveState", "-p", "MainPID", "-p", "ActiveEnterTimestampMonotonic",
             "-p", "MemoryCurrent", "-p", "CPUUsageNSec", "-p", "TasksCurrent",
             service + ".service"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _int(props, key):
    try:
        return int(props.get(key, "0") or "0")
    except ValueError:
        return 0


# systemd's "no value": accounting off, or the unit not running ("[not set]" in newer versions).
UNSET = 2**64 - 1


def resources(props):
    """What the unit uses now, as systemd accounts it: only the figures systemd knows (accounting may be
    off for some), none when the unit is not running."""
    if props.get("ActiveState") != "active":
        return {}
    out = {}
    for key, name in (("MemoryCurrent", "memory_bytes"), ("CPUUsageNSec", "cpu_nsec"), ("TasksCurrent", "tasks")):
        try:
            v = int(props.get(key, ""))
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


def read(module, root, service):
    st = load_state(root, service)
    link = ""
    try:
        link = version_of(root, os.path.join(root, os.readlink(os.path.join(root, "current"))))
    except OSError:
        pass
    props = unit_props(service)
    active, pid = props.get("ActiveState", "unknown"), _int(props, "MainPID")
    since, uptime = active_since(active, _int(props, "ActiveEnterTimestampMonotonic"), time.time(), time.monotonic())
    module.exit_json(active_since=since, uptime_seconds=uptime,
        changed=False, service=service, current=st["current"], previous=st["previous"], state=st["state"],
        last_error=st["last_error"], history=st["history"], failed_release=st["failed"], link=link, releases=releases(root),
        active=(active == "active"), active_state=active, main_pid=pid, running_version=running_version(root, pid),
        resources=resources(props))


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


def safe_members(tar, dest):
    """Refuse anything that would land outside the release: absolute paths, '..', links out, devices.
    Paths are resolved against the package's own symlinks too: checked against the empty directory
    alone, a -> . then a/b -> .. then a/b/x would each look inside, and x would land beside the release."""
    members = tar.getmembers()
    links = {}
    for m in members:
        if os.path.isabs(m.name) or ".." in m.name.split("/"):
            raise ValueError("package member %r would land outside the release" % m.name)
        if m.issym():
            links["/".join(_parts(m.name))] = m.linkname
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


def install(module, root, service, version, src):
    rel_dir = os.path.join(root, "releases")
    os.makedirs(rel_dir, exist_ok=True)
    final = os.path.join(rel_dir, version)
    tmp = os.path.join(rel_dir, ".%s.unpacking" % version)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        with tarfile.open(src, "r:*") as tar:
            tar.extractall(tmp, members=list(safe_members(tar, tmp)))
    except (tarfile.TarError, ValueError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        module.fail_json(msg="cannot unpack %s: %s" % (src, e))
    # A half-unpacked release never exists under its name: unpack aside, then rename into place.
    if os.path.lexists(final):
        old = os.path.join(rel_dir, ".%s.replaced" % version)
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
    unit = os.path.join(final, "deploy", service + ".service")
    module.exit_json(changed=True, path=final, package_unit=unit if os.path.isfile(unit) else "")


def switch(module, root, version):
    target = os.path.join("releases", version)
    if not os.path.isdir(os.path.join(root, target)):
        module.fail_json(msg="release %s is not on this node; present: %s" % (version, ", ".join(releases(root)) or "none"))
    link = os.path.join(root, "current")
    try:
        if os.readlink(link) == target:
            module.exit_json(changed=False, link=version)
    except OSError:
        pass
    # symlink + rename is atomic: readers see the old release or the new one, never nothing.
    tmp = link + ".switching"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    module.exit_json(changed=True, link=version)


def record(module, root, service):
    p = module.params
    st = load_state(root, service)
    st["current"], st["previous"] = p["version"], p["previous"]
    st["state"], st["last_error"] = p["state"], p["last_error"]
    if p["history_version"]:
        st["history"].append({"version": p["history_version"], "result": p["history_result"], "at": now()})
        st["history"] = st["history"][-200:]
    if p["clear_failed"]:
        # A later successful deploy: the failed release and its evidence may go like any old release.
        st["failed"] = {}
    save_state(root, st)
    module.exit_json(changed=True, **{k: st[k] for k in ("current", "previous", "state", "last_error")})


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


def write_text(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# Results name it failed_release: a result's own "failed" key is Ansible's, and any value there fails the task.
def keep_failed(module, root, service):
    """Record the newest failed release on the node, so cleanup keeps it until a later successful deploy,
    and keep the unit's journal excerpt and status beside the record (captured before any rollback)."""
    p = module.params
    version, reason = p["version"], p["last_error"][:MAX_REASON]
    lines = min(max(p["journal_lines"], 1), MAX_JOURNAL_LINES)
    d = failed_dir(root, version)
    entry = {"version": version, "at": now(), "reason": reason, "dir": d}
    journal, status = [], []
    try:
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        if p["journal"]:
            unit = service + ".service"
            journal = bound_lines(capture(["journalctl", "-u", unit, "-n", str(lines), "--no-pager", "-o", "short-iso"]),
                                  lines, MAX_JOURNAL_BYTES)
            status = bound_lines(capture(["systemctl", "status", unit, "--no-pager", "--full", "-n", "0"]),
                                 MAX_STATUS_LINES, 8 * 1024)
            write_text(os.path.join(d, "journal.txt"), "\n".join(journal) + "\n")
            write_text(os.path.join(d, "unit-status.txt"), "\n".join(status) + "\n")
        write_text(os.path.join(d, "failure.json"), json.dumps(entry, indent=1) + "\n")
        st = load_state(root, service)
        st["failed"] = entry
        save_state(root, st)
    except OSError as e:
        module.fail_json(msg="could not keep the evidence of the failed release %s in %s: %s" % (version, d, e))
    what = ("with the unit's journal (%d lines) and status" % len(journal)) if p["journal"] else "(the release was not started: no journal)"
    module.exit_json(changed=True, msg="kept the failed release %s and its evidence in %s %s" % (version, d, what),
                     failed_release=entry, evidence=dict(entry, journal=journal, unit_status=status))


def cleanup(module, root, service, keep):
    if keep < 2:
        module.fail_json(msg="keep must be at least 2 (current and previous are always kept)")
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
    module.exit_json(changed=bool(removed), kept=kept, removed=removed)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            service=dict(type="str", required=True),
            action=dict(type="str", required=True, choices=["read", "install", "switch", "record", "keep_failed", "cleanup"]),
            version=dict(type="str", default=""),
            src=dict(type="path"),
            previous=dict(type="str", default=""),
            state=dict(type="str", default="success", choices=["success", "failed", "rolled_back"]),
            last_error=dict(type="str", default=""),
            history_version=dict(type="str", default=""),
            history_result=dict(type="str", default="success", choices=["success", "failed"]),
            clear_failed=dict(type="bool", default=False),
            journal=dict(type="bool", default=False),
            journal_lines=dict(type="int", default=50),
            keep=dict(type="int", default=5),
        ),
    )
    p = module.params
    root, service, action = p["root"], p["service"], p["action"]
    if action in ("install", "switch", "keep_failed") and not p["version"]:
        module.fail_json(msg="%s needs a version" % action)
    if action == "read":
        read(module, root, service)
    elif action == "install":
        install(module, root, service, p["version"], p["src"])
    elif action == "switch":
        switch(module, root, p["version"])
    elif action == "record":
        record(module, root, service)
    elif action == "keep_failed":
        keep_failed(module, root, service)
    else:
        cleanup(module, root, service, p["keep"])


if __name__ == "__main__":
    main()
