"""The check helpers: verdicts, failure messages and hints, and the observe/judge halves
that the grader runs in different processes (records carried as JSON)."""

import json
import re
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

from cnnlib.grading import checks
from cnnlib.grading.checks import check_close, check_function, check_module, check_raises, check_value, decode, encode, judge


def out_size(n, k, s=1, p=0):
    return (n + 2 * p - k) // s + 1


# --------------------------------------------------------------------------- check helpers


def test_check_function_passes_with_a_deterministic_verdict(capsys):
    check_function(out_size, [((7, 3), 5), ((8, 3, 2, 1), 4), ({"n": 5, "k": 5}, 1)], name="Exercise 1")
    assert capsys.readouterr().out == "Exercise 1 passed: out_size agrees on 3 cases.\n"


def test_learner_prints_and_warnings_stay_out_of_the_verdict(capsys):
    def noisy(n, k, s=1, p=0):
        print("debugging", n)
        warnings.warn("a learner's warning")
        return out_size(n, k, s, p)

    with pytest.warns(UserWarning, match="a learner's warning"):  # reaches the learner, not the verdict
        check_function(noisy, [((7, 3), 5)], name="Exercise 1")
    check_module(nn.Sequential(Noisy()), name="Exercise 8", input_shape=(2, 4))
    captured = capsys.readouterr()
    assert captured.out == (
        "Exercise 1 passed: noisy agrees on 1 case.\nExercise 8 passed: Sequential (0 parameters) checked.\n"
    )
    assert captured.err == ""


class Noisy(nn.Module):
    def forward(self, x):
        print("shape", x.shape)
        return x


def test_check_function_reports_the_first_failing_case_and_the_hint():
    def no_padding(n, k, s=1, p=0):
        return (n - k) // s + 1

    with pytest.raises(AssertionError) as err:
        check_function(no_padding, [((7, 3), 5), ((8, 3, 2, 1), 4), ((9, 3, 1, 1), 9)],
                       name="Exercise 1", hint="Count the padding on both sides.")
    assert str(err.value) == (
        "Exercise 1: no_padding(8, 3, 2, 1) returned 3, expected 4.\nHint: Count the padding on both sides."
    )


def test_check_function_names_a_float_where_an_int_is_expected():
    with pytest.raises(AssertionError, match=r"returned 5\.0 \(type float, expected type int\), expected 5"):
        check_function(lambda n, k: (n - k) / 1 + 1, [((7, 3), 5)], name="Exercise 1")


def test_not_implemented_means_not_done_yet():
    def todo(n, k):
        raise NotImplementedError("Exercise 3: return the output size.")

    message = "Exercise 3 is not done yet: return the output size."
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_function(todo, [((7, 3), 5)], name="Exercise 3")
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_raises(todo, (7, 9), ValueError, name="Exercise 3")


def test_check_function_expected_exceptions_and_reference(capsys):
    def checked(n, k):
        if k > n:
            raise ValueError("kernel larger than input")
        return n - k + 1

    check_function(checked, [((7, 3), 5), ((3, 7), ValueError)], name="Exercise 2")
    check_function(checked, [(7, 3), (3, 7), (4, 4)], reference=checked, name="Exercise 2")
    assert capsys.readouterr().out.splitlines() == [
        "Exercise 2 passed: checked agrees on 2 cases.",
        "Exercise 2 passed: checked agrees on 3 cases.",
    ]
    with pytest.raises(AssertionError, match=r"out_size\(3, 7\) returned -3, expected it to raise ValueError"):
        check_function(out_size, [(3, 7)], reference=checked, name="Exercise 2")
    raised = r"checked\(3, 7\) raised ValueError: kernel larger than input; expected -3\."
    with pytest.raises(AssertionError, match=raised):
        check_function(checked, [(3, 7)], reference=out_size, name="Exercise 2")


