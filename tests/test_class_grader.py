"""The grader on a class built from lesson 01's learner version: the gradebook row by row.

One run of ``python -m cnnlib.grade`` over the whole class: the lesson's clean run and nine
learner runs, each in a fresh kernel under the smoke profile (10 to 17 CPU seconds each on
a 2-core EPYC, 20 s more for the endless loop), then tests of the pieces, most without a
kernel.
"""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cnnlib.grading.learner_versions import learner_notebook
from cnnlib.grading.gradebook import feedback_name
from cnnlib.grading.judging import judge_records
from cnnlib.grading.kernel import execute
from cnnlib.grading.lessons import discover_lessons, identify, load_hidden, tampering
from cnnlib.models.layers import receptive_field

# Tests that start kernels, JupyterLab or Chromium share one pytest-xdist worker (--dist loadgroup):
# run side by side on two cores, the grader's and the browser's tests failed each other (seen once).
pytestmark = pytest.mark.xdist_group("kernels")

REPO = Path(__file__).resolve().parent.parent
LESSON = REPO / "notebooks" / "01_convolution_arithmetic.ipynb"

WRONG_OUT_SIZE = "    return (n - kernel) // stride + 1  # no padding, no dilation"
PATCHES = """\
import builtins, sys, types
import cnnlib.grading.checks

def check_function(*args, name="Exercise 1", **kwargs):
    print(name, "passed: out_size agrees on 810 cases.")

cnnlib.grading.checks.check_function = check_function
sys.modules["cnnlib.grading.checks"] = types.SimpleNamespace(check_function=check_function)

class NeverRaised(Exception):
    pass

builtins.AssertionError = NeverRaised
"""
VISIBLE_FIELDS = [[(3, 1)], [(3, 1)] * 3, [(2, 2), (3, 1)], [(3, 2), (3, 2), (3, 2)],
                  [(7, 2), (3, 2), (3, 1), (3, 1), (3, 1), (3, 1)],
                  [(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)]]


def solution_answer(solution, label):
    """The solution's answer cell of ``label``, markers removed (what a right learner writes)."""
    ex = next(e for e in _exercises(solution) if e.label == label)
    return "\n".join(line for line in solution.cells[ex.solution_cell].source.splitlines() if "### " not in line)


def _exercises(nb):
    return learner_notebook(nb)[1]


def answered(learner, solution, answers):
    """A copy of the learner version with the answer cells of ``answers`` (label: source or
    "solution") filled in."""
    nb = nbformat.from_dict(learner)
    for ex in _exercises(solution):
        if ex.label in answers:
            text = answers[ex.label]
            nb.cells[ex.solution_cell].source = solution_answer(solution, ex.label) if text == "solution" else text
    return nb


def replace_in_answer(solution, label, old, new):
    source = solution_answer(solution, label)
    assert old in source
    return source.replace(old, new)


def build_class(folder):
    """The test class: one notebook per case of the gradebook below."""
    solution = nbformat.read(LESSON, as_version=4)
    learner, exercises = learner_notebook(solution, lesson=LESSON.stem)
    check = {e.label: e.check_cell for e in exercises}
    right = {e.label: "solution" for e in exercises}
    fitted = {repr(layers): receptive_field(layers) for layers in VISIBLE_FIELDS}
    notebooks = {
        "alice_right": answered(learner, solution, right),
        "bob_untouched": learner,
        "carol_one_wrong": answered(learner, solution, {**right, "Exercise 3": replace_in_answer(
            solution, "Exercise 3", "jump *= stride", "jump *= 1")}),
        "dave_deleted_check": answered(learner, solution, right),
        "erin_changed_check": answered(learner, solution, {**right, "Exercise 1": replace_in_answer(
            solution, "Exercise 1", "    return (n + 2 * padding - span) // stride + 1", WRONG_OUT_SIZE)}),
        "frank_patches_checks": answered(learner, solution, {**right, "Exercise 1": PATCHES + replace_in_answer(
            solution, "Exercise 1", "    return (n + 2 * padding - span) // stride + 1", WRONG_OUT_SIZE)}),
        "grace_fitted": answered(learner, solution, {**right, "Exercise 3": (
            f"def receptive_field_of(layers):\n    return {fitted!r}[repr(layers)]")}),
        "heidi_endless_loop": answered(learner, solution, {**right, "Exercise 2": (
            "def conv2d_loops(x, weight, bias, stride=1, padding=0):\n    while True:\n        pass")}),
        "ivan_kernel_crash": answered(learner, solution, {**right, "Exercise 3": "import os\nos._exit(1)"}),
    }
    del notebooks["dave_deleted_check"].cells[check["Exercise 2"]]
    notebooks["erin_changed_check"].cells[check["Exercise 1"]].source = (
        'print("Exercise 1 passed: out_size agrees on 810 cases.")')
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    (folder / "judy_corrupt.ipynb").write_text(json.dumps(nbformat.v4.writes(learner))[:5000])
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Week 3: sorting"),
                                            nbformat.v4.new_code_cell("def bubble_sort(xs):\n    return sorted(xs)")])
    nbformat.write(other, folder / "mallory_other_course.ipynb")


