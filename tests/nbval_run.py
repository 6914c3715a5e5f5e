"""Run ``pytest --nbval`` on one notebook in a subprocess and read nbval's verdict per code cell
from pytest's JUnit XML (for the tests of the learner versions)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SANITIZE_FILE = REPO / "tests" / "nbval_sanitize.cfg"
_ANSI_RE = re.compile(r"(?:\x1b|#x1B)\[[0-9;]*m")  # junit XML writes ESC as "#x1B"


@dataclass(frozen=True)
class CellResult:
    """nbval's verdict on one code cell: outcome is passed, failed, error or skipped."""

    outcome: str
    message: str = ""


def run_nbval(
    path: str | os.PathLike,
    *,
    sanitize_with: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    cell_timeout: int = 600,
    extra_args: Sequence[str] = (),
) -> dict[int, CellResult]:
    """Run ``pytest --nbval --nbval-current-env`` on one notebook in a subprocess.

    Returns ``{code cell index: CellResult}`` read from pytest's junit XML (nbval names its
    items ``Cell N``, N counting code cells only). ``sanitize_with`` defaults to the
    repository's ``tests/nbval_sanitize.cfg``; ``env`` is added to ``os.environ``, and the
    kernel imports this very ``cnnlib``. The run uses an empty pytest configuration, so the
    project's own options and conftest stay out.
    """
    path = Path(path).resolve()
    if sanitize_with is None and SANITIZE_FILE.exists():
        sanitize_with = SANITIZE_FILE
    with tempfile.TemporaryDirectory() as tmp:
        junit, ini = Path(tmp) / "junit.xml", Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        sanitize = ["--nbval-sanitize-with", str(sanitize_with)] if sanitize_with is not None else []
        cmd = [
            sys.executable, "-m", "pytest", "-c", str(ini), f"--rootdir={path.parent}", "-p", "no:cacheprovider",
            "--nbval", "--nbval-current-env", *sanitize, f"--nbval-cell-timeout={cell_timeout}",
            f"--junitxml={junit}", "-q", *extra_args, str(path),
        ]
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        proc = subprocess.run(
            cmd, cwd=path.parent, env={**os.environ, "PYTHONPATH": pythonpath, **(env or {})},
            capture_output=True, text=True,
        )
        if not junit.exists():
            raise RuntimeError(f"pytest did not run ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return _parse_junit(junit.read_text())


def _parse_junit(xml: str) -> dict[int, CellResult]:
    results: dict[int, CellResult] = {}
    for case in ET.fromstring(xml).iter("testcase"):
        match = re.fullmatch(r"Cell (\d+)", case.get("name", ""))
        if not match:
            continue
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = _ANSI_RE.sub("", f"{node.get('message', '')}\n{node.text or ''}")
                break
        index = int(match.group(1))
        if index in results and results[index].outcome != "passed":
            continue  # a teardown error reported after a failure: keep the failure
        results[index] = CellResult(outcome, message)
    return results
