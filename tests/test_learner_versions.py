"""The learner-notebook generator, and the self-check mechanism under nbval.

The mechanism tests run ``pytest --nbval`` in a subprocess on ``tests/fixtures/
grading_solution.ipynb`` (committed executed; after editing it, re-execute it with
``jupyter nbconvert --to notebook --execute --inplace tests/fixtures/grading_solution.ipynb``).
``test_course_notebook_learner_version`` does the same for every course notebook with
exercises; it runs each notebook once under the smoke profile, so it is marked ``slow``, and
``make portability`` runs it under the second numeric configuration (the environment passes
through to the kernels), where every compared output of the lesson must come out the same.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbval_run import run_nbval

from cnnlib.grading.learner_versions import exercise_cells, learner_notebook, student_notebook

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "grading_solution.ipynb"


# --------------------------------------------------------------------------- the generator


def notebook(*cells):
    """A solution notebook from ("code"|"markdown", source) pairs; code cells look executed."""
    nb = nbformat.v4.new_notebook()
    for count, (kind, source) in enumerate(cells, start=1):
        if kind == "code":
            nb.cells.append(nbformat.v4.new_code_cell(source, execution_count=count, outputs=[
                nbformat.v4.new_output("stream", name="stdout", text=f"output {count}\n")]))
        else:
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
    return nb


def test_learner_notebook_replaces_regions_and_keeps_the_rest():
    solution = notebook(
        ("code", "import math"),
        ("markdown", "Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
        ("code", "def f(x):\n    y = x + 1\n    # square it, then\n    # add one\n    ### BEGIN SOLUTION\n"
                 "    return y * y + 1\n    ### END SOLUTION"),
        ("code", 'check_function(f, [(1, 5)], name="Exercise 1")'),
        ("code", '# Exercise 7: the answer "42"\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\n'
                 "g = 1\n\n### BEGIN SOLUTION\nmore = 1\n### END SOLUTION"),
        ("code", 'check_value("Exercise 7", answer, 42)'),
        ("code", "print('after')"),
    )
    learner, exercises = learner_notebook(solution)
    assert [(e.label, e.solution_cell, e.check_cell, e.solution_code, e.check_code) for e in exercises] == [
        ("Exercise 1", 2, 3, 1, 2), ("Exercise 7", 4, 5, 3, 4)]
    assert learner.cells[2].source == (
        "def f(x):\n    y = x + 1\n    # square it, then\n    # add one\n"
        '    raise NotImplementedError("Exercise 1: square it, then add one")'
    )
    assert learner.cells[4].source == (
        '# Exercise 7: the answer "42"\nraise NotImplementedError("Exercise 7: the answer \\"42\\"")\n'
        'g = 1\n\nraise NotImplementedError("Exercise 7: write your code here.")'
    )
    assert learner.cells[1].source == "Why?\nYOUR ANSWER HERE"
    for i in (2, 3, 4, 5):  # exercise and check cells: no stored verdict; nbval runs them, never compares
        assert learner.cells[i].outputs == [] and learner.cells[i].execution_count is None
    for i in (3, 5):  # check cells: the same code
        assert learner.cells[i].source == solution.cells[i].source
    for i in (0, 6):  # the others: exactly as stored
        assert learner.cells[i] == solution.cells[i]
    assert "BEGIN SOLUTION" in solution.cells[2].source  # the solution is left untouched


@pytest.mark.parametrize("cells, problem", [
    ([("code", "### BEGIN SOLUTION\nx = 1")], "without ### END SOLUTION"),
    ([("code", "x = 1\n### END SOLUTION")], "without ### BEGIN SOLUTION"),
    ([("code", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION")], "followed by a check cell"),
    ([("code", "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"), ("code", "print(x)")], "followed by a check cell"),
])
def test_malformed_exercises_are_refused(cells, problem):
    with pytest.raises(ValueError, match=problem):
        exercise_cells(notebook(*cells))


def test_learner_code_must_parse():
    solution = notebook(("code", "if True:\n### BEGIN SOLUTION\n    x = 1\n### END SOLUTION"),
                        ("code", 'check_value("Exercise 1", x, 1)'))
    with pytest.raises(ValueError, match="does not parse"):
        learner_notebook(solution)


def test_command_line_writes_every_notebook(tmp_path):
    src, dst = tmp_path / "notebooks", tmp_path / "exercises"
    src.mkdir()
    nbformat.write(nbformat.read(FIXTURE, as_version=4), src / "01_fixture.ipynb")
    nbformat.write(notebook(("code", "print(1)")), src / "02_plain.ipynb")
    done = subprocess.run([sys.executable, "-m", "cnnlib.grading.learner_versions", str(src), str(dst)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [f"{dst / '01_fixture.ipynb'}: 2 exercises",
                                        f"{dst / '02_plain.ipynb'}: 0 exercises"]
    assert "NotImplementedError" in (dst / "01_fixture.ipynb").read_text()
    plain = nbformat.read(dst / "02_plain.ipynb", as_version=4)
    assert plain.metadata.pop("cnnlib") == {"lesson": "02_plain"}  # for the grader
    assert plain == nbformat.read(src / "02_plain.ipynb", as_version=4)


# --------------------------------------------------------------------------- the mechanism under nbval


def assert_fails_exactly_at_exercises(exercises, results, n_code_cells):
    """The untouched learner notebook fails at its exercises, at each of them, and nowhere else."""
    assert sorted(results) == list(range(n_code_cells)), "nbval did not report every code cell"
    exercise_code_cells = {i for e in exercises for i in (e.solution_code, e.check_code)}
    failed = {i for i, r in results.items() if r.outcome in ("failed", "error")}
    assert failed <= exercise_code_cells, {i: results[i].message[-800:] for i in failed - exercise_code_cells}
    for e in exercises:
        assert {e.solution_code, e.check_code} & failed, f"{e.label} does not fail in the learner notebook"


def fill_in(learner, answers):
    """Replace each exercise's `raise NotImplementedError("<label>: ...")` line by the answer's lines."""
    filled = nbformat.from_dict(learner)
    for label, code in answers.items():
        pattern = re.compile(rf'^([ \t]*)raise NotImplementedError\("{label}:.*$', re.MULTILINE)
        cell = next(c for c in filled.cells if c.cell_type == "code" and pattern.search(c.source))
        cell.source = pattern.sub(lambda m: "\n".join(m.group(1) + line for line in code.splitlines()), cell.source)
    return filled


@pytest.fixture(scope="module")
def fixture_learner(tmp_path_factory):
    path = tmp_path_factory.mktemp("learner") / "grading_learner.ipynb"
    exercises = student_notebook(FIXTURE, path)
    return path, exercises


def test_solution_notebook_passes_nbval():
    results = run_nbval(FIXTURE)
    assert len(results) == 10
    assert {i: r.outcome for i, r in results.items() if r.outcome != "passed"} == {}


def test_untouched_learner_notebook_fails_exactly_at_its_exercises(fixture_learner):
    path, exercises = fixture_learner
    results = run_nbval(path)
    assert_fails_exactly_at_exercises(exercises, results, 10)
    failed = {i for i, r in results.items() if r.outcome == "failed"}
    assert failed == {5, 7, 8}  # Exercise 1's check; Exercise 2's cell and check
    assert "Exercise 1 is not done yet: return the output size of a convolution" in results[5].message
    assert "NotImplementedError: Exercise 2: how many weights" in results[7].message


WRONG = {"Exercise 1": "return (n - k) // s + 1", "Exercise 2": "weights = 3 * 3 * 16"}
RIGHT = {"Exercise 1": "return (n + 2 * p - k) // s + 1", "Exercise 2": "weights = 16 * 32 * 9"}


@pytest.mark.parametrize("answers, failures", [
    (RIGHT, {}),
    (WRONG, {5: "Exercise 1: out_size(8, 3, 2, 1) returned 3, expected 4.\nHint: o = floor((n + 2p - k) / s) + 1",
             8: "Exercise 2: got 144, which is not the expected answer.\nHint: kernel height x kernel width"}),
], ids=["right", "wrong"])
def test_filled_in_learner_notebook_is_graded_by_its_checks(fixture_learner, tmp_path, answers, failures):
    path, _ = fixture_learner
    filled = tmp_path / "filled.ipynb"
    nbformat.write(fill_in(nbformat.read(path, as_version=4), answers), filled)
    results = run_nbval(filled)
    assert {i for i, r in results.items() if r.outcome != "passed"} == set(failures)
    for i, text in failures.items():
        assert text in results[i].message


# --------------------------------------------------------------------------- the course notebooks


def course_notebooks_with_exercises():
    return [pytest.param(p, id=p.name) for p in sorted((REPO / "notebooks").glob("0*.ipynb"))
            if "### BEGIN SOLUTION" in p.read_text()]


@pytest.mark.parametrize("solution", course_notebooks_with_exercises())
def test_course_notebook_exercises_are_well_formed(solution, tmp_path):
    """Each exercise has a check cell whose stored output is its verdict; the learner version parses."""
    nb = nbformat.read(solution, as_version=4)
    exercises = student_notebook(solution, tmp_path / solution.name)
    assert exercises
    for e in exercises:
        outputs = nb.cells[e.check_cell].outputs
        assert not any(o.output_type == "error" for o in outputs), f"{e.label}: the stored check failed"
        verdict = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        assert " passed" in verdict, f"{e.label}: the check cell has no stored verdict; execute the notebook"
    learner = nbformat.read(tmp_path / solution.name, as_version=4)
    assert learner.metadata.cnnlib.lesson == solution.stem
    for e in exercises:  # no verdict the learner has not earned, no output of the answer
        for index in (e.solution_cell, e.check_cell):
            assert learner.cells[index].outputs == [] and learner.cells[index].execution_count is None


@pytest.mark.slow
@pytest.mark.parametrize("solution", course_notebooks_with_exercises())
def test_course_notebook_learner_version(solution, tmp_path):
    """Each lesson's learner version, untouched, fails at exactly its exercises under nbval.

    The solution notebooks themselves are run by the main nbval job
    (``pytest --nbval notebooks/ ...``); the learner version filled with the solutions is the
    solution notebook, so this one run completes the mechanism for every lesson.
    """
    learner = tmp_path / solution.name
    exercises = student_notebook(solution, learner)
    n_code_cells = sum(c.cell_type == "code" for c in nbformat.read(solution, as_version=4).cells)
    # The learner version runs in a temporary folder: it reads the committed results of this checkout.
    results = run_nbval(learner, env={"CNNLIB_PROFILE": os.environ.get("CNNLIB_PROFILE", "smoke"),
                                      "CNNLIB_RESULTS": str(REPO / "results")})
    assert_fails_exactly_at_exercises(exercises, results, n_code_cells)


def lessons_with_hidden_cases():
    from cnnlib.grading.lessons import load_hidden

    return sorted(load_hidden(REPO / "instructor" / "hidden_cases.py"))


@pytest.mark.slow
@pytest.mark.parametrize("stem", lessons_with_hidden_cases())
def test_each_lessons_solution_passes_its_visible_and_hidden_checks(stem):
    """The solution, run as the grader runs a submission (recordings of the check and its
    hidden cases in place of each check cell), passes every case of every exercise."""
    from cnnlib.grading.judging import judge_records
    from cnnlib.grading.kernel import run_lesson
    from cnnlib.grading.lessons import discover_lessons, load_hidden
    from cnnlib.grading.recorder import records_of

    hidden = load_hidden(REPO / "instructor" / "hidden_cases.py")
    lesson = discover_lessons(REPO / "notebooks", hidden)[stem]
    nb, run = run_lesson(lesson, lesson.solution_answers(), cell_timeout=600, notebook_timeout=3000)
    for ex in lesson.exercises:
        records = records_of(nb.cells[ex.check_cell])
        assert records is not None, f"{stem} {ex.label}: the check did not run ({run.states.get(ex.check_cell)})"
        assert "visible_error" not in records and "hidden_error" not in records, (stem, ex.label, records)
        assert records["visible"] and bool(records["hidden"]) == bool(lesson.hidden(ex.label)), (stem, ex.label)
        verdict = judge_records(records, records)
        assert verdict.failures == [] and verdict.passed == verdict.total > 0, (stem, ex.label, verdict.failures[:1])
