"""Lesson 07: a search for a faster speedrun recipe, on the validation split, in fp32.

Protocol.

- The starting point: ``cnnlib.training.speedrun_recipe.CONFIG`` as it stands, in fp32 (``amp=None``, the
  arithmetic of CPUs without native bfloat16, most learners' laptops), on the CPU. Each variant changes
  what its name says (``VARIANTS``); the first four's epochs are what about 13 minutes allow on the course's
  2-core AVX2 CPU at the throughput measured there (``benchmarks/README.md``), the last two run 12 epochs.
- Data: the protocol's split: trained on 55,000 images, the validation accuracy after every epoch (the
  recipe's evaluation: the EMA weights with flip TTA), the clock from reading the files to the last
  evaluation; the test set once at the end, after the clock, for the record only: it chooses nothing.
- Measures: the seconds to 93% and to 94% validation accuracy (``time_to``), the final validation
  accuracy, the training examples/s; and, after the clock, the last weights judged every way at once
  (``speedrun_recipe.paired_evaluations``): raw or EMA, the EMA's BatchNorm statistics averaged or
  recomputed, with or without flip TTA. Those differences are paired: the same training, the same images.
- One seed per variant: a search ranks candidates and its choice is then measured over seeds
  (``benchmarks/speedrun.py``); a difference between variants smaller than the spread of seeds seen in
  ``results/speedrun.json`` (0.3 to 0.9 points) chooses nothing. A diverged run stops the search: no
  variant raises the learning rate above the recipe's, which diverged in none of the ablation's 21 runs.

Sizing: 6 variants x 1 seed on 2 AVX2 cores: the first four about 12 to 13 minutes each, the 12-epoch ones
about 15 and 22 (about 100 minutes in all), less where the CPU is faster.
"""

from __future__ import annotations

import math

import pandas as pd

from cnnlib.experiments import report, speedrun
from cnnlib.experiments.protocol import Scale
from cnnlib.experiments.runner import Context, Experiment
from cnnlib.training import speedrun_recipe

TARGETS = (0.93, 0.94)

VARIANTS = {  # what each changes; epochs: about 13 minutes at the variant's throughput on 2 AVX2 cores
    "recipe, 7 epochs": dict(epochs=7),
    "batch 128, 7 epochs": dict(epochs=7, batch_size=128, lr=0.1),
    "resizing 20 to 28, 9 epochs": dict(epochs=9, start_size=20),
    "stem 8 channels, 8 epochs": dict(epochs=8, widths=[8, 32, 64, 128]),
    # after those four (none reached 93%): how long until 93%, at full size and with resizing
    "resizing 16 to 28, 12 epochs": dict(epochs=12, start_size=16),
    "recipe, 12 epochs": dict(epochs=12),
}


def protocol(scale: Scale) -> dict:
    """The recipe every variant starts from, in fp32."""
    return speedrun.fp32_recipe()


def configs(scale: Scale) -> list[dict]:
    return [{"variant": name} for name in VARIANTS]


def recipe(config: dict, scale: Scale) -> dict:
    """The variant's full settings (smoke: one short epoch of batch 64)."""
    smoke = dict(epochs=1, batch_size=64) if scale.smoke else {}
    return {**protocol(scale), **VARIANTS[config["variant"]], **smoke}


def run(config: dict, seed: int, context: Context) -> dict:
    scale = context.scale
    record = speedrun_recipe.run(recipe(config, scale), seed=seed, split="val", train_subset=scale.train,
                                 eval_subset=scale.val, targets=TARGETS, device="cpu", log=None, final_test=True,
                                 paired_final=True)
    return {**speedrun.run_record(record), "sizes": [row["size"] for row in record["epochs"]],
            "time_to": {f"{t:.2f}": s for t, s in record["time_to"].items()}, "final": record["final"]}


def name(config: dict) -> str:
    return config["variant"]


def table(runs: list[dict]) -> pd.DataFrame:
    """Per variant (one seed): the seconds to 93% and 94% validation accuracy (NaN: not reached), the final
    validation accuracy, the whole run's seconds, training examples/s, and the test accuracy (the record)."""
    rows = {name(r["config"]): {
        **{f"seconds to {t}": math.nan if s is None else s for t, s in r["time_to"].items()},
        "val acc": r["val_acc"][-1], "seconds": r["seconds"], "examples/s": r["examples_per_s"],
        "epochs": r["epochs"], "test acc": r["test_acc"]} for r in runs}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")


PAIRS = {  # what each paired difference measures: (the way judged, the way it is compared with)
    "EMA (averaged statistics) minus raw weights": ("ema_tta", "raw_tta"),
    "EMA, statistics recomputed minus averaged": ("ema_recomputed_tta", "ema_tta"),
    "flip TTA minus none (EMA)": ("ema_tta", "ema"),
}


def paired_differences(runs: list[dict]) -> dict[str, list[float]]:
    """Per comparison of ``PAIRS``, one difference of final validation accuracy per run (every variant's
    run is a pair: the same training judged two ways)."""
    return {label: [r["final"][a] - r["final"][b] for r in runs] for label, (a, b) in PAIRS.items()}


def pairs_table(runs: list[dict]) -> pd.DataFrame:
    """``paired_differences`` as a table: the mean, the 95% t-interval over the runs, and each run's."""
    return report.intervals(paired_differences(runs), index_name="paired difference, final validation accuracy")


EXPERIMENT = Experiment("speedrun_search", "07", "which variant of the recipe reaches 93% soonest on an fp32 CPU",
                        configs, run, protocol, seeds=1)
