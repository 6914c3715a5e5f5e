"""Run a graded notebook in a fresh kernel: the lesson with the learner's answer cells and
recordings (:mod:`cnnlib.grading.recorder`) in place of its check cells, under time limits.

The kernel runs the grader's own interpreter (so it imports the grader's ``cnnlib``) in a
scratch folder of its own, with ``CNNLIB_DATA`` and ``CNNLIB_RESULTS`` pointing at the course's
``data/`` and ``results/`` (found from the working directory, else beside the lessons), and
``CNNLIB_PROFILE=smoke`` unless the grader's environment says otherwise; sandboxed, it runs
under ``bwrap`` (:mod:`cnnlib.grading.sandbox`) and talks to the grader over Unix sockets.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError
from traitlets import List, Unicode, default
from traitlets.config import Config

from cnnlib.files import CourseFolderMissing, course_folder
from cnnlib.grading import recorder
from cnnlib.grading.lessons import Lesson
from cnnlib.grading.sandbox import bwrap_argv, furnish_home, python_folders

TIMEOUT_NAME = "CellTimeoutError"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds cnnlib/


@dataclass
class KernelRun:
    """What :func:`execute` saw: the state of each code cell by index (``ok``, ``error:<exception
    name>``, ``timeout``, ``dead``: the kernel died, ``not_run``: it had died before, ``deadline``:
    the notebook's time was up before the cell), the wall time, and the kernel's peak resident
    memory (``VmHWM``; None where the kernel died or the system does not say)."""

    states: dict[int, str]
    seconds: float
    peak_rss_bytes: int | None


class GraderKernelSpecs(KernelSpecManager):
    """Kernels run the grader's own interpreter (and so import the grader's cnnlib), under
    ``wrapper`` (the sandbox's command) when it is given; a sandboxed kernel is interrupted by
    a message (a signal would stop the sandbox)."""

    wrapper = List(Unicode()).tag(config=True)

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(argv=[*self.wrapper, sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          display_name="cnnlib grader", language="python",
                          interrupt_mode="message" if self.wrapper else "signal")


class GraderKernelManager(AsyncKernelManager):
    @default("kernel_spec_manager")
    def _this_python(self) -> KernelSpecManager:
        return GraderKernelSpecs(parent=self)


def kernel_environment(lessons_folder: Path) -> dict[str, str]:
    """The kernel's environment: the grader's, with ``cnnlib`` importable, the smoke profile by
    default, and the course's data and results folders by absolute path."""
    env = {"CNNLIB_PROFILE": "smoke", **os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))}
    for variable, name in (("CNNLIB_DATA", "data"), ("CNNLIB_RESULTS", "results")):
        for start in (Path.cwd(), lessons_folder):
            try:
                env[variable] = str(course_folder(name, env=variable, start=start).resolve())
                break
            except CourseFolderMissing:
                continue
    return env


def kernel_config(scratch: Path, sandboxed: bool, readable: Iterable[Path]) -> Config:
    """The kernel manager's configuration: none, or the sandbox's command and Unix sockets in
    ``scratch`` (the sandbox has no network, not even the grader's loopback)."""
    config = Config()
    if sandboxed:
        furnish_home(scratch)
        config.GraderKernelSpecs.wrapper = bwrap_argv(scratch, [*python_folders(), PACKAGE_ROOT / "cnnlib", *readable])
        config.GraderKernelManager.transport = "ipc"
        config.GraderKernelManager.ip = str(scratch / "kernel")
        config.GraderKernelManager.connection_file = str(scratch / "kernel.json")
    return config


