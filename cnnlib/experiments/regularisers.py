"""Lesson 06b: label smoothing, mixup and distillation on a student that overfits (He et al., 2018, section 5).

``bag_of_tricks`` tests every refinement on a student that underfits (crops and flips, five epochs:
its train-test gap stays below a point), so the three regularisers have nothing to act on there.
This experiment gives them something: the same student without augmentation, trained twice as long.

Protocol.

- Student: ``bag_of_tricks.network(8, resnet_d=False)``, the baseline student (four stages of one
  basic block, widths 8 to 64, 3.3 M multiply-accumulates per image).
- Recipe: SGD, momentum 0.9, weight decay 1e-4, batch 128, learning rate 0.05 decayed to 0 along a
  cosine over the run (the schedule that helped in ``bag_of_tricks``), no warmup; no augmentation,
  so that the network can memorise its training images; ``EPOCHS`` epochs on the 55,000 training images.
- Configurations: the recipe alone (baseline); with label smoothing 0.1; with mixup, alpha 0.2; with
  distillation, T = 20 and ``DistillationLoss`` alpha 0.5, as in ``bag_of_tricks``. 3 seeds each.
- The teacher is the baseline run with the highest final validation accuracy (a choice made on the
  validation split), so it has the student's own size: "born-again" distillation (Furlanello et al.,
  2018), not the paper's larger teacher. What distillation can add here is what its soft targets
  carry, not a stronger network's knowledge; a larger teacher trained to this recipe would need
  runs beyond this experiment's budget. Its weights are kept in ``results/regularisers.artifacts/``.
- Report: per configuration, the test accuracy and the train-test gap (training accuracy in
  evaluation mode minus test accuracy), means and spreads over seeds; per regulariser, its test
  accuracy minus the baseline's seed by seed with a 95% interval; within the noise if it contains 0.

Sizing: 4 configurations x 3 seeds, 12 runs of 10 epochs (distillation the longest: the teacher's
forward pass); the measured seconds are in ``benchmarks/README.md`` (Experiment sizing).
"""

from __future__ import annotations

import pandas as pd

from cnnlib.experiments import bag_of_tricks, report
from cnnlib.experiments.protocol import Scale, train_and_record
from cnnlib.experiments.runner import Context, Experiment, chosen_network, save_weights
from cnnlib.training.tricks import DISTILLATION, linear_scaled_lr, training_recipe
from cnnlib.lessons.viz import Figure

EPOCHS, BATCH = 10, 128
REGULARISERS = ("label-smoothing", "mixup", DISTILLATION)


def protocol(scale: Scale) -> dict:
    width, epochs = (4, 1) if scale.smoke else (bag_of_tricks.WIDTH, EPOCHS)
    return {"width": width, "epochs": epochs, "batch_size": BATCH, "lr": linear_scaled_lr(BATCH),
            "weight_decay": bag_of_tricks.WEIGHT_DECAY, "schedule": "cosine", "augment": False,
            "temperature": bag_of_tricks.TEMPERATURE}


def configs(scale: Scale) -> list[dict]:
    return [{"regulariser": None}, *({"regulariser": name} for name in REGULARISERS)]


def run(config: dict, seed: int, context: Context) -> dict:
    p, regulariser = protocol(context.scale), config["regulariser"]
    model = bag_of_tricks.network(p["width"], resnet_d=False)
    teacher, teacher_seed = None, None
    if regulariser == DISTILLATION:
        teacher_seed, teacher = chosen_network(context, "baseline", lambda c: c["regulariser"] is None,
                                               bag_of_tricks.network(p["width"], resnet_d=False))
    loaders = context.splits.loaders(p["batch_size"], seed, augment=p["augment"])
    tricks = [p["schedule"]] + ([regulariser] if regulariser in ("label-smoothing", "mixup") else [])
    setup = training_recipe(model, tricks, lr=p["lr"], epochs=p["epochs"], steps_per_epoch=len(loaders[0]),
                            weight_decay=p["weight_decay"], seed=seed, teacher=teacher, temperature=p["temperature"])
    record, model = train_and_record(model, loaders, p["epochs"], context.splits.eval_loader("train"), **setup)
    if regulariser is None:
        save_weights(context, "baseline", seed, model)
    return {**record, "teacher_seed": teacher_seed}


def name(config: dict) -> str:
    return config["regulariser"] or "baseline"


def differences(runs: list[dict]) -> dict[str, list[float]]:
    """Per regulariser, its test accuracy minus the baseline's, seed by seed."""
    return report.differences(runs, name)


def table(runs: list[dict]) -> pd.DataFrame:
    """Per configuration: test accuracy, training accuracy in evaluation mode and the train-test gap
    (what a regulariser acts on); means and standard deviations over seeds."""
    return report.table(runs, name, {
        "test acc": lambda r: r["test_acc"],
        "train acc, eval mode": lambda r: r["train_acc_eval"],
        "train-test gap": lambda r: r["train_acc_eval"] - r["test_acc"],
    }, index_names=["configuration"])


def figure(runs: list[dict]) -> Figure:
    """Per regulariser, its test accuracy minus the baseline's in points, with 95% intervals."""
    return report.difference_figure(differences(runs), "Each regulariser against the baseline, 95% intervals")


EXPERIMENT = Experiment("regularisers", "06b", "label smoothing, mixup and distillation on a student that overfits",
                        configs, run, protocol)
