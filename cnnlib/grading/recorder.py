"""The recorder: what runs in the learner's kernel in place of each check cell.

The grader loads this file by its path (:func:`cell_source`), never through ``import``, and
the recorder loads ``checks.py`` the same way, so that a learner who patched
``cnnlib.grading.checks``, replaced it in ``sys.modules`` or redefined ``check_function`` in the
notebook still meets the real checks: :func:`record` binds the check names itself, and
answers ``from cnnlib.grading import ...`` inside the check with the fresh module. It runs the
lesson's check, then its hidden cases, each after seeding ``random``, numpy and torch, under
:func:`cnnlib.grading.checks.recording`, and displays the records under :data:`RECORDS_MIME`;
no verdict is computed in the kernel.

This module imports the standard library alone (and IPython's display, inside the kernel).
"""

from __future__ import annotations

import builtins
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

RECORDS_MIME = "application/vnd.cnnlib.check-records+json"
CHECKS_PATH = Path(__file__).resolve().with_name("checks.py")


def load_by_path(path: str, name: str) -> ModuleType:
    """The module of the file ``path``, executed afresh (``sys.modules`` is neither read nor written)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed() -> None:
    """Seed ``random``, and numpy and torch if the lesson imported them, with 0."""
    import random

    random.seed(0)
    for name, seeding in (("numpy", "random.seed"), ("torch", "manual_seed")):
        if name in sys.modules:
            function = sys.modules[name]
            for attribute in seeding.split("."):
                function = getattr(function, attribute)
            function(0)


def record(user_namespace: dict, sources: dict[str, str], checks_path: str) -> None:
    """Run each part of ``sources`` (``visible``, ``hidden``: code) in the notebook's namespace
    with the fresh checks bound; display ``{part: records, part + "_error": [mro names, text]}``.

    Args:
        user_namespace: the notebook's globals; the names the checks define are kept there.
        sources: the check cell's code and its hidden cases, by part.
        checks_path: the file of the checks, loaded afresh.
    """
    from IPython.display import display

    checks = load_by_path(checks_path, "_cnnlib_grading_fresh")
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if name in ("cnnlib.grading", "cnnlib.grading.checks") and fromlist:
            return checks
        return real_import(name, globals, locals, fromlist, level)

    bound = {name: getattr(checks, name) for name in checks.CHECKS}
    namespace = {**user_namespace, **bound, "__builtins__": {**vars(builtins), "__import__": guarded_import}}
    result: dict = {}
    for part, source in sources.items():
        seed()
        with checks.recording() as result[part]:
            try:
                exec(compile(source, "<" + part + " checks>", "exec"), namespace)
            except KeyboardInterrupt:
                raise
            except BaseException as err:
                result[part + "_error"] = [[c.__name__ for c in type(err).__mro__], str(err)]
    user_namespace.update({k: v for k, v in namespace.items() if k not in bound and k != "__builtins__"})
    display({RECORDS_MIME: json.dumps(result)}, raw=True)


def cell_source(check_source: str, hidden_source: str) -> str:
    """The code that replaces a check cell: load this file afresh and :func:`record` the check
    (``check_source``) and its hidden cases (``hidden_source``)."""
    return f'''def _cnnlib_recorder(path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("_cnnlib_recorder_fresh", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_cnnlib_recorder({str(Path(__file__).resolve())!r}).record(
    globals(), {{"visible": {check_source!r}, "hidden": {hidden_source!r}}}, {str(CHECKS_PATH)!r})
del _cnnlib_recorder'''


def records_of(cell: dict) -> dict | None:
    """The records a recording cell displayed (read in the grader's process), or None."""
    for output in reversed(cell.get("outputs", [])):
        data = output.get("data", {}).get(RECORDS_MIME)
        if output.get("output_type") == "display_data" and isinstance(data, str):
            try:
                records = json.loads(data)
            except ValueError:
                return None
            return records if isinstance(records, dict) else None
    return None
