"""Unit tests of the nodeexec_release module (library/nodeexec_release.py): which releases cleanup keeps,
the tar guard, and the node's deploy record. They run on scratch directories, with no Ansible run and no
systemd: `make test`, or python3 -m unittest discover -s roles/nodeexec_release/tests
"""

import importlib.util
import io
import json
import os
import sys
import tarfile
import tempfile
import types
import unittest

LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "library", "nodeexec_release.py")


def load_module(path, name):
    # The module imports AnsibleModule at the top; these tests never build one, so a stand-in serves where
    # this python3 has no ansible package.
    try:
        import ansible.module_utils.basic  # noqa: F401
    except ImportError:
        basic = types.ModuleType("ansible.module_utils.basic")
        basic.AnsibleModule = object
        for mod in ("ansible", "ansible.module_utils"):
            sys.modules.setdefault(mod, types.ModuleType(mod))
        sys.modules["ansible.module_utils.basic"] = basic
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


nr = load_module(LIBRARY, "nodeexec_release")


class Exit(Exception):
    """What the module answered: exit_json or fail_json end the module, so they end the call here too."""

    def __init__(self, failed, result):
        super().__init__(result.get("msg", ""))
        self.failed, self.result = failed, result


class FakeModule:
    def __init__(self, **params):
        self.params = params

    def exit_json(self, **result):
        raise Exit(False, result)

    def fail_json(self, **result):
        raise Exit(True, result)


def answer(call, *args):
    try:
        call(*args)
    except Exit as e:
        return e
    raise AssertionError("the module returned without exit_json or fail_json")


def record_params(**params):
    p = dict(version="", previous="", state="success", last_error="", history_version="", history_result="success",
             clear_failed=False)
    p.update(params)
    return p


def state(current, previous, history, failed=""):
    return {"current": current, "previous": previous,
            "history": [{"version": v, "result": r, "at": "2026-01-01T00:00:00Z"} for v, r in history],
            "failed": {"version": failed, "at": "2026-01-01T00:00:00Z", "reason": "x"} if failed else {}}


S, F = "success", "failed"


class KeepSetTest(unittest.TestCase):
    def test_keep_set(self):
        cases = [
            ("current and previous always, even past keep",
             state("c", "p", [("a", S), ("b", S), ("p", S), ("c", S)]), ["a", "b", "c", "p"], 2, ["c", "p"]),
            ("then the newest good releases by the node's own record, not by name",
             state("c", "p", [("b", S), ("a", S), ("p", S), ("c", S)]), ["a", "b", "c", "p"], 3, ["c", "p", "a"]),
            ("a release deployed again (or rolled back to) counts from its newest entry",
             state("c", "p", [("a", S), ("b", S), ("a", S), ("p", S), ("c", S)]), ["a", "b", "c", "p"], 3, ["c", "p", "a"]),
            ("current and previous are kept even when their last entry failed",
             state("c", "p", [("p", F), ("c", F)]), ["c", "p"], 2, ["c", "p"]),
            ("a failed release never takes a slot from a good one",
             state("c", "p", [("a", S), ("p", S), ("c", S), ("x", F)]), ["a", "c", "p", "x"], 3, ["c", "p", "a"]),
            ("a failed release is not kept even with slots to spare",
             state("c", "p", [("p", S), ("c", S), ("x", F)]), ["c", "p", "x"], 5, ["c", "p"]),
            ("a release no longer on the node takes no slot",
             state("c", "p", [("a", S), ("gone", S), ("p", S), ("c", S)]), ["a", "c", "p"], 3, ["c", "p", "a"]),
            ("a directory the node never switched to is not kept",
             state("c", "", [("c", S)]), ["c", "stray"], 5, ["c"]),
            ("no previous yet",
             state("c", "", [("a", S), ("c", S)]), ["a", "c"], 2, ["c", "a"]),
            ("never deployed",
             state("", "", []), ["a"], 2, []),
            ("the newest failed release is kept on top of keep while no successful deploy followed it",
             state("c", "p", [("a", S), ("p", S), ("c", S), ("x", F)], failed="x"), ["a", "c", "p", "x"], 3, ["c", "p", "a", "x"]),
            ("the newest failed release is kept even at the smallest keep",
             state("c", "p", [("a", S), ("p", S), ("c", S), ("x", F)], failed="x"), ["a", "c", "p", "x"], 2, ["c", "p", "x"]),
            ("only the newest failed release: an older failure may go",
             state("c", "p", [("p", S), ("c", S), ("x", F), ("y", F)], failed="y"), ["c", "p", "x", "y"], 5, ["c", "p", "y"]),
            ("a failed first deploy keeps its release (current points at it, the record names none)",
             state("", "", [("x", F)], failed="x"), ["x"], 2, ["x"]),
            ("a failed release no longer on the node takes nothing",
             state("c", "p", [("p", S), ("c", S), ("x", F)], failed="x"), ["c", "p"], 2, ["c", "p"]),
        ]
        for name, st, present, keep, want in cases:
            with self.subTest(name):
                self.assertEqual(nr.keep_set(st, present, keep), want)


class CleanupTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def release(self, version, mtime):
        d = os.path.join(self.root, "releases", version)
        os.makedirs(os.path.join(d, "bin"))
        os.utime(d, (mtime, mtime))
        open(os.path.join(self.root, ".nodeexec", "package-%s.tar.gz" % version), "w").close()

    def test_cleanup_removes_by_the_record_not_by_file_times(self):
        os.makedirs(os.path.join(self.root, ".nodeexec"))
        # Directory times say v4 and the failed v5 are the newest; the record says v1 was running last
        # before v3 and v2 took over.
        for version, mtime in [("v1", 1000), ("v2", 2000), ("v3", 3000), ("v4", 5000), ("v5-bad", 6000)]:
            self.release(version, mtime)
        os.makedirs(os.path.join(self.root, "releases", ".v6.unpacking"))
        nr.save_state(self.root, dict(state("v2", "v3", [("v4", S), ("v1", S), ("v3", S), ("v2", S), ("v5-bad", F)]), service="demo"))

        e = answer(nr.cleanup, FakeModule(), self.root, "demo", 3)

        self.assertFalse(e.failed, e.result)
        self.assertEqual(e.result["kept"], ["v2", "v3", "v1"])
        self.assertEqual(sorted(e.result["removed"]), ["v4", "v5-bad"])
        self.assertEqual(sorted(os.listdir(os.path.join(self.root, "releases"))), ["v1", "v2", "v3"])
        self.assertEqual(sorted(f for f in os.listdir(os.path.join(self.root, ".nodeexec")) if f.startswith("package-")),
                         ["package-v1.tar.gz", "package-v2.tar.gz", "package-v3.tar.gz"])

    def test_the_failed_release_and_its_evidence_stay_until_a_later_successful_deploy(self):
        os.makedirs(os.path.join(self.root, ".nodeexec"))
        for version, mtime in [("v1", 1000), ("v2", 2000), ("v3-broken", 3000)]:
            self.release(version, mtime)

        def rec(**params):
            e = answer(nr.record, FakeModule(**record_params(**params)), self.root, "demo")
            self.assertFalse(e.failed, e.result)

        def keep_failed(version):
            e = answer(nr.keep_failed, FakeModule(version=version, last_error="Check the HTTP health endpoint: 503",
                                                  journal=True, journal_lines=50), self.root, "demo")
            self.assertFalse(e.failed, e.result)

        def cleanup(keep):
            e = answer(nr.cleanup, FakeModule(), self.root, "demo", keep)
            self.assertFalse(e.failed, e.result)
            return sorted(os.listdir(os.path.join(self.root, "releases"))), sorted(os.listdir(os.path.join(self.root, ".nodeexec", "failed")))

        rec(version="v1", history_version="v1", clear_failed=True)
        rec(version="v2", previous="v1", history_version="v2", clear_failed=True)
        # v3-broken fails verification: its evidence is kept, then the automatic rollback records v2 again.
        with fake_capture():
            keep_failed("v3-broken")
        rec(version="v2", previous="v1", state="rolled_back", last_error="v3-broken failed", history_version="v3-broken",
            history_result="failed")
        self.assertEqual(cleanup(2), (["v1", "v2", "v3-broken"], ["v3-broken"]))
        # An explicit rollback is not a successful deploy: the evidence stays.
        rec(version="v1", previous="v2", state="rolled_back", history_version="v1")
        self.assertEqual(cleanup(2), (["v1", "v2", "v3-broken"], ["v3-broken"]))
        self.assertEqual(nr.load_state(self.root, "demo")["failed"]["version"], "v3-broken")

        # A successful deploy of v4: the failed release may now go like any old release.
        self.release("v4", 4000)
        rec(version="v4", previous="v1", history_version="v4", clear_failed=True)
        self.assertEqual(nr.load_state(self.root, "demo")["failed"], {})
        self.assertNotIn("failed", self.read_state_file())
        self.assertEqual(cleanup(2), (["v1", "v4"], []))
        self.assertEqual(sorted(f for f in os.listdir(os.path.join(self.root, ".nodeexec")) if f.startswith("package-")),
                         ["package-v1.tar.gz", "package-v4.tar.gz"])

    def test_a_newer_failure_supersedes_the_older_one(self):
        os.makedirs(os.path.join(self.root, ".nodeexec"))
        for version, mtime in [("v1", 1000), ("v2", 2000), ("v3", 3000), ("v4", 4000)]:
            self.release(version, mtime)
        nr.save_state(self.root, dict(state("v2", "v1", [("v1", S), ("v2", S), ("v3", F), ("v4", F)]), service="demo"))
        with fake_capture():
            for v in ("v3", "v4"):
                answer(nr.keep_failed, FakeModule(version=v, last_error="boom", journal=True, journal_lines=50), self.root, "demo")
        e = answer(nr.cleanup, FakeModule(), self.root, "demo", 2)
        self.assertEqual(e.result["kept"], ["v2", "v1", "v4"])
        self.assertEqual(sorted(e.result["removed"]), ["v3"])
        self.assertEqual(os.listdir(os.path.join(self.root, ".nodeexec", "failed")), ["v4"])

    def read_state_file(self):
        with open(os.path.join(self.root, ".nodeexec", "state.json")) as f:
            return json.load(f)

    def test_cleanup_refuses_to_keep_fewer_than_two(self):
        e = answer(nr.cleanup, FakeModule(), self.root, "demo", 1)
        self.assertTrue(e.failed)
        self.assertIn("at least 2", e.result["msg"])


