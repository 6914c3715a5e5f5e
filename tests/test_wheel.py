"""cnnlib installed from its wheel (not editable), used from a folder that is not the checkout:
every module imports, the three commands answer, results, lessons and hidden cases come from
arguments or the working directory with a clear error when missing, and the wheel carries no
hidden cases and no solution notebooks (learners install it too)."""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(command, cwd, env, ok=True):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, python, bin, env): the wheel built from this checkout, installed without its
    dependencies into a new virtual environment that borrows the third-party packages of the
    test's own environment (a path line, not a site folder: an editable cnnlib there stays unseen)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"  # a copy of the tree git would commit, so that the build leaves nothing in the checkout
    tracked = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT, os.environ).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
         str(source)], tmp, os.environ)
    (wheel,) = (tmp / "dist").glob("cnnlib-*.whl")
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp, os.environ)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  tmp, os.environ).stdout.strip()
    (Path(purelib) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp, os.environ)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CNNLIB_DATA", "CNNLIB_RESULTS")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return wheel, python, bin_dir, env


def test_the_wheel_holds_the_package_and_nothing_of_the_instructors(installed):
    wheel = installed[0]
    names = zipfile.ZipFile(wheel).namelist()
    assert "cnnlib/training/loop.py" in names and "cnnlib/grading/class_grader.py" in names
    assert not [n for n in names if "hidden" in n or n.endswith(".ipynb") or n.startswith(("notebooks/", "instructor/",
                                                                                             "results/", "tests/"))]


def test_every_module_imports_from_the_wheel(installed, tmp_path):
    _, python, _, env = installed
    code = ("import importlib, pkgutil, cnnlib\n"
            "names = [m.name for m in pkgutil.walk_packages(cnnlib.__path__, 'cnnlib.')]\n"
            "for name in names: importlib.import_module(name)\n"
            "print(cnnlib.__file__, len(names))")
    where, count = run([str(python), "-c", code], tmp_path, env).stdout.split()
    assert Path(where).is_relative_to(python.parents[1]) and not Path(where).is_relative_to(ROOT)
    assert int(count) >= 30


def test_the_commands_answer_from_another_folder(installed, tmp_path):
    _, python, bin_dir, env = installed
    assert "--model" in run([str(bin_dir / "cnnlib-train"), "--help"], tmp_path, env).stdout
    assert "degradation" in run([str(python), "-m", "cnnlib.experiments", "--list"], tmp_path, env).stdout
    assert "--hidden" in run([str(python), "-m", "cnnlib.grade", "--help"], tmp_path, env).stdout


def test_what_is_missing_is_named(installed, tmp_path):
    _, python, _, env = installed
    done = run([str(python), "-c", "from cnnlib.experiments import load_results; load_results('degradation')"],
               tmp_path, env, ok=False)
    assert done.returncode != 0 and "no results/ folder at" in done.stderr and "CNNLIB_RESULTS" in done.stderr
    (tmp_path / "lesson.ipynb").write_text("{}")
    done = run([str(python), "-m", "cnnlib.grade", "lesson.ipynb", "--out", "grades.csv"], tmp_path, env, ok=False)
    assert done.returncode == 2 and "no hidden cases at instructor/hidden_cases.py" in done.stderr
    done = run([str(python), "-m", "cnnlib.grade", "lesson.ipynb", "--out", "grades.csv", "--no-hidden"], tmp_path,
               env, ok=False)
    assert done.returncode == 2 and "no notebooks/ folder at" in done.stderr


def test_results_lessons_and_hidden_cases_come_from_the_working_directory(installed, tmp_path):
    _, python, _, env = installed
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "degradation.json").write_bytes((ROOT / "results" / "degradation.json").read_bytes())
    (tmp_path / "notebooks").mkdir()
    code = "from cnnlib.experiments import load_results; print(len(load_results('degradation')['runs']))"
    assert int(run([str(python), "-c", code], tmp_path / "notebooks", env).stdout) > 0  # a lesson's folder
    assert int(run([str(python), "-c", code], tmp_path, env).stdout) > 0  # the course's folder
