"""The sandbox a submission's kernel runs in: Debian's ``bubblewrap`` (``bwrap``).

Inside, the kernel sees a read-only system (``/usr``, ``/etc``, the Python installation and its
packages), read-only ``cnnlib`` and the course's ``data/`` and ``results/``, and one writable
folder: its scratch folder (its working directory, home, ``TMPDIR`` and caches, where its
connection sockets also live); everything else is read-only or absent. It has no network: a network
namespace of its own, whose loopback reaches neither the grader's ports nor the outside (so
the kernel talks to the grader over Unix sockets); its own process and IPC namespaces; and it
dies with the grader. It cannot see the lessons' solution notebooks, the hidden cases file,
the other submissions, the gradebook or the feedback folder: they are not mounted.
Not isolated: CPU and memory (the time limits bound the first, nothing the second), the
system's files that are readable to everyone in ``/usr`` and ``/etc``, and what the grader
sends the kernel (the lesson's cells and the code of the hidden cases, as before).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

SYSTEM = ("/usr", "/etc", "/lib", "/lib64", "/bin", "/sbin", "/opt")


def sandbox_problem() -> str:
    """Why no sandbox can be had here ("" when ``bwrap`` works)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (apt-get install -y bubblewrap)"
    done = subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-all", "--dev", "/dev", "--proc", "/proc", "true"],
                          capture_output=True, text=True)
    return f"bwrap cannot make a sandbox here: {done.stderr.strip() or f'exit status {done.returncode}'}" \
        if done.returncode else ""


def furnish_home(scratch: Path) -> None:
    """Copy matplotlib's font list into the kernel's home (``scratch``), so that a lesson that
    plots does not rebuild it in every sandbox (matplotlib's cache folder, as matplotlib finds it)."""
    cache = Path(os.environ.get("MPLCONFIGDIR")
                 or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib")
    inside = Path(scratch_environment(scratch)["MPLCONFIGDIR"])
    for fonts in cache.glob("fontlist-*.json"):
        inside.mkdir(parents=True, exist_ok=True)
        shutil.copy2(fonts, inside / fonts.name)


def python_folders() -> list[Path]:
    """The folders the running interpreter and its packages live in."""
    return sorted({Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(),
                   Path(sys.executable).resolve().parent.parent, Path(sys.prefix)})


def bwrap_argv(scratch: Path, readable: Iterable[Path]) -> list[str]:
    """The ``bwrap`` command that runs a command with ``readable`` read-only and ``scratch``
    writable (and its working directory), all at their own paths, without network.

    Args:
        scratch: the kernel's own folder, created by the caller.
        readable: folders and files to show read-only (those that do not exist are skipped).
    """
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--dev", "/dev", "--proc", "/proc"]
    for system in map(Path, SYSTEM):
        if system.is_symlink():
            argv += ["--symlink", str(system.readlink()), str(system)]
        elif system.exists():
            argv += ["--ro-bind", str(system), str(system)]
    for path in readable:
        if Path(path).exists() and not any(Path(path).is_relative_to(s) for s in SYSTEM):
            argv += ["--ro-bind", str(path), str(path)]
    # JPY_PARENT_PID=1: in its own process namespace the kernel cannot see the grader and would
    # take it for gone; 1 turns that watch off (--die-with-parent keeps it) and keeps the kernel quiet.
    argv += ["--bind", str(scratch), str(scratch), "--remount-ro", "/", "--chdir", str(scratch),
             "--setenv", "JPY_PARENT_PID", "1"]
    for variable, folder in scratch_environment(scratch).items():
        argv += ["--setenv", variable, folder]
    return argv + ["--"]


def scratch_environment(scratch: Path) -> dict[str, str]:
    """The variables that point the kernel's home, temporary files and caches into ``scratch``.

    The grader's own values must not leak in: ``import torchvision`` creates the folder that
    ``TORCHINDUCTOR_CACHE_DIR`` names, and torch writes that variable into the environment of
    any process that imported torchvision (``/tmp/torchinductor_<user>``), read-only here.
    """
    cache = scratch / ".cache"
    return {"HOME": str(scratch), "TMPDIR": str(scratch), "XDG_CACHE_HOME": str(cache),
            "MPLCONFIGDIR": str(cache / "matplotlib"), "TORCHINDUCTOR_CACHE_DIR": str(cache / "torchinductor"),
            "TRITON_CACHE_DIR": str(cache / "triton")}
