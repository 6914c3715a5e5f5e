"""The lessons' headline experiments: ``python -m cnnlib.experiments NAME`` (``--list`` names them).

Each experiment is a module with its protocol and sizing in its docstring; all follow
``protocol`` (55,000 training images, a fixed 5,000-image validation split for every choice,
the test set for the final figure, 3 seeds) and write ``results/NAME.json`` (``results``).
"""

from __future__ import annotations

from pathlib import Path

from cnnlib.experiments import (alexnet_tricks, bag_of_tricks, d2l_accuracy, degradation, regularisers, relu_tanh,
                                speedrun, speedrun_search)
from cnnlib.experiments.results import load
from cnnlib.experiments.runner import Experiment, run_experiment
from cnnlib.files import course_folder
from cnnlib.models.registry import lookup

EXPERIMENTS: dict[str, Experiment] = {experiment.name: experiment for experiment in (
    relu_tanh.EXPERIMENT, alexnet_tricks.EXPERIMENT, d2l_accuracy.GOOGLENET, degradation.EXPERIMENT,
    d2l_accuracy.RESNET18, bag_of_tricks.EXPERIMENT, regularisers.EXPERIMENT, speedrun.EXPERIMENT,
    speedrun_search.EXPERIMENT)}

__all__ = ["EXPERIMENTS", "Experiment", "get_experiment", "load_results", "run_experiment"]


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``."""
    return lookup(EXPERIMENTS, name, "experiment", advice="--list describes them.")


def results_folder() -> Path:
    """The course's ``results/``: ``$CNNLIB_RESULTS``, else beside the working directory (see
    :func:`cnnlib.files.course_folder`)."""
    return course_folder("results", env="CNNLIB_RESULTS")


def load_results(name: str) -> dict:
    """The committed results of experiment ``name``: ``NAME.json`` in :func:`results_folder`."""
    path = results_folder() / f"{get_experiment(name).name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist yet: run python -m cnnlib.experiments {name} "
                                f"(about the time its docstring says), or take the committed file")
    return load(path)
