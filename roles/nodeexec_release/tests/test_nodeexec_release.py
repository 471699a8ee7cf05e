"""Unit tests of a service's releases on a node (the release part of library/nodeexec_release.py: which releases cleanup keeps,
the tar guard, unpacking, the node's deploy record, a failed deploy's evidence) and of the module's phases
around them (library/nodeexec_release.py: steps, download, prepare/activate/cleanup/status/unlock). They
run on scratch directories and 127.0.0.1, with no Ansible run and no systemd (systemctl is faked where a
phase calls it): `make test`, or python3 -m unittest discover -s roles/nodeexec_release/tests -p 'test_*.py'
"""

import datetime
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # loader.py, also when run by path
from loader import lockfile, node, nr, unit  # noqa: E402


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
                self.assertEqual(node.keep_set(st, present, keep), want)


class fake_capture:
    """Stands in for journalctl and systemctl status (this machine may have neither, or not the unit): each
    command prints `lines` numbered lines; calls lists the argv of each."""

    def __init__(self, lines=80, width=20):
        self.lines, self.width, self.calls = lines, width, []

    def __call__(self, argv):
        self.calls.append(argv)
        return "".join("%s line %03d %s\n" % (argv[0], i, "x" * self.width) for i in range(self.lines))

    def __enter__(self):
        self.patch = mock.patch.object(node, "capture", self)
        self.patch.start()
        return self

    def __exit__(self, *exc):
        self.patch.stop()


