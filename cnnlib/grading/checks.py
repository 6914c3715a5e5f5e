"""Exercise checks: the helpers that the lessons' check cells call.

A check raises ``AssertionError`` with a hint when the answer is wrong, and prints a short,
deterministic verdict when it is right (``pytest --nbval`` grades by exceptions). Each check
is two halves that can run in different processes:

* *observe* calls the learner's code (its prints silenced) and keeps what it gave: a value,
  or the exception it raised; ``NotImplementedError`` means "not done yet";
* *judge* compares what was observed with what was expected and lists one failure message
  per wrong case (:func:`judge`).

In a notebook both halves run at once. The instructor's grader (:mod:`cnnlib.grading.recorder`,
in the learner's kernel) turns on :func:`recording`: the checks then only record ``{"spec", "observed"}`` as JSON-able data
(:func:`encode`), and the grader judges the learner's observations against the specs of a run
of the solution, in its own process. ``points=`` (default 1) and ``partial=`` (credit for the
share of cases passed) are read by the grader only.

This module imports neither nbformat nor torch (torch only when an answer is a tensor).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any

CHECKS = ("check_function", "check_value", "check_close", "check_module", "check_raises")
DEFAULT_INSTRUCTIONS = "write your code here."

_records: list[dict] | None = None


@contextlib.contextmanager
def recording() -> Iterator[list[dict]]:
    """Inside the ``with`` block, checks append their ``{"spec", "observed"}`` to the list it
    gives instead of judging; when the block ends, however it ends, they judge again."""
    global _records
    outer, _records = _records, []
    try:
        yield _records
    finally:
        _records = outer


# --------------------------------------------------------------------------- values


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


class Opaque:
    """A value that could not be carried between processes: equal to nothing, shown by its repr."""

    def __init__(self, type_name: str, text: str):
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return self.text


class ExceptionType:
    """An exception class carried between processes, by the names of its classes (its MRO)."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self.__name__ = self.names[0]


def encode(x: Any) -> Any:
    """``x`` as JSON-able data that :func:`decode` turns back into an equal value.

    Tensors and arrays keep dtype and shape; tuples stay tuples; exception classes become
    their class names; anything else becomes an :class:`Opaque` (equal to nothing).
    """
    if x is None or isinstance(x, (bool, str)):
        return x
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, float):
        return x
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, list):
        return [encode(v) for v in x]
    if isinstance(x, tuple):
        return {"tuple": [encode(v) for v in x]}
    if isinstance(x, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in x.items()]}
    if _is_tensor(x):
        x = x.detach().cpu()
        return {"tensor": x.tolist(), "dtype": str(x.dtype).removeprefix("torch."), "shape": list(x.shape)}
    if _is_array(x):
        return {"ndarray": x.tolist(), "dtype": str(x.dtype), "shape": list(x.shape)}
    if isinstance(x, type) and issubclass(x, BaseException):
        return {"exception": [c.__name__ for c in x.__mro__]}
    return {"opaque": type(x).__name__, "repr": _short(x)}


def decode(data: Any) -> Any:
    """The value that :func:`encode` encoded (from untrusted JSON: builds only plain values)."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "tuple" in data:
        return tuple(decode(v) for v in data["tuple"])
    if "dict" in data:
        return {_hashable(decode(k)): decode(v) for k, v in data["dict"]}
    if "tensor" in data:
        import torch

        return torch.tensor(data["tensor"], dtype=getattr(torch, str(data["dtype"]))).reshape(data["shape"])
    if "ndarray" in data:
        import numpy

        return numpy.array(data["ndarray"], dtype=str(data["dtype"])).reshape(data["shape"])
    if "exception" in data:
        return ExceptionType([str(n) for n in data["exception"]])
    return Opaque(str(data.get("opaque")), str(data.get("repr")))


def _hashable(x: Any) -> Any:
    return x if isinstance(x, (str, int, float, bool, tuple, type(None))) else repr(x)


def _agree(got: Any, expected: Any, rtol: float, atol: float) -> bool:
    """Equality that is exact by default, tolerant with rtol/atol, strict about int vs float."""
    if isinstance(got, Opaque) or isinstance(expected, Opaque):
        return False
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


def _describe(got: Any, expected: Any) -> str:
    """The wrong value, with its type when the types differ (4.0 for 4, a list for a tensor)."""
    if type(got) is not type(expected) and not (_is_tensor(got) and _is_tensor(expected)):
        got_type = got.type_name if isinstance(got, Opaque) else type(got).__name__
        return f"{_short(got)} (type {got_type}, expected type {type(expected).__name__})"
    if (_is_tensor(got) or _is_array(got)) and tuple(got.shape) != tuple(expected.shape):
        return f"shape {tuple(got.shape)} (not {tuple(expected.shape)})"
    return _short(got)


# --------------------------------------------------------------------------- observing


def _observe_call(fn: Callable, args: tuple, kwargs: dict) -> dict:
    """Call the learner's code with its prints silenced; keep its value or its exception."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return {"value": fn(*args, **kwargs)}
    except NotImplementedError as err:
        return {"not_done": str(err)}
    except Exception as err:
        return {"raised": [c.__name__ for c in type(err).__mro__], "message": str(err)}


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
    return isinstance(x, ExceptionType) or (isinstance(x, type) and issubclass(x, BaseException))