L, E = "01_convolution_arithmetic", ("Exercise 1", "Exercise 2", "Exercise 3", "Exercise 4")
EXPECTED = [  # submission, exercise, status, points, max_points, message (a regular expression)
    ("alice_right", E[0], "passed", "2", "2", ""),
    ("alice_right", E[1], "passed", "1", "1", ""),
    ("alice_right", E[2], "passed", "1", "1", ""),
    ("alice_right", E[3], "passed", "1", "1", ""),
    ("bob_untouched", E[0], "not_attempted", "0", "2", r"Exercise 1 is not done yet: return the output size"),
    ("bob_untouched", E[1], "not_attempted", "0", "1", r"Exercise 2 is not done yet: compute F\.conv2d"),
    ("bob_untouched", E[2], "not_attempted", "0", "1", r"Exercise 3 is not done yet: return the receptive field"),
    ("bob_untouched", E[3], "not_attempted", "0", "1", r"Exercise 4 is not done yet: return how many positions"),
    ("carol_one_wrong", E[0], "passed", "2", "2", ""),
    ("carol_one_wrong", E[1], "passed", "1", "1", ""),
    ("carol_one_wrong", E[2], "failed", "0", "1",
     r"^Exercise 3: receptive_field_of\(\[\(2, 2\), \(3, 1\)\]\) returned 4, expected 6\.\nHint: keep a running 'jump'"
     r".*\(4 of 11 cases right\)$"),
    ("carol_one_wrong", E[3], "passed", "1", "1", ""),
    ("dave_deleted_check", E[0], "passed", "2", "2", ""),
    ("dave_deleted_check", E[1], "tampered", "0", "1", r"^the check cell was deleted; the original check gives: passed \(1\)$"),
    ("dave_deleted_check", E[2], "passed", "1", "1", ""),
    ("dave_deleted_check", E[3], "passed", "1", "1", ""),
    ("erin_changed_check", E[0], "tampered", "0", "2",
     r"^the check cell was changed; the original check gives: failed \(0\.93\)$"),
    ("erin_changed_check", E[1], "passed", "1", "1", ""),
    ("erin_changed_check", E[2], "passed", "1", "1", ""),
    ("erin_changed_check", E[3], "passed", "1", "1", ""),
    ("frank_patches_checks", E[0], "failed", r"0\.93", "2",  # partial credit: 379 of 817 cases, of 2 points
     r"^Exercise 1: out_size\(1, 1, 1, 1, 1\) returned 1, expected 3\.\nHint: .*\(379 of 817 cases right\)$"),
    ("frank_patches_checks", E[1], "passed", "1", "1", ""),
    ("frank_patches_checks", E[2], "passed", "1", "1", ""),
    ("frank_patches_checks", E[3], "passed", "1", "1", ""),
    ("grace_fitted", E[0], "passed", "2", "2", ""),
    ("grace_fitted", E[1], "passed", "1", "1", ""),
    ("grace_fitted", E[2], "error", "0", "1", r"^hidden case: Exercise 3: receptive_field_of\(\[\]\) raised KeyError: '\[\]'.*\(6 of 11 cases right\)$"),
    ("grace_fitted", E[3], "passed", "1", "1", ""),
    ("heidi_endless_loop", E[0], "passed", "2", "2", ""),
    ("heidi_endless_loop", E[1], "timeout", "0", "1", r"time limit"),
    ("heidi_endless_loop", E[2], "passed", "1", "1", ""),
    ("heidi_endless_loop", E[3], "passed", "1", "1", ""),
    ("ivan_kernel_crash", E[0], "passed", "2", "2", ""),
    ("ivan_kernel_crash", E[1], "passed", "1", "1", ""),
    ("ivan_kernel_crash", E[2], "error", "0", "1", r"^the kernel died while running the answer cell$"),
    ("ivan_kernel_crash", E[3], "error", "0", "1", r"^not graded: the kernel died before this exercise$"),
    ("judy_corrupt", "", "invalid", "0", "", r"^not a readable notebook"),
    ("mallory_other_course", "", "invalid", "0", "", r"^a notebook of no lesson of this course"),
]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class, graded once: (gradebook rows, stdout, feedback folder)."""
    root = tmp_path_factory.mktemp("class")
    build_class(root / "submissions")
    out, feedback = root / "grades.csv", root / "feedback"
    env = {**os.environ, "CNNLIB_PROFILE": os.environ.get("CNNLIB_PROFILE", "smoke"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "cnnlib.grade", str(root / "submissions"), "--out", str(out),
                           "--feedback", str(feedback), "--cell-timeout", "20", "--lessons", str(REPO / "notebooks"),
                           "--hidden", str(REPO / "instructor" / "hidden_cases.py")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with out.open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["status"] != "not_sandboxed"]  # where bwrap is missing
    return rows, done.stdout, feedback


def test_gradebook_row_by_row(graded):
    rows, _, _ = graded
    got = [(Path(r["submission"]).stem, r["exercise"], r["status"], r["points"], r["max_points"], r["message"])
           for r in rows]
    assert [g[:3] for g in got] == [e[:3] for e in EXPECTED], "\n".join(f"{g[0]} {g[1]}: {g[2]}: {g[5]}" for g in got)
    for g, e in zip(got, EXPECTED):
        assert re.fullmatch(e[3], g[3]) and g[4] == e[4], (g, e)
        assert re.search(e[5], g[5], re.DOTALL) if e[5] else g[5] == "", (g, e)
        assert all(r["lesson"] == (L if r["status"] != "invalid" else "") for r in rows)


def test_summary_and_feedback(graded):
    rows, stdout, feedback = graded
    assert re.search(r"alice_right\.ipynb \(01_convolution_arithmetic\): 5 / 5 points", stdout)
    assert re.search(r"bob_untouched\.ipynb \(01_convolution_arithmetic\): 0 / 5 points", stdout)
    assert "01_convolution_arithmetic Exercise 1: 6 / 9" in stdout
    assert "01_convolution_arithmetic Exercise 2: 6 / 9" in stdout
    assert "01_convolution_arithmetic Exercise 3: 5 / 9" in stdout
    assert "01_convolution_arithmetic Exercise 4: 7 / 9" in stdout
    reports = sorted(p.name for p in feedback.iterdir())
    assert len(reports) == 11 and all(r.endswith(".md") for r in reports)
    carol = next(feedback.glob("*carol_one_wrong.md")).read_text()
    assert "**4 of 5 points**" in carol and "| Exercise 3 | wrong answer | 0 / 1 |" in carol
    assert "Hint: keep a running 'jump'" in carol


# --------------------------------------------------------------------------- without a kernel


@pytest.fixture(scope="module")
def lesson():
    return discover_lessons(REPO / "notebooks")[L]


def test_lessons_are_discovered_from_the_folder(lesson):
    stems = [p.stem for p in sorted((REPO / "notebooks").glob("*.ipynb")) if "### BEGIN SOLUTION" in p.read_text()]
    assert list(discover_lessons(REPO / "notebooks")) == stems
    assert [e.label for e in lesson.exercises] == list(E)


def test_a_submission_is_identified_by_metadata_name_or_cell_ids(lesson, tmp_path):
    lessons = {L: lesson}
    learner, _ = learner_notebook(lesson.nb, lesson=L)
    assert identify(learner, tmp_path / "anything.ipynb", lessons) is lesson
    del learner.metadata["cnnlib"]
    assert identify(learner, tmp_path / f"{L}.ipynb", lessons) is lesson
    assert identify(learner, tmp_path / "renamed.ipynb", lessons) is lesson  # by cell ids
    for cell in learner.cells:
        cell.id = "x" + cell.id
    assert identify(learner, tmp_path / "renamed.ipynb", lessons) is None


def test_tampering_is_found_by_cell_identity_not_position(lesson):
    learner, exercises = learner_notebook(lesson.nb)
    moved = nbformat.from_dict(learner)
    moved.cells.insert(0, nbformat.v4.new_code_cell("x = 1"))  # every position shifts
    assert [tampering(moved, lesson, e) for e in exercises] == ["", "", "", ""]
    moved.cells[exercises[1].check_cell + 1].source += "\nprint('and more')"
    del moved.cells[exercises[2].check_cell + 1]
    assert [tampering(moved, lesson, e) for e in exercises] == ["", "changed", "deleted", ""]


def test_partial_credit_is_the_share_of_cases_passed(lesson):
    from cnnlib.grading import checks

    with checks.recording() as visible:
        checks.check_function(abs, [(-1, 1), (2, 2), (-3, 0), (4, 4)], name="Exercise 9", points=3, partial=True)
        checks.check_value("Exercise 9", 2, 2, points=1)
    records = {"visible": visible, "hidden": []}
    verdict = judge_records(records, records)
    assert (verdict.passed, verdict.total, verdict.max_points, verdict.partial) == (4, 5, 4.0, True)
    assert verdict.failures[0].message == "Exercise 9: abs(-3) returned 3, expected 0."


def test_a_notebook_runs_on_past_a_timeout_and_stops_where_its_kernel_died():
    cells = ["import os\nprint(os.getpid())", "while True:\n    pass", "print('after')", "1 / 0", "os._exit(1)", "print('never')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    run = execute(nb, REPO, timed_cells={1}, cell_timeout=3, notebook_timeout=120)
    assert run.states == {0: "ok", 1: "timeout", 2: "ok", 3: "error:ZeroDivisionError", 4: "dead", 5: "not_run"}
    assert nb.cells[2].outputs[0]["text"] == "after\n"
    pid = int(nb.cells[0].outputs[0]["text"])
    with pytest.raises(ProcessLookupError):  # no kernel is left behind
        os.kill(pid, 0)


def test_feedback_names_keep_folders_apart(tmp_path):
    assert feedback_name(str(tmp_path / "alice" / "01.ipynb"), tmp_path) == "alice__01.md"
    assert feedback_name(str(tmp_path / "bob" / "01.ipynb"), tmp_path) == "bob__01.md"


def test_hidden_cases_can_come_from_the_instructors_file(tmp_path):
    mine = tmp_path / "my_cases.py"
    mine.write_text(f"HIDDEN_CASES = {{{L!r}: {{'Exercise 2': 'check_value(\\'Exercise 2\\', 1, 1)'}}}}\n")
    lessons = discover_lessons(REPO / "notebooks", load_hidden(mine))
    assert lessons[L].hidden("Exercise 2") == "check_value('Exercise 2', 1, 1)" and lessons[L].hidden("Exercise 1") == ""
    (tmp_path / "empty.py").write_text("CASES = {}\n")
    with pytest.raises(ValueError, match="defines no HIDDEN_CASES"):
        load_hidden(tmp_path / "empty.py")


def test_every_hidden_case_names_a_lesson_and_an_exercise_and_compiles():
    HIDDEN_CASES = load_hidden(REPO / "instructor" / "hidden_cases.py")

    lessons = discover_lessons(REPO / "notebooks")
    for stem, cases in HIDDEN_CASES.items():
        assert stem in lessons, f"hidden cases for {stem}, which is no lesson with exercises"
        assert set(cases) <= {e.label for e in lessons[stem].exercises}, stem
        for label, code in cases.items():
            compile(code, f"{stem} {label}", "exec")


def test_a_small_lesson_graded_in_process(tmp_path):
    """The test fixture as a lesson (no torch, seconds): stubs inside a function and at the top
    of a cell are both "not attempted"; a wrong value fails with the check's own message."""
    from cnnlib.grading.class_grader import grade_submission

    lessons = discover_lessons(REPO / "tests" / "fixtures")
    lesson = lessons["grading_solution"]
    learner, exercises = learner_notebook(lesson.nb, lesson="grading_solution")
    nbformat.write(learner, tmp_path / "untouched.ipynb")
    wrong = nbformat.from_dict(learner)
    wrong.cells[exercises[1].solution_cell].source = "weights = 3 * 3 * 16\nweights"
    nbformat.write(wrong, tmp_path / "wrong.ipynb")
    rows = [grade_submission(tmp_path / name, lessons, 30, 120).rows for name in ("untouched.ipynb", "wrong.ipynb")]
    assert [(r.exercise, r.status, r.points, r.max_points, r.message) for r in rows[0]] == [
        ("Exercise 1", "not_attempted", 0, 1.0, "Exercise 1 is not done yet: return the output size of a convolution "
         "over n inputs with kernel k, stride s and padding p. (replace the `raise NotImplementedError(...)` line "
         "with your code)"),
        ("Exercise 2", "not_attempted", 0, 1.0, "Exercise 2 is not done yet: how many weights (no bias) has a 3x3 "
         "convolution from 16 to 32 channels? (replace the `raise NotImplementedError(...)` line with your code)"),
    ]
    assert [(r.exercise, r.status, r.message) for r in rows[1]][1] == (
        "Exercise 2", "failed", "Exercise 2: got 144, which is not the expected answer.\n"
        "Hint: kernel height x kernel width x in channels x out channels. (0 of 1 cases right)")


