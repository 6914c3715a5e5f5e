"""Grade a class: learner notebooks in, one gradebook row per (submission, exercise) out.

    python -m cnnlib.grade SUBMISSION... --out grades.csv [--feedback DIR]

A submission (a notebook, or a folder searched for ``*.ipynb``) belongs to the lesson its
metadata names (``metadata.cnnlib.lesson``, written by :mod:`cnnlib.grading.learner_versions`), else the
lesson of its file name, else the lesson whose cell ids it shares. Lessons are the notebooks
with exercises in ``notebooks/`` (``--lessons``). For each lesson the grader first runs the
solution once (the *clean run*); then, for each submission, a fresh kernel runs the lesson
with the learner's answer cells in place of the solution's, under a time limit per answer
cell and per check, and one for the whole notebook. Each check cell is replaced by a
*recording* of the lesson's check and its hidden cases (:mod:`cnnlib.hidden_cases`): the
checks of :mod:`cnnlib.grading.checks` only record what the learner's code returned, and the
verdict is computed here, in the grader's process, against what the clean run expected.
Rows are appended to the gradebook as each submission finishes.

Status of a row: ``passed``, ``failed``, ``not_attempted`` (the ``NotImplementedError`` stub
is left), ``error`` (the answer raised something else, or the kernel died), ``timeout``,
``tampered`` (the submission's check cell was deleted or changed: graded 0, the message says
what the original check gave) or ``invalid`` (not a notebook, corrupt, or of no lesson).
Points: each check declares ``points=`` (default 1); with ``partial=True`` a failed exercise
earns the share of its cases (visible and hidden) that passed. The lessons run under the
``smoke`` profile unless ``CNNLIB_PROFILE`` says otherwise (the exercises do not depend on
training budgets).

Threat model. Covered: a submission that edits or deletes check cells (they are taken from
the lesson, by cell id, and the change is reported); that edits any cell other than its
answer cells (only the answer cells are taken from a submission: the lesson's own cells run
around them, and the learner's extra cells are left out); that redefines ``check_function``
or other check names, patches ``cnnlib.grading.checks`` or replaces it in ``sys.modules`` (the
recording loads ``grading.py`` afresh from its file and binds the check names itself);
that patches ``AssertionError``, builtins, torch or the lesson's reference functions (no
verdict is computed in the learner's kernel; the expected values come from the clean run);
that fits its answer to the visible cases (hidden cases); that loops forever (time limits,
then an interrupt) or kills its kernel (``os._exit``, a crash: the exercises checked before
keep their rows). Not covered: the learner's code runs with the grader's rights, in the
lesson's folder. Code that hooks the interpreter (IPython events, ``sys.settrace``, the
display machinery) sees the hidden cases and can report made-up results; code that attacks
the operating system can do anything the grader's user can. Grade untrusted classes in a
container or a throw-away account. The grader checks results, not code: an answer that
calls ``cnnlib``'s own implementation of the exercise passes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import runpy
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from traitlets import default

from cnnlib.grading import checks
from cnnlib.files import atomic_open, course_folder
from cnnlib.grading.learner_versions import Exercise, exercise_cells

COLUMNS = ("submission", "lesson", "exercise", "status", "points", "max_points", "message")
RECORDS_MIME = "application/vnd.cnnlib.check-records+json"
HIDDEN = Path("instructor") / "hidden_cases.py"  # the instructor's file, in the folder the grader runs from
TIMEOUT_NAME = "CellTimeoutError"


class LessonError(RuntimeError):
    """The lesson itself cannot be graded (its solution fails its own or its hidden checks)."""


@dataclass
class Row:
    submission: str
    lesson: str
    exercise: str
    status: str
    points: float
    max_points: float | str
    message: str

    def as_list(self) -> list:
        return [self.submission, self.lesson, self.exercise, self.status, _number(self.points),
                _number(self.max_points), self.message]


def _number(x: Any) -> Any:
    return int(x) if isinstance(x, float) and x.is_integer() else x


# --------------------------------------------------------------------------- lessons


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


def load_hidden(path: str | os.PathLike) -> dict:
    """``HIDDEN_CASES`` from the instructor's Python file (``instructor/hidden_cases.py`` of the
    course's repository shows the layout); it is not part of the installed package."""
    cases = runpy.run_path(str(path)).get("HIDDEN_CASES")
    if not isinstance(cases, dict):
        raise ValueError(f"{path}: defines no HIDDEN_CASES dictionary (see instructor/hidden_cases.py in the course\'s repository)")
    return cases


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


# --------------------------------------------------------------------------- the graded notebook


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


