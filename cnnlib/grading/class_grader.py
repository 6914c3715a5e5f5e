"""Grade a class: learner notebooks in, one gradebook row per (submission, exercise) out.

    python -m cnnlib.grade SUBMISSION... --out grades.csv [--feedback DIR] [--jobs N]

A submission (a notebook, or a folder searched for ``*.ipynb``) belongs to a lesson of
``notebooks/`` (``--lessons``; :mod:`cnnlib.grading.lessons`). For each lesson the submissions
need, the grader first runs the solution once (the *clean run*); then, for each submission,
a fresh kernel runs the lesson with the learner's answer cells in place of the solution's,
under a time limit per answer cell and per check, and one for the whole notebook
(:mod:`cnnlib.grading.kernel`), ``--jobs`` kernels at once. Each check cell is replaced by a
*recording* of the lesson's check and its hidden cases (:mod:`cnnlib.grading.recorder`): the
checks only record what the learner's code returned, and the verdict is computed in the
grader's process, against what the clean run expected (:mod:`cnnlib.grading.judging`). Rows
are appended to the gradebook in the order of the submissions, each as soon as it and those
before it are graded (:mod:`cnnlib.grading.gradebook`); the time and the kernel's peak memory
of each submission are reported on stderr at the end. The lessons run under the ``smoke``
profile unless ``CNNLIB_PROFILE`` says otherwise (the exercises do not depend on training
budgets). Every kernel runs in a sandbox (:mod:`cnnlib.grading.sandbox`) unless
``--no-sandbox`` is given; where no sandbox can be had, the grader says so at the top of its
output and in the gradebook's first row, and grades without one.

Threat model. Covered: a submission that edits or deletes check cells (they are taken from
the lesson, by cell id, and the change is reported); that edits any cell other than its
answer cells (only the answer cells are taken from a submission: the lesson's own cells run
around them, and the learner's extra cells are left out); that redefines ``check_function``
or other check names, patches ``cnnlib.grading.checks`` or replaces it in ``sys.modules`` (the
recorder and the checks are loaded afresh from their files, and the recorder binds the check
names itself); that patches ``AssertionError``, builtins, torch or the lesson's reference
functions (no verdict is computed in the learner's kernel; the expected values come from the
clean run); that fits its answer to the visible cases (hidden cases); that loops forever
(time limits, then an interrupt) or kills its kernel (``os._exit``, a crash: the exercises
checked before keep their rows); that reads the solutions, the hidden cases file, other
submissions or the gradebook, writes outside its scratch folder or opens a network
connection (the sandbox: such an answer raises, and its row says what). Not covered: code
that hooks the interpreter (IPython events, ``sys.settrace``, the display machinery) sees
the hidden cases and can report made-up results; without the sandbox, the learner's code
runs with the grader's rights and can do anything the grader's user can. The grader checks
results, not code: an answer that calls ``cnnlib``'s own implementation of the exercise passes.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from cnnlib.files import course_folder
from cnnlib.grading.gradebook import COLUMNS, Row, number, summary, write_feedback
from cnnlib.grading.judging import error_text, grade_exercise, judge_records
from cnnlib.grading.kernel import KernelRun, run_lesson
from cnnlib.grading.lessons import (Lesson, LessonError, default_hidden, discover_lessons, find_answer, identify,
                                    load_hidden, submissions, tampering)
from cnnlib.grading.recorder import records_of
from cnnlib.grading.sandbox import sandbox_problem


@dataclass
class Graded:
    """One submission, graded: its rows, and its kernel's run (None when no kernel ran)."""

    path: Path
    rows: list[Row]
    run: KernelRun | None = None


def clean_run(lesson: Lesson, cell_timeout: float, notebook_timeout: float, sandboxed: bool = False) -> None:
    """Run the solution once; keep each exercise's records; every check must pass on it."""
    nb, run = run_lesson(lesson, lesson.solution_answers(), cell_timeout, notebook_timeout, sandboxed)
    for ex in lesson.exercises:
        records = records_of(nb.cells[ex.check_cell])
        if records is None or any(part + "_error" in records for part in ("visible", "hidden")):
            problem = run.states.get(ex.check_cell) if records is None else records
            failed = [i for i in sorted(run.states) if i <= ex.check_cell and run.states[i] != "ok"]
            first = f" (the first cell that failed: cell {failed[0]}, {run.states[failed[0]]}: " \
                    f"{error_text(nb.cells[failed[0]])})" if failed else ""
            raise LessonError(f"{lesson.path}: the solution's check of {ex.label} did not run: {problem}{first}")
        verdict = judge_records(records, records)
        if verdict.failures:
            raise LessonError(f"{lesson.path}: the solution fails the checks of {ex.label}: "
                              f"{verdict.failures[0].message}")
        lesson.clean[ex.label] = records


def prepare(lesson: Lesson, cell_timeout: float, notebook_timeout: float, sandboxed: bool = False) -> None:
    """The lesson's clean run, once; a failure is kept as the lesson's problem."""
    if not lesson.clean and not lesson.problem:
        try:
            clean_run(lesson, cell_timeout, notebook_timeout, sandboxed)
        except LessonError as err:
            lesson.problem = str(err)