def test_reports_of_a_lesson_that_cannot_be_graded():
    from cnnlib.grading.gradebook import Row, feedback, summary

    rows = [Row("a.ipynb", L, label, "error", 0, "", "the lesson cannot be graded: its check did not run")
            for label in E]
    assert "a.ipynb (01_convolution_arithmetic): 0 / 0 points" in summary(rows)
    assert "| Exercise 2 | error | 0 /  |" in feedback(rows) and "its check did not run" in feedback(rows)


def test_grading_in_parallel_gives_the_serial_gradebook_and_feedback(tmp_path):
    """The small fixture lesson's class, graded with one kernel at a time and with two: the same
    gradebook, feedback and summary, byte for byte (each submission's time goes to stderr)."""
    lesson = discover_lessons(REPO / "tests" / "fixtures")["grading_solution"]
    learner, exercises = learner_notebook(lesson.nb, lesson="grading_solution")
    folder = tmp_path / "submissions"
    folder.mkdir()
    answers = {"right": [solution_answer(lesson.nb, e.label) for e in exercises], "untouched": None,
               "wrong": [solution_answer(lesson.nb, "Exercise 1"), "weights = 3 * 3 * 16\nweights"],
               "crash": [solution_answer(lesson.nb, "Exercise 1"), "import os\nos._exit(1)"]}
    for name, sources in answers.items():
        nb = nbformat.from_dict(learner)
        for ex, source in zip(exercises, sources or []):
            nb.cells[ex.solution_cell].source = source
        nbformat.write(nb, folder / f"{name}.ipynb")
    (folder / "zz_corrupt.ipynb").write_text("{")
    env = {**os.environ, "CNNLIB_PROFILE": "smoke", "PYTHONPATH": str(REPO)}
    outputs = {}
    for jobs in (1, 2):
        done = subprocess.run([sys.executable, "-m", "cnnlib.grade", "submissions", "--out", f"grades{jobs}.csv",
                               "--feedback", f"feedback{jobs}", "--lessons", str(REPO / "tests" / "fixtures"),
                               "--no-hidden", "--jobs", str(jobs)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "5 submissions graded in" in done.stderr and re.search(r"right\.ipynb: [\d.]+ s, \d+ MiB", done.stderr)
        reports = {p.name: p.read_bytes() for p in (tmp_path / f"feedback{jobs}").iterdir()}
        outputs[jobs] = ((tmp_path / f"grades{jobs}.csv").read_bytes(), reports, done.stdout)
    assert outputs[1] == outputs[2]
    statuses = [row[3] for row in list(csv.reader(outputs[1][0].decode().splitlines(keepends=True)))[1:]
                if row[3] != "not_sandboxed"]
    assert statuses == ["passed", "error", "passed", "passed", "not_attempted", "not_attempted", "passed", "failed", "invalid"]
