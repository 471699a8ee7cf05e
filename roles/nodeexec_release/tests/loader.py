"""Loads the role's Python for its tests, as Ansible lays it out on a node: module_utils/nodeexec_*.py as
ansible.module_utils.nodeexec_*, then library/nodeexec_release.py, which imports them from there.

Each test file does `from loader import lockfile, node, unit, nr` (unittest discover puts this directory
on sys.path). Every file is loaded once per test process, so a test that patches a function of one of them
patches it for the library module too.
"""

import importlib.util
import os
import sys
import types

ROLE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LIBRARY = os.path.join(ROLE, "library", "nodeexec_release.py")
MODULE_UTILS = os.path.join(ROLE, "module_utils")


def _ansible():
    """The ansible.module_utils package: the real one, or a stand-in where this python3 has no ansible (the
    library imports AnsibleModule at the top; the tests never build one)."""
    try:
        import ansible.module_utils.basic  # noqa: F401
    except ImportError:
        for name in ("ansible", "ansible.module_utils"):
            if name not in sys.modules:
                pkg = types.ModuleType(name)
                pkg.__path__ = []
                sys.modules[name] = pkg
        basic = types.ModuleType("ansible.module_utils.basic")
        basic.AnsibleModule = object
        sys.modules["ansible.module_utils.basic"] = basic
        sys.modules["ansible"].module_utils = sys.modules["ansible.module_utils"]
        sys.modules["ansible.module_utils"].basic = basic
    return sys.modules["ansible.module_utils"]


def _load(name, path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]
        raise
    return mod


def _load_all():
    utils = _ansible()
    out = {}
    for short in ("nodeexec_lockfile", "nodeexec_node", "nodeexec_unit"):
        out[short] = _load("ansible.module_utils." + short, os.path.join(MODULE_UTILS, short + ".py"))
        setattr(utils, short, out[short])
    out["nodeexec_release"] = _load("nodeexec_release", LIBRARY)
    return out


_mods = _load_all()
lockfile = _mods["nodeexec_lockfile"]
node = _mods["nodeexec_node"]
unit = _mods["nodeexec_unit"]
nr = _mods["nodeexec_release"]


class _Stop(Exception):
    pass


def argument_spec():
    """The module's argument_spec, as main() hands it to AnsibleModule (main stops right there)."""
    from unittest import mock
    seen = {}

    def capture(argument_spec, **kw):
        seen.update(argument_spec)
        raise _Stop()
    with mock.patch.object(nr, "AnsibleModule", capture):
        try:
            nr.main()
        except _Stop:
            pass
    return seen
