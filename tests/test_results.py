"""Every committed results file holds to the schema and to its experiment's current protocol;
an experiment without its file yet is reported as skipped, with the command that makes it."""

import json

import pytest

from cnnlib.experiments import EXPERIMENTS, RESULTS
from cnnlib.experiments.protocol import Scale
from cnnlib.experiments.results import problems

FILES = sorted(RESULTS.glob("*.json"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_results_file_holds_to_the_schema(path):
    data = json.loads(path.read_text())
    assert path.stem in EXPERIMENTS, f"{path.name} names no experiment: known are {', '.join(EXPERIMENTS)}"
    assert data["experiment"] == path.stem
    assert problems(data) == []
    experiment = EXPERIMENTS[path.stem]
    assert data["protocol"] == experiment.protocol(Scale.of(False)), "the protocol changed since these runs"
    configs = {json.dumps(c, sort_keys=True) for c in experiment.configs(Scale.of(False))}
    assert {json.dumps(run["config"], sort_keys=True) for run in data["runs"]} == configs


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_has_results(name):
    if not (RESULTS / f"{name}.json").exists():
        pytest.skip(f"results/{name}.json is not produced yet: python -m cnnlib.experiments {name}")
