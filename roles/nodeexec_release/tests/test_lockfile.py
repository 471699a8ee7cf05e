"""Unit tests of the node lock (the first part of library/nodeexec_release.py): a real flock held by a real detached
holder process, in a scratch directory; the holder's anchor is a real process the tests start and kill.
`make test`, or python3 -m unittest discover -s roles/nodeexec_release/tests -p 'test_*.py'
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # loader.py, also when run by path
from loader import lockfile  # noqa: E402

HOLDER = "nodeexec deployment d-1"


def alive(pid):
    """Whether pid runs (a zombie waiting for its reaper does not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def anchor_of(pid):
    """[pid, starttime], as connection_anchor names a process."""
    st = lockfile._stat(pid)
    assert st is not None, "no process %d" % pid
    return [pid, st[3]]


class LockScratch(unittest.TestCase):
    """A lock directory of the test's own, and no holder left behind."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, ".nodeexec")

    def tearDown(self):
        # Never leave a holder process behind, whatever the test did.
        if lockfile.read_info(self.dir):
            lockfile.release(self.dir, force=True)
        self.tmp.cleanup()

    def acquire(self, holder=HOLDER, ttl=60, anchor=None):
        return lockfile.acquire(self.dir, holder, "Deploy a release", ttl, anchor)

    def holder_file(self):
        with open(os.path.join(self.dir, lockfile.INFO)) as f:
            return json.load(f)

    def lock_is_free(self):
        """Whether the kernel would give the lock to a new taker now (taken and let go at once)."""
        fd = os.open(os.path.join(self.dir, lockfile.LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)


class LockTest(LockScratch):
    def test_acquire_starts_a_holder_that_says_who_holds_the_lock(self):
        token = self.acquire()
        info = self.holder_file()
        self.assertEqual((info["holder"], info["playbook"], info["token"]), (HOLDER, "Deploy a release", token))
        self.assertRegex(info["since"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertTrue(alive(info["pid"]))
        self.assertNotEqual(info["pid"], os.getpid())
        with open("/proc/%d/comm" % info["pid"]) as f:
            self.assertEqual(f.read().strip(), "nodeexec-lock")
        self.assertTrue(lockfile.holds(self.dir, token))
        self.assertFalse(lockfile.holds(self.dir, "not-the-token"))
        self.assertFalse(lockfile.holds(self.dir, ""))
        self.assertFalse(self.lock_is_free())

    def test_a_second_taker_fails_at_once_naming_the_holder(self):
        self.acquire()
        start = time.monotonic()
        with self.assertRaises(lockfile.Busy) as cm:
            self.acquire("ansible-playbook by alice on ops1")
        self.assertLess(time.monotonic() - start, 3, "the second taker waited for the lock")
        e = cm.exception
        self.assertEqual(e.holder, HOLDER)
        self.assertEqual(e.info["holder"], HOLDER)
        self.assertTrue(str(e).startswith("locked by %s (Deploy a release, since " % HOLDER), str(e))
        self.assertIn("pid %d" % self.holder_file()["pid"], str(e))
        self.assertIn("playbooks/unlock.yml -e nodeexec_force_unlock=true", str(e))
        self.assertEqual(self.holder_file()["holder"], HOLDER)  # the loser changed nothing

    def test_release_with_the_token_frees_the_lock_and_stops_the_holder(self):
        token = self.acquire()
        pid = self.holder_file()["pid"]
        self.assertEqual(lockfile.release(self.dir, token=token), (True, HOLDER, "released"))
        self.assertFalse(os.path.exists(os.path.join(self.dir, lockfile.INFO)))
        self.assertTrue(self.lock_is_free())
        self.assertFalse(lockfile.holds(self.dir, token))
        self.assertTrue(wait_until(lambda: not alive(pid)), "the holder process outlived its release")
        self.acquire("nodeexec deployment d-2")

    def test_release_frees_the_lock_without_pidfds_too(self):
        # A kernel or Python without pidfd_open: release looks at the lock again until the holder let go.
        token = self.acquire()
        with mock.patch.object(lockfile, "_pidfd", return_value=None):
            self.assertEqual(lockfile.release(self.dir, token=token), (True, HOLDER, "released"))
        self.assertTrue(self.lock_is_free())
        self.acquire("nodeexec deployment d-2")

    def test_release_does_not_wait_on_a_recorded_pid_that_holds_nothing(self):
        # A stale record whose pid now names some other process: the lock is free, so release is done
        # at once, without waiting for that process to exit.
        os.makedirs(self.dir)
        other = subprocess.Popen(["sleep", "60"], preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
        self.addCleanup(lambda: (other.kill(), other.wait()))
        lockfile.write_info(self.dir, {"holder": HOLDER, "token": "t", "pid": other.pid})
        start = time.monotonic()
        self.assertEqual(lockfile.release(self.dir, token="t"), (True, HOLDER, "released"))
        self.assertLess(time.monotonic() - start, 5, "release waited on a process that holds no lock")
        self.assertTrue(alive(other.pid))

    def test_only_the_owner_releases_without_force(self):
        token = self.acquire()
        for params in ({"token": "not-the-token"}, {"unlock_holder": "nodeexec deployment d-2"}, {}):
            with self.subTest(params):
                released, holder, msg = lockfile.release(self.dir, **params)
                self.assertFalse(released)
                self.assertEqual(holder, HOLDER)
                self.assertIn("not ours to release", msg)
                self.assertTrue(lockfile.holds(self.dir, token))
                with self.assertRaises(lockfile.Busy):
                    self.acquire("someone else")

    def test_release_by_holder_name_or_by_force(self):
        for params in ({"unlock_holder": HOLDER}, {"force": True}):
            with self.subTest(params):
                self.acquire()
                self.assertEqual(lockfile.release(self.dir, **params), (True, HOLDER, "released"))
                self.acquire("nodeexec deployment d-3")
                lockfile.release(self.dir, force=True)

    def test_releasing_a_free_lock_is_a_no_op(self):
        self.assertEqual(lockfile.release(self.dir, force=True), (False, "", "not locked"))

    def test_a_lock_frees_itself_after_its_ttl(self):
        # The playbooks pass whole seconds; a fraction keeps the test short.
        with mock.patch.object(lockfile, "WATCH_EVERY", 0.05):
            self.acquire(ttl=0.3)
        pid = self.holder_file()["pid"]
        self.assertTrue(wait_until(lambda: not alive(pid)), "the holder kept the lock past its TTL")
        self.assertEqual(lockfile.read_info(self.dir), {})
        self.assertTrue(self.lock_is_free())
        self.acquire("nodeexec deployment d-2")

    def test_the_holder_lets_go_when_its_run_s_connection_dies(self):
        # The run's connection: a real process, as the sshd session is; the holder watches it.
        conn = subprocess.Popen(["sleep", "60"])
        self.addCleanup(lambda: conn.poll() is None and (conn.kill(), conn.wait()))
        # The holder (forked from this process) looks every WATCH_EVERY seconds: shortened, so the test can
        # watch it keep the lock through several looks while the connection lives.
        with mock.patch.object(lockfile, "WATCH_EVERY", 0.05):
            token = self.acquire(anchor=anchor_of(conn.pid))
        pid = self.holder_file()["pid"]
        time.sleep(0.3)  # six looks: not a sync, the holder must NOT let go here
        self.assertTrue(lockfile.holds(self.dir, token), "the holder let go while the run's connection lived")
        self.assertFalse(self.lock_is_free())

        conn.kill()
        conn.wait()
        self.assertTrue(wait_until(lambda: not os.path.exists(os.path.join(self.dir, lockfile.INFO)) and self.lock_is_free()),
                        "the lock outlived the run's connection")
        self.assertTrue(wait_until(lambda: not alive(pid)), "the holder outlived the run's connection")
        self.assertFalse(lockfile.holds(self.dir, token))
        self.acquire("nodeexec deployment d-2")

    def test_a_holder_whose_connection_is_already_gone_lets_go(self):
        conn = subprocess.Popen(["sleep", "60"])
        anchor = anchor_of(conn.pid)
        conn.kill()
        conn.wait()
        with mock.patch.object(lockfile, "WATCH_EVERY", 0.05):
            self.acquire(anchor=anchor)
        self.assertTrue(wait_until(self.lock_is_free), "the holder kept a lock for a run that had ended")
        self.assertTrue(wait_until(lambda: lockfile.read_info(self.dir) == {}))


class ReclaimTest(LockScratch):
    """A network cut leaves the node's sshd holding a dead connection, and the lock, open: the retry of
    the same deployment reclaims it when that connection runs nothing, and only then."""

    def connection(self, busy=False):
        """A stand-in for an sshd session: a process, running a task (a child) when busy."""
        p = subprocess.Popen(["/bin/sh", "-c", "sleep 60 & wait"] if busy else ["sleep", "60"])
        self.addCleanup(lambda: (p.kill(), p.wait()))
        if busy:
            self.assertTrue(wait_until(lambda: not lockfile.session_idle(anchor_of(p.pid))), "no child yet")
        return anchor_of(p.pid)

    def test_the_same_holder_reclaims_the_lock_of_a_connection_that_runs_nothing(self):
        earlier = self.connection()
        old = self.acquire(anchor=earlier)
        old_pid = self.holder_file()["pid"]
        retry = self.connection()
        token = lockfile.acquire(self.dir, HOLDER, "Deploy a release", 60, retry, reclaim=True)
        self.assertNotEqual(token, old)
        self.assertEqual((self.holder_file()["token"], self.holder_file()["anchor"]), (token, retry))
        self.assertTrue(wait_until(lambda: not alive(old_pid)), "the earlier holder outlived the reclaim")
        self.assertTrue(lockfile.holds(self.dir, token))

    def test_what_is_never_reclaimed(self):
        earlier = self.connection()
        self.acquire(anchor=earlier)
        cases = [
            ("without reclaim", HOLDER, self.connection(), False, "wait for it to finish"),
            ("another holder", "nodeexec deployment d-2", self.connection(), True, "wait for it to finish"),
            ("the same connection", HOLDER, earlier, True, "wait for it to finish"),
        ]
        for name, holder, anchor, reclaim, advice in cases:
            with self.subTest(name):
                with self.assertRaises(lockfile.Busy) as cm:
                    lockfile.acquire(self.dir, holder, "Deploy a release", 60, anchor, reclaim=reclaim)
                self.assertIn(advice, str(cm.exception))
                self.assertEqual(self.holder_file()["anchor"], earlier)

    def test_a_connection_still_running_a_task_keeps_its_lock(self):
        earlier = self.connection(busy=True)
        self.acquire(anchor=earlier)
        with self.assertRaises(lockfile.Busy) as cm:
            lockfile.acquire(self.dir, HOLDER, "Deploy a release", 60, self.connection(), reclaim=True)
        self.assertIn("an earlier run of the same holder is still working on the node", str(cm.exception))
        self.assertEqual(self.holder_file()["anchor"], earlier)


class AnchorTest(unittest.TestCase):
    def test_a_running_process_is_alive(self):
        self.assertTrue(lockfile.anchor_alive(anchor_of(os.getpid())))

    def test_no_anchor_leaves_the_lock_to_its_ttl(self):
        self.assertTrue(lockfile.anchor_alive(None))
        self.assertTrue(lockfile.anchor_alive([]))

    def test_a_reused_pid_is_not_the_run(self):
        pid, started = anchor_of(os.getpid())
        self.assertFalse(lockfile.anchor_alive([pid, started + 1]))

    def test_a_dead_process_is_not_alive_zombie_or_reaped(self):
        p = subprocess.Popen(["sleep", "60"])
        anchor = anchor_of(p.pid)
        self.assertTrue(lockfile.anchor_alive(anchor))
        os.kill(p.pid, signal.SIGKILL)
        # Not reaped yet: a zombie is a dead run too.
        self.assertTrue(wait_until(lambda: not alive(p.pid)))
        self.assertFalse(lockfile.anchor_alive(anchor))
        p.wait()
        self.assertFalse(lockfile.anchor_alive(anchor))


class ProcessStatTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def start_named(self, name, body="sleep 60 &\necho $!\nwait\n"):
        """A real process whose comm is name (the kernel names a script's process after the script), with a
        child `sleep` under it; returns (its pid, the child's pid)."""
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body)
        os.chmod(path, 0o755)
        p = subprocess.Popen([path], stdout=subprocess.PIPE, start_new_session=True)

        def stop():
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            p.stdout.close()
        self.addCleanup(stop)
        child = int(p.stdout.readline())
        # Until the child has exec'd sleep it is a fork of the script, with the script's name.
        assert wait_until(lambda: (lockfile._stat(child) or ("",))[0] == "sleep"), "the script's child never ran sleep"
        return p.pid, child

    def test_stat_of_a_comm_with_spaces_and_parentheses(self):
        name = "x) y (z) 1 2"
        pid, child = self.start_named(name)
        comm, state, ppid, started = lockfile._stat(pid)
        self.assertEqual(comm, name)
        self.assertIn(state, "RSD")
        self.assertEqual(ppid, os.getpid())
        self.assertGreater(started, 0)
        self.assertEqual(lockfile._stat(child)[2], pid)

    def test_stat_of_a_fake_stat_line(self):
        line = "4242 (a) b (c)) S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3\n"
        real_open = open

        def fake_open(path, *a, **kw):
            if path == "/proc/4242/stat":
                from io import StringIO
                return StringIO(line)
            return real_open(path, *a, **kw)
        with mock.patch.object(lockfile, "open", fake_open, create=True):
            self.assertEqual(lockfile._stat(4242), ("a) b (c)", "S", 17, 987654))
        with mock.patch.object(lockfile, "open", lambda *a, **kw: __import__("io").StringIO("4242 (x) S 1"), create=True):
            self.assertIsNone(lockfile._stat(4242))  # cut short: no starttime

    def test_a_process_that_is_gone_has_no_stat(self):
        p = subprocess.Popen(["true"])
        p.wait()
        self.assertIsNone(lockfile._stat(p.pid))

    def test_connection_anchor_finds_the_nearest_process_named_sshd(self):
        sshd, child = self.start_named("sshd")
        self.assertEqual(lockfile.connection_anchor(start=child), anchor_of(sshd))

    def test_connection_anchor_of_a_local_run_is_ansible_playbook(self):
        # comm is cut to 15 characters: "ansible-playboo".
        controller, child = self.start_named("ansible-playbook")
        self.assertEqual(lockfile.connection_anchor(start=child), anchor_of(controller))

    def test_connection_anchor_walks_the_process_tree(self):
        def tree(**procs):
            # pid -> (comm, ppid); every process "S" and started at 1000 + pid.
            table = {int(pid[1:]): (comm, "S", ppid, 1000 + int(pid[1:])) for pid, (comm, ppid) in procs.items()}
            return lambda pid: table.get(pid)
        cases = [
            ("the nearest sshd above, not the daemon",
             tree(p1=("systemd", 0), p10=("sshd", 1), p20=("sshd", 10), p30=("sh", 20), p40=("python3", 30)), [20, 1020]),
            ("OpenSSH 9.8's per-session process",
             tree(p1=("systemd", 0), p10=("sshd", 1), p20=("sshd-session", 10), p30=("sudo", 20), p40=("python3", 30)), [20, 1020]),
            ("sshd beats a controller further up",
             tree(p1=("init", 0), p5=("ansible-playboo", 1), p10=("sshd", 5), p40=("python3", 10)), [10, 1010]),
            ("a local run: the topmost ansible-playbook (its workers are forks of the same name)",
             tree(p1=("init", 0), p5=("ansible-playboo", 1), p10=("ansible-playboo", 5), p30=("sh", 10), p40=("python3", 30)),
             [5, 1005]),
            ("neither: no anchor", tree(p1=("init", 0), p10=("bash", 1), p40=("python3", 10)), None),
            ("a parent that is gone ends the walk", tree(p40=("python3", 33)), None),
            ("a loop ends the walk", tree(p40=("python3", 41), p41=("sh", 40)), None),
        ]
        for name, stat, want in cases:
            with self.subTest(name), mock.patch.object(lockfile, "_stat", stat):
                self.assertEqual(lockfile.connection_anchor(start=40), want)


class BusyTest(unittest.TestCase):
    def test_an_empty_record_still_reads(self):
        e = lockfile.Busy({})
        self.assertEqual(e.holder, "an unknown holder")
        self.assertTrue(str(e).startswith("locked by an unknown holder (?, since ?, pid ?)"), str(e))


if __name__ == "__main__":
    unittest.main()
