"""Lesson 06b: what each "Bag of Tricks" refinement buys, alone and stacked (He et al., 2018, Tables 5-6).

Protocol.

- Student: a ResNet of four stages of one basic block at widths w, 2w, 4w, 8w (w = 8), 3x3 stem
  without max-pool (``cnnlib.models.resnet.ResNet``, 28 -> 28 -> 14 -> 7 -> 4); ResNet-D: the deep
  3x3 stem (w/2, w/2, w) and the average-pool shortcut. Teacher: the ResNet-D with two blocks per
  stage (9.1 M multiply-accumulates per image against 5.2 M for the ResNet-D student and 3.3 M for
  the baseline; the paper distils ResNet-152-D into ResNet-50-D, about 2.6 times its
  multiply-accumulates), trained with every trick but distillation.
- Baseline recipe (the paper's section 2, scaled): SGD, momentum 0.9, weight decay 1e-4, batch 128,
  learning rate 0.1 x 128 / 256 = 0.05 (the linear scaling rule), divided by 10 after 1/4, 1/2
  and 3/4 of the steps (the paper: epochs 30, 60, 90 of 120); random crops (4 pixels of padding)
  and horizontal flips; 5 epochs on the 55,000 training images.
- Configurations: the baseline; each change alone (ResNet-D; linear warmup over the first 5/120
  of the steps, as the paper's 5 of 120 epochs; cosine decay in place of the steps; zero gamma;
  no bias decay; label smoothing 0.1; mixup with alpha 0.2; distillation with T = 20 from the
  teacher); the teacher; all of them stacked. 3 seeds each.
- The teacher used by distillation is the teacher run with the highest final validation
  accuracy (``runner.chosen_network``): a choice made on the validation split; its weights are kept in
  ``results/bag_of_tricks.artifacts/``.
- Report: per configuration, the test accuracy's mean and 95% interval over seeds and its
  difference from the baseline; a difference whose interval contains 0 is within the noise.
  ``train_acc_eval`` (eval mode, no augmentation or mixup) gives the train-test gap.

Sizing: 11 configurations x 3 seeds, 33 runs of 5 epochs (a distilled student also runs the
teacher's forward pass; the teacher, with twice the blocks, takes about twice a student's time);
the measured seconds are in ``benchmarks/README.md`` (Experiment sizing). Five epochs were taken
as the least in which mixup and label smoothing are not simply cut short. Even so the student
underfits at five (every configuration's mean train-test gap is below one point), so the
regularisers act on no overfitting here: ``regularisers`` tests them on this student trained
without augmentation and twice as long.
"""

from __future__ import annotations

import pandas as pd
import torch

from cnnlib.experiments import report
from cnnlib.experiments.protocol import Scale, train_and_record
from cnnlib.experiments.runner import Context, Experiment, chosen_network, save_weights
from cnnlib.models.resnet import ResNet, small_resnet
from cnnlib.training.tricks import (DISTILLATION, MODEL_TWEAK, linear_scaled_lr, linear_warmup_factor, training_recipe,
                                   warmup_cosine_factor)
from cnnlib.lessons.viz import Figure

WIDTH, EPOCHS, BATCH, WEIGHT_DECAY = 8, 5, 128, 1e-4
STEP_MILESTONES, WARMUP_FRACTION, TEMPERATURE = (0.25, 0.5, 0.75), 5 / 120, 20.0
SINGLE = (MODEL_TWEAK, "warmup", "cosine", "zero-gamma", "no-bias-decay", "label-smoothing", "mixup")
TEACHER_CHANGES = list(SINGLE)  # every refinement but distillation
STACKED = [*TEACHER_CHANGES, DISTILLATION]


def network(width: int, resnet_d: bool, blocks: int = 1) -> ResNet:
    """The student (``blocks=1``) or the teacher (``blocks=2``): four stages at widths w, 2w, 4w, 8w.

    Args:
        width: the first stage's width w.
        resnet_d: the ResNet-D tweak (Bag of Tricks, section 4.2): deep stem, average-pool shortcut.
        blocks: basic blocks per stage.
    """
    widths = (width, 2 * width, 4 * width, 8 * width)
    return small_resnet((blocks,) * 4, widths, stem_type="deep" if resnet_d else "default", avg_down=resnet_d)


