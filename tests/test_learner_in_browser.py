"""A learner's first exercise of lesson 01, end to end, in a real JupyterLab driven by a headless Chromium.

The learner version of the lessons is generated with its command line; JupyterLab serves it
with the ``cnnlib`` kernel; the browser runs the cells above Exercise 1, enters an answer in
the answer cell, runs it and its check, and saves. A right answer's verdict is printed and the
saved notebook then grades as a learner's hand-in would: nbval passes Exercise 1's cells and
fails exactly at the exercises left undone, and ``python -m cnnlib.grade`` marks Exercise 1
``passed`` and the others ``not_attempted``. A wrong answer shows the check's hint instead.

Needs Debian's Chromium and PyPI's playwright; skipped without them (see ``tests/jupyterlab.py``).
"""

import ast
import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from lab_server import START_TIMEOUT_S, chromium_page, jupyterlab
from nbval_run import run_nbval
from playwright.sync_api import expect

from cnnlib.grading.learner_versions import BEGIN, END, Exercise, exercise_cells, student_notebook

# Tests that start kernels, JupyterLab or Chromium share one pytest-xdist worker (--dist loadgroup):
# run side by side on two cores, the grader's and the browser's tests failed each other (seen once).
pytestmark = pytest.mark.xdist_group("kernels")

REPO = Path(__file__).resolve().parent.parent  # the kernel imports this checkout's cnnlib
LESSON = REPO / "notebooks" / "01_convolution_arithmetic.ipynb"
KERNEL, KERNEL_DISPLAY_NAME = "cnnlib", "Python (cnnlib)"  # the lessons' kernelspec, as `make kernel` names it
RUN_TIMEOUT_MS = 120_000  # the cells above Exercise 1 (torch's import, figures), then the answer and its check
SMOKE = {"CNNLIB_PROFILE": "smoke", "CNNLIB_DATA": str(REPO / "data"), "OMP_NUM_THREADS": "1"}


# --------------------------------------------------------------------------- the lesson and its answers


def first_exercise() -> Exercise:
    return exercise_cells(nbformat.read(LESSON, as_version=4))[0]


def solution_body(source: str) -> list[str]:
    """The lines strictly between the solution markers of an answer cell."""
    lines = source.splitlines()
    begin = next(i for i, line in enumerate(lines) if line.strip() == BEGIN)
    end = next(i for i, line in enumerate(lines) if line.strip() == END)
    return lines[begin + 1:end]


def answered(learner_source: str, body: list[str]) -> str:
    """The learner's answer cell with its ``raise NotImplementedError(...)`` stub replaced by ``body``
    (lines indented as in the solution): what a learner who solved the exercise has in the cell."""
    stub = re.compile(r"^[ \t]*raise NotImplementedError\(.*$", re.MULTILINE)
    assert len(stub.findall(learner_source)) == 1, f"expected one stub in the answer cell:\n{learner_source}"
    return stub.sub(lambda _: "\n".join(body), learner_source)


def check_hint(check_source: str) -> str:
    """The ``hint=`` string the check cell passes to its check."""
    hints = [kw.value.value for node in ast.walk(ast.parse(check_source)) if isinstance(node, ast.Call)
             for kw in node.keywords if kw.arg == "hint" and isinstance(kw.value, ast.Constant)]
    assert len(hints) == 1, f"expected one hint= in the check cell:\n{check_source}"
    return hints[0]


# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def learner_versions(tmp_path_factory) -> Path:
    """The learner versions of the lessons, written by their command line into a fresh folder."""
    folder = tmp_path_factory.mktemp("exercises")
    subprocess.run([sys.executable, "-m", "cnnlib.grading.learner_versions", str(REPO / "notebooks"), str(folder)],
                   check=True, capture_output=True, text=True)
    assert (folder / LESSON.name).exists()
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory, learner_versions):
    """A JupyterLab serving the learner versions with the ``cnnlib`` kernel (registered for this
    server only, as `make kernel` does); yields its base URL."""
    home = tmp_path_factory.mktemp("jupyter")
    kernels = home / "kernels"
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(kernels), "--name", KERNEL,
                    "--display-name", KERNEL_DISPLAY_NAME], check=True, capture_output=True, text=True)
    jupyter_path = os.pathsep.join(filter(None, [str(kernels / "share" / "jupyter"), os.environ.get("JUPYTER_PATH")]))
    with jupyterlab(learner_versions, home, env={**SMOKE, "JUPYTER_PATH": jupyter_path}) as url:
        yield url


@pytest.fixture
def page(lab):
    expect.set_options(timeout=RUN_TIMEOUT_MS)
    with chromium_page() as page:
        yield page


# --------------------------------------------------------------------------- what the learner does