def test_check_value(capsys):
    check_value("Exercise 2", 3 * 3 * 16 * 32, 4608)
    check_value("Exercise 4", 0.1 + 0.2, 0.3, rtol=1e-9)
    check_value("Exercise 5", (1, 64, 56, 56), (1, 64, 56, 56))
    assert capsys.readouterr().out == "Exercise 2 passed.\nExercise 4 passed.\nExercise 5 passed.\n"
    with pytest.raises(AssertionError) as err:
        check_value("Exercise 2", 3 * 3 * 16, 4608, hint="in x out")
    assert str(err.value) == "Exercise 2: got 144, which is not the expected answer.\nHint: in x out"
    with pytest.raises(AssertionError):
        check_value("Exercise 4", 0.1 + 0.2, 0.3)  # exact by default
    with pytest.raises(AssertionError):
        check_value("Exercise 6", True, 1)


def test_check_close(capsys):
    x = torch.arange(6.0).view(2, 3)
    check_close("Exercise 7", x + 1e-7, x)
    assert capsys.readouterr().out == "Exercise 7 passed: shape (2, 3) and values match.\n"
    with pytest.raises(AssertionError, match=r"got shape \(3, 2\), expected \(2, 3\)\.\nHint: transpose"):
        check_close("Exercise 7", x.T, x, hint="transpose")
    wrong = x.clone()
    wrong[1, 2] = 0.0
    with pytest.raises(AssertionError, match=r"1 of 6 values differ; first at index \(1, 2\): got 0, expected 5"):
        check_close("Exercise 7", wrong, x)
    with pytest.raises(AssertionError, match="got a list"):
        check_close("Exercise 7", x.tolist(), x)


class TwoLayer(nn.Module):
    """The same computation as nn.Sequential(Linear(4, 8), ReLU(), Linear(8, 2)), other names."""

    def __init__(self, relu=True):
        super().__init__()
        self.first, self.second, self.relu = nn.Linear(4, 8), nn.Linear(8, 2), relu

    def forward(self, x):
        h = self.first(x)
        return self.second(torch.relu(h) if self.relu else h)


def test_check_module(capsys):
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    learner = TwoLayer()
    before = learner.first.weight.clone()
    check_module(learner, name="Exercise 8", reference=reference, input_shape=(5, 4), output_shape=(5, 2))
    assert capsys.readouterr().out == "Exercise 8 passed: TwoLayer (58 parameters) checked.\n"
    assert torch.equal(learner.first.weight, before) and learner.training  # left as it was

    with pytest.raises(AssertionError, match="the output differs from the reference"):
        check_module(TwoLayer(relu=False), name="Exercise 8", reference=reference, input_shape=(5, 4))
    with pytest.raises(AssertionError, match="has 40 parameters, expected 58"):
        check_module(nn.Linear(4, 8), name="Exercise 8", reference=reference, input_shape=(5, 4))
    with pytest.raises(AssertionError, match=r"input \(5, 4\) gave output \(5, 8\), expected \(5, 2\)"):
        check_module(nn.Linear(4, 8), name="Exercise 8", input_shape=(5, 4), output_shape=(5, 2))


def test_check_raises(capsys):
    def picky(n):
        if n < 1:
            raise ValueError("n must be positive")
        return n

    check_raises(picky, (0,), ValueError, name="Exercise 9", match="positive")
    assert capsys.readouterr().out == "Exercise 9 passed: picky(0) raises ValueError.\n"
    with pytest.raises(AssertionError, match=r"picky\(3\) returned 3; expected it to raise ValueError"):
        check_raises(picky, 3, ValueError, name="Exercise 9")
    with pytest.raises(AssertionError, match="raised ValueError: n must be positive; expected TypeError"):
        check_raises(picky, 0, TypeError, name="Exercise 9")
    with pytest.raises(AssertionError, match="should mention 'negative'"):
        check_raises(picky, 0, ValueError, name="Exercise 9", match="negative")


# --------------------------------------------------------------------------- records, for the grader


def recorded(check, *args, **kwargs):
    """The records a check leaves in recording mode, carried through JSON and decoded."""
    with checks.recording() as records:
        check(*args, **kwargs)
    return [{key: decode(value) for key, value in json.loads(json.dumps(r)).items()} for r in records]


def double(n):
    return 2 * n