def schedule_factor(step: int, total_steps: int, warmup_steps: int, cosine: bool) -> float:
    """The learning-rate multiplier at ``step``: warmup (i / m for batch i <= m) then cosine decay,
    or the baseline's division by 10 at each of ``STEP_MILESTONES`` (fractions of ``total_steps``)."""
    if cosine:
        return warmup_cosine_factor(step, warmup_steps, total_steps)
    return linear_warmup_factor(step, warmup_steps) * 0.1 ** sum(step >= m * total_steps for m in STEP_MILESTONES)


def protocol(scale: Scale) -> dict:
    width, epochs = (4, 1) if scale.smoke else (WIDTH, EPOCHS)
    return {"width": width, "epochs": epochs, "batch_size": BATCH, "lr": linear_scaled_lr(BATCH),
            "weight_decay": WEIGHT_DECAY, "step_milestones": list(STEP_MILESTONES),
            "warmup_fraction": WARMUP_FRACTION, "temperature": TEMPERATURE, "augment": True}


def configs(scale: Scale) -> list[dict]:
    student = [{"model": "student", "changes": []}]
    student += [{"model": "student", "changes": [change]} for change in SINGLE]
    return [*student,
            {"model": "teacher", "changes": TEACHER_CHANGES},
            {"model": "student", "changes": [DISTILLATION]},
            {"model": "student", "changes": STACKED}]


def run(config: dict, seed: int, context: Context) -> dict:
    p = protocol(context.scale)
    changes, is_teacher = config["changes"], config["model"] == "teacher"
    model = network(p["width"], MODEL_TWEAK in changes, blocks=2 if is_teacher else 1)
    teacher, teacher_seed = None, None
    if DISTILLATION in changes:
        teacher_seed, teacher = chosen_network(context, "teacher", lambda c: c["model"] == "teacher",
                                               network(p["width"], True, blocks=2))
    loaders = context.splits.loaders(BATCH, seed, augment=True)
    steps = p["epochs"] * len(loaders[0])
    setup = training_recipe(model, [c for c in changes if c not in (MODEL_TWEAK, DISTILLATION, "warmup", "cosine")],
                            lr=p["lr"], epochs=p["epochs"], steps_per_epoch=len(loaders[0]),
                            weight_decay=WEIGHT_DECAY, seed=seed, teacher=teacher, temperature=TEMPERATURE)
    warmup = round(WARMUP_FRACTION * steps) if "warmup" in changes else 0
    setup["scheduler"] = torch.optim.lr_scheduler.LambdaLR(
        setup["optimizer"], lambda step: schedule_factor(step, steps, warmup, "cosine" in changes))
    record, model = train_and_record(model, loaders, p["epochs"], context.splits.eval_loader("train"), **setup)
    if is_teacher:
        save_weights(context, "teacher", seed, model)
    return {**record, "teacher_seed": teacher_seed}


def differences(runs: list[dict]) -> dict[str, list[float]]:
    """Per student configuration (``name``), the test accuracy minus the baseline's, seed by seed."""
    return report.differences(runs, name, skip=("teacher",))


def name(config: dict) -> str:
    """``baseline``, ``teacher``, ``all stacked``, or the student's changes joined by "+"."""
    if config["model"] == "teacher":
        return "teacher"
    if config["changes"] == STACKED:
        return "all stacked"
    return "+".join(config["changes"]) or "baseline"


def table(runs: list[dict]) -> pd.DataFrame:
    """Per configuration: test accuracy, training error in evaluation mode, the train-test gap (training
    accuracy in evaluation mode minus test accuracy: what a regulariser acts on) and the final running
    training loss; means and standard deviations over seeds."""
    return report.table(runs, name, {
        "test acc": lambda r: r["test_acc"],
        "train error, eval mode": lambda r: 1 - r["train_acc_eval"],
        "train-test gap": lambda r: r["train_acc_eval"] - r["test_acc"],
        "final train loss": lambda r: r["train_loss"][-1],
    }, index_names=["configuration"])


def figure(runs: list[dict]) -> Figure:
    """Per student configuration, its test accuracy minus the baseline's in points: bars of the
    mean over seeds, error bars of the 95% interval (``differences``)."""
    return report.difference_figure(differences(runs), "Each change against the baseline, 95% intervals")


EXPERIMENT = Experiment("bag_of_tricks", "06b", "each refinement alone and all stacked, against the baseline",
                        configs, run, protocol)
