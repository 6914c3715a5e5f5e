"""An experiment as data (its configurations and how to run one) and the resumable loop over them.

The loop goes configuration by configuration, seed by seed, in the order the experiment lists
them (so a configuration may use the finished runs of those before it, as distillation uses
its teacher's), skips every (configuration, seed) already in the results file, and writes the
file after each run. Ctrl-C (or a kill) loses at most the run in progress.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from cnnlib.experiments.protocol import Scale, Splits
from cnnlib.experiments.results import ResultsFile
from cnnlib.experiments.stats import config_label
from cnnlib.training.loop import seed_everything


@dataclass
class Context:
    """What a run may use besides its configuration and seed: the data, the scale, the runs
    finished so far (``results.runs``) and a folder for weights that later runs need."""

    splits: Splits
    scale: Scale
    results: ResultsFile
    artifacts: Path


@dataclass(frozen=True)
class Experiment:
    """A lesson's experiment: ``configs(scale)`` lists the configurations (dicts of JSON values),
    ``run(config, seed, context)`` trains one and returns its record (``results.RUN_KEYS``
    except config and seed); ``protocol(scale)``: the settings shared by every configuration
    (widths, epochs, batch), kept in the results file so that a changed protocol cannot be
    resumed into old runs. ``seeds``: per configuration, 3 for a claim (the protocol), 1 for a search, whose
    choice is then measured over seeds elsewhere. The protocol and its sizing are in the module's docstring
    (``help``)."""

    name: str
    lesson: str
    claim: str
    configs: Callable[[Scale], list[dict]]
    run: Callable[[dict, int, Context], dict]
    protocol: Callable[[Scale], dict]
    seeds: int = 3


def save_weights(context: Context, role: str, seed: int, model: nn.Module) -> None:
    """Keep ``model``'s weights for later runs: ``ROLE-seedN.pt`` in the experiment's artifacts folder."""
    context.artifacts.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), context.artifacts / f"{role}-seed{seed}.pt")


def chosen_network(context: Context, role: str, is_role: Callable[[dict], bool],
                   network: nn.Module) -> tuple[int, nn.Module]:
    """The seed of the finished run whose config ``is_role`` with the highest final validation accuracy
    (a teacher chosen on the validation split, never on the test set), and ``network`` (a fresh one of the
    run's shape) with that run's saved weights (``save_weights``) loaded."""
    runs = [r for r in context.results.runs if is_role(r["config"])]
    if not runs:
        raise RuntimeError(f"distillation needs a trained {role}, and no {role} run is finished: "
                           f"the {role} configuration must come before it")
    seed = max(runs, key=lambda r: r["val_acc"][-1])["seed"]
    path = context.artifacts / f"{role}-seed{seed}.pt"
    if not path.exists():
        raise FileNotFoundError(f"the chosen {role}'s weights {path} are missing: delete the {role} runs "
                                "from the results file so that they are trained again")
    network.load_state_dict(torch.load(path, weights_only=True))
    return seed, network


def artifacts_dir(out: str | os.PathLike) -> Path:
    """Where an experiment keeps weights beside its results file ``out``: ``NAME.artifacts/``."""
    out = Path(out)
    return out.with_name(out.stem + ".artifacts")


def run_outcome(record: dict) -> str:
    """One line about a finished run: its final figures, or why it has none."""
    if record.get("diverged"):
        return f"diverged after {record['seconds']:.0f} s"
    return (f"test acc {record['test_acc']:.4f}, final train error {record['train_error'][-1]:.4f}, "
            f"{record['seconds']:.0f} s")


def run_experiment(experiment: Experiment, out: str | os.PathLike, seeds: int = 3, smoke: bool = False,
                   command: str = "", splits: Splits | None = None, progress: bool = True) -> ResultsFile:
    """Run every (configuration, seed) of ``experiment`` not yet in ``out``; return the results.

    Args:
        experiment: what to run (its configurations, its run function, its protocol).
        out: the results file, created or resumed (its protocol must be the experiment's).
        seeds: seeds 0 to seeds - 1 of every configuration.
        smoke: the tiny scale of a check that the code runs (``protocol.Scale``), not a result.
        command: the command line, kept in the results file.
        splits: the data (default: the protocol's splits, ``Splits.load``).
        progress: show a progress bar and a line per finished run.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    scale = Scale.of(smoke)
    results = ResultsFile(out, experiment.name, command, smoke, experiment.protocol(scale))
    todo = [(config, seed) for config in experiment.configs(scale) for seed in range(seeds)
            if not results.has(config, seed)]
    total = len(experiment.configs(scale)) * seeds
    if not todo:
        return results
    context = Context(splits or Splits.load(scale), scale, results, artifacts_dir(out))
    with tqdm(total=total, initial=total - len(todo), desc=experiment.name, unit="run", disable=not progress) as bar:
        for config, seed in todo:
            bar.set_postfix_str(f"{config_label(config)}, seed {seed}")
            seed_everything(seed)
            record = experiment.run(config, seed, context)
            results.add({"config": config, "seed": seed, **record})
            bar.update()
            bar.write(f"{config_label(config)}, seed {seed}: {run_outcome(record)}")
    return results