def answer_first_exercise(page, url: str, notebook: str, answer: str):
    """Open the notebook, run the cells above Exercise 1, enter ``answer`` in its answer cell,
    and run the answer and its check; returns the check cell once its run has finished."""
    exercise = first_exercise()
    page.goto(f"{url}/lab/tree/{notebook}?reset")  # a fresh workspace: no notebook of another test is reopened
    idle = page.get_by_role("button", name=f"{KERNEL_DISPLAY_NAME} | Idle")  # the status bar: the cnnlib kernel
    expect(idle).to_be_visible(timeout=2 * START_TIMEOUT_S * 1000)
    cells = page.locator(".jp-Notebook .jp-Cell")
    answer_cell, check_cell = cells.nth(exercise.solution_cell), cells.nth(exercise.check_cell)

    answer_cell.locator(".jp-InputPrompt").click()  # selects the cell (command mode)
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item", has_text="Run All Above Selected Cell").click()

    answer_cell.locator(".cm-content").click()  # edit mode; the cells above run meanwhile
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.insert_text(answer)  # as pasted: no auto-indent, no auto-closed brackets
    expect(answer_cell.locator(".cm-content")).to_have_text(answer.replace("\n", ""))  # CodeMirror's lines
    page.keyboard.press("Shift+Enter")
    check_cell.locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    # Every code cell ran once, in order, in this kernel: the check is the kernel's (n + 1)-th execution.
    expect(check_cell.locator(".jp-InputPrompt")).to_have_text(f"[{exercise.check_code + 1}]:")
    expect(idle).to_be_visible()
    return check_cell


# --------------------------------------------------------------------------- the tests


def test_right_answer_passes_its_check_and_grades_as_passed(lab, page, learner_versions, tmp_path):
    exercise, lesson = first_exercise(), nbformat.read(LESSON, as_version=4)
    saved = learner_versions / LESSON.name
    learner = nbformat.read(saved, as_version=4)
    answer = answered(learner.cells[exercise.solution_cell].source,
                      solution_body(lesson.cells[exercise.solution_cell].source))

    check_cell = answer_first_exercise(page, lab, LESSON.name, answer)
    verdict = re.compile(rf"{exercise.label} passed: out_size agrees on \d+ cases\.")
    expect(check_cell.locator(".jp-OutputArea")).to_have_text(verdict)
    page.keyboard.press("ControlOrMeta+S")
    expect(page.locator(".lm-TabBar-tab.jp-mod-dirty")).to_have_count(0)  # the save has returned

    nb = nbformat.read(saved, as_version=4)
    assert nb.cells[exercise.solution_cell].source == answer
    assert verdict.fullmatch("".join(o.get("text", "") for o in nb.cells[exercise.check_cell].outputs).strip())

    # nbval, as `make notebooks` runs it: Exercise 1's cells pass; the cells that fail are exactly
    # those of the exercises left undone, each of which fails.
    results = run_nbval(saved, env=SMOKE)
    exercises = exercise_cells(lesson)  # the learner's file has no solution markers left
    of_cell = {i: ex.label for ex in exercises for i in (ex.solution_code, ex.check_code)}
    failed = {i for i, r in results.items() if r.outcome != "passed"}
    assert {results[exercise.solution_code].outcome, results[exercise.check_code].outcome} == {"passed"}
    assert failed <= set(of_cell), {i: results[i].message[-800:] for i in failed - set(of_cell)}
    assert {of_cell[i] for i in failed} == {ex.label for ex in exercises[1:]}

    # The grader, as `make grade` runs it, on the saved file as a learner's hand-in.
    grades = tmp_path / "grades.csv"
    graded = subprocess.run(
        [sys.executable, "-m", "cnnlib.grade", str(saved), "--out", str(grades), "--lessons", str(REPO / "notebooks"),
         "--hidden", str(REPO / "instructor" / "hidden_cases.py")],
        cwd=tmp_path, env={**os.environ, **SMOKE}, capture_output=True, text=True,
    )
    assert graded.returncode == 0, graded.stdout + graded.stderr
    with open(grades, newline="") as f:
        rows = list(csv.DictReader(f))
    statuses = {row["exercise"]: row["status"] for row in rows}
    assert statuses == {exercise.label: "passed", **{ex.label: "not_attempted" for ex in exercises[1:]}}, rows


def test_wrong_answer_shows_the_checks_hint(lab, page, learner_versions):
    exercise, lesson = first_exercise(), nbformat.read(LESSON, as_version=4)
    copy = learner_versions / "wrong_answer" / LESSON.name  # the other test answers and saves the first one
    student_notebook(LESSON, copy)
    learner = nbformat.read(copy, as_version=4)
    forgets_dilation = ["    return (n + 2 * padding - kernel) // stride + 1"]  # and never raises
    answer = answered(learner.cells[exercise.solution_cell].source, forgets_dilation)

    check_cell = answer_first_exercise(page, lab, f"wrong_answer/{LESSON.name}", answer)
    output = check_cell.locator(".jp-OutputArea")
    # The first case of the check that it gets wrong, by hand: n=1, k=2 does not fit (the check
    # wants a ValueError), and the answer returns (1 + 2*0 - 2) // 1 + 1 = 0.
    expect(output).to_contain_text(f"AssertionError: {exercise.label}: out_size(1, 2, 1, 0, 1) returned 0")
    expect(output).to_contain_text(f"Hint: {check_hint(lesson.cells[exercise.check_cell].source)}")
    expect(output).not_to_contain_text(f"{exercise.label} passed")
