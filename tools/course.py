"""The course's set-up, JupyterLab, tests and book, on any machine with Python 3.10+ (no make needed).

    python tools/course.py setup          # .venv, requirements, cnnlib (editable), kernel, data
    python tools/course.py lab            # set up, then JupyterLab on notebooks/
    python tools/course.py test           # set up, then the four test parts, each timed
    python tools/course.py test unit      # one part: unit, notebooks, portability or dry-run
    python tools/course.py test unit -- tests/test_files.py    # one part on these pytest arguments
    python tools/course.py book           # the course as an HTML book, in book/_build/html

The Makefile calls this script for each of these steps, so that `make` and this script cannot
drift apart. Every step is idempotent: a second `setup` only checks a stamp.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal, get_args

REPO = Path(__file__).resolve().parent.parent
INSTALL_INPUTS = ("requirements.txt", "pyproject.toml", "jupyter/overrides.json")
BOOK_INPUTS = ("book/requirements.txt",)
DATASETS = ("MNIST", "FashionMNIST")
DATA_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
KERNEL = ("cnnlib", "Python (cnnlib)")

NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg"]
# A second numeric configuration of the same machine: the oldest CPU kernels (no AVX), the oldest
# oneDNN ISA and one thread. Compared notebook outputs must not change under it.
PORTABLE = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# The full profile's code path in a dry run: one batch per loader pass, one epoch per budget.
DRY_RUN = {"CNNLIB_PROFILE": "full", "CNNLIB_DRY_RUN": "1"}
# Lesson 06 takes most of the dry run (the full recipe's ablation): it goes first, so that the other
# worker runs the rest of the lessons beside it.
LONGEST_DRY_RUN = "notebooks/06_bag_of_tricks.ipynb"

Part = Literal["unit", "notebooks", "portability", "dry-run"]
PARTS: tuple[Part, ...] = get_args(Part)


def venv_python(venv: Path) -> Path:
    """The venv's interpreter: bin/python on Linux and macOS, Scripts\\python.exe on Windows."""
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(command: list, env: dict | None = None, quiet: bool = False) -> None:
    """Runs command in the repository root, with env added to this environment, showing it and its
    output unless quiet (errors are always shown); stops on failure."""
    if not quiet:
        print("+", " ".join(str(word) for word in command), flush=True)
    result = subprocess.run([str(word) for word in command], cwd=REPO, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL if quiet else None)
    if result.returncode:
        sys.exit(result.returncode)


def is_fresh(stamp: Path, inputs: tuple[str, ...]) -> bool:
    """Whether stamp exists and is newer than every input file (make's rule for a target)."""
    return stamp.exists() and all(stamp.stat().st_mtime >= (REPO / name).stat().st_mtime for name in inputs)


def setup(venv: Path) -> Path:
    """The venv, the requirements, cnnlib (editable), d2l 1.0.3 without its stale pins, JupyterLab's
    settings overrides, matplotlib's font cache; then the kernel registered. Returns the venv's python."""
    python = venv_python(venv)
    stamp = venv / ".cnnlib-installed"
    if not is_fresh(stamp, INSTALL_INPUTS):
        if not python.exists():
            run([sys.executable, "-m", "venv", venv])
        run([python, "-m", "pip", "install", "--quiet", "-r", "requirements.txt"])
        run([python, "-m", "pip", "install", "--quiet", "--no-deps", "-e", "."])
        run([python, "-m", "pip", "install", "--quiet", "--no-deps", "d2l==1.0.3"])
        settings = venv / "share" / "jupyter" / "lab" / "settings"
        settings.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "jupyter" / "overrides.json", settings)
        run([python, "-c", "import matplotlib.pyplot"])  # builds the font cache once, outside any notebook
        stamp.touch()
    # Registered again each time, so that the kernel is this checkout's environment.
    name, display_name = KERNEL
    run([python, "-m", "ipykernel", "install", "--user", "--name", name, "--display-name", display_name], quiet=True)
    return python


def data(shared: Path) -> None:
    """Seeds data/ from a local copy of the official files when there is one (otherwise
    torchvision downloads them on first use); a file already in data/ is kept."""
    if not shared.is_dir():
        return
    for dataset in DATASETS:
        for name in DATA_FILES:
            source, target = shared / dataset / "raw" / f"{name}.gz", REPO / "data" / dataset / "raw" / f"{name}.gz"
            if source.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)


