"""The playbooks, the roles' task files and the nodeexec_release module fit together: every variable the
playbooks and roles read from their caller is documented in a role's defaults/main.yml (the one place
operators look, see docs/operators.md), every role a playbook imports is there, and every call of the
module passes options it has, with a phase it knows. Run with the other role tests (`make test`)."""

import glob
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # loader.py, also when run by path
from loader import argument_spec, nr  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
NAME = r"nodeexec_[a-z0-9_]+"
# Names that are not variables: the roles' modules, as task keys.
MODULES = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(REPO, "roles", "*", "library", "*.py"))}


def read(paths):
    text = ""
    for p in paths:
        with open(p) as f:
            text += f.read() + "\n"
    return text


def uncommented(text):
    return re.sub(r"(?m)^\s*#.*$", "", text)


def task_files():
    return sorted(glob.glob(os.path.join(REPO, "roles", "*", "tasks", "*.yml")))


class VariablesTest(unittest.TestCase):
    def test_every_variable_read_from_the_caller_is_documented_in_defaults(self):
        self.assertEqual(MODULES, {"nodeexec_release"})
        code = read(glob.glob(os.path.join(REPO, "playbooks", "*.yml")) + task_files() +
                    glob.glob(os.path.join(REPO, "roles", "*", "templates", "*")))
        # Comments name variables without reading them.
        code = uncommented(code)
        used = set(re.findall(NAME, code)) - MODULES
        # What the plays set for themselves: registered results, set_fact and vars keys.
        assigned = set(re.findall(r"register:\s*(%s)" % NAME, code)) | \
            set(re.findall(r"(?m)^\s+(%s):" % NAME, code)) | set(re.findall(r"[{,]\s*(%s):" % NAME, code))
        defaults = uncommented(read(glob.glob(os.path.join(REPO, "roles", "*", "defaults", "main.yml"))))
        documented = set(re.findall(r"(?m)^(%s):" % NAME, defaults))
        # A default may be derived from another (nodeexec_root from nodeexec_base_dir).
        used |= set(re.findall(NAME, re.sub(r"(?m)^%s:" % NAME, "", defaults)))
        self.assertGreater(len(documented), 20, "no defaults found under %s" % REPO)
        self.assertEqual(sorted(used - assigned - documented), [], "read by the playbooks or roles but not in any defaults/main.yml")
        self.assertEqual(sorted(documented - used), [], "documented in defaults/main.yml but never read")
        # The lock's settings live with the role that takes the lock now.
        with open(os.path.join(REPO, "roles", "nodeexec_release", "defaults", "main.yml")) as f:
            release_defaults = set(re.findall(r"(?m)^(%s):" % NAME, f.read()))
        for var in ("nodeexec_lock_dir", "nodeexec_lock_holder", "nodeexec_lock_ttl", "nodeexec_unlock_holder",
                    "nodeexec_force_unlock"):
            self.assertIn(var, release_defaults)

    def test_every_role_a_playbook_imports_is_there(self):
        imports = []
        for p in glob.glob(os.path.join(REPO, "playbooks", "*.yml")):
            with open(p) as f:
                text = uncommented(f.read())
            for m in re.finditer(r"_role:\s*\{\s*name:\s*([\w.]+)(?:,\s*tasks_from:\s*([\w.]+))?", text):
                imports.append((os.path.basename(p), m.group(1), m.group(2) or "main"))
        self.assertGreater(len(imports), 5)
        for playbook, role, tasks in imports:
            with self.subTest(playbook=playbook):
                self.assertTrue(os.path.isfile(os.path.join(REPO, "roles", role, "tasks", tasks + ".yml")),
                                "%s imports %s/tasks/%s.yml, which is not there" % (playbook, role, tasks))


def module_calls():
    """(task file, {option: value text}) of every nodeexec_release task in the roles."""
    calls = []
    for p in task_files():
        with open(p) as f:
            lines = uncommented(f.read()).splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)nodeexec_release:\s*$", line)
            if not m:
                continue
            opts, indent = {}, None
            for sub in lines[i + 1:]:
                if not sub.strip():
                    continue
                depth = len(sub) - len(sub.lstrip())
                if depth <= len(m.group(1)):
                    break
                indent = depth if indent is None else indent
                km = re.match(r"^\s*(\w+):\s*(.*)$", sub)
                if depth == indent and km:
                    opts[km.group(1)] = km.group(2).strip()
            calls.append((os.path.relpath(p, REPO), opts))
    return calls




class ModuleCallsTest(unittest.TestCase):
    def test_every_call_of_the_module_passes_options_it_has(self):
        spec = argument_spec()
        calls = module_calls()
        self.assertGreaterEqual(len(calls), 7, calls)
        phases = set()
        for where, opts in calls:
            with self.subTest(where=where, phase=opts.get("phase")):
                self.assertEqual(sorted(set(opts) - set(spec)), [], "options the module does not have")
                required = sorted(k for k, v in spec.items() if v.get("required"))
                self.assertEqual(sorted(set(required) - set(opts)), [], "required options not passed")
                self.assertIn(opts["phase"], spec["phase"]["choices"])
                phases.add(opts["phase"])
        self.assertEqual(phases, set(nr.PHASES), "phases no task runs, or tasks of phases the module lacks")

    def test_the_module_documents_the_options_it_has(self):
        spec = argument_spec()
        options = nr.DOCUMENTATION.split("\noptions:\n", 1)[1]
        documented = set(re.findall(r"(?m)^  (\w+):", options))
        self.assertEqual(documented, set(spec))
        with_choices = re.findall(r"(?m)^  (\w+):.*choices: \[([^\]]*)\]", options.replace("\n          ", " "))
        self.assertIn("phase", [name for name, _ in with_choices])
        for name, choices in with_choices:
            self.assertEqual({c.strip() for c in choices.split(",")}, set(spec[name]["choices"]), name)


if __name__ == "__main__":
    unittest.main()