class Scratch(unittest.TestCase):
    """A test on a scratch service directory, self.root (= <tmp>/opt/demo)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.root = os.path.join(self.tmp.name, "opt", "demo")
        os.makedirs(os.path.join(self.root, ".nodeexec"))

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def ls(self, *parts):
        return sorted(os.listdir(self.path(*parts)))

    def read_state_file(self):
        with open(node.state_path(self.root)) as f:
            return json.load(f)


class CleanupTest(Scratch):
    def release(self, version, mtime):
        d = self.path("releases", version)
        os.makedirs(os.path.join(d, "bin"))
        os.utime(d, (mtime, mtime))
        open(self.path(".nodeexec", "package-%s.tar.gz" % version), "w").close()

    def packages(self):
        return [f for f in self.ls(".nodeexec") if f.startswith("package-")]

    def test_cleanup_removes_by_the_record_not_by_file_times(self):
        # Directory times say v4 and the failed v5 are the newest; the record says v1 was running last
        # before v3 and v2 took over.
        for version, mtime in [("v1", 1000), ("v2", 2000), ("v3", 3000), ("v4", 5000), ("v5-bad", 6000)]:
            self.release(version, mtime)
        os.makedirs(self.path("releases", ".v6.unpacking"))  # an interrupted unpack
        node.save_state(self.root, dict(state("v2", "v3", [("v4", S), ("v1", S), ("v3", S), ("v2", S), ("v5-bad", F)]), service="demo"))

        kept, removed = node.remove_old_releases(self.root, "demo", 3)

        self.assertEqual(kept, ["v2", "v3", "v1"])
        self.assertEqual(sorted(removed), ["v4", "v5-bad"])
        self.assertEqual(self.ls("releases"), ["v1", "v2", "v3"])
        self.assertEqual(self.packages(), ["package-v1.tar.gz", "package-v2.tar.gz", "package-v3.tar.gz"])

    def test_the_failed_release_and_its_evidence_stay_until_a_later_successful_deploy(self):
        for version, mtime in [("v1", 1000), ("v2", 2000), ("v3-broken", 3000)]:
            self.release(version, mtime)

        def rec(version, previous="", st="success", last_error="", history_version="", history_result="success",
                clear_failed=False):
            node.record(self.root, "demo", version, previous, st, last_error, history_version=history_version,
                        history_result=history_result, clear_failed=clear_failed)

        def cleanup(keep):
            node.remove_old_releases(self.root, "demo", keep)
            return self.ls("releases"), self.ls(".nodeexec", "failed")

        rec("v1", history_version="v1", clear_failed=True)
        rec("v2", previous="v1", history_version="v2", clear_failed=True)
        # v3-broken fails verification: its evidence is kept, then the automatic rollback records v2 again.
        with fake_capture():
            node.keep_failed(self.root, "demo", "v3-broken", "Check the HTTP health endpoint: 503", True, 50)
        rec("v2", previous="v1", st="rolled_back", last_error="v3-broken failed", history_version="v3-broken",
            history_result="failed")
        self.assertEqual(cleanup(2), (["v1", "v2", "v3-broken"], ["v3-broken"]))
        # An explicit rollback is not a successful deploy: the evidence stays.
        rec("v1", previous="v2", st="rolled_back", history_version="v1")
        self.assertEqual(cleanup(2), (["v1", "v2", "v3-broken"], ["v3-broken"]))
        self.assertEqual(node.load_state(self.root, "demo")["failed"]["version"], "v3-broken")

        # A successful deploy of v4: the failed release may now go like any old release.
        self.release("v4", 4000)
        rec("v4", previous="v1", history_version="v4", clear_failed=True)
        self.assertEqual(node.load_state(self.root, "demo")["failed"], {})
        self.assertNotIn("failed", self.read_state_file())
        self.assertEqual(cleanup(2), (["v1", "v4"], []))
        self.assertEqual(self.packages(), ["package-v1.tar.gz", "package-v4.tar.gz"])

    def test_a_newer_failure_supersedes_the_older_one(self):
        for version, mtime in [("v1", 1000), ("v2", 2000), ("v3", 3000), ("v4", 4000)]:
            self.release(version, mtime)
        node.save_state(self.root, dict(state("v2", "v1", [("v1", S), ("v2", S), ("v3", F), ("v4", F)]), service="demo"))
        with fake_capture():
            for v in ("v3", "v4"):
                node.keep_failed(self.root, "demo", v, "boom", True, 50)
        kept, removed = node.remove_old_releases(self.root, "demo", 2)
        self.assertEqual(kept, ["v2", "v1", "v4"])
        self.assertEqual(removed, ["v3"])
        self.assertEqual(self.ls(".nodeexec", "failed"), ["v4"])

    def test_cleanup_refuses_to_keep_fewer_than_two(self):
        self.release("v1", 1000)
        for keep in (1, 0, -1):
            with self.subTest(keep=keep), self.assertRaisesRegex(ValueError, "at least 2"):
                node.remove_old_releases(self.root, "demo", keep)
        self.assertEqual(self.ls("releases"), ["v1"])

    def test_cleanup_of_a_node_never_deployed_removes_nothing(self):
        self.assertEqual(node.remove_old_releases(self.root, "demo", 2), ([], []))


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
            return [m.name for m in node.safe_members(tar, dest)]

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

    def test_a_package_past_the_bounds_is_refused_before_anything_is_written(self):
        big = io.BytesIO()
        with tarfile.open(fileobj=big, mode="w:gz") as t:
            ti = tarfile.TarInfo("bin/zeros")
            ti.size = 1 << 20  # a megabyte of zeros: a few hundred bytes compressed
            t.addfile(ti, io.BytesIO(bytes(ti.size)))
        many = tarball(*[("f%d" % i, "file", "") for i in range(20)])
        for name, data, bounds, words in [
                ("unpacks to more than the bytes allowed", big.getvalue(), {"max_bytes": 1000}, "more than 1000 bytes"),
                ("has more members than allowed", many, {"max_files": 10}, "more than 10 members")]:
            with self.subTest(name), tempfile.TemporaryDirectory() as dest, \
                    tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                with self.assertRaisesRegex(ValueError, words):
                    list(node.safe_members(tar, dest, **bounds))
        with tempfile.TemporaryDirectory() as dest, tarfile.open(fileobj=io.BytesIO(big.getvalue()), mode="r:*") as tar:
            self.assertEqual([m.name for m in node.safe_members(tar, dest)], ["bin/zeros"])  # the defaults allow it

    def test_a_symlink_loop_is_refused_not_followed_forever(self):
        start = time.monotonic()
        for members in ([("a", "sym", "b"), ("b", "sym", "a"), ("a/x", "file", "")],
                        [("self", "sym", "self/x"), ("self/y", "file", "")],
                        [("l", "sym", "l"), ("m", "link", "l/f")]):
            with self.subTest(members), self.assertRaises(ValueError):
                self.check(tarball(*members))
        self.assertLess(time.monotonic() - start, 5)


class UnpackTest(Scratch):
    SHA = "ab" * 32

    def write_package(self, version, data):
        src = self.path(".nodeexec", "package-%s.tar.gz" % version)
        with open(src, "wb") as f:
            f.write(data)
        return src

    def unpack(self, version, data, sha=SHA):
        return node.unpack(self.root, "demo", version, self.write_package(version, data), sha)

    def read(self, *parts):
        with open(self.path(*parts), "rb") as f:
            return f.read()

    def test_a_release_is_unpacked_under_its_version_and_its_unit_found(self):
        got = self.unpack("v1", tarball(("bin/demo", "file", ""), ("deploy/demo.service", "file", "")))
        self.assertEqual(got, self.path("releases", "v1", "deploy", "demo.service"))
        self.assertEqual(self.read("releases", "v1", "bin", "demo"), b"content of bin/demo")
        # The package's SHA256 beside it: a later deploy of the same package skips the download.
        self.assertEqual(self.read("releases", "v1", node.SHA_FILE), (self.SHA + "\n").encode())
        self.assertEqual(node.release_sha256(self.root, "v1"), self.SHA)
        self.assertEqual(self.ls("releases"), ["v1"])  # nothing left aside

    def test_a_package_without_a_unit_says_so(self):
        self.assertEqual(self.unpack("v1", tarball(("bin/demo", "file", ""), ("deploy/other.service", "file", ""))), "")
        self.assertEqual(node.release_sha256(self.root, "v2"), "")

    def test_a_bomb_leaves_no_release_behind(self):
        with self.assertRaisesRegex(ValueError, "nodeexec_max_unpack_files"):
            node.unpack(self.root, "demo", "v9", self.write_package("v9", tarball(("a", "file", ""), ("b", "file", ""))),
                        self.SHA, max_files=1)
        self.assertFalse(os.path.exists(self.path("releases", "v9")))
        self.assertEqual([n for n in os.listdir(self.path("releases")) if "v9" in n], [])

    def test_unpacking_a_version_again_replaces_it_whole(self):
        self.unpack("v1", tarball(("bin/demo", "file", ""), ("bin/old-only", "file", "")))
        self.unpack("v1", tarball(("bin/demo", "file", "")), sha="cd" * 32)
        self.assertEqual(self.ls("releases", "v1", "bin"), ["demo"])
        self.assertEqual(node.release_sha256(self.root, "v1"), "cd" * 32)
        self.assertEqual(self.ls("releases"), ["v1"])

    def test_a_hostile_package_changes_nothing(self):
        self.unpack("v1", tarball(("bin/demo", "file", "")))
        for name, members in [("links", [("a", "sym", "."), ("a/b", "sym", ".."), ("a/b/escaped", "file", "")]),
                              ("absolute", [("bin/demo", "file", ""), ("/escaped", "file", "")])]:
            with self.subTest(name):
                with self.assertRaisesRegex(ValueError, "outside the release"):
                    self.unpack("v2", tarball(*members))
                # No release, no half-unpacked leftover, nothing beside the releases.
                self.assertEqual(self.ls("releases"), ["v1"])
                for d, _, files in os.walk(self.tmp.name):
                    self.assertNotIn("escaped", files, d)
        with self.assertRaisesRegex(ValueError, "outside the release"):
            self.unpack("v1", tarball(("../escaped", "file", "")))
        self.assertEqual(self.read("releases", "v1", "bin", "demo"), b"content of bin/demo")  # v1 untouched

    def test_a_package_that_is_no_tarball_is_refused(self):
        with self.assertRaisesRegex(ValueError, "cannot unpack"):
            self.unpack("v1", b"<html>not found</html>")
        self.assertEqual(self.ls("releases"), [])

    # tarfile writes a member where the links made before it lead: checked by name alone, each of these
    # packages wrote a file beside the release (and, chained, climbed further). safe_members refuses
    # members under a link and links defined twice.
    def test_links_that_land_elsewhere_than_their_name_cannot_lead_out(self):
        cases = [
            ("a link defined twice", [("a", "sym", "."), ("a/b", "sym", ".."), ("sub", "dir", ""), ("a", "sym", "sub"),
                                      ("b/escaped", "file", "")]),
            ("a link reached through another link", [("a", "sym", "."), ("a/b", "sym", "."), ("z", "sym", "b/.."),
                                                     ("z/escaped", "file", "")]),
            ("chained, up out of releases/", [("a", "sym", "."), ("a/b", "sym", "."), ("z", "sym", "b/.."), ("z/q", "sym", "."),
                                              ("w", "sym", "z/q/.."), ("w/escaped", "file", "")]),
        ]
        escaped = {}
        for name, members in cases:
            try:
                self.unpack("v9", tarball(*members))
            except ValueError:
                pass
            for d, _, files in os.walk(self.tmp.name):
                if "escaped" in files and not d.startswith(self.path("releases", "v9")):
                    escaped.setdefault(name, []).append(os.path.relpath(os.path.join(d, "escaped"), self.root))
                    os.unlink(os.path.join(d, "escaped"))
        self.assertEqual(escaped, {}, "files written outside the release")


class SwitchTest(Scratch):
    def test_current_is_switched_atomically_and_reads_back(self):
        for v in ("v1", "v2"):
            os.makedirs(self.path("releases", v))
        self.assertEqual(node.link_version(self.root), "")
        self.assertTrue(node.switch(self.root, "v1"))
        self.assertEqual(os.readlink(self.path("current")), "releases/v1")  # relative: the tree may move
        self.assertFalse(node.switch(self.root, "v1"))
        self.assertTrue(node.switch(self.root, "v2"))
        self.assertEqual(node.link_version(self.root), "v2")
        self.assertNotIn("current.switching", os.listdir(self.root))

    def test_a_release_that_is_not_there_is_not_switched_to(self):
        os.makedirs(self.path("releases", "v1"))
        node.switch(self.root, "v1")
        with self.assertRaisesRegex(ValueError, "release v2 is not on this node; present: v1"):
            node.switch(self.root, "v2")
        self.assertEqual(node.link_version(self.root), "v1")

    def test_the_running_version_is_where_the_process_runs(self):
        os.makedirs(self.path("releases", "v1"))
        p = subprocess.Popen(["sleep", "60"], cwd=self.path("releases", "v1"))
        self.addCleanup(lambda: (p.kill(), p.wait()))
        self.assertEqual(node.running_version(self.root, p.pid), "v1")
        self.assertEqual(node.running_version(self.root, os.getpid()), "")
        self.assertEqual(node.running_version(self.root, 0), "")
        self.assertEqual(node.version_of(self.root, self.path("releases", "v1", "bin", "x")), "v1")
        self.assertEqual(node.version_of(self.root, "/usr/bin/x"), "")


class EnvFileTest(Scratch):
    def test_arguments_and_environment_are_written_in_systemds_syntax(self):
        text = node.env_file_text("-addr :8080 -v", {"B": "2", "A": "x y"})
        self.assertEqual(text.splitlines()[1:], ['NODEEXEC_EXEC_ARGS="-addr :8080 -v"', 'A="x y"', 'B="2"'])

    def test_the_characters_special_inside_double_quotes_are_escaped(self):
        line = node.env_file_text('a "b" \\c $D `e`', {}).splitlines()[1]
        self.assertEqual(line, 'NODEEXEC_EXEC_ARGS="a \\"b\\" \\\\c \\$D \\`e\\`"')

    def test_the_file_is_created_readable_by_root_only(self):
        path = self.path("env")
        node.write_text(path, "A=1\n", mode=0o600)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)


class KeepFailedTest(Scratch):
    REASON = "Check the HTTP health endpoint: Status code was 503"

    def setUp(self):
        super().setUp()
        os.makedirs(self.path("releases", "v3"))

    def keep_failed(self, reason=REASON, journal=True, journal_lines=50):
        return node.keep_failed(self.root, "demo", "v3", reason, journal, journal_lines)

    def evidence_file(self, name):
        with open(self.path(".nodeexec", "failed", "v3", name)) as f:
            return f.read()

    def test_the_state_file_names_the_failed_release_and_the_evidence_is_kept_beside_it(self):
        with fake_capture() as cap:
            ev = self.keep_failed()
        d = self.path(".nodeexec", "failed", "v3")
        failed = self.read_state_file()["failed"]
        self.assertEqual((failed["version"], failed["reason"], failed["dir"]), ("v3", self.REASON, d))
        self.assertRegex(failed["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual({k: v for k, v in ev.items() if k not in ("journal", "unit_status")}, failed)
        self.assertEqual(cap.calls[0], ["journalctl", "-u", "demo.service", "-n", "50", "--no-pager", "-o", "short-iso"])
        self.assertEqual(cap.calls[1][:3], ["systemctl", "status", "demo.service"])
        journal = ev["journal"]
        self.assertEqual((len(journal), journal[0][:20], journal[-1][:20]), (50, "journalctl line 030 ", "journalctl line 079 "))
        self.assertEqual(self.evidence_file("journal.txt"), "\n".join(journal) + "\n")
        self.assertEqual(self.evidence_file("unit-status.txt").splitlines(), ev["unit_status"])
        self.assertEqual(len(ev["unit_status"]), node.MAX_STATUS_LINES)
        self.assertEqual(json.loads(self.evidence_file("failure.json")), failed)
        # The rest of the record is the deploy's to write.
        st = node.load_state(self.root, "demo")
        self.assertEqual((st["current"], st["previous"], st["state"], st["history"]), ("", "", "", []))

    def test_a_release_that_never_started_has_no_journal(self):
        with fake_capture() as cap:
            ev = self.keep_failed(journal=False)
        self.assertEqual(cap.calls, [])
        self.assertEqual((ev["journal"], ev["unit_status"]), ([], []))
        self.assertEqual(self.ls(".nodeexec", "failed", "v3"), ["failure.json"])
        self.assertEqual(node.load_state(self.root, "demo")["failed"]["version"], "v3")

    def test_the_excerpt_is_bounded(self):
        # More lines than MAX_JOURNAL_LINES, longer than MAX_LINE, more bytes than MAX_JOURNAL_BYTES.
        with fake_capture(lines=node.MAX_JOURNAL_LINES + 200, width=node.MAX_LINE + 500) as cap:
            ev = self.keep_failed(journal_lines=100000, reason="r" * 10000)
        self.assertEqual(cap.calls[0][4], str(node.MAX_JOURNAL_LINES))
        journal = ev["journal"]
        self.assertLessEqual(sum(len(l.encode()) + 1 for l in journal), node.MAX_JOURNAL_BYTES)
        self.assertTrue(all(len(l) <= node.MAX_LINE + 1 for l in journal))
        self.assertTrue(journal[-1].startswith("journalctl line %03d " % (node.MAX_JOURNAL_LINES + 199)), journal[-1][:30])  # the newest
        self.assertLess(len(journal), node.MAX_JOURNAL_LINES)  # cut by bytes, after lines
        self.assertEqual(len(ev["reason"]), node.MAX_REASON)
        self.assertEqual(len(self.read_state_file()["failed"]["reason"]), node.MAX_REASON)
        with fake_capture() as cap:
            self.keep_failed(journal_lines=0)
        self.assertEqual(cap.calls[0][4], "1")

    def test_a_second_failure_of_the_same_version_replaces_its_evidence(self):
        with fake_capture(lines=3):
            self.keep_failed()
        with fake_capture(lines=1):
            ev = self.keep_failed(reason="again")
        self.assertEqual(len(self.evidence_file("journal.txt").splitlines()), 1)
        self.assertEqual(node.load_state(self.root, "demo")["failed"]["reason"], "again")
        self.assertEqual(ev["reason"], "again")

    def test_a_command_that_cannot_run_is_evidence_not_an_error(self):
        with mock.patch.object(node.subprocess, "run", side_effect=FileNotFoundError(2, "No such file", "journalctl")):
            ev = self.keep_failed()
        self.assertIn("journalctl -u demo.service", ev["journal"][0])
        self.assertIn("No such file", ev["journal"][0])


class RecordTest(Scratch):
    def test_a_node_never_deployed_reads_as_empty(self):
        st = node.load_state(self.root, "demo")
        self.assertEqual((st["service"], st["current"], st["previous"], st["state"], st["last_error"], st["history"],
                          st["failed"]), ("demo", "", "", "", "", [], {}))

    def test_a_corrupt_record_reads_as_empty_instead_of_failing(self):
        for text in ('{"current": "v1", ', "", "[", "[]", "null", '"v1"', '{"current": "v1", "failed": "v2"}'):
            with self.subTest(text):
                with open(node.state_path(self.root), "w") as f:
                    f.write(text)
                st = node.load_state(self.root, "demo")
                self.assertEqual(st["failed"], {})
                self.assertEqual(st["service"], "demo")
        self.assertEqual(node.load_state(self.root, "demo")["current"], "v1")  # the last one was readable

    def test_record_sets_the_versions_and_appends_to_the_history(self):
        node.record(self.root, "demo", "v1", "", "success", history_version="v1")
        got = node.record(self.root, "demo", "v1", "", "rolled_back", "Check the HTTP health endpoint: 503",
                          history_version="v2", history_result="failed")
        self.assertEqual((got["current"], got["previous"], got["state"], got["last_error"]),
                         ("v1", "", "rolled_back", "Check the HTTP health endpoint: 503"))
        st = self.read_state_file()
        self.assertEqual((st["service"], st["current"], st["state"]), ("demo", "v1", "rolled_back"))
        self.assertEqual([(h["version"], h["result"]) for h in st["history"]], [("v1", "success"), ("v2", "failed")])
        self.assertRegex(st["updated_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.ls(".nodeexec"), ["state.json"])  # no temp file left

    def test_a_record_without_a_history_entry_keeps_the_history(self):
        node.record(self.root, "demo", "v1", "", "success", history_version="v1")
        node.record(self.root, "demo", "v1", "", "failed", "x")
        self.assertEqual(len(self.read_state_file()["history"]), 1)

    def test_the_history_keeps_the_newest_200_entries(self):
        node.save_state(self.root, dict(state("v198", "v197", [("v%d" % i, S) for i in range(199)]), service="demo"))
        for i in range(199, 205):
            node.record(self.root, "demo", "v%d" % i, "", "success", history_version="v%d" % i)
            h = self.read_state_file()["history"]
            self.assertEqual((len(h), h[-1]["version"]), (min(i + 1, 200), "v%d" % i))
        self.assertEqual((len(h), h[0]["version"], h[-1]["version"]), (200, "v5", "v204"))

    def test_the_reason_is_bounded(self):
        node.record(self.root, "demo", "v1", "", "failed", "x" * 5000)
        self.assertEqual(len(self.read_state_file()["last_error"]), node.MAX_REASON)

    def test_only_a_successful_deploy_clears_the_failed_release(self):
        os.makedirs(self.path("releases", "v2"))
        node.keep_failed(self.root, "demo", "v2", "boom", False, 50)
        node.record(self.root, "demo", "v1", "", "rolled_back", "boom", history_version="v2", history_result="failed")
        self.assertEqual(self.read_state_file()["failed"]["version"], "v2")
        node.record(self.root, "demo", "v3", "v1", "success", history_version="v3", clear_failed=True)
        self.assertNotIn("failed", self.read_state_file())


# --- the module: its steps, the download, its phases ---------------------------------------------------
RFC3339_MS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


class StepsTest(unittest.TestCase):
    def test_a_step_that_passes_records_its_result(self):
        steps = nr.Steps()
        before = time.time()
        with steps.step("Unpack the release") as st:
            st.changed, st.msg = True, "releases/v1"
        with steps.step("Read the node's release record"):
            pass
        steps.skipped("Download the package and check its SHA256", "already there")
        a, b, c = steps.items
        self.assertEqual((a["name"], a["status"], a["msg"]), ("Unpack the release", "changed", "releases/v1"))
        self.assertEqual((b["status"], b["msg"]), ("ok", ""))
        self.assertEqual((c["status"], c["msg"], c["duration"]), ("skipped", "already there", 0))
        for item in steps.items:
            self.assertRegex(item["start"], RFC3339_MS)
            self.assertGreaterEqual(item["duration"], 0)
        # The start is UTC: it reads back as this moment.
        start = datetime.datetime.strptime(a["start"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
        self.assertLess(abs(start.timestamp() - before), 2)

    def test_a_failed_step_records_status_failed_and_the_reason(self):
        steps = nr.Steps()
        with self.assertRaises(nr.StepFailed) as cm:
            with steps.step("Check the node lock"):
                raise steps.fail("Check the node lock", "no longer held")
        self.assertEqual((cm.exception.step, cm.exception.reason, str(cm.exception)),
                         ("Check the node lock", "no longer held", "Check the node lock: no longer held"))
        self.assertEqual([(i["name"], i["status"], i["msg"]) for i in steps.items], [("Check the node lock", "failed", "no longer held")])
        self.assertRegex(steps.items[0]["start"], RFC3339_MS)

    def test_a_failure_inside_a_step_is_named_by_the_step_that_failed(self):
        steps = nr.Steps()
        with self.assertRaises(nr.StepFailed) as cm:
            with steps.step("Verify"):
                raise steps.fail(unit.STEP_HTTP, "503")
        self.assertEqual(cm.exception.step, unit.STEP_HTTP)
        self.assertEqual(steps.items[0]["name"], unit.STEP_HTTP)

    def test_an_os_error_inside_a_step_becomes_a_failed_step(self):
        for exc in (FileNotFoundError(2, "No such file or directory", "/opt/demo/x"), ValueError("bad"),
                    RuntimeError("systemctl restart demo.service: boom")):
            with self.subTest(exc):
                steps = nr.Steps()
                with self.assertRaises(nr.StepFailed) as cm:
                    with steps.step("Unpack the release"):
                        raise exc
                self.assertEqual((cm.exception.step, cm.exception.reason), ("Unpack the release", str(exc)))
                self.assertTrue(str(cm.exception).startswith("Unpack the release: "))
                self.assertEqual((steps.items[0]["status"], steps.items[0]["msg"]), ("failed", str(exc)))

    def test_output_and_messages_are_bounded(self):
        steps = nr.Steps()
        steps._add("x", "ok", time.time(), 0.0, msg="m" * 5000, stdout="o" * 10000, stderr="e" * 10000)
        item = steps.items[0]
        self.assertEqual((len(item["msg"]), len(item["stdout"]), len(item["stderr"])), (2000, nr.MAX_STEP_OUTPUT, nr.MAX_STEP_OUTPUT))


class PackageServer:
    """A package server on 127.0.0.1 in a thread: files maps paths to bodies; /stall sends half a body and
    then nothing; hits counts the requests."""

    def __init__(self, files):
        self.files, self.hits, self.release = dict(files), [], threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits.append(self.path)
                if self.path == "/stall":
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    self.wfile.write(b"x" * 1000)
                    self.wfile.flush()
                    outer.release.wait(10)
                    return
                if self.path.startswith("/redirect?"):
                    self.send_response(302)
                    self.send_header("Location", self.path.split("?", 1)[1])
                    self.end_headers()
                    return
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.server.server_address[1], path)

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def no_proxy():
    """The node's proxy settings must not send 127.0.0.1 elsewhere in these tests."""
    return mock.patch.dict(os.environ, {"no_proxy": "*", "NO_PROXY": "*"})