def _read(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    if not isinstance(nb.get("cells"), list):
        raise ValueError("it has no cells")
    return nb


def lesson_of(path: Path, lessons: dict[str, Lesson]) -> Lesson | None:
    """The lesson of the submission at ``path``, or None (unreadable, or of no lesson)."""
    try:
        return identify(_read(path), path, lessons)
    except Exception:
        return None


def grade_submission(path: Path, lessons: dict[str, Lesson], cell_timeout: float, notebook_timeout: float,
                     sandboxed: bool = False) -> Graded:
    """The gradebook rows of one submission (running its lesson's clean run if not done yet),
    its kernel in the sandbox if ``sandboxed``."""
    name = str(path)
    try:
        nb = _read(path)
    except Exception as err:
        return Graded(path, [Row(name, "", "", "invalid", 0, "",
                                 f"not a readable notebook: {type(err).__name__}: {err}"[:300])])
    lesson = identify(nb, path, lessons)
    if lesson is None:
        return Graded(path, [Row(name, "", "", "invalid", 0, "", "a notebook of no lesson of this course "
                                 "(no lesson in its metadata, file name or cell ids)")])
    prepare(lesson, cell_timeout, notebook_timeout, sandboxed)
    if lesson.problem:
        return Graded(path, [Row(name, lesson.stem, ex.label, "error", 0, "",
                                 f"the lesson cannot be graded: {lesson.problem}") for ex in lesson.exercises])
    answers, missing = {}, set()
    for ex in lesson.exercises:
        cell = find_answer(nb, lesson, ex)
        if cell is None:
            missing.add(ex.label)
        answers[ex.label] = cell.source if cell is not None else f'raise NotImplementedError("{ex.label}: missing")'
    run_nb, run = run_lesson(lesson, answers, cell_timeout, notebook_timeout, sandboxed)
    rows = []
    for ex in lesson.exercises:
        max_points = judge_records(lesson.clean[ex.label], lesson.clean[ex.label]).max_points
        if ex.label in missing:
            status, points, message = "not_attempted", 0, f"the answer cell of {ex.label} is missing"
        else:
            status, points, message = grade_exercise(lesson, ex, run_nb, run.states)
        change = tampering(nb, lesson, ex)
        if change:
            message = f"the check cell was {change}; the original check gives: {status} ({number(points)})"
            status, points = "tampered", 0
        rows.append(Row(name, lesson.stem, ex.label, status, points, max_points, message))
    return Graded(path, rows, run)


def usage_report(graded: Sequence[Graded], jobs: int, seconds: float) -> str:
    """Each submission's kernel time and peak resident memory, then the wall time of the class."""
    lines = ["Time and peak kernel memory per submission:"]
    for g in graded:
        if g.run is not None:
            memory = f"{g.run.peak_rss_bytes / 2**20:.0f} MiB" if g.run.peak_rss_bytes else "memory unknown"
            lines.append(f"  {g.path}: {g.run.seconds:.1f} s, {memory}")
    lines.append(f"{len(graded)} submissions graded in {seconds:.1f} s with {jobs} job{'s' * (jobs > 1)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlib.grade", description=__doc__.split("\n\n")[0])
    parser.add_argument("submissions", nargs="+", help="learner notebooks, or folders of them")
    parser.add_argument("--out", required=True, help="the gradebook CSV (rewritten; rows appended as graded)")
    parser.add_argument("--feedback", help="a folder for one Markdown report per submission")
    parser.add_argument("--lessons", help="the solution notebooks (default: notebooks/ of the working directory)")
    parser.add_argument("--hidden", help="a Python file of HIDDEN_CASES (default: instructor/hidden_cases.py of the course's folder)")
    parser.add_argument("--no-hidden", action="store_true",
                        help="grade on the visible checks alone (an answer fitted to them passes)")
    parser.add_argument("--cell-timeout", type=float, default=60,
                        help="seconds per answer cell and per check (default: %(default)s)")
    parser.add_argument("--notebook-timeout", type=float, default=1200,
                        help="seconds per notebook (default: %(default)s)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="submissions graded at once, each in its own kernel (default: %(default)s)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run the kernels without the bubblewrap sandbox (only for submissions you trust)")
    args = parser.parse_args(argv)
    if args.hidden and args.no_hidden:
        parser.error("--hidden and --no-hidden contradict each other: give one")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: give 1 or more kernels at once (at most the number of CPU cores is useful)")
    hidden_path = Path(args.hidden) if args.hidden else default_hidden()
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
    problem = "" if args.no_sandbox else sandbox_problem()
    if problem:
        print(f"WARNING: grading WITHOUT a sandbox: {problem}; the learners' code runs with your rights "
              f"(--no-sandbox makes this choice explicit)", flush=True)
    sandboxed = not args.no_sandbox and not problem
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    root = Path.cwd().resolve()
    start = time.monotonic()
    graded: list[Graded] = []
    with out.open("w", newline="", encoding="utf-8") as file, ThreadPoolExecutor(args.jobs) as pool:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        if problem:
            writer.writerow(Row("", "", "", "not_sandboxed", 0, "", f"graded without a sandbox: {problem}").as_list())
        needed = {id(lesson): lesson for lesson in (lesson_of(path, lessons) for path in paths) if lesson}
        list(pool.map(lambda lesson: prepare(lesson, args.cell_timeout, args.notebook_timeout, sandboxed),
                      needed.values()))

        def grade(path: Path) -> Graded:
            print(f"grading {path}", file=sys.stderr, flush=True)
            return grade_submission(path, lessons, args.cell_timeout, args.notebook_timeout, sandboxed)

        for submission in pool.map(grade, paths):
            writer.writerows(row.as_list() for row in submission.rows)
            file.flush()
            os.fsync(file.fileno())
            if args.feedback:
                write_feedback(Path(args.feedback), str(submission.path), submission.rows, root)
            graded.append(submission)
    print(summary([row for g in graded for row in g.rows]))
    print(usage_report(graded, args.jobs, time.monotonic() - start), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
