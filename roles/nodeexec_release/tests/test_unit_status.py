"""Unit tests of how the nodeexec_release module reads a unit's uptime (library/nodeexec_release.py). No
systemd and no Ansible run: `make test`, or python3 -m unittest discover -s roles/nodeexec_release/tests
"""

import importlib.util
import os
import sys
import types
import unittest

LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "library", "nodeexec_release.py")


def load():
    try:
        import ansible.module_utils.basic  # noqa: F401
    except ImportError:
        basic = types.ModuleType("ansible.module_utils.basic")
        basic.AnsibleModule = object
        for mod in ("ansible", "ansible.module_utils"):
            sys.modules.setdefault(mod, types.ModuleType(mod))
        sys.modules["ansible.module_utils.basic"] = basic
    spec = importlib.util.spec_from_file_location("nodeexec_release_unit", LIBRARY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


nr = load()


class ActiveSinceTest(unittest.TestCase):
    # 2026-11-25T10:00:00Z, with the monotonic clock at 5000 s.
    NOW_REAL, NOW_MONO = 1795600800.0, 5000.0

    def test_an_active_unit_reports_when_it_started_and_for_how_long(self):
        # Entered active at monotonic 4910 s: 90 s ago.
        self.assertEqual(nr.active_since("active", 4910 * 10**6, self.NOW_REAL, self.NOW_MONO), ("2026-11-25T09:58:30Z", 90))

    def test_a_unit_that_is_not_active_has_no_start(self):
        for state in ("inactive", "failed", "activating", "unknown"):
            self.assertEqual(nr.active_since(state, 4910 * 10**6, self.NOW_REAL, self.NOW_MONO), ("", 0), state)

    def test_no_timestamp_means_no_start(self):
        self.assertEqual(nr.active_since("active", 0, self.NOW_REAL, self.NOW_MONO), ("", 0))

    def test_a_timestamp_from_the_future_is_zero_seconds_ago(self):
        self.assertEqual(nr.active_since("active", 5001 * 10**6, self.NOW_REAL, self.NOW_MONO), ("2026-11-25T10:00:00Z", 0))

    def test_systemctl_show_is_parsed_into_numbers(self):
        props = {"ActiveState": "active", "MainPID": "4242", "ActiveEnterTimestampMonotonic": "", "Bad": "x"}
        self.assertEqual((nr._int(props, "MainPID"), nr._int(props, "ActiveEnterTimestampMonotonic"), nr._int(props, "Bad")), (4242, 0, 0))


if __name__ == "__main__":
    unittest.main()