class DownloadTest(Scratch):
    BODY = tarball(("bin/demo", "file", ""))

    def setUp(self):
        super().setUp()
        self.server = PackageServer({"/demo-v1.tar.gz": self.BODY})
        self.addCleanup(self.server.close)
        p = no_proxy()
        p.start()
        self.addCleanup(p.stop)
        self.dest = self.path(".nodeexec", "package-v1.tar.gz")

    def left(self):
        return [f for f in self.ls(".nodeexec") if f.startswith("package-")]

    def test_the_right_sha256_puts_the_file_in_place(self):
        nr.download(self.server.url("/demo-v1.tar.gz"), self.dest, hashlib.sha256(self.BODY).hexdigest(), 5)
        with open(self.dest, "rb") as f:
            self.assertEqual(f.read(), self.BODY)
        self.assertEqual(self.left(), ["package-v1.tar.gz"])
        self.assertEqual(os.stat(self.dest).st_mode & 0o777, 0o600)

    def test_a_wrong_sha256_leaves_nothing(self):
        want = "0" * 64
        with self.assertRaises(ValueError) as cm:
            nr.download(self.server.url("/demo-v1.tar.gz"), self.dest, want, 5)
        msg = str(cm.exception)
        self.assertIn("did not match %s" % want, msg)
        self.assertIn("it was %s" % hashlib.sha256(self.BODY).hexdigest(), msg)
        self.assertEqual(self.left(), [])  # not even the .part

    def test_a_missing_package_fails_and_leaves_nothing(self):
        with self.assertRaisesRegex(ValueError, "^Request failed: .*Not Found"):
            nr.download(self.server.url("/nope.tar.gz"), self.dest, "0" * 64, 5)
        self.assertEqual(self.left(), [])

    def test_a_server_that_stalls_mid_body_times_out(self):
        start = time.monotonic()
        with self.assertRaisesRegex(ValueError, "^Request failed: timed out$"):
            nr.download(self.server.url("/stall"), self.dest, "0" * 64, 1)
        self.assertLess(time.monotonic() - start, 5)
        self.assertEqual(self.left(), [])

    def test_redirects_are_followed_to_http_only(self):
        good = hashlib.sha256(self.BODY).hexdigest()
        nr.download(self.server.url("/redirect?" + self.server.url("/demo-v1.tar.gz")), self.dest, good, 5)
        self.assertEqual(self.left(), ["package-v1.tar.gz"])
        os.unlink(self.dest)
        for elsewhere in ("ftp://127.0.0.1/demo-v1.tar.gz", "file:///etc/passwd"):
            with self.subTest(elsewhere):
                with self.assertRaisesRegex(ValueError, "^Request failed: .*(only http and https are followed|Redirection to url .* is not allowed)"):
                    nr.download(self.server.url("/redirect?" + elsewhere), self.dest, good, 5)
                self.assertEqual(self.left(), [])

    def test_a_server_that_is_not_there_fails(self):
        port = self.server.server.server_address[1]
        self.server.close()
        with self.assertRaisesRegex(ValueError, "^Request failed: "):
            nr.download("http://127.0.0.1:%d/demo-v1.tar.gz" % port, self.dest, "0" * 64, 1)
        self.assertEqual(self.left(), [])


