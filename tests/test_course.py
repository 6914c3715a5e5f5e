"""tools/course.py, the course without make: the README's commands, run as written.

The lines between the README's ``without-make`` markers are run in a fresh copy of the course
(a new ``.venv`` made by the script, Jupyter's folders in the test's temporary folder, so that the
user's "Python (cnnlib)" kernel is left alone): ``setup`` in full, ``lab`` until JupyterLab
answers, and the test line that names its files. The Makefile calls the same script, so these
lines and `make` cannot drift apart.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MARKERS = ("<!-- without-make:start -->", "<!-- without-make:end -->")
# What the script needs of the checkout: the package, its requirements and the lessons.
COPIED = ("cnnlib", "tools", "tests", "notebooks", "jupyter", "requirements.txt", "pyproject.toml", "README.md")
SETUP_TIMEOUT_S = 480  # torch and JupyterLab into an empty venv, on a busy machine
LAB_TIMEOUT_S = 90
TEST_TIMEOUT_S = 120

sys.path.insert(0, str(REPO / "tools"))
import course  # noqa: E402


def readme_commands(text: str) -> list[list[str]]:
    """The commands between the markers, comments dropped, each split as a shell would."""
    start, end = (text.find(marker) for marker in MARKERS)
    assert 0 <= start < end, f"README.md has no section between {MARKERS[0]} and {MARKERS[1]}"
    lines = (line.split("#", 1)[0].strip() for line in text[start + len(MARKERS[0]):end].splitlines())
    return [shlex.split(line) for line in lines if line]


def run_as_written(command: list[str], cwd: Path, env: dict, timeout_s: int) -> subprocess.CompletedProcess:
    """Runs command; past timeout_s it fails, and the command's children (pip, pytest) end with it."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{shlex.join(command)} took more than {timeout_s} s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_readme_commands_are_the_scripts_steps():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert all(command[:2] == ["python", "tools/course.py"] for command in commands), commands
    steps = [command[2] for command in commands]
    assert {"setup", "lab", "test"} <= set(steps), f"the README must give setup, lab and test: {steps}"


def test_a_part_runs_on_the_files_given_after_a_double_dash(monkeypatch):
    ran = []
    monkeypatch.setattr(course, "run", lambda command, env=None, quiet=False: ran.append([str(w) for w in command]))
    course.test_part(Path("python"), "unit", 1, ["tests/test_files.py"])
    course.test_part(Path("python"), "notebooks", 1, [])
    assert ran[0][-5:] == ["tests/test_files.py", "-m", "not slow", "--dist", "loadgroup"]
    assert "notebooks" in ran[1] and "tests" not in ran[1]


@pytest.mark.slow
def test_the_readme_commands_set_up_open_jupyterlab_and_test_in_a_fresh_copy(tmp_path):
    commands = readme_commands(README.read_text(encoding="utf-8"))
    copy = tmp_path / "course"
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy(source, copy / name)
    jupyter = {f"JUPYTER_{kind}_DIR": str(tmp_path / "jupyter" / kind.lower()) for kind in ("DATA", "CONFIG", "RUNTIME")}
    env = {**os.environ, **jupyter, "CNNLIB_DATA": str(REPO / "data"), "PYTHONDONTWRITEBYTECODE": "1"}

    first = {command[2]: command for command in reversed(commands)}
    setup = run_as_written(first["setup"], copy, env, SETUP_TIMEOUT_S)
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    python = course.venv_python(copy / ".venv")
    assert python.exists()
    kernel = Path(jupyter["JUPYTER_DATA_DIR"]) / "kernels" / "cnnlib" / "kernel.json"
    assert str(copy / ".venv") in kernel.read_text(), "the kernel must run the new venv's Python"

    log = tmp_path / "lab.log"
    with log.open("w") as output:
        lab = subprocess.Popen(first["lab"], cwd=copy, env={**env, "BROWSER": "true"},  # no browser to open
                               stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + LAB_TIMEOUT_S
        while not re.search(r"http://(localhost|127\.0\.0\.1):\d+/lab", log.read_text()):
            assert lab.poll() is None, f"JupyterLab exited with {lab.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"JupyterLab did not start within {LAB_TIMEOUT_S} s:\n{log.read_text()}"
            time.sleep(1)
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)

    with_files = [command for command in commands if command[2] == "test" and "--" in command]
    assert with_files, "the README must show a test line that names its files after --"
    tests = run_as_written(with_files[0], copy, env, TEST_TIMEOUT_S)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert re.search(r"\d+ passed", tests.stdout), tests.stdout[-3000:]
