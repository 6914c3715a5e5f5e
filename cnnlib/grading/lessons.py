"""The lessons a class is graded on, their hidden cases, and which lesson a submission is.

Lessons are the notebooks with exercises of a folder (``notebooks/`` of the course). The
instructor's hidden cases (``HIDDEN_CASES[lesson stem][exercise label]``: code run after the
exercise's check) live outside the installed package, in ``instructor/hidden_cases.py`` of the
course's repository. A submission belongs to the lesson its metadata names
(``metadata.cnnlib.lesson``, written by :mod:`cnnlib.grading.learner_versions`), else the lesson
of its file name, else the lesson whose cell ids it shares; its answer cells are found by the
lesson's cell ids, and its check cells compared with the lesson's (:func:`tampering`).
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import nbformat

from cnnlib.files import CourseFolderMissing, course_folder
from cnnlib.grading.learner_versions import Exercise, exercise_cells



class LessonError(RuntimeError):
    """The lesson itself cannot be graded (its solution fails its own or its hidden checks)."""


@dataclass
class Lesson:
    """A solution notebook with exercises, and what its clean run recorded per exercise."""

    stem: str
    path: Path
    nb: Any
    exercises: list[Exercise]
    hidden_cases: dict[str, str] = field(default_factory=dict)  # label: code
    clean: dict[str, dict] = field(default_factory=dict)
    problem: str = ""  # why the lesson cannot be graded, once its clean run failed

    def hidden(self, label: str) -> str:
        return self.hidden_cases.get(label, "")

    def solution_answers(self) -> dict[str, str]:
        """The solution's answer cells, by exercise label."""
        return {ex.label: self.nb.cells[ex.solution_cell].source for ex in self.exercises}


def discover_lessons(folder: str | os.PathLike, hidden: dict | None = None) -> dict[str, Lesson]:
    """Every notebook of ``folder`` that has exercises, by file stem, with its ``hidden`` cases
    (``HIDDEN_CASES`` as :func:`load_hidden` reads them; None: the visible checks alone)."""
    hidden = {} if hidden is None else hidden
    lessons = {}
    for path in sorted(Path(folder).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        exercises = exercise_cells(nb)
        if exercises:
            lessons[path.stem] = Lesson(path.stem, path, nb, exercises, dict(hidden.get(path.stem, {})))
    return lessons


def default_hidden() -> Path:
    """The instructor's file: ``instructor/hidden_cases.py`` in the course's folder, found as
    :func:`cnnlib.files.course_folder` finds it (from the working directory or its parent), else
    that path in the working directory."""
    try:
        return course_folder("instructor") / "hidden_cases.py"
    except CourseFolderMissing:
        return Path("instructor") / "hidden_cases.py"


def load_hidden(path: str | os.PathLike) -> dict:
    """``HIDDEN_CASES`` from the instructor's Python file (``instructor/hidden_cases.py`` of the
    course's repository shows the layout); it is not part of the installed package."""
    cases = runpy.run_path(str(path)).get("HIDDEN_CASES")
    if not isinstance(cases, dict):
        raise ValueError(f"{path}: defines no HIDDEN_CASES dictionary (see instructor/hidden_cases.py in the course\'s repository)")
    return cases


def submissions(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The notebooks named, and those under the folders named, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder (give notebooks or folders of them)")
    return found


def identify(nb: Any, path: Path, lessons: dict[str, Lesson]) -> Lesson | None:
    """The lesson a submission belongs to: by metadata, by file name, then by shared cell ids."""
    named = nb.metadata.get("cnnlib", {}).get("lesson") if isinstance(nb.metadata.get("cnnlib"), dict) else None
    if named in lessons:
        return lessons[named]
    if path.stem in lessons:
        return lessons[path.stem]
    ids = {c.get("id") for c in nb.cells} - {None}
    shared = {stem: len(ids & {c.get("id") for c in lesson.nb.cells}) for stem, lesson in lessons.items()}
    best = max(shared, key=shared.get, default=None)
    return lessons[best] if best is not None and shared[best] > 0 else None


def _normalised(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _cell_by_id(nb: Any, cell_id: str | None) -> Any:
    return next((c for c in nb.cells if cell_id is not None and c.get("id") == cell_id), None)


def find_answer(submission: Any, lesson: Lesson, ex: Exercise) -> Any:
    """The submission's answer cell: the one with the lesson's cell id, else the code cell that
    holds the exercise's first instruction line."""
    cell = _cell_by_id(submission, lesson.nb.cells[ex.solution_cell].get("id"))
    if cell is not None and cell.cell_type == "code":
        return cell
    first_line = ex.instructions.split(". ")[0][:60]
    return next((c for c in submission.cells if c.cell_type == "code" and first_line and first_line in
                 " ".join(line.strip().lstrip("#").strip() for line in c.source.splitlines())), None)


def tampering(submission: Any, lesson: Lesson, ex: Exercise) -> Literal["", "changed", "deleted"]:
    """How the submission's check cell of ``ex`` differs from the lesson's ("" if it does not)."""
    reference = lesson.nb.cells[ex.check_cell]
    cell = _cell_by_id(submission, reference.get("id"))
    if cell is not None and _normalised(cell.source) == _normalised(reference.source):
        return ""
    if any(_normalised(c.source) == _normalised(reference.source) for c in submission.cells if c.cell_type == "code"):
        return ""
    return "changed" if cell is not None else "deleted"
