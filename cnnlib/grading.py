"""Exercise checks for the notebooks, and the generator of the learner notebooks.

Convention (solution notebooks in ``notebooks/``):

* an exercise is a code cell holding a region between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION`` (usually inside a function body); the comment lines directly
  above ``### BEGIN SOLUTION`` are its instructions, ideally starting ``# Exercise N:``;
* the next code cell is its check cell: it calls one of the ``check_*`` helpers below,
  which raise ``AssertionError`` with a hint when the answer is wrong and print a short,
  deterministic verdict when it is right.

``pytest --nbval`` compares a notebook's outputs with its stored ones, so a grade must come
from an exception, never from an output difference: the learner notebook keeps every stored
output except those of the exercise cells themselves, and keeps the check cells' verdicts so
that a right answer prints exactly the stored verdict.

A ``NotImplementedError`` raised by the learner's code (the untouched placeholder) is always
reported as ``AssertionError("Exercise N is not done yet: ...")``.

Command line: ``python -m cnnlib.grading student notebooks/ exercises/``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import math
import numbers
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
DEFAULT_INSTRUCTIONS = "write your code here."
ANSWER_PLACEHOLDER = "YOUR ANSWER HERE"
REPO = Path(__file__).resolve().parent.parent
SANITIZE_FILE = REPO / "tests" / "nbval_sanitize.cfg"

_BEGIN_RE = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION[ \t]*$")
_END_RE = re.compile(r"^[ \t]*### END SOLUTION[ \t]*$")
_LABEL_RE = re.compile(r"^(Exercise [\w.]+):\s*")
_ANSI_RE = re.compile(r"(?:\x1b|#x1B)\[[0-9;]*m")  # junit XML writes ESC as "#x1B"


# --------------------------------------------------------------------------- checks


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "shape")


def _is_array(x: Any) -> bool:
    return type(x).__module__.startswith("numpy") and hasattr(x, "shape")


def _short(x: Any) -> str:
    """A readable, bounded repr (tensors and arrays by shape when large)."""
    if (_is_tensor(x) or _is_array(x)) and math.prod(x.shape) > 8:
        return f"{type(x).__name__}(shape={tuple(x.shape)}, dtype={x.dtype})"
    text = repr(x)
    return text if len(text) <= 200 else text[:200] + "..."


def _agree(got: Any, expected: Any, rtol: float, atol: float) -> bool:
    """Equality that is exact by default, tolerant with rtol/atol, strict about int vs float."""
    if _is_tensor(expected) or _is_array(expected):
        import torch  # only needed for tensor answers; keeps this module light to import

        if not (_is_tensor(got) or _is_array(got)) or tuple(got.shape) != tuple(expected.shape):
            return False
        got_t, exp_t = torch.as_tensor(got), torch.as_tensor(expected)
        if exp_t.is_floating_point() or got_t.is_floating_point():
            return torch.allclose(got_t.double().cpu(), exp_t.double().cpu(), rtol=rtol, atol=atol)
        return bool(torch.equal(got_t.cpu(), exp_t.cpu()))
    if isinstance(expected, bool) or expected is None:
        return got is expected or (isinstance(got, bool) and got == expected)
    if isinstance(expected, numbers.Integral):
        return isinstance(got, numbers.Integral) and not isinstance(got, bool) and got == expected
    if isinstance(expected, numbers.Real):
        return (
            isinstance(got, numbers.Real)
            and not isinstance(got, bool)
            and math.isclose(got, expected, rel_tol=rtol, abs_tol=atol)
        )
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(got, (list, tuple))
            and len(got) == len(expected)
            and all(_agree(g, e, rtol, atol) for g, e in zip(got, expected))
        )
    try:
        return bool(got == expected)
    except Exception:
        return False


def _not_done(name: str, err: NotImplementedError) -> AssertionError:
    message = str(err)
    if message.startswith(name + ":"):
        message = message[len(name) + 1 :].strip()
    message = message or DEFAULT_INSTRUCTIONS
    return AssertionError(
        f"{name} is not done yet: {message} "
        "(replace the `raise NotImplementedError(...)` line with your code)"
    )


def _quietly(name: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's code with its prints and warnings silenced (the check cell's output
    must be the stored verdict alone); NotImplementedError means "not done yet"."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return fn(*args, **kwargs)
    except NotImplementedError as err:
        raise _not_done(name, err) from None


def _wrong(message: str, hint: str) -> AssertionError:
    """The exception a check raises: what was wrong, then the hint."""
    return AssertionError(f"{message}\nHint: {hint}" if hint else message)


def _split_case(args: Any) -> tuple[tuple, dict]:
    """A case's arguments: a tuple (positional), a dict (keywords) or one positional value."""
    if isinstance(args, tuple):
        return args, {}
    if isinstance(args, dict):
        return (), args
    return (args,), {}