def tampering(submission: Any, lesson: Lesson, ex: Exercise) -> str:
    """How the submission's check cell of ``ex`` differs from the lesson's ("" if it does not)."""
    reference = lesson.nb.cells[ex.check_cell]
    cell = _cell_by_id(submission, reference.get("id"))
    if cell is not None and _normalised(cell.source) == _normalised(reference.source):
        return ""
    if any(_normalised(c.source) == _normalised(reference.source) for c in submission.cells if c.cell_type == "code"):
        return ""
    return "changed" if cell is not None else "deleted"


def recording_source(check_source: str, hidden_source: str) -> str:
    """The code that replaces a check cell: the checks loaded afresh from ``grading.py`` and
    bound to their names; the check, then its hidden cases, each after seeding ``random``,
    numpy and torch, run in recording mode; the records shown under :data:`RECORDS_MIME`."""
    return f'''def _cnnlib_seed():
    import random, sys
    random.seed(0)
    for name, seed in (("numpy", "random.seed"), ("torch", "manual_seed")):
        if name in sys.modules:
            module = sys.modules[name]
            for attribute in seed.split("."):
                module = getattr(module, attribute)
            module(0)


def _cnnlib_record(sources, grading_path):
    import builtins, importlib.util, json
    from IPython.display import display
    spec = importlib.util.spec_from_file_location("_cnnlib_grading_fresh", grading_path)
    checks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checks)
    real_import = builtins.__import__
    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if name in ("cnnlib.grading", "cnnlib.grading.checks") and fromlist:
            return checks
        return real_import(name, globals, locals, fromlist, level)
    bound = {{name: getattr(checks, name) for name in checks.CHECKS}}
    namespace = {{**globals(), **bound, "__builtins__": {{**vars(builtins), "__import__": guarded_import}}}}
    result = {{}}
    for part, source in sources.items():
        _cnnlib_seed()
        result[part] = checks.start_recording()
        try:
            exec(compile(source, "<" + part + " checks>", "exec"), namespace)
        except KeyboardInterrupt:
            raise
        except BaseException as err:
            result[part + "_error"] = [[c.__name__ for c in type(err).__mro__], str(err)]
    globals().update({{k: v for k, v in namespace.items() if k not in bound and k != "__builtins__"}})
    display({{{RECORDS_MIME!r}: json.dumps(result)}}, raw=True)


_cnnlib_record({{"visible": {check_source!r}, "hidden": {hidden_source!r}}}, {str(Path(checks.__file__).resolve())!r})
del _cnnlib_record, _cnnlib_seed'''


def graded_notebook(lesson: Lesson, answers: dict[str, str]) -> Any:
    """The lesson with ``answers`` (label: source) in its answer cells and recordings in
    place of its check cells."""
    nb = nbformat.from_dict(lesson.nb)
    for ex in lesson.exercises:
        nb.cells[ex.solution_cell].source = answers[ex.label]
        check = nb.cells[ex.check_cell]
        check.source = recording_source(check.source, lesson.hidden(ex.label))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


# --------------------------------------------------------------------------- running


