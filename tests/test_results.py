"""Every committed results file holds to the schema and to its experiment's current protocol, and
every experiment has its committed file."""

import json
from pathlib import Path

import pytest

from cnnlib.experiments import EXPERIMENTS
from cnnlib.experiments.protocol import Scale
from cnnlib.experiments.results import problems

RESULTS = Path(__file__).resolve().parents[1] / "results"
FILES = sorted(RESULTS.glob("*.json"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_results_file_holds_to_the_schema(path):
    data = json.loads(path.read_text())
    assert path.stem in EXPERIMENTS, f"{path.name} names no experiment: known are {', '.join(EXPERIMENTS)}"
    assert data["experiment"] == path.stem
    experiment = EXPERIMENTS[path.stem]
    assert problems(data, min_seeds=experiment.seeds) == []
    assert data["protocol"] == experiment.protocol(Scale.of(False)), "the protocol changed since these runs"
    configs = {json.dumps(c, sort_keys=True) for c in experiment.configs(Scale.of(False))}
    assert {json.dumps(run["config"], sort_keys=True) for run in data["runs"]} == configs


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_every_experiment_has_results(name):
    assert (RESULTS / f"{name}.json").is_file(), f"results/{name}.json is missing: python -m cnnlib.experiments {name}"
