"""Loads the role's module for its tests: library/nodeexec_release.py, one file (Ansible pipes it to the
node as it is). Each test file does `from loader import lockfile, node, unit, nr`: the four names are the
same module, named after the part of it a test is about (the node lock, the releases and the record, the
unit, the phases). A test that patches a function patches it for the whole module.
"""

import importlib.util
import os
import sys

ROLE = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
LIBRARY = os.path.join(ROLE, "library", "nodeexec_release.py")


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


nr = lockfile = node = unit = _load("nodeexec_release", LIBRARY)


def argument_spec():
    """The module's arguments, as it checks them."""
    return nr.SPEC