def test_recording_ends_with_its_block_even_when_a_check_crashes():
    with pytest.raises(ZeroDivisionError), checks.recording() as records:
        checks.check_value("Exercise 9", 1, 1)
        1 / 0
    assert len(records) == 1 and decode(records[0]["spec"])["kind"] == "value"
    with pytest.raises(AssertionError, match="Exercise 9"):  # judging again: a wrong value raises
        checks.check_value("Exercise 9", 1, 2)


@pytest.mark.parametrize("value", [
    None, True, 3, -2.5, float("inf"), "text", [1, (2, 3.0)], (1, [2]), {"a": (1, 2), 3: None},
    torch.arange(6).view(2, 3), torch.tensor([[0.1, float("nan")]], dtype=torch.float64), torch.tensor(True),
])
def test_values_survive_the_journey_through_json(value):
    back = decode(json.loads(json.dumps(encode(value))))
    assert type(back) is type(value)
    if isinstance(value, torch.Tensor):
        assert back.dtype == value.dtype and torch.equal(back.nan_to_num(7), value.nan_to_num(7))
    else:
        assert back == value


def test_unknown_objects_and_exception_classes_are_carried_by_name():
    opaque = decode(json.loads(json.dumps(encode(object()))))
    assert not checks._agree(opaque, opaque, 0, 0) and "object" in repr(opaque)
    exc = decode(json.loads(json.dumps(encode(KeyError))))
    assert exc.__name__ == "KeyError" and exc.names == ["KeyError", "LookupError", "Exception", "BaseException", "object"]


@pytest.mark.parametrize("check, args, kwargs", [
    (check_function, (double, [(1, 2), (2, 5), (3, ValueError)]), {"name": "Exercise 1", "hint": "twice"}),
    (check_function, (double, [1, 2]), {"reference": lambda n: n + n, "name": "Exercise 1"}),
    (check_value, ("Exercise 2", 144, 4608), {"hint": "in x out"}),
    (check_close, ("Exercise 3", torch.ones(2, 2), torch.ones(2, 2) * 1.5), {}),
    (check_module, (nn.Linear(4, 3),), {"name": "Exercise 4", "reference": nn.Linear(4, 2), "input_shape": (1, 4)}),
    (check_raises, (double, (1,), ValueError), {"name": "Exercise 5"}),
])
def test_judging_records_gives_the_self_checks_verdict(check, args, kwargs):
    """The grader's verdict (judge on records carried as JSON) is the learner's own, message for message."""
    try:
        check(*args, **kwargs)
        own = None
    except AssertionError as err:
        own = str(err)
    (record,) = recorded(check, *args, **kwargs)
    failures = [f for f in judge(record["spec"], record["observed"]) if f is not None]
    assert (failures[0].message if failures else None) == own


def test_a_record_judged_against_another_runs_spec():
    """The learner's observations judged against the spec of the solution's run: what the
    learner's run computed as expected does not count."""
    (solution,) = recorded(check_function, double, [1, 2, 3], reference=double, name="Exercise 1")
    (learner,) = recorded(check_function, lambda n: n, [1, 2, 3], reference=lambda n: n, name="Exercise 1")
    assert [f for f in judge(learner["spec"], learner["observed"]) if f] == []  # fooled by its own reference
    verdicts = judge(solution["spec"], learner["observed"])
    assert [f.message if f else None for f in verdicts] == [  # the calls as the solution's run wrote them
        "Exercise 1: double(1) returned 1, expected 2.", "Exercise 1: double(2) returned 2, expected 4.",
        "Exercise 1: double(3) returned 3, expected 6."]


def test_not_done_and_raised_are_told_apart():
    def todo(n):
        raise NotImplementedError("Exercise 1: double it.")

    (record,) = recorded(check_function, todo, [(1, 2)], name="Exercise 1")
    (failure,) = judge(record["spec"], record["observed"])
    assert failure.kind == "not_done" and failure.message.startswith("Exercise 1 is not done yet: double it.")
    (record,) = recorded(check_function, lambda n: {}[n], [(1, 2)], name="Exercise 1")
    assert judge(record["spec"], record["observed"])[0].kind == "raised"


def test_the_checks_import_without_nbformat():
    code = "import sys; import cnnlib.grading.checks; print('nbformat' in sys.modules, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
