"""Lesson 07: what each ingredient of the speedrun recipe buys (``cnnlib.training.speedrun_recipe``), over seeds.

Protocol.

- The recipe: ``cnnlib.training.speedrun_recipe.CONFIG`` as it stands (kept in the results file as the protocol,
  so that runs of a retuned recipe are never mixed with these), shortened to ``EPOCHS`` (the
  same one-epoch warmup, the cosine decay over the rest), in fp32 (``amp=None``) so that CPUs
  with and without native bfloat16 compute the same arithmetic, on the CPU. Four epochs are
  what the speedrun's five-minute goal allows on the course's 2-core CPU (the throughput behind
  it: ``benchmarks/README.md``); what an ingredient buys is measured at that budget, not at the
  12 epochs of ``benchmarks/speedrun.py``.
- Configurations: the full recipe and each variant of ``cnnlib.training.speedrun_recipe.ABLATIONS`` (one
  ingredient switched off); 3 seeds each.
- Data: the protocol's split (``protocol.train_val_split``): trained on 55,000 images, the
  validation accuracy measured after every epoch (EMA weights and flip TTA when those are on),
  the test set once at the end, after the clock has stopped.
- Measure: the final validation accuracy; per seed, the full recipe's minus each variant's
  (``contribution``: what switching the ingredient off costs, in points of accuracy); the test
  accuracy for the record.

Sizing: 7 configurations x 3 seeds, 21 runs of 4 epochs on 55,000 images with an evaluation after
each epoch, in fp32 on the CPU whatever the CPU; the measured seconds are in
``benchmarks/README.md`` (Experiment sizing).
"""

from __future__ import annotations

import time

import pandas as pd

from cnnlib.training import speedrun_recipe
from cnnlib.experiments import report
from cnnlib.experiments.protocol import Scale
from cnnlib.experiments.runner import Context, Experiment
from cnnlib.training.loop import TrainingDiverged
from cnnlib.lessons.viz import Figure, plot_bars

FULL = "full recipe"
EPOCHS = 4


def fp32_recipe(**changes) -> dict:
    """``speedrun_recipe.CONFIG`` in fp32 (``amp=None``, so that every CPU computes the same arithmetic) with
    ``changes``; tuples as lists, as JSON keeps them."""
    recipe = {**speedrun_recipe.CONFIG, "amp": None, **changes}
    return {key: list(value) if isinstance(value, tuple) else value for key, value in recipe.items()}


def protocol(scale: Scale) -> dict:
    """The recipe every configuration starts from, ``EPOCHS`` long (smoke: one short epoch)."""
    return fp32_recipe(**(dict(epochs=1, batch_size=64) if scale.smoke else dict(epochs=EPOCHS)))


def configs(scale: Scale) -> list[dict]:
    return [{"variant": name} for name in speedrun_recipe.ABLATIONS]


def run(config: dict, seed: int, context: Context) -> dict:
    scale = context.scale
    recipe = {**protocol(scale), **speedrun_recipe.ABLATIONS[config["variant"]]}
    began = time.perf_counter()
    try:
        record = speedrun_recipe.run(recipe, seed=seed, split="val", train_subset=scale.train, eval_subset=scale.val,
                              device="cpu", log=None, final_test=True)
    except TrainingDiverged as error:
        return {"train_examples": len(context.splits.train), "epochs": recipe["epochs"], "train_loss": [],
                "train_error": [], "val_acc": [], "test_acc": None, "seconds": time.perf_counter() - began,
                "diverged": str(error)}
    return run_record(record)


def run_record(record: dict) -> dict:
    """A results file's run (``results.RUN_KEYS`` less config and seed, with ``elapsed`` and ``examples_per_s``)
    from the record of ``speedrun_recipe.run(..., split="val", final_test=True)``: its epochs' rows as lists."""
    rows = record["epochs"]
    return {"train_examples": record["train_examples"], "epochs": len(rows),
            "train_loss": [r["train_loss"] for r in rows], "train_error": [r["train_error"] for r in rows],
            "val_acc": [r["acc"] for r in rows], "test_acc": record["test_acc"],
            "elapsed": [r["seconds"] for r in rows], "seconds": record["seconds"],
            "examples_per_s": record["examples_per_s"]}


def name(config: dict) -> str:
    return config["variant"]


def table(runs: list[dict]) -> pd.DataFrame:
    """Per configuration: final validation and test accuracy, the training error of the last epoch
    (over the batches as trained on, crops and flips included: below the validation error, the
    network has begun to memorise), wall-clock seconds and training examples/s; means and standard
    deviations over seeds."""
    return report.table(runs, name, {
        "val acc": lambda r: r["val_acc"][-1],
        "test acc": lambda r: r["test_acc"],
        "train error": lambda r: r["train_error"][-1],
        "seconds": lambda r: r["seconds"],
        "examples/s": lambda r: r["examples_per_s"],
    }, index_names=["configuration"])


def contribution(runs: list[dict]) -> dict[str, list[float]]:
    """Per ingredient switched off, seed by seed: the full recipe's final validation accuracy minus
    the variant's (above 0: the ingredient helps). A diverged variant counts as accuracy 0 (the
    ingredient is needed); a seed whose full recipe diverged is left out."""
    cost = report.differences(runs, name, baseline=FULL, metric=lambda r: r["val_acc"][-1], diverged_as=0.0)
    return {variant: [-d for d in values] for variant, values in cost.items()}


def figure(runs: list[dict]) -> Figure:
    """The final validation accuracy of each configuration: bars of the mean, error bars of one
    standard deviation over seeds."""
    rows = table(runs)
    errors = rows["val acc std"].fillna(0)
    low, high = (rows["val acc"] - errors).min(), (rows["val acc"] + errors).max()
    return plot_bars(list(rows.index), list(rows["val acc"]), "validation accuracy",
                     title="The recipe, one ingredient off at a time", ylim=(low - 0.01, min(1.0, high + 0.01)),
                     errors=list(errors))


def curves(runs: list[dict], variants: tuple[str, ...] = (FULL, "no EMA")) -> Figure:
    """The validation accuracy after every epoch of ``variants`` (mean over seeds, error bars of one
    standard deviation): what an ingredient does along the way, not only at the end."""
    chosen = [r for r in runs if name(r["config"]) in variants]
    return report.figure(chosen, name, key="val_acc", ylabel="validation accuracy",
                         title="Validation accuracy along the run")


EXPERIMENT = Experiment("speedrun", "07", "each ingredient of the speedrun recipe raises its accuracy",
                        configs, run, protocol)
