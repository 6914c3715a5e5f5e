"""The learner versions of the lessons: solutions out, instructions in, no verdicts stored.

Convention (solution notebooks in ``notebooks/``):

* an exercise is a code cell holding a region between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` (usually inside a function body); the comment lines directly
  above ``### BEGIN SOLUTION`` are its instructions, ideally starting ``# Exercise N:``;
* the next code cell is its check cell: it calls one of the ``cnnlib.grading.checks`` checks,
  which raise ``AssertionError`` with a hint when the answer is wrong.

The learner version replaces each region by ``raise NotImplementedError("Exercise N: <the
instructions>")`` and keeps every stored output except those of the exercise and check
cells: they lose their outputs and execution counts, so ``pytest --nbval`` runs them without
comparing their output (a check grades by raising), and the learner sees no verdict that was
not earned. The notebook's metadata names its lesson (``metadata.cnnlib.lesson``), for the
grader.

Command line: ``python -m cnnlib.grading.learner_versions notebooks/ exercises/``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from cnnlib.files import atomic_open
from cnnlib.grading.checks import DEFAULT_INSTRUCTIONS

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
ANSWER_PLACEHOLDER = "YOUR ANSWER HERE"

_BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[ \t]*$")
_END_RE = re.compile(r"^[ \t]*### END SOLUTION[ \t]*$")
_LABEL_RE = re.compile(r"^(Exercise [\w.]+):\s*")


@dataclass(frozen=True)
class Exercise:
    """One exercise of a solution notebook.

    ``solution_cell``/``check_cell`` index ``nb.cells``; ``solution_code``/``check_code`` count
    code cells only, as nbval's test ids do (``notebook.ipynb::Cell N``).
    """

    label: str
    instructions: str
    solution_cell: int
    check_cell: int
    solution_code: int
    check_code: int


def _regions(lines: list[str]) -> list[tuple[int, int]]:
    """(begin, end) line indices of every solution region; ValueError if unbalanced."""
    regions, begin = [], None
    for i, line in enumerate(lines):
        if _BEGIN_RE.match(line):
            if begin is not None:
                raise ValueError(f"line {i + 1}: {BEGIN} inside another solution region")
            begin = i
        elif _END_RE.match(line):
            if begin is None:
                raise ValueError(f"line {i + 1}: {END} without {BEGIN}")
            regions.append((begin, i))
            begin = None
    if begin is not None:
        raise ValueError(f"line {begin + 1}: {BEGIN} without {END}")
    return regions


def _instructions(lines: list[str], begin: int) -> str:
    """The comment lines directly above ``begin`` (markers aside), joined into one sentence."""
    text: list[str] = []
    i = begin - 1
    while i >= 0 and lines[i].strip().startswith("#") and not lines[i].strip().startswith("###"):
        if "NBVAL_" not in lines[i]:
            text.insert(0, lines[i].strip().lstrip("#").strip())
        i -= 1
    return " ".join(t for t in text if t)


def has_solution(cell: Any) -> bool:
    """Whether the cell holds a solution marker (so malformed regions get reported)."""
    return any(_BEGIN_RE.match(line) or _END_RE.match(line) for line in cell.source.splitlines())


def exercise_cells(nb: Any) -> list[Exercise]:
    """The exercises of a solution notebook, in order; ValueError on a malformed one."""
    exercises: list[Exercise] = []
    code_index = {i: n for n, i in enumerate(i for i, c in enumerate(nb.cells) if c.cell_type == "code")}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not has_solution(cell):
            continue
        lines = cell.source.splitlines()
        try:
            first_begin = _regions(lines)[0][0]
        except ValueError as err:
            raise ValueError(f"cell {i}: {err}") from None
        check = next((j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"), None)
        if check is None or has_solution(nb.cells[check]) or "check_" not in nb.cells[check].source:
            raise ValueError(
                f"cell {i}: an exercise must be followed by a check cell (the next code cell) "
                "that calls a cnnlib.grading.checks check_* helper"
            )
        instructions = _instructions(lines, first_begin)
        match = _LABEL_RE.match(instructions)
        label = match.group(1) if match else f"Exercise {len(exercises) + 1}"
        exercises.append(Exercise(label, instructions, i, check, code_index[i], code_index[check]))
    return exercises


def _replace_regions(source: str, replacement: Callable[[str], str]) -> str:
    """Replace each solution region (markers included) by ``replacement(instructions)``,
    indented like its ``### BEGIN SOLUTION`` line."""
    lines = source.splitlines()
    out: list[str] = []
    start = 0
    for begin, end in _regions(lines):
        indent = _BEGIN_RE.match(lines[begin]).group("indent")
        out += lines[start:begin] + [indent + replacement(_instructions(lines, begin))]
        start = end + 1
    return "\n".join(out + lines[start:])