class CheckRequestTest(unittest.TestCase):
    def params(self, **over):
        p = dict(version="v1.2.3+build.4", delivery="pull", package_url="https://example.org/demo.tar.gz",
                 package_file="", package_sha256="a" * 64, journal_lines=50)
        p.update(over)
        return p

    def test_a_good_request_passes(self):
        nr.check_deploy(self.params())
        nr.check_deploy(self.params(delivery="push", package_url="", package_file="/srv/pkgs/demo.tar.gz"))

    def test_bad_requests_say_what_to_set(self):
        cases = [
            (dict(version="../etc"), "nodeexec_version"),
            (dict(version=""), "nodeexec_version"),
            (dict(version="v1/x"), "nodeexec_version"),
            (dict(delivery="scp"), "nodeexec_delivery"),
            (dict(package_url="ftp://x/y"), "nodeexec_package_url"),
            (dict(delivery="push", package_file="relative.tar.gz"), "nodeexec_package_file"),
            (dict(delivery="push", package_file="/srv/dir/"), "nodeexec_package_file"),
            (dict(package_sha256="abc"), "nodeexec_package_sha256"),
            (dict(journal_lines=0), "nodeexec_journal_lines"),
            (dict(journal_lines=1001), "nodeexec_journal_lines"),
        ]
        for over, what in cases:
            with self.subTest(over), self.assertRaisesRegex(ValueError, what):
                nr.check_deploy(self.params(**over))