def _reference_result(reference: Callable, args: Any) -> Any:
    pos, kw = _split_case(args)
    try:
        return reference(*pos, **kw)
    except Exception as err:
        return type(err)


def _conclude(spec: dict, observed: dict) -> None:
    """Record the check (under the grader) or judge it now: raise the first failure, or print
    the verdict."""
    if _records is not None:
        _records.append({"spec": encode(spec), "observed": encode(observed)})
        return
    failures = [f for f in judge(spec, observed) if f is not None]
    if failures:
        raise AssertionError(failures[0].message)
    print(spec["verdict"].format(**observed.get("verdict_fields", {})))


def check_function(
    fn: Callable,
    cases: Sequence[tuple[Any, Any]] | Sequence[Any],
    *,
    name: str = "This exercise",
    hint: str = "",
    reference: Callable | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    points: float = 1,
    partial: bool = False,
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
    calls, expected, outcomes = [], [], []
    for args, value in cases:
        pos, kw = _split_case(args)
        calls.append(_call_text(fn_name, pos, kw))
        expected.append(value)
        outcomes.append(_observe_call(fn, pos, kw))
    n = len(calls)
    spec = dict(kind="function", name=name, hint=hint, calls=calls, expected=expected, rtol=rtol, atol=atol,
                points=points, partial=partial, verdict=f"{name} passed: {{fn_name}} agrees on {n} case{'' if n == 1 else 's'}.")
    _conclude(spec, {"outcomes": outcomes, "verdict_fields": {"fn_name": fn_name}})


def check_value(name: str, got: Any, expected: Any, hint: str = "", *, rtol: float = 0.0, atol: float = 0.0,
                points: float = 1, partial: bool = False) -> None:
    """Check one answer value (a number, a tuple, a string, ...). Prints ``"<name> passed."``."""
    spec = dict(kind="value", name=name, hint=hint, expected=expected, rtol=rtol, atol=atol, points=points,
                partial=partial, verdict=f"{name} passed.")
    _conclude(spec, {"got": got})


def check_close(name: str, got: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-5, hint: str = "",
                points: float = 1, partial: bool = False) -> None:
    """Check a tensor: same shape, then values within ``atol + rtol * |expected|``.

    Prints ``"<name> passed: shape (...) and values match."``.
    """
    import torch  # only needed for tensor answers; keeps this module light to import

    expected = torch.as_tensor(expected).detach().cpu().double()
    spec = dict(kind="close", name=name, hint=hint, expected=expected, rtol=rtol, atol=atol, points=points,
                partial=partial, verdict=f"{name} passed: shape {tuple(expected.shape)} and values match.")
    _conclude(spec, {"got": got})


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
    points: float = 1,
    partial: bool = False,
) -> None:
    """Check an ``nn.Module``: parameter count, output shape, and agreement with a reference.

    With ``reference`` (a module built the right way), the learner's parameters and buffers
    must have the same shapes in the same order; a copy of the learner's module gets the
    reference's values, and both, in eval mode, must give the same output (within ``atol``)
    on a seeded random batch of ``input_shape``. The learner's module is left as it was.
    Prints ``"<name> passed: <Class> (<params> parameters) checked."``.
    """
    import torch  # only needed for module answers; keeps this module light to import

    if num_params is None and reference is not None:
        num_params = sum(p.numel() for p in reference.parameters())
    x = None if input_shape is None else torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))
    spec = dict(kind="module", name=name, hint=hint, num_params=num_params, input_shape=input_shape,
                output_shape=output_shape, atol=atol, points=points, partial=partial,
                shapes=None if reference is None else _state_shapes(reference),
                output=None if reference is None or x is None else _forward(copy.deepcopy(reference), x).get("value"),
                verdict=f"{name} passed: {{type_name}} ({{count:,}} parameters) checked.")
    observed: dict[str, Any] = {"type_name": type(module).__name__}
    if isinstance(module, torch.nn.Module):
        observed.update(count=sum(p.numel() for p in module.parameters()), shapes=_state_shapes(module))
        if x is not None and (reference is None or observed["shapes"] == spec["shapes"]):
            trial = copy.deepcopy(module)
            if reference is not None:
                with torch.no_grad():
                    for s, d in zip(reference.state_dict().values(), trial.state_dict().values()):
                        d.copy_(s)
            observed["output"] = _forward(trial, x)
    observed["verdict_fields"] = {"type_name": observed["type_name"], "count": observed.get("count", 0)}
    _conclude(spec, observed)