def tarball(*members):
    """A .tar.gz in memory. A member is (name, kind, linkname): kind file, dir, sym, link, fifo or chr."""
    buf = io.BytesIO()
    types_ = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "link": tarfile.LNKTYPE,
              "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
        for name, kind, linkname in members:
            ti = tarfile.TarInfo(name)
            ti.type = types_[kind]
            ti.linkname = linkname
            ti.mode = 0o755 if kind == "dir" else 0o644
            data = b"content of " + name.encode() if kind == "file" else b""
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class SafeMembersTest(unittest.TestCase):
    def check(self, data):
        with tempfile.TemporaryDirectory() as dest, tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            return [m.name for m in nr.safe_members(tar, dest)]

    def test_a_plain_release_passes(self):
        names = self.check(tarball(("bin/", "dir", ""), ("bin/demo", "file", ""), ("deploy/demo.service", "file", ""),
                                   ("lib/libx.so.1", "file", ""), ("lib/libx.so", "sym", "libx.so.1"),
                                   ("lib/current", "sym", "../bin"), ("bin/demo2", "link", "bin/demo"),
                                   ("./share/doc", "file", "")))
        self.assertEqual(names, ["bin", "bin/demo", "deploy/demo.service", "lib/libx.so.1", "lib/libx.so", "lib/current",
                                 "bin/demo2", "./share/doc"])

    def test_members_that_leave_the_release_are_refused(self):
        cases = [
            ("a parent directory", [("../evil", "file", "")]),
            ("a parent directory inside the path", [("bin/../../evil", "file", "")]),
            ("an absolute path", [("/etc/cron.d/evil", "file", "")]),
            ("a symlink to an absolute path", [("bin/sh", "sym", "/bin/sh")]),
            ("a symlink out by '..'", [("bin/up", "sym", "../../..")]),
            ("a hardlink to an absolute path", [("shadow", "link", "/etc/shadow")]),
            ("a hardlink out by '..'", [("up", "link", "../../other/file")]),
            # Each link alone stays inside when read against the empty directory; together, once unpacked,
            # a/b is <release>/b -> .. : the release's parent.
            ("a file written through the package's own links",
             [("a", "sym", "."), ("a/b", "sym", ".."), ("a/b/evil", "file", "")]),
            ("a symlink whose '..' goes through the package's own link",
             [("s", "sym", "."), ("t", "sym", "s/..")]),
            ("a hardlink through the package's own link", [("d", "sym", ".."), ("h", "link", "d/other/file")]),
            ("a file under a link out", [("d", "sym", "/etc"), ("d/cron.d/evil", "file", "")]),
            ("a device", [("dev/sda", "chr", "")]),
            ("a fifo", [("run/fifo", "fifo", "")]),
        ]
        for name, members in cases:
            with self.subTest(name):
                with self.assertRaises(ValueError):
                    self.check(tarball(*members))

    def test_a_symlink_loop_is_refused_not_followed_forever(self):
        with self.assertRaises(ValueError):
            self.check(tarball(("a", "sym", "b"), ("b", "sym", "a"), ("a/x", "file", "")))


class InstallTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = os.path.join(self.tmp.name, "opt", "demo")
        os.makedirs(os.path.join(self.root, ".nodeexec"))

    def tearDown(self):
        self.tmp.cleanup()

    def install(self, version, data):
        src = os.path.join(self.root, ".nodeexec", "package-%s.tar.gz" % version)
        with open(src, "wb") as f:
            f.write(data)
        return answer(nr.install, FakeModule(), self.root, "demo", version, src)

    def test_a_release_is_unpacked_under_its_version_and_its_unit_found(self):
        e = self.install("v1", tarball(("bin/demo", "file", ""), ("deploy/demo.service", "file", "")))
        self.assertFalse(e.failed, e.result)
        self.assertEqual(e.result["package_unit"], os.path.join(self.root, "releases", "v1", "deploy", "demo.service"))
        with open(os.path.join(self.root, "releases", "v1", "bin", "demo"), "rb") as f:
            self.assertEqual(f.read(), b"content of bin/demo")

    def test_a_hostile_package_changes_nothing(self):
        e = self.install("v2", tarball(("a", "sym", "."), ("a/b", "sym", ".."), ("a/b/escaped", "file", "")))
        self.assertTrue(e.failed)
        self.assertIn("outside the release", e.result["msg"])
        # No release, no half-unpacked leftover, nothing beside the releases.
        self.assertEqual(os.listdir(os.path.join(self.root, "releases")), [])
        for d, _, files in os.walk(self.tmp.name):
            self.assertNotIn("escaped", files, d)


class fake_capture:
    """Stands in for journalctl and systemctl (this machine may have neither, or not the unit): each command
    prints `lines` numbered lines; calls lists the argv of each."""

    def __init__(self, lines=80, width=20):
        self.lines, self.width, self.calls = lines, width, []

    def __call__(self, argv):
        self.calls.append(argv)
        return "".join("%s line %03d %s\n" % (argv[0], i, "x" * self.width) for i in range(self.lines))

    def __enter__(self):
        self.saved, nr.capture = nr.capture, self
        return self

    def __exit__(self, *exc):
        nr.capture = self.saved


class KeepFailedTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name
        os.makedirs(os.path.join(self.root, "releases", "v3"))

    def tearDown(self):
        self.tmp.cleanup()

    def keep_failed(self, **params):
        p = dict(version="v3", last_error="Check the HTTP health endpoint: Status code was 503", journal=True, journal_lines=50)
        p.update(params)
        return answer(nr.keep_failed, FakeModule(**p), self.root, "demo")

    def evidence_file(self, name):
        with open(os.path.join(self.root, ".nodeexec", "failed", "v3", name)) as f:
            return f.read()

    def test_the_state_file_names_the_failed_release_and_the_evidence_is_kept_beside_it(self):
        with fake_capture() as cap:
            e = self.keep_failed()
        self.assertFalse(e.failed, e.result)
        d = os.path.join(self.root, ".nodeexec", "failed", "v3")
        with open(os.path.join(self.root, ".nodeexec", "state.json")) as f:
            failed = json.load(f)["failed"]
        self.assertEqual((failed["version"], failed["reason"], failed["dir"]), ("v3", "Check the HTTP health endpoint: Status code was 503", d))
        self.assertTrue(failed["at"].endswith("Z"))
        self.assertEqual(e.result["failed_release"], failed)
        self.assertNotIn("failed", e.result)
        self.assertEqual(cap.calls[0], ["journalctl", "-u", "demo.service", "-n", "50", "--no-pager", "-o", "short-iso"])
        self.assertEqual(cap.calls[1][:3], ["systemctl", "status", "demo.service"])
        journal = e.result["evidence"]["journal"]
        self.assertEqual((len(journal), journal[0][:20], journal[-1][:20]), (50, "journalctl line 030 ", "journalctl line 079 "))
        self.assertEqual(self.evidence_file("journal.txt"), "\n".join(journal) + "\n")
        self.assertEqual(self.evidence_file("unit-status.txt").splitlines(), e.result["evidence"]["unit_status"])
        self.assertEqual(len(e.result["evidence"]["unit_status"]), nr.MAX_STATUS_LINES)
        self.assertEqual(json.loads(self.evidence_file("failure.json")), failed)
        # The rest of the record is the deploy's to write.
        st = nr.load_state(self.root, "demo")
        self.assertEqual((st["current"], st["previous"], st["state"], st["history"]), ("", "", "", []))

    def test_a_release_that_never_started_has_no_journal(self):
        with fake_capture() as cap:
            e = self.keep_failed(journal=False)
        self.assertFalse(e.failed, e.result)
        self.assertEqual(cap.calls, [])
        self.assertEqual((e.result["evidence"]["journal"], e.result["evidence"]["unit_status"]), ([], []))
        self.assertEqual(os.listdir(os.path.join(self.root, ".nodeexec", "failed", "v3")), ["failure.json"])
        self.assertEqual(nr.load_state(self.root, "demo")["failed"]["version"], "v3")

    def test_the_excerpt_is_bounded(self):
        with fake_capture(lines=3000, width=5000) as cap:
            e = self.keep_failed(journal_lines=100000, last_error="r" * 10000)
        self.assertEqual(cap.calls[0][4], str(nr.MAX_JOURNAL_LINES))
        journal = e.result["evidence"]["journal"]
        self.assertLessEqual(sum(len(l.encode()) + 1 for l in journal), nr.MAX_JOURNAL_BYTES)
        self.assertTrue(all(len(l) <= nr.MAX_LINE + 1 for l in journal))
        self.assertTrue(journal[-1].startswith("journalctl line 2999 "), journal[-1][:30])  # the newest lines
        self.assertEqual(len(e.result["failed_release"]["reason"]), nr.MAX_REASON)

    def test_a_second_failure_of_the_same_version_replaces_its_evidence(self):
        with fake_capture(lines=3):
            self.keep_failed()
        with fake_capture(lines=1):
            e = self.keep_failed(last_error="again")
        self.assertEqual(len(self.evidence_file("journal.txt").splitlines()), 1)
        self.assertEqual(nr.load_state(self.root, "demo")["failed"]["reason"], "again")
        self.assertEqual(e.result["failed_release"]["reason"], "again")

    def test_read_reports_the_failed_entry(self):
        with fake_capture():
            self.keep_failed()
        # read asks systemd about the unit; without systemd here it reads as not running.
        e = answer(nr.read, FakeModule(), self.root, "demo")
        self.assertFalse(e.failed, e.result)
        # Never under the result's own "failed" key: Ansible would fail the task whatever its value.
        self.assertNotIn("failed", e.result)
        self.assertEqual(e.result["failed_release"]["version"], "v3")
        self.assertEqual(e.result["releases"], ["v3"])


class RecordTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def read_file(self):
        with open(os.path.join(self.root, ".nodeexec", "state.json")) as f:
            return json.load(f)

    def test_a_node_never_deployed_reads_as_empty(self):
        st = nr.load_state(self.root, "demo")
        self.assertEqual((st["service"], st["current"], st["previous"], st["state"], st["history"]), ("demo", "", "", "", []))

    def test_a_corrupt_record_reads_as_empty_instead_of_failing(self):
        os.makedirs(os.path.join(self.root, ".nodeexec"))
        with open(os.path.join(self.root, ".nodeexec", "state.json"), "w") as f:
            f.write('{"current": "v1", ')
        self.assertEqual(nr.load_state(self.root, "demo")["current"], "")

    def test_record_sets_the_versions_and_appends_to_the_history(self):
        e = answer(nr.record, FakeModule(**record_params(version="v1", history_version="v1")), self.root, "demo")
        self.assertFalse(e.failed)
        e = answer(nr.record, FakeModule(**record_params(version="v1", previous="", state="rolled_back",
                                                         last_error="Check the HTTP health endpoint: 503",
                                                         history_version="v2", history_result="failed")), self.root, "demo")
        self.assertEqual(e.result, {"changed": True, "current": "v1", "previous": "", "state": "rolled_back",
                                    "last_error": "Check the HTTP health endpoint: 503"})
        st = self.read_file()
        self.assertEqual((st["service"], st["current"], st["state"]), ("demo", "v1", "rolled_back"))
        self.assertEqual([(h["version"], h["result"]) for h in st["history"]], [("v1", "success"), ("v2", "failed")])
        self.assertTrue(st["updated_at"].endswith("Z"))
        self.assertEqual(os.listdir(os.path.join(self.root, ".nodeexec")), ["state.json"])  # no temp file left

    def test_a_record_without_a_history_entry_keeps_the_history(self):
        answer(nr.record, FakeModule(**record_params(version="v1", history_version="v1")), self.root, "demo")
        answer(nr.record, FakeModule(**record_params(version="v1", state="failed", last_error="x")), self.root, "demo")
        self.assertEqual(len(self.read_file()["history"]), 1)

    def test_the_history_keeps_the_newest_200_entries(self):
        for i in range(205):
            answer(nr.record, FakeModule(**record_params(version="v%d" % i, history_version="v%d" % i)), self.root, "demo")
        h = self.read_file()["history"]
        self.assertEqual((len(h), h[0]["version"], h[-1]["version"]), (200, "v5", "v204"))


class ResourcesTest(unittest.TestCase):
    """What systemctl show says a unit uses, as read reports it."""

    def test_the_figures_systemd_accounts(self):
        props = {"ActiveState": "active", "MemoryCurrent": "12582912", "CPUUsageNSec": "431000000", "TasksCurrent": "7"}
        self.assertEqual(nr.resources(props), {"memory_bytes": 12582912, "cpu_nsec": 431000000, "tasks": 7})

    def test_figures_systemd_does_not_know_are_left_out(self):
        props = {"ActiveState": "active", "MemoryCurrent": "[not set]", "CPUUsageNSec": str(2**64 - 1), "TasksCurrent": "3"}
        self.assertEqual(nr.resources(props), {"tasks": 3})

    def test_a_unit_that_is_not_running_uses_nothing(self):
        self.assertEqual(nr.resources({"ActiveState": "inactive", "MemoryCurrent": "4096", "TasksCurrent": "1"}), {})
        self.assertEqual(nr.resources({}), {})


if __name__ == "__main__":
    unittest.main()
