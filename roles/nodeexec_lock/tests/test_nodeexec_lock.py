"""Unit tests of the nodeexec_lock module (library/nodeexec_lock.py): a real flock held by a real detached
holder process, in a scratch directory. `make test`, or python3 -m unittest discover -s roles/nodeexec_lock/tests
"""

import importlib.util
import json
import os
import sys
import tempfile
import time
import types
import unittest

LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "library", "nodeexec_lock.py")


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


lock = load_module(LIBRARY, "nodeexec_lock")


class Exit(Exception):
    """What the module answered: exit_json or fail_json end the module, so they end the call here too."""

    def __init__(self, failed, result):
        super().__init__(result.get("msg", ""))
        self.failed, self.result = failed, result


class FakeModule:
    def __init__(self, **params):
        self.params = dict(dir="", state="acquired", holder="someone", playbook="", ttl=60, token="",
                           unlock_holder="", force=False)
        self.params.update(params)

    def exit_json(self, **result):
        raise Exit(False, result)

    def fail_json(self, **result):
        raise Exit(True, result)


def alive(pid):
    """Whether pid runs (a zombie waiting for its reaper does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class LockTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, ".nodeexec")

    def tearDown(self):
        # Never leave a holder process behind, whatever the test did.
        info = lock.read_info(self.dir)
        if info:
            self.call(state="released", force=True)
        self.tmp.cleanup()

    def call(self, **params):
        module = FakeModule(dir=self.dir, **params)
        try:
            if module.params["state"] == "acquired":
                lock.acquire(module, self.dir)
            else:
                lock.release(module, self.dir)
        except Exit as e:
            return e
        raise AssertionError("the module returned without exit_json or fail_json")

    def acquire(self, holder, **params):
        e = self.call(holder=holder, playbook="Deploy a release", **params)
        self.assertFalse(e.failed, e.result)
        return e.result["token"]

    def holder_file(self):
        with open(os.path.join(self.dir, "lock.holder.json")) as f:
            return json.load(f)

    def test_acquire_starts_a_holder_that_says_who_holds_the_lock(self):
        token = self.acquire("nodeexec deployment d-1")
        info = self.holder_file()
        self.assertEqual((info["holder"], info["playbook"], info["token"]), ("nodeexec deployment d-1", "Deploy a release", token))
        self.assertTrue(info["since"].endswith("Z"))
        self.assertTrue(alive(info["pid"]))
        with open("/proc/%d/comm" % info["pid"]) as f:
            self.assertEqual(f.read().strip(), "nodeexec-lock")

    def test_a_second_taker_fails_at_once_naming_the_holder(self):
        self.acquire("nodeexec deployment d-1")
        start = time.monotonic()
        e = self.call(holder="ansible-playbook by alice on ops1")
        self.assertTrue(e.failed)
        self.assertLess(time.monotonic() - start, 5, "the second taker waited for the lock")
        self.assertEqual(e.result["holder"], "nodeexec deployment d-1")
        self.assertTrue(e.result["msg"].startswith("locked by nodeexec deployment d-1 (Deploy a release, since "), e.result["msg"])
        self.assertIn("playbooks/unlock.yml -e nodeexec_force_unlock=true", e.result["msg"])
        self.assertEqual(self.holder_file()["holder"], "nodeexec deployment d-1")  # the loser changed nothing

    def test_release_with_the_token_frees_the_lock_and_stops_the_holder(self):
        token = self.acquire("nodeexec deployment d-1")
        pid = self.holder_file()["pid"]
        e = self.call(state="released", token=token)
        self.assertFalse(e.failed)
        self.assertEqual((e.result["msg"], e.result["holder"]), ("released", "nodeexec deployment d-1"))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "lock.holder.json")))
        self.assertTrue(wait_until(lambda: not alive(pid)), "the holder process outlived its release")
        self.acquire("nodeexec deployment d-2")

    def test_only_the_owner_releases_without_force(self):
        self.acquire("nodeexec deployment d-1")
        for params in ({"token": "not-the-token"}, {"unlock_holder": "nodeexec deployment d-2"}, {}):
            with self.subTest(params):
                e = self.call(state="released", **params)
                self.assertFalse(e.failed)
                self.assertEqual(e.result["holder"], "nodeexec deployment d-1")
                self.assertIn("not ours to release", e.result["msg"])
                self.assertTrue(self.call(holder="someone else").failed, "the lock was released by someone else")

    def test_release_by_holder_name_or_by_force(self):
        for params in ({"unlock_holder": "nodeexec deployment d-1"}, {"force": True}):
            with self.subTest(params):
                self.acquire("nodeexec deployment d-1")
                e = self.call(state="released", **params)
                self.assertEqual(e.result["msg"], "released")
                self.acquire("nodeexec deployment d-3", ttl=60)
                self.call(state="released", force=True)

    def test_releasing_a_free_lock_is_a_no_op(self):
        e = self.call(state="released", force=True)
        self.assertFalse(e.failed)
        self.assertEqual(e.result["msg"], "not locked")

    def test_a_lock_frees_itself_after_its_ttl(self):
        self.acquire("nodeexec deployment d-1", ttl=1)
        pid = self.holder_file()["pid"]
        self.assertTrue(wait_until(lambda: not alive(pid)), "the holder kept the lock past its TTL")
        self.assertEqual(lock.read_info(self.dir), {})
        self.acquire("nodeexec deployment d-2")


if __name__ == "__main__":
    unittest.main()