def _state_shapes(module: Any) -> list[tuple[int, ...]]:
    """Parameters and buffers by position (the learner's names may differ)."""
    return [tuple(t.shape) for t in module.state_dict().values()]


def _forward(module: Any, x: Any) -> dict:
    import torch

    module.eval()
    with torch.no_grad():
        return _observe_call(module, (x,), {})


def check_raises(
    fn: Callable,
    args: Any,
    exc_type: type[BaseException],
    *,
    name: str = "This exercise",
    hint: str = "",
    match: str | None = None,
    points: float = 1,
    partial: bool = False,
) -> None:
    """Check that ``fn(*args)`` raises ``exc_type`` (whose message contains ``match``, if given).

    ``args`` as in ``check_function``. Prints ``"<name> passed: <fn>(...) raises <exc_type>."``.
    """
    pos, kw = _split_case(args)
    call = _call_text(getattr(fn, "__name__", "the function"), pos, kw)
    spec = dict(kind="raises", name=name, hint=hint, call=call, exc_type=exc_type, match=match, points=points,
                partial=partial, verdict=f"{name} passed: {call} raises {exc_type.__name__}.")
    _conclude(spec, {"outcome": _observe_call(fn, pos, kw)})


# --------------------------------------------------------------------------- judging


class Failure:
    """One wrong case: ``kind`` is ``not_done``, ``raised`` (the answer raised) or ``wrong``."""

    def __init__(self, kind: str, message: str):
        self.kind, self.message = kind, message

    def __repr__(self) -> str:
        return f"Failure({self.kind!r}, {self.message!r})"


def _wrong(spec: dict, message: str, kind: str = "wrong") -> Failure:
    """What was wrong, then the hint."""
    return Failure(kind, f"{message}\nHint: {spec['hint']}" if spec.get("hint") else message)


def not_done(name: str, message: str) -> Failure:
    """The failure of an exercise whose ``NotImplementedError`` stub (``message``) is still there."""
    if message.startswith(name + ":"):
        message = message[len(name) + 1 :].strip()
    message = message or DEFAULT_INSTRUCTIONS
    return Failure("not_done", f"{name} is not done yet: {message} "
                               "(replace the `raise NotImplementedError(...)` line with your code)")


def judge(spec: dict, observed: dict) -> list[Failure | None]:
    """One entry per case of the check: ``None`` where it passed, else its :class:`Failure`.

    ``spec`` and ``observed`` are what a check built, or the records :func:`decode` returns.
    """
    return _JUDGES[spec["kind"]](spec, observed)


def _judge_function(spec: dict, observed: dict) -> list[Failure | None]:
    outcomes = list(observed.get("outcomes", []))
    outcomes += [{"missing": True}] * (len(spec["calls"]) - len(outcomes))
    return [_judge_call(spec, call, expected, outcome, "expected")
            for call, expected, outcome in zip(spec["calls"], spec["expected"], outcomes)]


def _judge_call(spec: dict, call: str, expected: Any, outcome: dict, wanted_word: str) -> Failure | None:
    name, rtol, atol = spec["name"], spec.get("rtol", 0.0), spec.get("atol", 0.0)
    must_raise = _is_exception_type(expected)
    wanted = f"expected it to raise {expected.__name__}" if must_raise else f"{wanted_word} {_short(expected)}"
    if "not_done" in outcome:
        return not_done(spec["name"], outcome["not_done"])
    if "raised" in outcome:
        raised = list(outcome["raised"])
        if must_raise and expected.__name__ in raised:
            return None
        return _wrong(spec, f"{name}: {call} raised {raised[0]}: {outcome['message']}; {wanted}.", "raised")
    if "value" not in outcome:
        return _wrong(spec, f"{name}: {call} was not checked (the check did not run to its end).")
    got = outcome["value"]
    if must_raise:
        return _wrong(spec, f"{name}: {call} returned {_short(got)}, expected it to raise {expected.__name__}.")
    if not _agree(got, expected, rtol, atol):
        return _wrong(spec, f"{name}: {call} returned {_describe(got, expected)}, expected {_short(expected)}.")
    return None


