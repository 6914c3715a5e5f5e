"""Where the speedrun's time goes: the training step with each ingredient added, and the evaluation.

Each row trains ``cnnlib.training.speedrun_recipe.run`` (the recipe through ``fit``) for one epoch of
``--steps`` steps on Fashion-MNIST's training images: first the plain network (every ingredient off),
then the ingredients added one at a time, in the order of the table, until the row is the full recipe;
then the full recipe at two other batch sizes. The rows run in interleaved rounds, so that a machine
whose speed drifts moves every row alike. Printed per row: the median over the rounds of the training
examples/s (data augmentation and the EMA's update included, evaluation not), the milliseconds per
step, and the change against the row above. Then what the training step does not show: the seconds to
evaluate 10,000 images with and without flip TTA, the EMA's update alone, and the whitening of the
stem, once per run.

    python benchmarks/ingredients.py                  # fp32 (amp off), 3 rounds of 30 steps
    python benchmarks/ingredients.py --amp bf16       # where the CPU computes bfloat16 natively
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from cnnlib.training import DeviceLoader, fashion_mnist
from cnnlib.training.loop import evaluate, prefers_channels_last
from cnnlib.training.speed import EMA, flip_tta_logits
from cnnlib.training.speedrun_recipe import CONFIG, build_model, run

from speedrun import machine

PLAIN = dict(augment=False, label_smoothing=0.0, nesterov=False, whiten=False, ema_decay=0.0, flip_tta=False)
# Each row adds one ingredient to the row above; the last of them is the full recipe (CONFIG).
ADDED = [
    ("plain network", {}),
    ("+ crops and flips", dict(augment=CONFIG["augment"])),
    ("+ label smoothing", dict(label_smoothing=CONFIG["label_smoothing"])),
    ("+ Nesterov momentum", dict(nesterov=CONFIG["nesterov"])),
    ("+ whitened stem", dict(whiten=CONFIG["whiten"])),
    ("+ EMA of the weights (every step)", dict(ema_decay=CONFIG["ema_decay"])),
]


def rows(amp: str | None) -> list[tuple[str, dict]]:
    """(name, config) of every row: the cumulative ingredients, then the full recipe's other batch sizes."""
    out, config = [], {**PLAIN, "amp": amp, "batch_size": CONFIG["batch_size"]}
    for name, added in ADDED:
        config = {**config, **added}
        out.append((name, config))
    full = {**config, "flip_tta": CONFIG["flip_tta"]}
    return out + [(f"full recipe, batch {b}", {**full, "batch_size": b}) for b in (128, 512)]


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """The median wall-clock seconds of ``action()`` over ``repeats`` calls, after one call that warms up."""
    action()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def step_table(amp: str | None, steps: int, rounds: int) -> None:
    table = rows(amp)
    measured: dict[str, list[float]] = {name: [] for name, _ in table}
    for _ in range(rounds):
        for name, config in table:
            record = run({**config, "epochs": 1}, split="test", train_subset=steps * config["batch_size"],
                         eval_subset=1000, log=None)
            measured[name].append(record["examples_per_s"])
    print(f"{f'training, {steps} steps an epoch':40s} {'examples/s':>11s} {'ms/step':>9s} {'added':>9s}")
    previous = None
    for i, (name, config) in enumerate(table):
        per_s = statistics.median(measured[name])
        ms = 1000 * config["batch_size"] / per_s
        added = f"{ms - previous:+9.1f}" if 0 < i < len(ADDED) else ""
        previous = ms
        print(f"{name:40s} {per_s:11.0f} {ms:9.1f} {added:>9s}   (rounds: {', '.join(f'{v:.0f}' for v in measured[name])})")


def evaluation_table(amp: str | None, repeats: int) -> None:
    images = fashion_mnist(train=False)
    loader = DeviceLoader(images, 1000, shuffle=False)
    train = DeviceLoader(fashion_mnist(), CONFIG["batch_size"], shuffle=False)
    model = build_model({**CONFIG, "whiten": False}, train).eval()
    channels_last = prefers_channels_last(model, loader.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    plain = median_seconds(lambda: evaluate(model, loader, amp=amp, channels_last=channels_last), repeats)
    tta = median_seconds(lambda: evaluate(model, loader, amp=amp, channels_last=channels_last,
                                          logits_fn=flip_tta_logits), repeats)
    ema = EMA(model, CONFIG["ema_decay"])
    update = median_seconds(lambda: ema.update(model), 20 * repeats)
    whitening = median_seconds(lambda: build_model({**CONFIG, "whiten": True}, train), repeats)
    print(f"evaluation of {len(images):,} test images: {plain:.2f} s plain, {tta:.2f} s with flip TTA")
    print(f"EMA update alone: {1000 * update:.1f} ms a call (once per step)")
    print(f"network built with its stem whitened on 5,000 images: {whitening:.2f} s, once per run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amp", choices=["bf16"], default=None, help="autocast dtype (default: fp32, amp off)")
    parser.add_argument("--steps", type=int, default=30, help="training steps per row and round (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the rows (default 3)")
    args = parser.parse_args()
    print(machine())
    print(f"precision: {args.amp or 'fp32'}; medians over {args.rounds} interleaved rounds")
    step_table(args.amp, args.steps, args.rounds)
    evaluation_table(args.amp, args.rounds)
    print(machine())


if __name__ == "__main__":
    main()