def _call_text(fn_name: str, args: tuple, kwargs: dict) -> str:
    parts = [_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()]
    return f"{fn_name}({', '.join(parts)})"


def _is_exception_type(x: Any) -> bool:
    return isinstance(x, type) and issubclass(x, BaseException)


def check_function(
    fn: Callable,
    cases: Sequence[tuple[Any, Any]] | Sequence[Any],
    *,
    name: str = "This exercise",
    hint: str = "",
    reference: Callable | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
) -> None:
    """Check ``fn`` on every case and report the first disagreement.

    ``cases`` are ``(args, expected)`` pairs; ``args`` is a tuple of positional arguments,
    a dict of keyword arguments, or a single argument. ``expected`` may be an exception
    class: the call must then raise it. With ``reference``, ``cases`` are only the args and
    each expected value is ``reference(*args)`` (or the exception class it raises).
    Prints ``"<name> passed: <fn> agrees on <n> cases."``.
    """
    fn_name = getattr(fn, "__name__", "the function")
    if reference is not None:
        cases = [(args, _reference_result(reference, args)) for args in cases]
    for args, expected in cases:
        pos, kw = _split_case(args)
        call = _call_text(fn_name, pos, kw)
        must_raise = _is_exception_type(expected)
        try:
            got = _quietly(name, fn, *pos, **kw)
        except AssertionError:
            raise
        except Exception as err:
            if must_raise and isinstance(err, expected):
                continue
            wanted = f"expected it to raise {expected.__name__}" if must_raise else f"expected {_short(expected)}"
            raise _wrong(f"{name}: {call} raised {type(err).__name__}: {err}; {wanted}.", hint) from err
        if must_raise:
            raise _wrong(f"{name}: {call} returned {_short(got)}, expected it to raise {expected.__name__}.", hint)
        if not _agree(got, expected, rtol, atol):
            raise _wrong(f"{name}: {call} returned {_describe(got, expected)}, expected {_short(expected)}.", hint)
    print(f"{name} passed: {fn_name} agrees on {len(cases)} case{'' if len(cases) == 1 else 's'}.")


def _reference_result(reference: Callable, args: Any) -> Any:
    pos, kw = _split_case(args)
    try:
        return reference(*pos, **kw)
    except Exception as err:
        return type(err)


def _describe(got: Any, expected: Any) -> str:
    """The wrong value, with its type when the types differ (4.0 for 4, a list for a tensor)."""
    if type(got) is not type(expected) and not (_is_tensor(got) and _is_tensor(expected)):
        return f"{_short(got)} (type {type(got).__name__}, expected type {type(expected).__name__})"
    if (_is_tensor(got) or _is_array(got)) and tuple(got.shape) != tuple(expected.shape):
        return f"shape {tuple(got.shape)} (not {tuple(expected.shape)})"
    return _short(got)