class _ThisPython(KernelSpecManager):
    """Kernels run the grader's own interpreter (and so import the grader's cnnlib)."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name="cnnlib grader", language="python")


class _KernelManager(AsyncKernelManager):
    @default("kernel_spec_manager")
    def _this_python(self) -> KernelSpecManager:
        return _ThisPython()


def execute(nb: Any, cwd: Path, timed_cells: set[int], cell_timeout: float, notebook_timeout: float
            ) -> dict[int, str]:
    """Run ``nb`` in a fresh kernel, in place, within ``notebook_timeout`` seconds, the cells
    ``timed_cells`` within ``cell_timeout`` each. The state of each code cell by index: ``ok``,
    ``error:<exception name>``, ``timeout``, ``dead`` (the kernel died), ``not_run`` (it had
    died before) or ``deadline`` (the notebook's time was up before the cell)."""
    states: dict[int, str] = {}

    def executed(cell: Any, cell_index: int, execute_reply: dict) -> None:
        content = (execute_reply or {}).get("content", {})
        ename = content.get("ename", "")
        states[cell_index] = "ok" if content.get("status") != "error" else (
            "timeout" if ename == TIMEOUT_NAME else f"error:{ename}")

    client = NotebookClient(
        nb, kernel_manager_class=_KernelManager, kernel_name="cnnlib-grader", allow_errors=True,
        interrupt_on_timeout=True, on_cell_executed=executed,
        error_on_timeout={"ename": TIMEOUT_NAME, "evalue": f"the cell ran past its {cell_timeout:g} s limit",
                          "traceback": []},
        resources={"metadata": {"path": str(cwd)}},
    )
    root = str(Path(checks.__file__).resolve().parents[2])
    env = {"CNNLIB_PROFILE": "smoke", **os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    deadline = time.monotonic() + notebook_timeout
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    with client.setup_kernel(env=env):
        for position, index in enumerate(code_cells):
            remaining = deadline - time.monotonic()
            if remaining <= 1:
                states.update({i: "deadline" for i in code_cells[position:]})
                break
            client.timeout = int(min(cell_timeout, remaining) if index in timed_cells else remaining)
            try:
                client.execute_cell(nb.cells[index], index)
            except DeadKernelError:
                states[index] = "dead"
                states.update({i: "not_run" for i in code_cells[position + 1:]})
                break
            states.setdefault(index, "ok")
    return states


def records_of(cell: Any) -> dict | None:
    """The records a recording cell displayed, or None."""
    for output in reversed(cell.get("outputs", [])):
        data = output.get("data", {}).get(RECORDS_MIME)
        if output.get("output_type") == "display_data" and isinstance(data, str):
            try:
                records = json.loads(data)
            except ValueError:
                return None
            return records if isinstance(records, dict) else None
    return None


def run_lesson(lesson: Lesson, answers: dict[str, str], cell_timeout: float, notebook_timeout: float
               ) -> tuple[Any, dict[int, str]]:
    """The lesson with ``answers``, executed; the answer and check cells under ``cell_timeout``."""
    nb = graded_notebook(lesson, answers)
    timed = {i for ex in lesson.exercises for i in (ex.solution_cell, ex.check_cell)}
    return nb, execute(nb, lesson.path.parent, timed, cell_timeout, notebook_timeout)


def clean_run(lesson: Lesson, cell_timeout: float, notebook_timeout: float) -> None:
    """Run the solution once; keep each exercise's records; every check must pass on it."""
    answers = {ex.label: lesson.nb.cells[ex.solution_cell].source for ex in lesson.exercises}
    nb, states = run_lesson(lesson, answers, cell_timeout, notebook_timeout)
    for ex in lesson.exercises:
        records = records_of(nb.cells[ex.check_cell])
        if records is None or any(part + "_error" in records for part in ("visible", "hidden")):
            problem = states.get(ex.check_cell) if records is None else records
            raise LessonError(f"{lesson.path}: the solution's check of {ex.label} did not run: {problem}")
        verdict = judge_records(records, records)
        if verdict.failures:
            raise LessonError(f"{lesson.path}: the solution fails the checks of {ex.label}: "
                              f"{verdict.failures[0].message}")
        lesson.clean[ex.label] = records


# --------------------------------------------------------------------------- judging


@dataclass
class Verdict:
    passed: int
    total: int
    failures: list[checks.Failure]
    max_points: float
    partial: bool


def judge_records(clean: dict, learner: dict) -> Verdict:
    """Judge the learner's observations against the clean run's specs, case by case."""
    passed, total, failures, max_points, partial = 0, 0, [], 0.0, False
    for part in ("visible", "hidden"):
        observed_records = learner.get(part) if isinstance(learner.get(part), list) else []
        for i, record in enumerate(clean[part]):
            spec = checks.decode(record["spec"])
            if part == "visible":
                max_points += float(spec.get("points", 1))
                partial = partial or bool(spec.get("partial"))
            try:
                observed = checks.decode(observed_records[i]["observed"]) if i < len(observed_records) else {}
                cases = checks.judge(spec, observed if isinstance(observed, dict) else {})
            except Exception:  # a malformed record: every case of this check fails
                cases = [checks.Failure("wrong", f"{spec['name']}: the check's record could not be read.")]
                cases *= len(checks.judge(spec, checks.decode(record["observed"])))
            total += len(cases)
            passed += sum(case is None for case in cases)
            failures += [case if part == "visible" else checks.Failure(case.kind, "hidden case: " + case.message)
                         for case in cases if case is not None]
    return Verdict(passed, total, failures, max_points, partial)


def grade_exercise(lesson: Lesson, ex: Exercise, nb: Any, states: dict[int, str]) -> tuple[str, float, str]:
    """(status, points, message) of one exercise of an executed graded notebook."""
    clean = lesson.clean[ex.label]
    max_points = judge_records(clean, clean).max_points
    answer_state, check_state = states.get(ex.solution_cell, "not_run"), states.get(ex.check_cell, "not_run")
    answer_error = _error_text(nb.cells[ex.solution_cell])
    if "deadline" in (answer_state, check_state):
        return "timeout", 0, "not graded: the notebook ran past its time limit before this exercise"
    if answer_state == "timeout":
        return "timeout", 0, "the answer cell ran past its time limit"
    if answer_state == "dead":
        return "error", 0, "the kernel died while running the answer cell"
    if answer_state == "error:NotImplementedError":
        return "not_attempted", 0, checks.not_done(ex.label, _error(nb.cells[ex.solution_cell])[1]).message
    if check_state == "timeout":
        return "timeout", 0, "the check ran past its time limit (an endless loop?)"
    if check_state == "dead":
        return "error", 0, "the kernel died during the check"
    if check_state == "not_run":
        return "error", 0, "not graded: the kernel died before this exercise"
    records = records_of(nb.cells[ex.check_cell])
    if records is None:
        return "error", 0, answer_error or f"the check did not run to its end: {_error_text(nb.cells[ex.check_cell])}"
    verdict = judge_records(clean, records)
    crashed = [records[p + "_error"] for p in ("visible", "hidden") if isinstance(records.get(p + "_error"), list)]
    if not verdict.failures and not crashed:
        return "passed", max_points, ""
    points = round(max_points * verdict.passed / verdict.total, 2) if verdict.partial and verdict.total else 0
    right = f" ({verdict.passed} of {verdict.total} cases right)"
    kinds = {f.kind for f in verdict.failures}
    if "not_done" in kinds or any("NotImplementedError" in c[0] for c in crashed):
        message = next((f.message for f in verdict.failures if f.kind == "not_done"), None)
        if message is None:  # raised while the check's arguments were computed
            text = next(c[1] for c in crashed if "NotImplementedError" in c[0])
            message = checks.not_done(ex.label, text).message
        return "not_attempted", 0, message
    if answer_state.startswith("error:"):
        return "error", points, answer_error + right
    if crashed:
        return "error", points, f"the check raised {crashed[0][0][0]}: {crashed[0][1]}" + right
    first = verdict.failures[0]
    return ("error" if first.kind == "raised" else "failed"), points, first.message + right


def _error(cell: Any) -> tuple[str, str]:
    """(name, message) of the exception a cell's output shows, or empty strings."""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    return (str(errors[-1].get("ename")), str(errors[-1].get("evalue"))) if errors else ("", "")


def _error_text(cell: Any) -> str:
    name, message = _error(cell)
    return f"{name}: {message}" if name else ""


# --------------------------------------------------------------------------- submissions


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


def grade_submission(path: Path, lessons: dict[str, Lesson], cell_timeout: float, notebook_timeout: float
                     ) -> list[Row]:
    """The gradebook rows of one submission (running each lesson's clean run when first needed)."""
    name = str(path)
    try:
        nb = nbformat.read(path, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no cells")
    except Exception as err:
        return [Row(name, "", "", "invalid", 0, "", f"not a readable notebook: {type(err).__name__}: {err}"[:300])]
    lesson = identify(nb, path, lessons)
    if lesson is None:
        return [Row(name, "", "", "invalid", 0, "",
                    "a notebook of no lesson of this course (no lesson in its metadata, file name or cell ids)")]
    if not lesson.clean and not lesson.problem:
        try:
            clean_run(lesson, cell_timeout, notebook_timeout)
        except LessonError as err:
            lesson.problem = str(err)
    if lesson.problem:
        return [Row(name, lesson.stem, ex.label, "error", 0, "", f"the lesson cannot be graded: {lesson.problem}")
                for ex in lesson.exercises]
    answers, missing = {}, set()
    for ex in lesson.exercises:
        cell = find_answer(nb, lesson, ex)
        if cell is None:
            missing.add(ex.label)
        answers[ex.label] = cell.source if cell is not None else f'raise NotImplementedError("{ex.label}: missing")'
    run_nb, states = run_lesson(lesson, answers, cell_timeout, notebook_timeout)
    rows = []
    for ex in lesson.exercises:
        max_points = judge_records(lesson.clean[ex.label], lesson.clean[ex.label]).max_points
        if ex.label in missing:
            status, points, message = "not_attempted", 0, f"the answer cell of {ex.label} is missing"
        else:
            status, points, message = grade_exercise(lesson, ex, run_nb, states)
        change = tampering(nb, lesson, ex)
        if change:
            message = f"the check cell was {change}; the original check gives: {status} ({_number(points)})"
            status, points = "tampered", 0
        rows.append(Row(name, lesson.stem, ex.label, status, points, max_points, message))
    return rows


# --------------------------------------------------------------------------- reports


def summary(rows: Sequence[Row]) -> str:
    """Points per submission, then how many passed each exercise."""
    lines = ["Per submission:"]
    by_submission: dict[str, list[Row]] = {}
    for row in rows:
        by_submission.setdefault(row.submission, []).append(row)
    for name, own in by_submission.items():
        if own[0].status == "invalid":
            lines.append(f"  {name}: invalid ({own[0].message})")
            continue
        got, best = sum(r.points for r in own), sum(float(r.max_points or 0) for r in own)
        lines.append(f"  {name} ({own[0].lesson}): {_number(round(got, 2))} / {_number(best)} points")
    lines.append("Per exercise (passed / graded):")
    by_exercise: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.status != "invalid":
            by_exercise.setdefault((row.lesson, row.exercise), []).append(row)
    for (lesson, exercise), own in sorted(by_exercise.items()):
        lines.append(f"  {lesson} {exercise}: {sum(r.status == 'passed' for r in own)} / {len(own)}")
    return "\n".join(lines)


RESULT_WORDS = {
    "passed": "right", "failed": "wrong answer", "not_attempted": "not attempted", "error": "error",
    "timeout": "ran past the time limit", "tampered": "the check cell was changed or deleted",
    "invalid": "not gradable",
}


def feedback(rows: Sequence[Row]) -> str:
    """A learner's report in Markdown: each exercise's status, points and message (with its hint)."""
    first = rows[0]
    lines = [f"# Feedback: {Path(first.submission).name}", ""]
    if first.status == "invalid":
        return "\n".join(lines + [f"This file could not be graded: {first.message}.", ""])
    got, best = sum(r.points for r in rows), sum(float(r.max_points or 0) for r in rows)
    lines += [f"Lesson `{first.lesson}`: **{_number(round(got, 2))} of {_number(best)} points**.", "",
              "| exercise | result | points |", "|---|---|---|"]
    lines += [f"| {r.exercise} | {RESULT_WORDS[r.status]} | {_number(r.points)} / {_number(r.max_points)} |" for r in rows]
    for r in rows:
        if r.message:
            lines += ["", f"## {r.exercise}: {RESULT_WORDS[r.status]}", "", "```", r.message, "```"]
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def feedback_name(submission: str, root: Path) -> str:
    """The report's file name: the submission's path, folders joined by ``__``."""
    path = Path(submission).resolve()
    try:
        path = path.relative_to(root)
    except ValueError:
        pass
    return "__".join(path.with_suffix("").parts[-3:]) + ".md"


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlib.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", nargs="+", help="learner notebooks, or folders of them")
    parser.add_argument("--out", required=True, help="the gradebook CSV (rewritten; rows appended as graded)")
    parser.add_argument("--feedback", help="a folder for one Markdown report per submission")
    parser.add_argument("--lessons", help="the solution notebooks (default: notebooks/ of the working directory)")
    parser.add_argument("--hidden", help=f"a Python file of HIDDEN_CASES (default: {HIDDEN})")
    parser.add_argument("--no-hidden", action="store_true",
                        help="grade on the visible checks alone (an answer fitted to them passes)")
    parser.add_argument("--cell-timeout", type=float, default=60,
                        help="seconds per answer cell and per check (default: %(default)s)")
    parser.add_argument("--notebook-timeout", type=float, default=1200,
                        help="seconds per notebook (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.hidden and args.no_hidden:
        parser.error("--hidden and --no-hidden contradict each other: give one")
    hidden_path = Path(args.hidden) if args.hidden else HIDDEN
    if not args.no_hidden and not hidden_path.is_file():
        parser.error(f"no hidden cases at {hidden_path}: give --hidden the instructor's HIDDEN_CASES file, "
                     f"or --no-hidden to grade on the visible checks alone")
    try:
        folder = Path(args.lessons) if args.lessons else course_folder("notebooks")
        lessons = discover_lessons(folder, None if args.no_hidden else load_hidden(hidden_path))
    except (OSError, ValueError) as err:
        parser.error(str(err))
    if not lessons:
        parser.error(f"{folder}: no notebook with exercises there (give --lessons the solution notebooks)")
    try:
        paths = submissions(args.submissions)
    except FileNotFoundError as err:
        parser.error(str(err))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = Path.cwd().resolve()
    graded: list[Row] = []
    with out.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for path in paths:
            print(f"grading {path}", file=sys.stderr, flush=True)
            rows = grade_submission(path, lessons, args.cell_timeout, args.notebook_timeout)
            writer.writerows(row.as_list() for row in rows)
            file.flush()
            os.fsync(file.fileno())
            if args.feedback:
                _write_atomically(Path(args.feedback) / feedback_name(str(path), root), feedback(rows))
            graded += rows
    print(summary(graded))
    return 0


if __name__ == "__main__":
    sys.exit(main())
