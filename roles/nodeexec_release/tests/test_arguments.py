"""The module's arguments as Ansible hands them over: written into the file (a "jsonargs" module, piped to
the node's python as it is), checked against SPEC, with the types Ansible's own modules accept."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # loader.py, also when run by path
from loader import LIBRARY, nr  # noqa: E402


def as_ansible_writes_it(args):
    """The module's text as Ansible writes it for a jsonargs module (executor/module_common.py, in its
    order: the version, the quoted complex-args marker, the SELinux list, the JSON marker, syslog)."""
    with open(LIBRARY, "rb") as f:
        text = f.read()
    data = json.dumps(args).encode()
    text = text.replace(b'"<<ANSIBLE_VERSION>>"', b"'2.14.18'")
    text = text.replace(b'"<<INCLUDE_ANSIBLE_MODULE_COMPLEX_ARGS>>"', repr(data).encode())
    text = text.replace(b"<<SELINUX_SPECIAL_FILESYSTEMS>>", b"fuse,nfs,vboxsf,ramfs,9p,vfat")
    text = text.replace(b"<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>", data)
    return text.replace(b"syslog.LOG_USER", b"syslog.LOG_USER")


class AsAnsibleRunsItTest(unittest.TestCase):
    def run_module(self, args):
        p = subprocess.run([sys.executable, "-"], input=as_ansible_writes_it(args), capture_output=True, timeout=60)
        return p.returncode, json.loads(p.stdout.decode().strip().splitlines()[-1]), p.stderr.decode()

    # Text that would break out of a string literal, or that Ansible's substitution looks for.
    HOSTILE = ["a'''b", 'a"""b', '\\"""', "ends in a backslash \\", "\\", '"', "'", "\n\r\x0c#\x00",
               "<<INCLUDE_ANSIBLE_MODULE_JSON_ARGS>>' + str(__import__('os').getpid()) + '",
               '"<<INCLUDE_ANSIBLE_MODULE_COMPLEX_ARGS>>"', "<<SELINUX_SPECIAL_FILESYSTEMS>>",
               '"<<ANSIBLE_VERSION>>"', "\u2028\u2029\U0001F600"]

    def test_any_text_in_an_argument_arrives_as_it_was_sent(self):
        for value in self.HOSTILE:
            with self.subTest(value=value):
                rc, out, err = self.run_module({"phase": "status", "root": "/nonexistent", "service": "demo",
                                                "lock_dir": "/nonexistent", "keep": value})
                self.assertEqual(rc, 1, err)
                self.assertEqual(out["msg"], "Check the request: keep must be a whole number, got %r" % value)

    def test_status_of_a_node_never_deployed(self):
        with tempfile.TemporaryDirectory() as d:
            rc, out, err = self.run_module({"phase": "status", "root": os.path.join(d, "demo"), "service": "demo",
                                            "lock_dir": os.path.join(d, "lock"), "lock_holder": " ".join(self.HOSTILE),
                                            "service_env": {"K": "x"}, "_ansible_check_mode": False,
                                            "_ansible_verbosity": 0})
            self.assertEqual(rc, 0, err)
            self.assertNotIn("failed", out)
            self.assertEqual((out["report"]["current"], out["report"]["releases"], out["steps"]), ("", [], []))

    def test_a_bad_argument_fails_the_task_with_what_is_wrong(self):
        rc, out, _ = self.run_module({"phase": "status", "root": "/nonexistent", "service": "demo",
                                      "lock_dir": "/nonexistent", "keep": "many"})
        self.assertEqual(rc, 1)
        self.assertTrue(out["failed"])
        self.assertEqual(out["msg"], "Check the request: keep must be a whole number, got 'many'")

    def test_check_mode_changes_nothing_and_says_so(self):
        with tempfile.TemporaryDirectory() as d:
            rc, out, _ = self.run_module({"phase": "cleanup", "root": d, "service": "demo", "lock_dir": d,
                                          "_ansible_check_mode": True})
            self.assertEqual(rc, 0)
            self.assertEqual((out["skipped"], out["changed"]), (True, False))
            self.assertEqual(os.listdir(d), [])


class ParseArgsTest(unittest.TestCase):
    BASE = {"phase": "status", "root": "/srv/demo", "service": "demo", "lock_dir": "/srv/demo/.nodeexec"}

    def parse(self, **extra):
        return nr.parse_args(dict(self.BASE, **extra))

    def test_defaults_fill_in_and_ansibles_own_keys_are_not_arguments(self):
        p = self.parse(_ansible_check_mode=False, _ansible_module_name="nodeexec_release")
        self.assertEqual(set(p), set(nr.SPEC))
        self.assertEqual((p["keep"], p["delivery"], p["health"], p["force_unlock"]), (5, "pull", {}, False))

    def test_values_as_operators_pass_them_on_the_command_line(self):
        p = self.parse(keep="3", lock_ttl=" 60 ", force_unlock="yes", health='{"http_port": 8080}',
                       service_env=None, version=12)
        self.assertEqual((p["keep"], p["lock_ttl"], p["force_unlock"], p["health"], p["service_env"], p["version"]),
                         (3, 60, True, {"http_port": 8080}, {}, "12"))
        self.assertFalse(self.parse(force_unlock="off")["force_unlock"])

    def test_paths_expand_home(self):
        self.assertEqual(self.parse(root="~/demo")["root"], os.path.expanduser("~/demo"))

    def test_what_is_refused(self):
        cases = [
            ({"colour": "red"}, "unsupported parameters: colour (supported: "),
            ({"phase": "launch"}, "phase must be one of prepare, activate, rollback, restart, cleanup, status, unlock, journal, got 'launch'"),
            ({"phase": None}, "missing required argument: phase"),
            ({"keep": "3.5"}, "keep must be a whole number, got '3.5'"),
            ({"keep": True}, "keep must be a whole number, got True"),
            ({"force_unlock": "maybe"}, "force_unlock must be true or false, got 'maybe'"),
            ({"health": "port=1"}, "health must be a mapping, got 'port=1'"),
            ({"health": "{not json"}, "Expecting property name"),
            ({"version": ["v1"]}, "version must be a string, got list"),
        ]
        for extra, want in cases:
            with self.subTest(extra=extra):
                with self.assertRaises(ValueError) as cm:
                    self.parse(**extra)
                self.assertIn(want, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
