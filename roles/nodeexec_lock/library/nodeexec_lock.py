#!/usr/bin/python3
# One lock per service per node, shared by nodeexec, the scheduled cleanup and operators' hand runs.
# The lock is a flock(2) held by a small detached holder process, so the kernel frees it the moment the
# holder dies: after its TTL, on release, or if the node reboots. Nothing is ever left locked for good.

DOCUMENTATION = r"""
module: nodeexec_lock
short_description: Take or release a service's deploy lock on a node
description:
  - C(state=acquired) starts a detached holder process that takes flock(2) on I(dir)/lock without waiting
    and keeps it until it is released or I(ttl) seconds pass. If another holder has it, the module fails at
    once with a message naming that holder. The holder's details are in I(dir)/lock.holder.json.
  - C(state=released) stops the holder whose I(token) matches (so a failed acquire never releases someone
    else's lock); with I(unlock_holder) it stops the holder whose holder text matches; with I(force) any.
options:
  dir: {description: Directory of the lock file (created), type: path, required: true}
  state: {description: acquired or released, type: str, choices: [acquired, released], default: acquired}
  holder: {description: Who asks (shown to whoever finds the lock taken), type: str, default: someone}
  playbook: {description: What runs under the lock, type: str, default: ""}
  ttl: {description: Seconds after which the holder lets go on its own, type: int, default: 3600}
  token: {description: With state=released, the token that acquired returned, type: str, default: ""}
  unlock_holder: {description: With state=released, release only if held by this holder, type: str, default: ""}
  force: {description: With state=released, release whoever holds it, type: bool, default: false}
"""

EXAMPLES = r"""
- nodeexec_lock: {dir: /opt/demo/.nodeexec, holder: "nodeexec deployment d-42", ttl: 3600}
  register: lock
- nodeexec_lock: {dir: /opt/demo/.nodeexec, state: released, token: "{{ lock.token }}"}
"""

RETURN = r"""
token: {description: Identifies this acquisition, for release, type: str, returned: when acquired}
holder: {description: Who holds the lock (when it was busy, or was released), type: str}
"""

import datetime
import fcntl
import json
import os
import secrets
import signal
import time

from ansible.module_utils.basic import AnsibleModule

LOCK = "lock"
INFO = "lock.holder.json"


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


def hold(d, info, ttl, report_fd):
    """Runs in the detached grandchild: take the lock, tell the parent, then keep it."""
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
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        if read_info(d).get("token") != info["token"]:
            break  # someone removed our record: treat it as a release
    remove_info_if(d, info["token"])
    os._exit(0)


def acquire(module, d):
    os.makedirs(d, mode=0o755, exist_ok=True)
    info = {
        "holder": module.params["holder"],
        "playbook": module.params["playbook"],
        "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "token": secrets.token_hex(8),
    }
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
            hold(d, info, module.params["ttl"], w)
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
    answer = b"".join(chunks)
    if answer == b"ok":
        module.exit_json(changed=False, token=info["token"], holder=info["holder"])
    # Busy: say who has it. The holder writes its record just after taking the lock: allow it a moment.
    other = {}
    for _ in range(20):
        other = read_info(d)
        if other:
            break
        time.sleep(0.05)
    who = other.get("holder", "an unknown holder")
    module.fail_json(
        msg="locked by %s (%s, since %s, pid %s); wait for it to finish, or release a stale lock with "
        "playbooks/unlock.yml -e nodeexec_force_unlock=true"
        % (who, other.get("playbook") or "?", other.get("since", "?"), other.get("pid", "?")),
        holder=who,
        lock=other,
    )


def release(module, d):
    info = read_info(d)
    p = module.params
    if not info:
        module.exit_json(changed=False, msg="not locked")
    ours = (p["token"] and info.get("token") == p["token"]) or \
        (p["unlock_holder"] and info.get("holder") == p["unlock_holder"]) or p["force"]
    if not ours:
        module.exit_json(changed=False, msg="held by %s; not ours to release" % info.get("holder"), holder=info.get("holder"))
    pid = info.get("pid")
    if isinstance(pid, int) and pid > 1:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    # Wait until the kernel has really freed the lock, so the next taker never races the old holder.
    fd = os.open(os.path.join(d, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                break
            except OSError:
                if time.monotonic() > deadline:
                    module.fail_json(msg="the lock holder (pid %s) did not let go within 10s" % pid)
                time.sleep(0.05)
    finally:
        os.close(fd)
    remove_info_if(d, info.get("token"))
    module.exit_json(changed=False, holder=info.get("holder"), msg="released")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            holder=dict(type="str", default="someone"),
            playbook=dict(type="str", default=""),
            ttl=dict(type="int", default=3600),
            token=dict(type="str", default="", no_log=False),
            unlock_holder=dict(type="str", default=""),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=False,
    )
    if module.params["state"] == "acquired":
        acquire(module, module.params["dir"])
    else:
        release(module, module.params["dir"])


if __name__ == "__main__":
    main()