def lab(python: Path) -> None:
    """JupyterLab on notebooks/. Jupyter refuses to run as root unless told: containers often are root."""
    as_root = ["--allow-root"] if hasattr(os, "getuid") and os.getuid() == 0 else []
    run([python, "-m", "jupyter", "lab", "--notebook-dir=notebooks", *as_root])


def test_part(python: Path, part: Part, workers: int, selection: list[str]) -> None:
    """One part of the tests, in `workers` pytest-xdist processes (the notebooks --dist loadfile, so
    that a notebook's cells stay together, in order, on one worker), on the part's own files or on
    `selection` (pytest arguments) when it is given.

    unit: the tests not marked slow, one thread each. notebooks: every lesson under nbval, outputs
    compared. portability: the slow tests (the learner versions and each solution against its hidden
    cases; the README's path without make in a fresh environment) under PORTABLE. dry-run: every
    lesson under the full profile's dry run, outputs not compared (--nbval-lax).
    """
    pytest = [python, "-m", "pytest", "-q", "-n", str(workers)]
    lessons = sorted(str(path.relative_to(REPO).as_posix()) for path in (REPO / "notebooks").glob("0*.ipynb"))
    if part == "unit":
        run([*pytest, *(selection or ["tests"]), "-m", "not slow", "--dist", "loadgroup"], {"OMP_NUM_THREADS": "1", "CNNLIB_PROFILE": "smoke"})
    elif part == "notebooks":
        run([*pytest, *NBVAL, *(selection or ["notebooks"]), "--dist", "loadfile"], {"CNNLIB_PROFILE": "smoke"})
    elif part == "portability":
        run([*pytest, *(selection or ["tests/test_learner_versions.py", "tests/test_course.py"]), "-m", "slow"],
            {**PORTABLE, "CNNLIB_PROFILE": "smoke"})
    elif part == "dry-run":
        ordered = [LONGEST_DRY_RUN, *(lesson for lesson in lessons if lesson != LONGEST_DRY_RUN)]
        run([*pytest, "--nbval-lax", "--nbval-current-env", "--dist", "loadfile", *(selection or ordered)], DRY_RUN)
    else:
        raise ValueError(f"unknown test part {part!r}: choose one of {', '.join(PARTS)}")


def book(python: Path) -> None:
    """The committed, executed lessons as an HTML book (nothing re-executed), with the README's parts
    and the API reference, into book/_build/html; its tools from book/requirements.txt, once. A Sphinx
    warning (a broken reference, a malformed docstring) fails the build, after listing every one."""
    stamp = python.parent.parent / ".cnnlib-book-installed"
    if not is_fresh(stamp, BOOK_INPUTS):
        run([python, "-m", "pip", "install", "--quiet", "-r", "book/requirements.txt"])
        stamp.touch()
    run([python, "-m", "sphinx", "-q", "-W", "--keep-going", "-c", "book", ".", "book/_build/html"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python tools/course.py", description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".venv", help="the course's environment (default .venv)")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data",
                        help="a local copy of the datasets' official files, copied into data/ (default ../shared/data)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="the environment, the kernel and the data")
    commands.add_parser("data", help="only the data, from --shared-data")
    commands.add_parser("lab", help="set up, then open JupyterLab on notebooks/")
    test = commands.add_parser("test", help="set up, then the test parts (all four when none is named)",
                               epilog="After --, pytest arguments (files, -k ...) in place of each part's own files.")
    test.add_argument("parts", nargs="*", choices=PARTS, metavar="PART", help=f"any of {', '.join(PARTS)}")
    test.add_argument("--workers", type=int, default=2, help="pytest-xdist processes per part (default 2)")
    commands.add_parser("book", help="set up, then build the book into book/_build/html")
    argv = sys.argv[1:] if argv is None else argv
    own, selection = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    venv = args.venv if args.venv.is_absolute() else REPO / args.venv
    shared = args.shared_data if args.shared_data.is_absolute() else REPO / args.shared_data

    if args.command == "data":
        return data(shared)
    python = setup(venv)
    data(shared)
    if args.command == "lab":
        lab(python)
    elif args.command == "test":
        for part in args.parts or PARTS:
            start = time.monotonic()
            test_part(python, part, args.workers, selection)
            print(f"[course test] {part}: {time.monotonic() - start:.0f} s", flush=True)
    elif args.command == "book":
        book(python)


if __name__ == "__main__":
    main()
