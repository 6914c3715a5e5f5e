"""The grader's reports: the gradebook's rows, the class summary and each learner's feedback.

Gradebook columns: :data:`COLUMNS`, one row per (submission, exercise), or one row for a
submission that is ``invalid`` (not a notebook, corrupt, or of no lesson). A row's status is
one of :data:`RESULT_WORDS`; ``tampered`` means the submission's check cell was deleted or
changed (graded 0, the message says what the original check gave). A gradebook graded where no
sandbox could be had starts with a ``not_sandboxed`` row that says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlib.files import atomic_open

COLUMNS = ("submission", "lesson", "exercise", "status", "points", "max_points", "message")
RESULT_WORDS = {
    "passed": "right", "failed": "wrong answer", "not_attempted": "not attempted", "error": "error",
    "timeout": "ran past the time limit", "tampered": "the check cell was changed or deleted",
    "invalid": "not gradable",
}


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
        return [self.submission, self.lesson, self.exercise, self.status, number(self.points),
                number(self.max_points), self.message]


def number(x: Any) -> Any:
    """``x``, as an int when it is a whole float (``2.0`` is written ``2``)."""
    return int(x) if isinstance(x, float) and x.is_integer() else x


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
        lines.append(f"  {name} ({own[0].lesson}): {number(round(got, 2))} / {number(best)} points")
    lines.append("Per exercise (passed / graded):")
    by_exercise: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if row.status != "invalid":
            by_exercise.setdefault((row.lesson, row.exercise), []).append(row)
    for (lesson, exercise), own in sorted(by_exercise.items()):
        lines.append(f"  {lesson} {exercise}: {sum(r.status == 'passed' for r in own)} / {len(own)}")
    return "\n".join(lines)


def feedback(rows: Sequence[Row]) -> str:
    """A learner's report in Markdown: each exercise's status, points and message (with its hint)."""
    first = rows[0]
    lines = [f"# Feedback: {Path(first.submission).name}", ""]
    if first.status == "invalid":
        return "\n".join(lines + [f"This file could not be graded: {first.message}.", ""])
    got, best = sum(r.points for r in rows), sum(float(r.max_points or 0) for r in rows)
    lines += [f"Lesson `{first.lesson}`: **{number(round(got, 2))} of {number(best)} points**.", "",
              "| exercise | result | points |", "|---|---|---|"]
    lines += [f"| {r.exercise} | {RESULT_WORDS[r.status]} | {number(r.points)} / {number(r.max_points)} |" for r in rows]
    for r in rows:
        if r.message:
            lines += ["", f"## {r.exercise}: {RESULT_WORDS[r.status]}", "", "```", r.message, "```"]
    return "\n".join(lines) + "\n"


def feedback_name(submission: str, root: Path) -> str:
    """The report's file name: the submission's path, folders joined by ``__``."""
    path = Path(submission).resolve()
    try:
        path = path.relative_to(root)
    except ValueError:
        pass
    return "__".join(path.with_suffix("").parts[-3:]) + ".md"


def write_feedback(folder: Path, submission: str, rows: Sequence[Row], root: Path) -> None:
    """Write the learner's report into ``folder`` in one step (:func:`cnnlib.files.atomic_open`)."""
    with atomic_open(Path(folder) / feedback_name(submission, root), "w", encoding="utf-8") as f:
        f.write(feedback(rows))