def _judge_value(spec: dict, observed: dict) -> list[Failure | None]:
    got = observed.get("got")
    if not _agree(got, spec["expected"], spec["rtol"], spec["atol"]):
        return [_wrong(spec, f"{spec['name']}: got {_describe(got, spec['expected'])}, which is not the expected answer.")]
    return [None]


def _judge_close(spec: dict, observed: dict) -> list[Failure | None]:
    import torch

    name, expected, got = spec["name"], spec["expected"], observed.get("got")
    shape = tuple(expected.shape)
    if not (_is_tensor(got) or _is_array(got)):
        got_type = got.type_name if isinstance(got, Opaque) else type(got).__name__
        return [_wrong(spec, f"{name}: got a {got_type}, expected a tensor of shape {shape}.")]
    got = torch.as_tensor(got).detach().cpu().double()
    if tuple(got.shape) != shape:
        return [_wrong(spec, f"{name}: got shape {tuple(got.shape)}, expected {shape}.")]
    atol, rtol = spec["atol"], spec["rtol"]
    diff = (got - expected).abs()
    bad = ~(diff <= atol + rtol * expected.abs())  # NaN counts as different
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        return [_wrong(spec,
            f"{name}: {int(bad.sum())} of {bad.numel()} values differ; first at index {where}: "
            f"got {got[where].item():.6g}, expected {expected[where].item():.6g} "
            f"(largest difference {diff.max().item():.3g}, allowed {atol:g} + {rtol:g}*|expected|).")]
    return [None]


def _judge_module(spec: dict, observed: dict) -> list[Failure | None]:
    import torch

    name = spec["name"]
    if "count" not in observed:
        return [_wrong(spec, f"{name}: got a {observed.get('type_name')}, expected an nn.Module.")]
    count, num_params = observed["count"], spec["num_params"]
    if num_params is not None and count != num_params:
        return [_wrong(spec, f"{name}: the module has {count:,} parameters, expected {num_params:,}.")]
    if spec["shapes"] is not None and [tuple(s) for s in observed["shapes"]] != [tuple(s) for s in spec["shapes"]]:
        return [_wrong(spec, f"{name}: the parameter and buffer shapes differ from the reference's, in order:\n"
                             f"  yours:     {[tuple(s) for s in observed['shapes']]}\n"
                             f"  reference: {[tuple(s) for s in spec['shapes']]}")]
    if spec["input_shape"] is None:
        return [None]
    outcome = observed.get("output", {"missing": True})
    if "not_done" in outcome:
        return [not_done(spec["name"], outcome["not_done"])]
    if "raised" in outcome:
        return [_wrong(spec, f"{name}: the forward pass raised {outcome['raised'][0]}: {outcome['message']}.", "raised")]
    got, expected = outcome.get("value"), spec["output"]
    if not _is_tensor(got):
        return [_wrong(spec, f"{name}: the forward pass returned {_short(got)}, expected a tensor.")]
    for wanted in (spec["output_shape"], None if expected is None else expected.shape):
        if wanted is not None and tuple(got.shape) != tuple(wanted):
            shapes = f"input {tuple(spec['input_shape'])} gave output {tuple(got.shape)}, expected {tuple(wanted)}"
            return [_wrong(spec, f"{name}: {shapes}.")]
    if expected is not None and not torch.allclose(got.double(), expected.double(), atol=spec["atol"], rtol=0.0):
        return [_wrong(spec,
            f"{name}: with the reference's weights copied in, the output differs from the reference's "
            f"(largest difference {(got.double() - expected.double()).abs().max().item():.3g}).")]
    return [None]


def _judge_raises(spec: dict, observed: dict) -> list[Failure | None]:
    name, call, exc_name = spec["name"], spec["call"], spec["exc_type"].__name__
    outcome = observed.get("outcome", {})
    if "not_done" in outcome:
        return [not_done(spec["name"], outcome["not_done"])]
    if "raised" in outcome:
        raised = f"{name}: {call} raised {outcome['raised'][0]}"
        if exc_name not in outcome["raised"]:
            return [_wrong(spec, f"{raised}: {outcome['message']}; expected {exc_name}.")]
        if spec["match"] is not None and spec["match"] not in outcome["message"]:
            return [_wrong(spec, f"{raised}({outcome['message']!r}); its message should mention {spec['match']!r}.")]
        return [None]
    if "value" not in outcome:
        return [_wrong(spec, f"{name}: {call} was not checked (the check did not run to its end).")]
    return [_wrong(spec, f"{name}: {call} returned {_short(outcome['value'])}; expected it to raise {exc_name}.")]


_JUDGES = {"function": _judge_function, "value": _judge_value, "close": _judge_close,
           "module": _judge_module, "raises": _judge_raises}
