"""The course's files on disk.

- :func:`atomic_open` writes a file in one step: a temporary file in the target's folder, flushed
  to disk, then renamed over the target (``os.replace`` is atomic), so that a crash or Ctrl-C
  leaves the old file or the new one, never half of one. Checkpoints, results files, gradebooks'
  feedback and learner notebooks are all written this way.
- :func:`course_folder` finds a folder of the course (``data``, ``results``, ``notebooks``) from
  the working directory, never from where ``cnnlib`` is installed: a lesson runs in
  ``notebooks/``, a command in the course's root, and both find ``results/`` beside them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


class CourseFolderMissing(FileNotFoundError):
    """A folder of the course is neither where it was asked for nor beside the working directory."""


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = None) -> Iterator[IO]:
    """``open(path, mode)`` whose content replaces ``path`` only when the ``with`` block ends without error."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes whole files: mode must start with 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; ours are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as JSON (indent 1, a final newline) to ``path`` with :func:`atomic_open`."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def course_folder(name: str, env: str | None = None, start: str | os.PathLike | None = None) -> Path:
    """The course's folder ``name``: ``$env`` when that variable is set, else ``name`` in ``start``
    (default: the working directory) or in its parent, the first that exists.

    Raises :class:`CourseFolderMissing`, naming the places it looked and how to point at the folder.
    """
    if env and os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    start = Path.cwd() if start is None else Path(start)
    candidates = [start / name, start.parent / name]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = " or ".join(str(c) for c in candidates)
    hint = f", or set {env} to its path" if env else ""
    raise CourseFolderMissing(f"no {name}/ folder at {looked}: run this from the course's folder (the one "
                              f"holding notebooks/ and {name}/) or from notebooks/{hint}")
