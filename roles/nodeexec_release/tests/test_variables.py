"""Every variable the playbooks and roles read from their caller is documented in a role's defaults/main.yml
(the one place operators look, see docs/operators.md). Run with the other role tests (`make test`)."""

import glob
import os
import re
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
NAME = r"nodeexec_[a-z0-9_]+"
MODULES = {"nodeexec_release", "nodeexec_lock"}


def read(paths):
    text = ""
    for p in paths:
        with open(p) as f:
            text += f.read() + "\n"
    return text


class VariablesTest(unittest.TestCase):
    def test_every_variable_read_from_the_caller_is_documented_in_defaults(self):
        code = read(glob.glob(os.path.join(REPO, "playbooks", "*.yml")) +
                    glob.glob(os.path.join(REPO, "roles", "*", "tasks", "*.yml")) +
                    glob.glob(os.path.join(REPO, "roles", "*", "templates", "*")))
        # Comments name variables without reading them.
        code = re.sub(r"(?m)^\s*#.*$", "", code)
        used = set(re.findall(NAME, code)) - MODULES
        # What the plays set for themselves: registered results, set_fact and vars keys.
        assigned = set(re.findall(r"register:\s*(%s)" % NAME, code)) | \
            set(re.findall(r"(?m)^\s+(%s):" % NAME, code)) | set(re.findall(r"[{,]\s*(%s):" % NAME, code))
        defaults = re.sub(r"(?m)^\s*#.*$", "", read(glob.glob(os.path.join(REPO, "roles", "*", "defaults", "main.yml"))))
        documented = set(re.findall(r"(?m)^(%s):" % NAME, defaults))
        # A default may be derived from another (nodeexec_root from nodeexec_base_dir).
        used |= set(re.findall(NAME, re.sub(r"(?m)^%s:" % NAME, "", defaults)))
        self.assertGreater(len(documented), 20, "no defaults found under %s" % REPO)
        self.assertEqual(sorted(used - assigned - documented), [], "read by the playbooks or roles but not in any defaults/main.yml")
        self.assertEqual(sorted(documented - used), [], "documented in defaults/main.yml but never read")


if __name__ == "__main__":
    unittest.main()