def _descendants(pid: int) -> list[int]:
    """``pid`` and the processes it started, and theirs (from ``/proc``; [pid] elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def _peak_rss(pid: int | None) -> int | None:
    """The largest peak resident memory (Linux's ``VmHWM``) among process ``pid`` and its
    descendants, in bytes, or None."""
    peaks = []
    for process in _descendants(pid) if pid else []:
        try:
            with open(f"/proc/{process}/status") as status:
                line = next(line for line in status if line.startswith("VmHWM:"))
            peaks.append(int(line.split()[1]) * 1024)
        except (OSError, StopIteration, ValueError):
            continue
    return max(peaks, default=None)


def execute(nb: Any, cwd: Path, timed_cells: set[int], cell_timeout: float, notebook_timeout: float,
            env: dict[str, str] | None = None, config: Config | None = None) -> KernelRun:
    """Run ``nb`` in a fresh kernel, in place, within ``notebook_timeout`` seconds.

    Args:
        nb: the notebook; its cells receive their outputs.
        cwd: the kernel's working directory.
        timed_cells: indices of the cells that run within ``cell_timeout`` seconds each.
        cell_timeout: seconds per timed cell; past it, the kernel is interrupted.
        notebook_timeout: seconds for the whole notebook; the cells left are not run.
        env: the kernel's environment (default: :func:`kernel_environment` of ``cwd``).
        config: the kernel manager's configuration (:func:`kernel_config`; default: no sandbox).
    """
    states: dict[int, str] = {}

    def executed(cell: Any, cell_index: int, execute_reply: dict) -> None:
        content = (execute_reply or {}).get("content", {})
        ename = content.get("ename", "")
        states[cell_index] = "ok" if content.get("status") != "error" else (
            "timeout" if ename == TIMEOUT_NAME else f"error:{ename}")

    client = NotebookClient(
        nb, kernel_manager_class=GraderKernelManager, kernel_name="cnnlib-grader", allow_errors=True,
        interrupt_on_timeout=True, on_cell_executed=executed,
        error_on_timeout={"ename": TIMEOUT_NAME, "evalue": f"the cell ran past its {cell_timeout:g} s limit",
                          "traceback": []},
        resources={"metadata": {"path": str(cwd)}}, config=config or Config(),
    )
    start = time.monotonic()
    deadline = start + notebook_timeout
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    peak = None
    with client.setup_kernel(env=kernel_environment(Path(cwd)) if env is None else env):
        for position, index in enumerate(code_cells):
            remaining = deadline - time.monotonic()
            if remaining <= 1:
                states.update({i: "deadline" for i in code_cells[position:]})
                break
            client.timeout = int(min(cell_timeout, remaining) if index in timed_cells else remaining)
            try:
                client.execute_cell(nb.cells[index], index)
            except DeadKernelError:
                states[index] = "dead"
                states.update({i: "not_run" for i in code_cells[position + 1:]})
                break
            states.setdefault(index, "ok")
        peak = _peak_rss(getattr(client.km.provisioner, "pid", None))
    return KernelRun(states, time.monotonic() - start, peak)


def graded_notebook(lesson: Lesson, answers: dict[str, str]) -> Any:
    """The lesson with ``answers`` (label: source) in its answer cells and recordings in
    place of its check cells."""
    nb = nbformat.from_dict(lesson.nb)
    for ex in lesson.exercises:
        nb.cells[ex.solution_cell].source = answers[ex.label]
        check = nb.cells[ex.check_cell]
        check.source = recorder.cell_source(check.source, lesson.hidden(ex.label))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def run_lesson(lesson: Lesson, answers: dict[str, str], cell_timeout: float, notebook_timeout: float,
               sandboxed: bool = False) -> tuple[Any, KernelRun]:
    """The lesson with ``answers``, executed in a scratch folder of its own (in the sandbox if
    ``sandboxed``); the answer and check cells under ``cell_timeout``."""
    nb = graded_notebook(lesson, answers)
    timed = {i for ex in lesson.exercises for i in (ex.solution_cell, ex.check_cell)}
    env = kernel_environment(lesson.path.parent.resolve())
    course = [Path(env[name]) for name in ("CNNLIB_DATA", "CNNLIB_RESULTS") if name in env]
    with tempfile.TemporaryDirectory(prefix="cnnlib-grading-") as scratch:
        config = kernel_config(Path(scratch), sandboxed, course)
        return nb, execute(nb, Path(scratch), timed, cell_timeout, notebook_timeout, env, config)
