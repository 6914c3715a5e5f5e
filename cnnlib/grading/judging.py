"""Judge a learner's run against the clean run: each exercise's status, points and message.

The records a recording cell displayed (:mod:`cnnlib.grading.recorder`) hold, per check, the
spec (expected values, computed from the lesson's references) and what the learner's code
gave; the solution's run gives the specs that count. A case passes when
:func:`cnnlib.grading.checks.judge` finds no failure in it.

Status of an exercise: ``passed``, ``failed``, ``not_attempted`` (the ``NotImplementedError``
stub is left), ``error`` (the answer raised something else, or the kernel died) or
``timeout``. Points: each check declares ``points=`` (default 1); with ``partial=True`` a failed
exercise earns the share of its cases (visible and hidden) that passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlib.grading import checks
from cnnlib.grading.learner_versions import Exercise
from cnnlib.grading.lessons import Lesson
from cnnlib.grading.recorder import records_of


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
    """(status, points, message) of one exercise of an executed graded notebook (``states``:
    :attr:`cnnlib.grading.kernel.KernelRun.states`)."""
    clean = lesson.clean[ex.label]
    max_points = judge_records(clean, clean).max_points
    answer_state, check_state = states.get(ex.solution_cell, "not_run"), states.get(ex.check_cell, "not_run")
    answer_error = error_text(nb.cells[ex.solution_cell])
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
        return "error", 0, answer_error or f"the check did not run to its end: {error_text(nb.cells[ex.check_cell])}"
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


def error_text(cell: Any) -> str:
    """``name: message`` of the exception a cell's output shows, or ""."""
    name, message = _error(cell)
    return f"{name}: {message}" if name else ""