def _raise_line(label: str, instructions: str) -> str:
    """``raise NotImplementedError("Exercise N: <instructions>")`` as one line of code."""
    text = instructions or DEFAULT_INSTRUCTIONS
    if not _LABEL_RE.match(text):
        text = f"{label}: {text}"
    literal = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"raise NotImplementedError({literal})"


def _assert_parses(source: str, where: str) -> None:
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        compile(TransformerManager().transform_cell(source), where, "exec")
    except SyntaxError as err:
        raise ValueError(f"{where}: the learner version does not parse: {err}") from None


def learner_notebook(nb: Any, lesson: str | None = None) -> tuple[Any, list[Exercise]]:
    """The learner version of a solution notebook (a new object) and its exercises.

    Solution regions become ``raise NotImplementedError("Exercise N: <instructions>")`` at
    the same indentation; the exercise and check cells lose their outputs and execution
    counts (nbval then runs them without comparing); all other cells keep their stored
    outputs. Written answers in markdown cells become ``YOUR ANSWER HERE``. ``lesson`` (the
    solution's file stem) goes into ``metadata.cnnlib.lesson``.
    """
    exercises = exercise_cells(nb)
    learner = nbformat.from_dict(nb)
    for ex in exercises:
        cell = learner.cells[ex.solution_cell]
        cell.source = _replace_regions(cell.source, lambda text, label=ex.label: _raise_line(label, text))
        _assert_parses(cell.source, f"{ex.label} (cell {ex.solution_cell})")
        for index in (ex.solution_cell, ex.check_cell):
            learner.cells[index].outputs = []
            learner.cells[index].execution_count = None
    for cell in learner.cells:
        if cell.cell_type == "markdown" and has_solution(cell):
            cell.source = _replace_regions(cell.source, lambda text: ANSWER_PLACEHOLDER)
    if lesson is not None:
        learner.metadata["cnnlib"] = {"lesson": lesson}
    return learner, exercises


def student_notebook(src: str | os.PathLike, dst: str | os.PathLike) -> list[Exercise]:
    """Write the learner version of the notebook ``src`` to ``dst``; return its exercises."""
    try:
        learner, exercises = learner_notebook(nbformat.read(src, as_version=4), lesson=Path(src).stem)
    except ValueError as err:
        raise ValueError(f"{src}: {err}") from None
    write_notebook(learner, dst)
    return exercises


def student_notebooks(src_dir: str | os.PathLike, dst_dir: str | os.PathLike) -> dict[Path, list[Exercise]]:
    """Write the learner version of every ``*.ipynb`` in ``src_dir`` into ``dst_dir``."""
    written = {}
    for src in sorted(Path(src_dir).glob("*.ipynb")):
        dst = Path(dst_dir) / src.name
        written[dst] = student_notebook(src, dst)
    return written


def write_notebook(nb: Any, path: str | os.PathLike) -> None:
    """Write ``nb`` to ``path`` atomically (a temporary file, then a rename)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlib.grading.learner_versions", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="a solution notebook or a folder of them (e.g. notebooks/)")
    parser.add_argument("dst", help="output folder (e.g. exercises/)")
    args = parser.parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    written = student_notebooks(src, dst) if src.is_dir() else {dst / src.name: student_notebook(src, dst / src.name)}
    for path, exercises in written.items():
        print(f"{path}: {len(exercises)} exercise{'s' if len(exercises) != 1 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
