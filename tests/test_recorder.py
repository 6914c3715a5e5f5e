"""The recorder, in this process: what it records, and that a learner's patches do not reach it."""

import json
import sys
import types

import IPython.display
import pytest

from cnnlib.grading import checks, recorder


@pytest.fixture
def displayed(monkeypatch):
    """What :func:`recorder.record` displays, decoded from its JSON."""
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda data, raw=False: shown.append(json.loads(data[recorder.RECORDS_MIME])))
    return shown


def test_the_checks_bound_are_the_files_not_the_learners(displayed, monkeypatch):
    def fake_check(*args, **kwargs):
        print("Exercise 9 passed.")

    monkeypatch.setitem(sys.modules, "cnnlib.grading.checks", types.SimpleNamespace(check_value=fake_check))
    namespace = {"check_value": fake_check, "answer": 3}
    sources = {"visible": "check_value('Exercise 9', answer, 4)",
               "hidden": "from cnnlib.grading.checks import check_value as again\nagain('Exercise 9', answer + 1, 4)\nkept = 1"}
    recorder.record(namespace, sources, str(recorder.CHECKS_PATH))
    (records,) = displayed
    assert [checks.decode(r["observed"]) for r in records["visible"] + records["hidden"]] == [{"got": 3}, {"got": 4}]
    verdict = [checks.judge(checks.decode(r["spec"]), checks.decode(r["observed"])) for r in records["visible"]]
    assert verdict[0][0].message.startswith("Exercise 9: got 3")
    assert namespace["kept"] == 1 and namespace["check_value"] is fake_check  # the learner's names stay


def test_a_check_that_raises_is_recorded_and_recording_ends(displayed):
    recorder.record({}, {"visible": "check_value('Exercise 9', 1 / 0, 1)", "hidden": ""}, str(recorder.CHECKS_PATH))
    (records,) = displayed
    assert records["visible"] == [] and records["visible_error"] == [
        ["ZeroDivisionError", "ArithmeticError", "Exception", "BaseException", "object"], "division by zero"]
    assert checks._records is None


def test_the_cell_loads_the_recorder_by_its_path():
    source = recorder.cell_source("check_value('Exercise 1', x, 1)", "")
    compile(source, "<cell>", "exec")
    assert repr(str(recorder.CHECKS_PATH)) in source and "spec_from_file_location" in source
    assert "import cnnlib" not in source


def test_records_are_read_back_from_the_cells_display():
    data = {"visible": [], "hidden": []}
    cell = {"outputs": [{"output_type": "stream", "text": "x"},
                        {"output_type": "display_data", "data": {recorder.RECORDS_MIME: json.dumps(data)}}]}
    assert recorder.records_of(cell) == data
    assert recorder.records_of({"outputs": [{"output_type": "display_data", "data": {recorder.RECORDS_MIME: "{"}}]}) is None
    assert recorder.records_of({"outputs": []}) is None
