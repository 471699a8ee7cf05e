#!/usr/bin/python3
# nodeexec_release: everything the playbooks do on a node, one module call per phase. Each Ansible task
# costs the controller a process and an SSH round trip per host, so the node's real work happens here,
# in a few calls, and each call reports its sub-steps (name, start, duration, result) for the live view.

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
  - C(rollback), C(restart), C(cleanup) run whole under the lock in one call; C(status) reads; C(unlock)
    releases a lock by holder or by force.
  - Every result carries C(steps) and C(report) (the node's record and what it runs).
options:
  phase: {description: What to do, type: str, required: true,
          choices: [prepare, activate, rollback, restart, cleanup, status, unlock]}
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
  journal_lines: {description: activate - journal lines a failed deploy keeps (1 to 1000), type: int, default: 50}
  token: {description: activate - the lock token prepare returned, type: str, default: ""}
  rollback_to: {description: rollback - the version to go back to (default the recorded previous), type: str, default: ""}
  keep: {description: cleanup - releases to keep (at least 2), type: int, default: 5}
  health: {description: "activate/rollback/restart - http_port, http_path, http_status, tcp_port, window,
           interval, attempt_timeout, steady (seconds)", type: dict, default: {}}
  lock_dir: {description: Directory of the node lock, type: path, required: true}
  lock_holder: {description: Who asks (shown to whoever finds the lock taken), type: str, default: someone}
  lock_ttl: {description: Seconds the lock may be held at most, type: int, default: 3600}
  playbook: {description: What runs under the lock, type: str, default: ""}
  unlock_holder: {description: unlock - release only a lock held by this holder, type: str, default: ""}
  force_unlock: {description: unlock - release whoever holds it, type: bool, default: false}
"""

RETURN = r"""
steps: {description: the sub-steps, each {name, status, start, duration, msg[, stdout, stderr]}, type: list}
report: {description: the node's record and what it runs (docs/node-contract.md), type: dict}
done: {description: prepare - nothing more to do on this node in this run, type: bool}
token: {description: prepare - the lock token, for activate, type: str}
"""

import contextlib
import datetime
import hashlib
import os
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils import nodeexec_lockfile as lockfile
from ansible.module_utils import nodeexec_node as node
from ansible.module_utils import nodeexec_unit as unit

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
        self.anchor = lockfile.connection_anchor()

    # --- how a phase ends: a report always, the lock released unless the next phase needs it ----------
    def report(self):
        st = node.load_state(self.root, self.service)
        p = unit.props(self.service)
        active, pid = p.get("ActiveState", "unknown"), unit.as_int(p, "MainPID")
        since, uptime = unit.active_since(active, unit.as_int(p, "ActiveEnterTimestampMonotonic"), time.time(), time.monotonic())
        return {
            "service": self.service, "current": st["current"], "previous": st["previous"], "state": st["state"],
            "last_error": st["last_error"], "link": node.link_version(self.root),
            "running_version": node.running_version(self.root, pid), "active": active == "active",
            "active_state": active, "main_pid": pid, "active_since": since, "uptime_seconds": uptime,
            "resources": unit.resources(p), "releases": node.releases(self.root), "failed": st["failed"],
            "evidence": self.evidence, "removed": self.removed, "locked_by": self.locked_by,
        }

    def unlock(self):
        if not self.token:
            return
        with self.steps.step("Release the node lock"):
            lockfile.release(self.lock_dir, token=self.token)
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
            try:
                self.token = lockfile.acquire(self.lock_dir, self.p["lock_holder"], self.p["playbook"],
                                              self.p["lock_ttl"], self.anchor)
            except lockfile.Busy as e:
                self.locked_by = e.holder
                raise StepFailed("Take the node lock", str(e))
            st.msg = "held by %s" % self.p["lock_holder"]

    def alive(self):
        """Whether the run this call belongs to still runs: its task's session is open and the connection
        the lock's holder watches is up. A killed run's module stops instead of acting on the node."""
        return lockfile.session_open() and lockfile.anchor_alive(self.anchor)

    def health(self):
        h = self.p["health"] or {}
        return unit.Health(
            http_port=int(h.get("http_port") or 0), http_path=str(h.get("http_path") or "/health"),
            http_status=int(h.get("http_status") or 200), tcp_port=int(h.get("tcp_port") or 0),
            window=float(h.get("window") or 10), interval=float(h.get("interval") or 0.2),
            attempt_timeout=float(h.get("attempt_timeout") or 5), steady=float(h.get("steady") or 0))

    def start(self, version, step_name):
        """Install the release's own unit and restart the service on it."""
        with self.steps.step(step_name) as st:
            unit.install_unit(self.service, os.path.join(node.release_dir(self.root, version), node.UNIT_FILE))
            unit.restart(self.service)
            st.changed, st.msg = True, "%s restarted on %s" % (unit.unit_name(self.service), version)

    def switch(self, version, step_name):
        with self.steps.step(step_name) as st:
            st.changed = node.switch(self.root, version)
            st.msg = "current -> releases/%s" % version

    def verify(self):
        unit.verify(self.service, self.health(), self.steps, alive=self.alive)


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
        rec = node.load_state(run.root, run.service)
        active = unit.props(run.service).get("ActiveState") == "active"
        runs = (rec["current"] == version and node.link_version(run.root) == version and active
                and version in node.releases(run.root))
        st.msg = "current %s, previous %s" % (rec["current"] or "none", rec["previous"] or "none")
    if runs:
        # Idempotent: the node's verified current release, switched to and active: nothing to do.
        steps.skipped("Download the package and check its SHA256", "%s already runs here" % version)
        run.exit(False, done=True)

    unpacked = False
    try:
        if node.release_sha256(run.root, version) == want:
            steps.skipped("Download the package and check its SHA256",
                          "releases/%s already holds the package with this SHA256" % version)
            if p["delivery"] == "push":
                with contextlib.suppress(OSError):
                    os.unlink(incoming_path(run.root, p["package_file"]))
            shipped = os.path.join(node.release_dir(run.root, version), "deploy", run.service + ".service")
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
                shipped = node.unpack(run.root, run.service, version, pkg, want, p["max_unpack_bytes"], p["max_unpack_files"])
                st.changed, st.msg = True, "releases/%s" % version
            unpacked = True
        with steps.step("Render the unit of the release") as st:
            dest = os.path.join(node.release_dir(run.root, version), node.UNIT_FILE)
            if shipped:
                with open(shipped, "rb") as f:
                    node.write_text(dest, f.read())
                st.msg = "with the unit its package ships (deploy/%s.service)" % run.service
            else:
                node.write_text(dest, p["unit"])
                # Its arguments and environment, when the unit reads them from the release (a switch
                # then changes no unit file); kept either way as the record of how the release starts.
                node.write_text(os.path.join(node.release_dir(run.root, version), node.ENV_FILE),
                                node.env_file_text(p["exec_args"], p["service_env"]), mode=0o600)
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
            run.evidence = node.keep_failed(run.root, run.service, run.p["version"], reason, journal, run.p["journal_lines"])
            st.changed, st.msg = True, "kept in %s" % run.evidence["dir"]


def activate(run):
    p, steps, version = run.p, run.steps, run.p["version"]
    run.token = p["token"]
    with steps.step("Check the node lock"):
        if not lockfile.holds(run.lock_dir, run.token):
            run.token = ""
            raise ValueError("the node lock taken by this run is no longer held (the run's SSH connection closed "
                             "between its tasks, or the lock's TTL passed); nothing was switched")
    rec = node.load_state(run.root, run.service)
    switched = False
    try:
        run.switch(version, "Switch current to the new release")
        switched = True
        run.start(version, "Restart on the new release")
        run.verify()
        with steps.step("Record the deploy on the node") as st:
            previous = rec["current"] if rec["current"] not in ("", version) else rec["previous"]
            node.record(run.root, run.service, version, previous, "success", history_version=version, clear_failed=True)
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
    back_to = rec["current"] if rec["current"] not in ("", version) and rec["current"] in node.releases(run.root) else ""
    if not back_to:
        # Nothing older to switch to: a first deploy, or a redeploy of the recorded current version (a
        # repair). The failed release is stopped; a redeploy keeps the record's versions as they were.
        unit.stop(run.service)
        node.record(run.root, run.service, rec["current"] if rec["current"] == version else "", rec["previous"],
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
        node.record(run.root, run.service, back_to, rec["previous"], "failed",
                    "%s; going back to %s failed too: %s" % (failure, back_to, e), history_version=version, history_result="failed")
        run.fail("%s failed verification, and going back to %s failed too: %s; the first failure: %s"
                 % (version, back_to, e, failure), changed=True)
    with run.steps.step("Record the automatic rollback on the node") as st:
        node.record(run.root, run.service, back_to, rec["previous"], "rolled_back", failure,
                    history_version=version, history_result="failed")
        st.changed = True
    run.fail("%s failed verification and was rolled back to %s: %s" % (version, back_to, failure), changed=True)


def rollback(run):
    p, steps = run.p, run.steps
    with steps.step("Check the request"):
        if p["rollback_to"]:
            check_name(p["rollback_to"], "nodeexec_rollback_to", VERSION)
    run.lock()
    rec = node.load_state(run.root, run.service)
    present = node.releases(run.root)
    target = p["rollback_to"] or rec["previous"]
    try:
        with steps.step("Check the release to roll back to is on the node") as st:
            if not target or target not in present:
                raise ValueError("%s; present: %s" % ("release %s is not on this node" % target if target
                                 else "no previous version is recorded on this node", ", ".join(present) or "none"))
            st.msg = target
    except StepFailed as e:
        run.fail(str(e))
    if rec["current"] == target and node.link_version(run.root) == target and unit.props(run.service).get("ActiveState") == "active":
        run.exit(False)
    try:
        run.switch(target, "Switch current to the release rolled back to")
        run.start(target, "Restart on the release rolled back to")
        run.verify()
        with steps.step("Record the rollback on the node") as st:
            node.record(run.root, run.service, target, rec["current"], "rolled_back", history_version=target)
            st.changed = True
    except StepFailed as e:
        if not run.alive():
            run.fail("the run ended during the rollback: %s" % e, changed=True)
        back = rec["current"]
        if back in node.releases(run.root):
            with contextlib.suppress(StepFailed):
                run.switch(back, "Switch current back to where it was")
                run.start(back, "Restart on the release it was on")
        run.fail("rollback to %s failed and the node was put back on %s: %s" % (target, back or "nothing", e), changed=True)
    run.exit(True)


def restart(run):
    """Restart the release the node runs and verify it as a deploy does. The record is not touched: a
    restart changes no version. A unit that fails verification is left as systemd has it."""
    run.lock()
    rec = node.load_state(run.root, run.service)
    try:
        with run.steps.step("Check the node runs a recorded release"):
            link = node.link_version(run.root)
            if not rec["current"]:
                raise ValueError("no release of %s is recorded on this node: deploy one first" % run.service)
            if rec["current"] not in node.releases(run.root) or link != rec["current"]:
                raise ValueError("the record says %s but current points at %s: deploy or roll back to repair the "
                                 "node before restarting it" % (rec["current"], link or "nothing"))
        with run.steps.step("Restart the service") as st:
            unit.restart(run.service)
            st.changed = True
        run.verify()
    except StepFailed as e:
        run.fail(str(e), changed=True)
    run.exit(True)


def cleanup(run):
    run.lock()
    try:
        with run.steps.step("Remove old releases") as st:
            _, run.removed = node.cleanup(run.root, run.service, run.p["keep"])
            st.changed, st.msg = bool(run.removed), "removed %s" % (", ".join(run.removed) or "nothing")
    except StepFailed as e:
        run.fail(str(e))
    run.exit(bool(run.removed))


def unlock(run):
    p = run.p
    try:
        with run.steps.step("Release the node lock held by the given holder") as st:
            if not p["unlock_holder"] and not p["force_unlock"]:
                raise ValueError("say whose lock to release: -e nodeexec_unlock_holder='<holder>' or "
                                 "-e nodeexec_force_unlock=true")
            released, holder, st.msg = lockfile.release(run.lock_dir, unlock_holder=p["unlock_holder"], force=p["force_unlock"])
            st.changed = released
    except StepFailed as e:
        run.fail(str(e))
    run.exit(False)


PHASES = {"prepare": prepare, "activate": activate, "rollback": rollback, "restart": restart,
          "cleanup": cleanup, "status": lambda run: run.exit(False), "unlock": unlock}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            phase=dict(type="str", required=True, choices=list(PHASES)),
            root=dict(type="path", required=True),
            service=dict(type="str", required=True),
            version=dict(type="str", default=""),
            package_url=dict(type="str", default=""),
            package_sha256=dict(type="str", default=""),
            delivery=dict(type="str", default="pull"),
            package_file=dict(type="str", default=""),
            download_timeout=dict(type="int", default=60),
            max_unpack_bytes=dict(type="int", default=node.MAX_UNPACK_BYTES),
            max_unpack_files=dict(type="int", default=node.MAX_UNPACK_FILES),
            unit=dict(type="str", default=""),
            exec_args=dict(type="str", default=""),
            service_env=dict(type="dict", default={}),
            journal_lines=dict(type="int", default=50),
            token=dict(type="str", default="", no_log=False),
            rollback_to=dict(type="str", default=""),
            keep=dict(type="int", default=5),
            health=dict(type="dict", default={}),
            lock_dir=dict(type="path", required=True),
            lock_holder=dict(type="str", default="someone"),
            lock_ttl=dict(type="int", default=3600),
            playbook=dict(type="str", default=""),
            unlock_holder=dict(type="str", default=""),
            force_unlock=dict(type="bool", default=False),
        ),
    )
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
