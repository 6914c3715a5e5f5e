"""The committed lessons, read as files: what nbval compares must be portable.

A stored stderr stream (a library warning, matplotlib building its font cache) or error is
machine-dependent by nature, and a figure's cell may print font warnings on another machine, so
figure cells are not compared. The run-time half of the rule is `make portability`: nbval under
another numeric configuration of the same machine.
"""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
IGNORED = ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP", "# NBVAL_RAISES_EXCEPTION")


def code_cells(path: Path) -> list[tuple[int, dict]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, cell) for i, cell in enumerate(cells) if cell["cell_type"] == "code"]


def compared(cell: dict) -> bool:
    source = "".join(cell["source"])
    return not any(marker in source for marker in IGNORED)


def test_there_are_lessons():
    assert len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stored_stderr_or_error(path):
    bad = [(i, out.get("name", out["output_type"])) for i, cell in code_cells(path) for out in cell["outputs"]
           if out["output_type"] == "error" or out.get("name") == "stderr"]
    assert not bad, f"{path.name}: cells (index, output) {bad} hold stderr or an error; re-execute the notebook cleanly"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figure_cells_are_not_compared(path):
    bad = [i for i, cell in code_cells(path) if compared(cell)
           and any("image/png" in out.get("data", {}) for out in cell["outputs"])]
    assert not bad, f"{path.name}: cells {bad} draw a figure but are compared; mark them # NBVAL_IGNORE_OUTPUT"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_was_executed_in_order(path):
    counts = [cell["execution_count"] for _, cell in code_cells(path)]
    assert None not in counts, f"{path.name}: a code cell was never executed"
    assert counts == sorted(counts), f"{path.name}: cells were executed out of order ({counts})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_kernel_is_the_course_environment(path):
    spec = json.loads(path.read_text())["metadata"]["kernelspec"]
    assert spec["name"] == "cnnlib", f"{path.name} asks for kernel {spec['name']!r}: the course registers 'cnnlib'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_pointer_to_files_learners_do_not_have(path):
    text = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
    found = [word for word in ("COURSE.md", "STYLE.md", "../shared", "shared/") if word in text]
    assert not found, f"{path.name} points at {found}: learners have the repository only; cite cnnlib.lessons.references"