# --- whole phases, as Ansible runs main() ---------------------------------------------------------------
class Exit(Exception):
    """What the module answered: answering ends the module, so it ends the call here too."""

    def __init__(self, failed, result):
        super().__init__(result.get("msg", ""))
        self.failed, self.result = failed, result




class FakeSystemd:
    """Stands in for systemctl. `show` answers from behaviour[the release last restarted]: a list of
    property dicts, one per look since that restart (the last one repeats)."""

    def __init__(self, root, behaviour):
        self.root, self.behaviour = root, behaviour
        self.running, self.looks, self.calls = "", 0, []

    def __call__(self, *args, timeout=60):
        self.calls.append(args)
        if args[0] == "show":
            seq = self.behaviour.get(self.running) or [{"ActiveState": "inactive", "SubState": "dead", "MainPID": "0"}]
            p = seq[min(self.looks, len(seq) - 1)]
            self.looks += 1
            return 0, "".join("%s=%s\n" % kv for kv in p.items()), ""
        if args[0] == "is-enabled":
            return 0, "enabled\n", ""
        if args[0] == "restart":
            self.running, self.looks = node.link_version(self.root), 0
        if args[0] == "stop":
            self.running = ""
        return 0, "", ""

    def restarts(self):
        return [a[1] for a in self.calls if a[0] == "restart"]


