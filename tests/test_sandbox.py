"""The sandbox: submissions that reach for what is not theirs get no points, and their rows
say why; honest ones grade as without it. The kernels run the small fixture lesson."""

import csv
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from cnnlib.grading.learner_versions import learner_notebook
from cnnlib.grading.lessons import discover_lessons
from cnnlib.grading.sandbox import bwrap_argv, python_folders, sandbox_problem

# Tests that start kernels, JupyterLab or Chromium share one pytest-xdist worker (--dist loadgroup):
# run side by side on two cores, the grader's and the browser's tests failed each other (seen once).
pytestmark = pytest.mark.xdist_group("kernels")

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
RIGHT_WEIGHTS = "weights = 3 * 3 * 16 * 32\nweights"


def test_only_the_scratch_folder_is_writable_and_missing_folders_are_left_out(tmp_path):
    argv = bwrap_argv(tmp_path / "scratch", [tmp_path / "data", Path("/usr/lib")])
    assert argv[:3] == ["bwrap", "--unshare-all", "--die-with-parent"] and argv[-1] == "--"
    binds = [argv[i:i + 3] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    assert [b for b in binds if b[0] == "--bind"] == [["--bind", str(tmp_path / "scratch"), str(tmp_path / "scratch")]]
    assert str(tmp_path / "data") not in argv  # it does not exist
    assert argv.count("/usr/lib") == 0  # inside /usr, already shown
    assert argv[argv.index("--remount-ro") + 1] == "/" and argv.index("--remount-ro") > argv.index("--bind")


@pytest.mark.skipif(bool(sandbox_problem()), reason=f"no sandbox here: {sandbox_problem()}")
def test_the_kernels_caches_are_in_its_scratch_folder_whatever_the_graders_say(tmp_path):
    """A grader that imported torchvision carries TORCHINDUCTOR_CACHE_DIR, which the next
    ``import torchvision`` creates: in the sandbox it must point into the scratch folder."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "graders_cache"),
           "MPLCONFIGDIR": str(tmp_path / "graders_matplotlib"), "XDG_CACHE_HOME": str(tmp_path / "graders_xdg")}
    done = subprocess.run([*bwrap_argv(scratch, python_folders()), sys.executable, "-c",
                           "import os, torchvision, matplotlib; print(os.environ['TORCHINDUCTOR_CACHE_DIR'], "
                           "matplotlib.get_cachedir())"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [str(scratch / ".cache" / "torchinductor"), str(scratch / ".cache" / "matplotlib")]
    assert (scratch / ".cache" / "torchinductor").is_dir() and not (tmp_path / "graders_cache").exists()


def grade(tmp_path, answers, *options, env=None):
    """Grade the fixture lesson's learner version with ``answers`` (name: Exercise 2's answer)
    from ``tmp_path``: (the gradebook's rows, stdout)."""
    lesson = discover_lessons(FIXTURES)["grading_solution"]
    learner, exercises = learner_notebook(lesson.nb, lesson="grading_solution")
    (tmp_path / "submissions").mkdir()
    for name, answer in answers.items():
        nb = nbformat.from_dict(learner)
        nb.cells[exercises[1].solution_cell].source = answer
        nbformat.write(nb, tmp_path / "submissions" / f"{name}.ipynb")
    env = {**os.environ, "CNNLIB_PROFILE": "smoke", "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run([sys.executable, "-m", "cnnlib.grade", "submissions", "--out", "grades.csv",
                           "--lessons", str(FIXTURES), "--no-hidden", "--jobs", "2", *options],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with (tmp_path / "grades.csv").open(newline="") as file:
        return list(csv.DictReader(file)), done.stdout


@pytest.mark.skipif(bool(sandbox_problem()), reason=f"no sandbox here: {sandbox_problem()}")
def test_a_sandboxed_submission_reaches_only_its_own_folder(tmp_path):
    """Reading the lessons, hidden cases, others' files or the gradebook, writing outside its
    scratch folder, the network, and the grader's own loopback (a port listening here) all fail."""
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    reads = {"reads_solution": FIXTURES / "grading_solution.ipynb", "reads_hidden": REPO / "instructor" / "hidden_cases.py",
             "reads_other_learner": tmp_path / "submissions" / "honest.ipynb", "reads_gradebook": tmp_path / "grades.csv"}
    answers = {name: f"weights = 4608 + 0 * len(open({str(path)!r}).read())\nweights" for name, path in reads.items()}
    answers["writes_outside"] = f"open({str(tmp_path / 'written.txt')!r}, 'w').write('x')\n{RIGHT_WEIGHTS}"
    answers["writes_scratch"] = f"open('mine.txt', 'w').write('x')\n{RIGHT_WEIGHTS}"
    answers["opens_socket"] = f"import socket\nsocket.create_connection(('192.0.2.1', 80), timeout=2)\n{RIGHT_WEIGHTS}"
    answers["calls_the_grader"] = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n{RIGHT_WEIGHTS}"
    answers["honest"] = RIGHT_WEIGHTS
    rows, stdout = grade(tmp_path, answers)
    exercise_2 = {Path(r["submission"]).stem: r for r in rows if r["exercise"] == "Exercise 2"}
    assert "sandbox" not in stdout and all(r["status"] != "not_sandboxed" for r in rows)
    for name in [*reads, "writes_outside", "opens_socket", "calls_the_grader"]:
        row = exercise_2[name]
        assert (row["status"], row["points"]) == ("error", "0"), row
        assert re.match(r"(FileNotFoundError|OSError|ConnectionRefusedError): \[Errno \d+\] (No such file or directory"
                        r"|Read-only file system|Network is unreachable|Connection refused)", row["message"]), row
    for name in ("honest", "writes_scratch"):
        assert (exercise_2[name]["status"], exercise_2[name]["points"], exercise_2[name]["message"]) == ("passed", "1", "")
    assert not (tmp_path / "written.txt").exists()
    listening.close()


def test_without_a_sandbox_the_grader_says_so_first(tmp_path):
    """No ``bwrap`` on the PATH: a warning at the top of the output and the gradebook's first row."""
    rows, stdout = grade(tmp_path, {"honest": RIGHT_WEIGHTS}, env={"PATH": str(Path(sys.executable).parent)})
    assert stdout.startswith("WARNING: grading WITHOUT a sandbox: bubblewrap is not installed")
    assert (rows[0]["status"], rows[0]["message"]) == ("not_sandboxed", "graded without a sandbox: bubblewrap is not "
                                                       "installed (apt-get install -y bubblewrap)")
    assert [r["status"] for r in rows[1:]] == ["not_attempted", "passed"]