def check_value(name: str, got: Any, expected: Any, hint: str = "", *, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Check one answer value (a number, a tuple, a string, ...). Prints ``"<name> passed."``."""
    if not _agree(got, expected, rtol, atol):
        raise _wrong(f"{name}: got {_describe(got, expected)}, which is not the expected answer.", hint)
    print(f"{name} passed.")


def check_close(name: str, got: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-5, hint: str = "") -> None:
    """Check a tensor: same shape, then values within ``atol + rtol * |expected|``.

    Prints ``"<name> passed: shape (...) and values match."``.
    """
    import torch  # only needed for tensor answers; keeps this module light to import

    expected = torch.as_tensor(expected).detach().cpu().double()
    shape = tuple(expected.shape)
    if not (_is_tensor(got) or _is_array(got)):
        raise _wrong(f"{name}: got a {type(got).__name__}, expected a tensor of shape {shape}.", hint)
    got = torch.as_tensor(got).detach().cpu().double()
    if tuple(got.shape) != shape:
        raise _wrong(f"{name}: got shape {tuple(got.shape)}, expected {shape}.", hint)
    diff = (got - expected).abs()
    bad = diff > atol + rtol * expected.abs()
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise _wrong(
            f"{name}: {int(bad.sum())} of {bad.numel()} values differ; first at index {where}: "
            f"got {got[where].item():.6g}, expected {expected[where].item():.6g} "
            f"(largest difference {diff.max().item():.3g}, allowed {atol:g} + {rtol:g}*|expected|).",
            hint,
        )
    print(f"{name} passed: shape {shape} and values match.")


def check_module(
    module: Any,
    *,
    name: str = "This exercise",
    hint: str = "",
    input_shape: Sequence[int] | None = None,
    output_shape: Sequence[int] | None = None,
    num_params: int | None = None,
    reference: Any = None,
    atol: float = 1e-5,
    seed: int = 0,
) -> None:
    """Check an ``nn.Module``: parameter count, output shape, and agreement with a reference.

    With ``reference`` (a module built the right way), the learner's parameters and buffers
    must have the same shapes in the same order; a copy of the learner's module gets the
    reference's values, and both, in eval mode, must give the same output (within ``atol``)
    on a seeded random batch of ``input_shape``. The learner's module is left as it was.
    Prints ``"<name> passed: <Class> (<params> parameters) checked."``.
    """
    import torch  # only needed for module answers; keeps this module light to import

    if not isinstance(module, torch.nn.Module):
        raise _wrong(f"{name}: got a {type(module).__name__}, expected an nn.Module.", hint)
    count = sum(p.numel() for p in module.parameters())
    if num_params is None and reference is not None:
        num_params = sum(p.numel() for p in reference.parameters())
    if num_params is not None and count != num_params:
        raise _wrong(f"{name}: the module has {count:,} parameters, expected {num_params:,}.", hint)
    if input_shape is not None:
        trial = copy.deepcopy(module)
        if reference is not None:
            _copy_state(name, reference, trial, hint)
        x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))
        got = _forward(name, trial, x)
        expected = _forward(name, copy.deepcopy(reference), x) if reference is not None else None
        for wanted in (output_shape, None if expected is None else expected.shape):
            if wanted is not None and tuple(got.shape) != tuple(wanted):
                shapes = f"input {tuple(input_shape)} gave output {tuple(got.shape)}, expected {tuple(wanted)}"
                raise _wrong(f"{name}: {shapes}.", hint)
        if expected is not None and not torch.allclose(got, expected, atol=atol, rtol=0.0):
            raise _wrong(
                f"{name}: with the reference's weights copied in, the output differs from the reference's "
                f"(largest difference {(got - expected).abs().max().item():.3g}).",
                hint,
            )
    print(f"{name} passed: {type(module).__name__} ({count:,} parameters) checked.")


def _forward(name: str, module: Any, x: Any) -> Any:
    import torch

    module.eval()
    with torch.no_grad():
        return _quietly(name, module, x)


def _copy_state(name: str, source: Any, target: Any, hint: str) -> None:
    """Copy parameters and buffers by position (the learner's names may differ)."""
    import torch

    src = list(source.state_dict().values())
    dst = list(target.state_dict().values())
    src_shapes = [tuple(t.shape) for t in src]
    dst_shapes = [tuple(t.shape) for t in dst]
    if src_shapes != dst_shapes:
        raise _wrong(
            f"{name}: the parameter and buffer shapes differ from the reference's, in order:\n"
            f"  yours:     {dst_shapes}\n  reference: {src_shapes}",
            hint,
        )
    with torch.no_grad():
        for s, d in zip(src, dst):
            d.copy_(s)


def check_raises(
    fn: Callable,
    args: Any,
    exc_type: type[BaseException],
    *,
    name: str = "This exercise",
    hint: str = "",
    match: str | None = None,
) -> None:
    """Check that ``fn(*args)`` raises ``exc_type`` (whose message contains ``match``, if given).

    ``args`` as in ``check_function``. Prints ``"<name> passed: <fn>(...) raises <exc_type>."``.
    """
    pos, kw = _split_case(args)
    call = _call_text(getattr(fn, "__name__", "the function"), pos, kw)
    try:
        got = _quietly(name, fn, *pos, **kw)
    except AssertionError:
        raise
    except Exception as err:
        raised = f"{name}: {call} raised {type(err).__name__}"
        if not isinstance(err, exc_type):
            raise _wrong(f"{raised}: {err}; expected {exc_type.__name__}.", hint) from err
        if match is not None and match not in str(err):
            raise _wrong(f"{raised}({str(err)!r}); its message should mention {match!r}.", hint)
    else:
        raise _wrong(f"{name}: {call} returned {_short(got)}; expected it to raise {exc_type.__name__}.", hint)
    print(f"{name} passed: {call} raises {exc_type.__name__}.")


# --------------------------------------------------------------------------- notebooks


@dataclass(frozen=True)
class Exercise:
    """One exercise of a solution notebook.

    ``solution_cell``/``check_cell`` index ``nb.cells``; ``solution_code``/``check_code`` count
    code cells only, as nbval's test ids do (``notebook.ipynb::Cell N``).
    """

    label: str
    instructions: str
    solution_cell: int
    check_cell: int
    solution_code: int
    check_code: int


def _regions(lines: list[str]) -> list[tuple[int, int]]:
    """(begin, end) line indices of every solution region; ValueError if unbalanced."""
    regions, begin = [], None
    for i, line in enumerate(lines):
        if _BEGIN_RE.match(line):
            if begin is not None:
                raise ValueError(f"line {i + 1}: {BEGIN} inside another solution region")
            begin = i
        elif _END_RE.match(line):
            if begin is None:
                raise ValueError(f"line {i + 1}: {END} without {BEGIN}")
            regions.append((begin, i))
            begin = None
    if begin is not None:
        raise ValueError(f"line {begin + 1}: {BEGIN} without {END}")
    return regions


def _instructions(lines: list[str], begin: int) -> str:
    """The comment lines directly above ``begin`` (markers aside), joined into one sentence."""
    text: list[str] = []
    i = begin - 1
    while i >= 0 and lines[i].strip().startswith("#") and not lines[i].strip().startswith("###"):
        if "NBVAL_" not in lines[i]:
            text.insert(0, lines[i].strip().lstrip("#").strip())
        i -= 1
    return " ".join(t for t in text if t)


def has_solution(cell: Any) -> bool:
    """Whether the cell holds a solution marker (so malformed regions get reported)."""
    return any(_BEGIN_RE.match(line) or _END_RE.match(line) for line in cell.source.splitlines())


def exercise_cells(nb: Any) -> list[Exercise]:
    """The exercises of a solution notebook, in order; ValueError on a malformed one."""
    exercises: list[Exercise] = []
    code_index = {i: n for n, i in enumerate(i for i, c in enumerate(nb.cells) if c.cell_type == "code")}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not has_solution(cell):
            continue
        lines = cell.source.splitlines()
        try:
            first_begin = _regions(lines)[0][0]
        except ValueError as err:
            raise ValueError(f"cell {i}: {err}") from None
        check = next((j for j in range(i + 1, len(nb.cells)) if nb.cells[j].cell_type == "code"), None)
        if check is None or has_solution(nb.cells[check]) or "check_" not in nb.cells[check].source:
            raise ValueError(
                f"cell {i}: an exercise must be followed by a check cell (the next code cell) "
                "that calls a cnnlib.grading check_* helper"
            )
        instructions = _instructions(lines, first_begin)
        match = _LABEL_RE.match(instructions)
        label = match.group(1) if match else f"Exercise {len(exercises) + 1}"
        exercises.append(Exercise(label, instructions, i, check, code_index[i], code_index[check]))
    return exercises


def _replace_regions(source: str, replacement: Callable[[str], str]) -> str:
    """Replace each solution region (markers included) by ``replacement(instructions)``,
    indented like its ``### BEGIN SOLUTION`` line."""
    lines = source.splitlines()
    out: list[str] = []
    start = 0
    for begin, end in _regions(lines):
        indent = _BEGIN_RE.match(lines[begin]).group("indent")
        out += lines[start:begin] + [indent + replacement(_instructions(lines, begin))]
        start = end + 1
    return "\n".join(out + lines[start:])


def _raise_line(label: str, instructions: str) -> str:
    """``raise NotImplementedError("Exercise N: <instructions>")`` as one line of code."""
    text = instructions or DEFAULT_INSTRUCTIONS
    if not _LABEL_RE.match(text):
        text = f"{label}: {text}"
    literal = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"raise NotImplementedError({literal})"


def _assert_parses(source: str, where: str) -> None:
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        compile(TransformerManager().transform_cell(source), where, "exec")
    except SyntaxError as err:
        raise ValueError(f"{where}: the learner version does not parse: {err}") from None


def learner_notebook(nb: Any) -> tuple[Any, list[Exercise]]:
    """The learner version of a solution notebook (a new object) and its exercises.

    Solution regions become ``raise NotImplementedError("Exercise N: <instructions>")`` at
    the same indentation; the exercise cells lose their outputs and execution counts (nbval
    then only runs them); check cells and all other cells keep their stored outputs.
    Written answers in markdown cells become ``YOUR ANSWER HERE``.
    """
    exercises = exercise_cells(nb)
    learner = nbformat.from_dict(nb)
    for ex in exercises:
        cell = learner.cells[ex.solution_cell]
        cell.source = _replace_regions(cell.source, lambda text, label=ex.label: _raise_line(label, text))
        _assert_parses(cell.source, f"{ex.label} (cell {ex.solution_cell})")
        cell.outputs = []
        cell.execution_count = None
    for cell in learner.cells:
        if cell.cell_type == "markdown" and has_solution(cell):
            cell.source = _replace_regions(cell.source, lambda text: ANSWER_PLACEHOLDER)
    return learner, exercises


def student_notebook(src: str | os.PathLike, dst: str | os.PathLike) -> list[Exercise]:
    """Write the learner version of the notebook ``src`` to ``dst``; return its exercises."""
    try:
        learner, exercises = learner_notebook(nbformat.read(src, as_version=4))
    except ValueError as err:
        raise ValueError(f"{src}: {err}") from None
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(learner, dst)
    return exercises


def student_notebooks(src_dir: str | os.PathLike, dst_dir: str | os.PathLike) -> dict[Path, list[Exercise]]:
    """Write the learner version of every ``*.ipynb`` in ``src_dir`` into ``dst_dir``."""
    written = {}
    for src in sorted(Path(src_dir).glob("*.ipynb")):
        dst = Path(dst_dir) / src.name
        written[dst] = student_notebook(src, dst)
    return written


# --------------------------------------------------------------------------- running nbval


@dataclass(frozen=True)
class CellResult:
    """nbval's verdict on one code cell: outcome is passed, failed, error or skipped."""

    outcome: str
    message: str = ""


def run_nbval(
    path: str | os.PathLike,
    *,
    sanitize_with: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    cell_timeout: int = 600,
    extra_args: Sequence[str] = (),
) -> dict[int, CellResult]:
    """Run ``pytest --nbval --nbval-current-env`` on one notebook in a subprocess.

    Returns ``{code cell index: CellResult}`` read from pytest's junit XML (nbval names its
    items ``Cell N``, N counting code cells only). ``sanitize_with`` defaults to the
    repository's ``tests/nbval_sanitize.cfg``; ``env`` is added to ``os.environ``, and the
    kernel imports this very ``cnnlib``. The run uses an empty pytest configuration, so the
    project's own options and conftest stay out.
    """
    path = Path(path).resolve()
    if sanitize_with is None and SANITIZE_FILE.exists():
        sanitize_with = SANITIZE_FILE
    with tempfile.TemporaryDirectory() as tmp:
        junit, ini = Path(tmp) / "junit.xml", Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n")
        sanitize = ["--nbval-sanitize-with", str(sanitize_with)] if sanitize_with is not None else []
        cmd = [
            sys.executable, "-m", "pytest", "-c", str(ini), f"--rootdir={path.parent}", "-p", "no:cacheprovider",
            "--nbval", "--nbval-current-env", *sanitize, f"--nbval-cell-timeout={cell_timeout}",
            f"--junitxml={junit}", "-q", *extra_args, str(path),
        ]
        pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        proc = subprocess.run(
            cmd, cwd=path.parent, env={**os.environ, "PYTHONPATH": pythonpath, **(env or {})},
            capture_output=True, text=True,
        )
        if not junit.exists():
            raise RuntimeError(f"pytest did not run ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return _parse_junit(junit.read_text())


def _parse_junit(xml: str) -> dict[int, CellResult]:
    results: dict[int, CellResult] = {}
    for case in ET.fromstring(xml).iter("testcase"):
        match = re.fullmatch(r"Cell (\d+)", case.get("name", ""))
        if not match:
            continue
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = _ANSI_RE.sub("", f"{node.get('message', '')}\n{node.text or ''}")
                break
        index = int(match.group(1))
        if index in results and results[index].outcome != "passed":
            continue  # a teardown error reported after a failure: keep the failure
        results[index] = CellResult(outcome, message)
    return results


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cnnlib.grading", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    student = commands.add_parser("student", help="write learner versions of solution notebooks")
    student.add_argument("src", help="a solution notebook or a folder of them (e.g. notebooks/)")
    student.add_argument("dst", help="output folder (e.g. exercises/)")
    args = parser.parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    written = student_notebooks(src, dst) if src.is_dir() else {dst / src.name: student_notebook(src, dst / src.name)}
    for path, exercises in written.items():
        print(f"{path}: {len(exercises)} exercise{'s' if len(exercises) != 1 else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