def active(pid, restarts=0):
    return {"ActiveState": "active", "SubState": "running", "MainPID": str(pid), "NRestarts": str(restarts),
            "ActiveEnterTimestampMonotonic": "0", "MemoryCurrent": "4096", "TasksCurrent": "3"}


class PhaseTest(Scratch):
    """Runs the module's main() as Ansible would, with a fake systemd; a real node lock."""

    def setUp(self):
        super().setUp()
        self.lock_dir = self.path(".nodeexec")
        self.systemd = FakeSystemd(self.root, {})
        self.installed = []
        for target, name, fake in [(unit, "systemctl", self.systemd),
                             (unit, "install_unit", lambda service, src: self.installed.append(src) or True),
                             (unit, "journal_hint", lambda service, lines=3: "; its journal ends: panic: boom"),
                             (node, "capture", fake_capture(lines=5))]:
            p = mock.patch.object(target, name, fake)
            p.start()
            self.addCleanup(p.stop)
        self.addCleanup(lambda: lockfile.read_info(self.lock_dir) and lockfile.release(self.lock_dir, force=True))

    def run_module(self, phase, **params):
        p = dict(phase=phase, root=self.root, service="demo", lock_dir=self.lock_dir, lock_holder="test run",
                 playbook="a test")
        p.update(params)
        def answer(result, failed=False):
            if failed:
                self.assertIn("msg", result)
            raise Exit(failed, result)
        with mock.patch.object(nr, "answer", answer):
            try:
                nr.main(json.dumps(p))
            except Exit as e:
                self.assertNotIn("failed", e.result)  # Ansible would fail the task whatever its value
                for item in e.result.get("steps", []):
                    self.assertIn(item["status"], ("ok", "changed", "failed", "skipped"), item)
                return e
        raise AssertionError("the module returned without exit_json or fail_json")

    def steps(self, e):
        return [(s["name"], s["status"]) for s in e.result["steps"]]

    def lock_is_free(self):
        return lockfile.read_info(self.lock_dir) == {}

    def release(self, version, *members, unit_text="[Service]\nExecStart=/bin/true\n"):
        """A release unpacked on the node, as prepare leaves it."""
        src = self.path(".nodeexec", "package-%s.tar.gz" % version)
        data = tarball(("bin/demo", "file", ""), *members)
        with open(src, "wb") as f:
            f.write(data)
        node.unpack(self.root, "demo", version, src, hashlib.sha256(data).hexdigest())
        node.write_text(self.path("releases", version, node.UNIT_FILE), unit_text)

    def deployed(self, version, previous=""):
        self.release(version)
        node.switch(self.root, version)
        node.record(self.root, "demo", version, previous, "success", history_version=version, clear_failed=True)
        self.systemd.running = version


