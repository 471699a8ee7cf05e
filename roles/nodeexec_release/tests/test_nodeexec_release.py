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
    p = dict(version="", previous="", state="success", last_error="", history_version="", history_result="success")
    p.update(params)
    return p


def state(current, previous, history):
    return {"current": current, "previous": previous,
            "history": [{"version": v, "result": r, "at": "2026-01-01T00:00:00Z"} for v, r in history]}


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


if __name__ == "__main__":
    unittest.main()