class StatusPhaseTest(PhaseTest):
    def test_status_reports_the_record_and_what_runs_without_a_lock(self):
        self.deployed("v1")
        self.release("v2")
        with fake_capture():
            node.keep_failed(self.root, "demo", "v2", "Check the HTTP health endpoint: 503", True, 50)
        p = subprocess.Popen(["sleep", "60"], cwd=self.path("releases", "v1"))
        self.addCleanup(lambda: (p.kill(), p.wait()))
        self.systemd.behaviour = {"v1": [dict(active(p.pid), ActiveEnterTimestampMonotonic=str(int(time.monotonic() * 1e6) - 90 * 10**6))]}
        e = self.run_module("status")
        self.assertFalse(e.failed, e.result)
        self.assertFalse(e.result["changed"])
        r = e.result["report"]
        self.assertEqual((r["service"], r["current"], r["previous"], r["state"], r["link"], r["running_version"]),
                         ("demo", "v1", "", "success", "v1", "v1"))
        self.assertEqual((r["active"], r["active_state"], r["main_pid"]), (True, "active", p.pid))
        self.assertTrue(89 <= r["uptime_seconds"] <= 95, r["uptime_seconds"])
        self.assertRegex(r["active_since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(r["resources"], {"memory_bytes": 4096, "tasks": 3})
        self.assertEqual(r["releases"], ["v1", "v2"])
        # A failed release is reported in the report, never under the result's own "failed" key.
        self.assertEqual(r["failed"]["version"], "v2")
        self.assertEqual(e.result["steps"], [])
        self.assertFalse(os.path.exists(self.path(".nodeexec", lockfile.INFO)))

    def test_a_node_never_deployed_reports_empty(self):
        e = self.run_module("status", root=self.path("never"))
        r = e.result["report"]
        self.assertEqual((r["current"], r["link"], r["running_version"], r["active"], r["releases"], r["failed"], r["resources"]),
                         ("", "", "", False, [], {}, {}))

    def test_a_bad_service_name_is_refused_before_anything(self):
        e = self.run_module("status", service="../etc")
        self.assertTrue(e.failed)
        self.assertIn("nodeexec_service", e.result["msg"])


class PreparePhaseTest(PhaseTest):
    UNIT = "[Service]\nExecStart=/opt/demo/current/bin/demo\n"

    def setUp(self):
        super().setUp()
        self.pkg = tarball(("bin/demo", "file", ""))
        self.shipping = tarball(("bin/demo", "file", ""), ("deploy/demo.service", "file", ""))
        self.server = PackageServer({"/v1.tar.gz": self.pkg, "/v2.tar.gz": self.shipping})
        self.addCleanup(self.server.close)
        p = no_proxy()
        p.start()
        self.addCleanup(p.stop)

    def prepare(self, version="v1", data=None, sha=None, **params):
        data = self.pkg if data is None else data
        p = dict(version=version, package_url=self.server.url("/%s.tar.gz" % version), unit=self.UNIT,
                 package_sha256=sha or hashlib.sha256(data).hexdigest())
        p.update(params)
        return self.run_module("prepare", **p)

    def read(self, *parts):
        with open(self.path(*parts)) as f:
            return f.read()

    def test_prepare_downloads_unpacks_renders_and_keeps_the_lock_for_activate(self):
        e = self.prepare()
        self.assertFalse(e.failed, e.result)
        self.assertEqual((e.result["changed"], e.result["done"]), (True, False))
        self.assertEqual(self.steps(e), [("Check the request", "ok"), ("Take the node lock", "ok"),
                                         ("Read the node's release record", "ok"),
                                         ("Download the package and check its SHA256", "changed"),
                                         ("Unpack the release", "changed"), ("Render the unit of the release", "ok")])
        self.assertEqual(self.read("releases", "v1", node.UNIT_FILE), self.UNIT)
        self.assertEqual(node.release_sha256(self.root, "v1"), hashlib.sha256(self.pkg).hexdigest())
        self.assertEqual(node.link_version(self.root), "")  # nothing switched yet
        token = e.result["token"]
        self.assertTrue(lockfile.holds(self.lock_dir, token))
        self.assertEqual(lockfile.read_info(self.lock_dir)["holder"], "test run")
        lockfile.release(self.lock_dir, token=token)

        # The same package again: no download, no unpack.
        hits = len(self.server.hits)
        e = self.prepare()
        self.assertFalse(e.failed, e.result)
        self.assertEqual(len(self.server.hits), hits)
        self.assertIn(("Download the package and check its SHA256", "skipped"), self.steps(e))
        self.assertNotIn("Unpack the release", [n for n, _ in self.steps(e)])
        self.assertIn("already holds the package with this SHA256", e.result["steps"][3]["msg"])
        lockfile.release(self.lock_dir, token=e.result["token"])

    def test_a_package_s_own_unit_is_used(self):
        e = self.prepare("v2", self.shipping)
        self.assertFalse(e.failed, e.result)
        self.assertEqual(self.read("releases", "v2", node.UNIT_FILE), "content of deploy/demo.service")
        self.assertIn("deploy/demo.service", e.result["steps"][-1]["msg"])

    def test_a_wrong_sha256_fails_before_anything_changes_and_unlocks(self):
        e = self.prepare(sha="0" * 64)
        self.assertTrue(e.failed)
        self.assertFalse(e.result["changed"])
        self.assertTrue(e.result["msg"].startswith("Download the package and check its SHA256: The checksum for"), e.result["msg"])
        self.assertIn("did not match", e.result["msg"])
        self.assertEqual(self.steps(e)[-2:], [("Download the package and check its SHA256", "failed"),
                                              ("Release the node lock", "ok")])
        self.assertFalse(os.path.exists(self.path("releases", "v1")))
        self.assertEqual([f for f in self.ls(".nodeexec") if f.startswith("package-")], [])
        self.assertTrue(self.lock_is_free())

    def test_a_bad_request_fails_before_the_lock(self):
        e = self.prepare(package_sha256="abc")
        self.assertTrue(e.failed)
        self.assertTrue(e.result["msg"].startswith("Check the request: deploy needs nodeexec_package_sha256"), e.result["msg"])
        self.assertEqual(self.steps(e), [("Check the request", "failed")])
        self.assertTrue(self.lock_is_free())

    def test_a_pushed_package_is_checked_then_used(self):
        incoming = self.path(".nodeexec", "incoming")
        os.makedirs(incoming)
        with open(os.path.join(incoming, "demo-v1.tar.gz"), "wb") as f:
            f.write(self.pkg)
        e = self.prepare(delivery="push", package_url="", package_file="/srv/pkgs/demo-v1.tar.gz")
        self.assertFalse(e.failed, e.result)
        self.assertIn(("Check the SHA256 of the copied package", "ok"), self.steps(e))
        self.assertEqual(self.server.hits, [])
        self.assertEqual(os.listdir(incoming), [])
        lockfile.release(self.lock_dir, token=e.result["token"])

        with open(os.path.join(incoming, "demo-v2.tar.gz"), "wb") as f:
            f.write(b"tampered")
        e = self.prepare("v2", self.shipping, delivery="push", package_url="", package_file="/srv/pkgs/demo-v2.tar.gz")
        self.assertTrue(e.failed)
        self.assertIn("the package on the node has SHA256 %s" % hashlib.sha256(b"tampered").hexdigest(), e.result["msg"])
        self.assertFalse(os.path.exists(self.path("releases", "v2")))
        self.assertTrue(self.lock_is_free())

    def test_the_version_the_node_runs_is_done_at_once(self):
        self.deployed("v1")
        self.systemd.behaviour = {"v1": [active(100)]}
        e = self.prepare()
        self.assertFalse(e.failed, e.result)
        self.assertEqual((e.result["changed"], e.result["done"]), (False, True))
        self.assertEqual(self.server.hits, [])
        self.assertTrue(self.lock_is_free())

    def test_a_locked_node_names_who_holds_it(self):
        token = lockfile.acquire(self.lock_dir, "nodeexec deployment d-7", "Deploy a release", 60, None)
        e = self.prepare()
        self.assertTrue(e.failed)
        self.assertTrue(e.result["msg"].startswith("Take the node lock: locked by nodeexec deployment d-7 (Deploy a release"),
                        e.result["msg"])
        self.assertEqual(e.result["report"]["locked_by"], "nodeexec deployment d-7")
        self.assertEqual(self.server.hits, [])
        self.assertTrue(lockfile.holds(self.lock_dir, token))  # still theirs


class ActivatePhaseTest(PhaseTest):
    def setUp(self):
        super().setUp()
        self.deployed("v1")
        self.release("v2")
        self.token = lockfile.acquire(self.lock_dir, "test run", "a test", 60, None)

    def activate(self, **params):
        p = dict(version="v2", token=self.token, health={"window": 2, "interval": 0.05})
        p.update(params)
        return self.run_module("activate", **p)

    def test_a_release_that_holds_is_recorded_and_the_lock_released(self):
        self.systemd.behaviour = {"v2": [active(200)]}
        e = self.activate()
        self.assertFalse(e.failed, e.result)
        self.assertTrue(e.result["changed"])
        self.assertEqual(self.steps(e), [("Check the node lock", "ok"), ("Switch current to the new release", "changed"),
                                         ("Restart on the new release", "changed"), (unit.STEP_ACTIVE, "ok"),
                                         ("Record the deploy on the node", "changed"), ("Release the node lock", "ok")])
        r = e.result["report"]
        self.assertEqual((r["current"], r["previous"], r["state"], r["link"]), ("v2", "v1", "success", "v2"))
        self.assertEqual(self.installed, [self.path("releases", "v2", node.UNIT_FILE)])
        self.assertEqual(self.systemd.restarts(), ["demo.service"])
        self.assertTrue(self.lock_is_free())

    def test_a_release_that_crashes_is_rolled_back_with_its_evidence(self):
        self.systemd.behaviour = {"v2": [active(200), active(201, restarts=1)], "v1": [active(100)]}
        e = self.activate()
        self.assertTrue(e.failed)
        msg = e.result["msg"]
        self.assertTrue(msg.startswith("v2 failed verification and was rolled back to v1: %s: the service's main process "
                                       "was restarted by systemd 1 time(s)" % unit.STEP_ACTIVE), msg)
        self.assertIn("panic: boom", msg)
        names = [n for n, _ in self.steps(e)]
        self.assertEqual(names[names.index("Keep the failed release and its evidence"):],
                         ["Keep the failed release and its evidence", "Switch current back to the previous release",
                          "Restart on the previous release", unit.STEP_ACTIVE, "Record the automatic rollback on the node",
                          "Release the node lock"])
        st = node.load_state(self.root, "demo")
        self.assertEqual((st["current"], st["state"], st["failed"]["version"]), ("v1", "rolled_back", "v2"))
        self.assertEqual((st["history"][-1]["version"], st["history"][-1]["result"]), ("v2", "failed"))
        self.assertEqual(node.link_version(self.root), "v1")
        self.assertEqual(e.result["report"]["evidence"]["version"], "v2")
        self.assertEqual(len(e.result["report"]["evidence"]["journal"]), 5)
        self.assertEqual(sorted(os.listdir(node.failed_dir(self.root, "v2"))), ["failure.json", "journal.txt", "unit-status.txt"])
        self.assertEqual(self.installed[-1], self.path("releases", "v1", node.UNIT_FILE))
        self.assertTrue(self.lock_is_free())

    def test_a_lock_no_longer_held_switches_nothing(self):
        lockfile.release(self.lock_dir, token=self.token)
        e = self.activate()
        self.assertTrue(e.failed)
        self.assertTrue(e.result["msg"].startswith("Check the node lock: the node lock taken by this run is no longer held"),
                        e.result["msg"])
        self.assertEqual(node.link_version(self.root), "v1")
        self.assertEqual(self.systemd.restarts(), [])


class CleanupPhaseTest(PhaseTest):
    def test_cleanup_runs_under_the_lock_and_reports_what_went(self):
        for v in ("v1", "v2", "v3"):
            self.deployed(v, previous={"v1": "", "v2": "v1", "v3": "v2"}[v])
        os.makedirs(self.path("releases", "stray"))
        e = self.run_module("cleanup", keep=2)
        self.assertFalse(e.failed, e.result)
        self.assertTrue(e.result["changed"])
        self.assertEqual(e.result["report"]["removed"], ["stray", "v1"])
        self.assertEqual(self.ls("releases"), ["v2", "v3"])
        self.assertEqual(self.steps(e), [("Take the node lock", "ok"), ("Remove old releases", "changed"),
                                         ("Release the node lock", "ok")])
        self.assertTrue(self.lock_is_free())
        e = self.run_module("cleanup", keep=1)
        self.assertTrue(e.failed)
        self.assertIn("at least 2", e.result["msg"])
        self.assertTrue(self.lock_is_free())


class RollbackPhaseTest(PhaseTest):
    def setUp(self):
        super().setUp()
        for v, prev in (("v1", ""), ("v2", "v1"), ("v3", "v2")):
            self.deployed(v, previous=prev)

    def rollback(self, to):
        return self.run_module("rollback", rollback_to=to, health={"window": 2, "interval": 0.05})

    def test_a_rollback_to_a_kept_release_switches_to_it(self):
        self.systemd.behaviour = {"v1": [active(100)]}
        e = self.rollback("v1")
        self.assertFalse(e.failed, e.result)
        self.assertEqual(node.link_version(self.root), "v1")
        st = node.load_state(self.root, "demo")
        self.assertEqual((st["current"], st["previous"], st["state"]), ("v1", "v3", "rolled_back"))
        self.assertTrue(self.lock_is_free())

    def test_a_release_cleanup_removed_is_named_and_nothing_switches(self):
        self.assertFalse(self.run_module("cleanup", keep=2).failed)
        for to, want in [("v1", "release v1 is no longer on the node (kept: v2, v3): deploy v1 again"),
                         ("v9", "release v9 was never on the node (kept: v2, v3): deploy v9")]:
            e = self.rollback(to)
            self.assertTrue(e.failed)
            self.assertEqual(e.result["msg"], "Check the release to roll back to is on the node: " + want)
            self.assertFalse(e.result["changed"])
            self.assertEqual(node.link_version(self.root), "v3")
            self.assertEqual(node.load_state(self.root, "demo")["current"], "v3")
            self.assertEqual(self.systemd.restarts(), [])
            self.assertTrue(self.lock_is_free())


class UnlockPhaseTest(PhaseTest):
    def test_unlock_needs_a_holder_or_force(self):
        token = lockfile.acquire(self.lock_dir, "nodeexec deployment d-1", "", 60, None)
        e = self.run_module("unlock")
        self.assertTrue(e.failed)
        self.assertIn("nodeexec_unlock_holder", e.result["msg"])
        self.assertTrue(lockfile.holds(self.lock_dir, token))
        e = self.run_module("unlock", unlock_holder="nodeexec deployment d-2")
        self.assertTrue(lockfile.holds(self.lock_dir, token))
        self.assertIn("not ours to release", e.result["steps"][0]["msg"])
        e = self.run_module("unlock", unlock_holder="nodeexec deployment d-1")
        self.assertFalse(e.failed, e.result)
        self.assertEqual(e.result["steps"][0]["status"], "changed")
        self.assertTrue(self.lock_is_free())


if __name__ == "__main__":
    unittest.main()
