"""Speedrun: wall-clock seconds to 93% and 94% Fashion-MNIST test accuracy with ``cnnlib.training.speedrun_recipe``.

Each seed trains ``cnnlib.training.speedrun_recipe.CONFIG`` on all 60,000 training images and evaluates on the
test set after every epoch; the clock runs from reading the files to the last evaluation. The
test set chooses nothing (the recipe was tuned with ``--split val``: 5,000 training images held out).
Printed: per seed and as median / min / max, the seconds to each target, the final accuracy and
the training examples/s; the machine (CPU model, ISA, threads, load average) and torch version;
and what d2l's ResNet-18 recipe (96x96, batch 256, lr 0.05, 10 epochs: test 0.865 in d2l's own
figures) would take here, from its measured step time times its 2,350 steps, against our time
to 0.865.

    python benchmarks/speedrun.py                       # 3 seeds, the full recipe
    python benchmarks/speedrun.py --seeds 1 --dataset mnist --targets 0.995
    python benchmarks/speedrun.py --profile             # where one training step's time goes

What each ingredient buys is an experiment: ``python -m cnnlib.experiments speedrun``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch
from torch import nn

from cnnlib.experiments.results import machine as experiment_machine
from cnnlib.models import get_model
from cnnlib.lessons.references import D2L
from cnnlib.training.speedrun_recipe import CONFIG, run
from cnnlib.training.loop import Callback, autocast_dtype, cpu_has_fast_bf16

D2L_RESNET18 = dict(resize=96, batch_size=256, lr=0.05, epochs=10, train_images=60_000,
                    test_acc=D2L["resnet18"]["test_acc"].value)


def machine() -> str:
    """CPU model, the ISA torch dispatches to, native bf16 or not, threads, torch version, load average."""
    m = experiment_machine()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{m['cpu']}, ISA {m['cpu_capability']}, native bf16 {'yes' if cpu_has_fast_bf16() else 'no'}, "
            f"{m['threads']} threads, torch {m['torch']}, load average {load}")


def d2l_step_seconds(steps: int = 2) -> float:
    """Median seconds of one training step of d2l's ResNet-18 recipe, taken by d2l's own
    ``train_batch_ch13`` (fp32, NCHW, plain SGD on the mean cross-entropy, as ``train_ch6``)."""
    from d2l import torch as d2l

    r = D2L_RESNET18
    model = get_model("resnet18", num_classes=10, in_channels=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=r["lr"])
    x, y = torch.randn(r["batch_size"], 1, r["resize"], r["resize"]), torch.randint(0, 10, (r["batch_size"],))
    times = []
    for _ in range(steps + 1):  # the first step warms the allocator and oneDNN's kernel cache
        began = time.perf_counter()
        d2l.train_batch_ch13(model, x, y, nn.CrossEntropyLoss(), optimizer, [torch.device("cpu")])
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])


class ProfilerStep(Callback):
    """Marks the end of each of ``fit``'s training steps for ``torch.profiler``'s schedule."""

    def __init__(self, profiler) -> None:
        self.profiler = profiler

    def after_step(self, model: nn.Module) -> None:
        self.profiler.step()


def profile_step(config: dict, steps: int = 5) -> str:
    """torch.profiler's table (top operators by self CPU time) over ``steps`` of ``fit``'s training steps
    in the recipe (``run``) on the CPU, in the dtype it trains in there (``config["amp"]``), under a
    line naming the batch and the dtype. The first two steps are left out (they warm the kernels up);
    each recorded step runs from loading its batch to the EMA's update."""
    from torch.profiler import ProfilerActivity, profile, schedule

    dtype = autocast_dtype(config["amp"], torch.device("cpu"))
    third_step_on = schedule(wait=1, warmup=1, active=steps, repeat=1)
    with profile(activities=[ProfilerActivity.CPU], schedule=third_step_on) as prof:
        run({**config, "epochs": 1}, split="test", train_subset=(steps + 3) * config["batch_size"], eval_subset=100,
            device="cpu", log=None, callbacks=[ProfilerStep(prof)])
    return (f"{config['batch_size']} images a step, {dtype or 'fp32'}\n"
            + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def spread(values: list[float | None]) -> str:
    """``median / min / max`` of the values reached, and how many runs did not reach."""
    reached = [v for v in values if v is not None]
    missed = len(values) - len(reached)
    if not reached:
        return f"not reached in {missed} run(s)"
    text = f"{statistics.median(reached):7.1f} / {min(reached):7.1f} / {max(reached):7.1f}"
    return text + (f"  ({missed} run(s) did not reach it)" if missed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--dataset", choices=("fashion-mnist", "mnist"), default="fashion-mnist")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="val: for tuning")
    parser.add_argument("--targets", default="0.93,0.94", help="comma-separated accuracies to time")
    parser.add_argument("--epochs", type=int, default=None, help=f"default: the recipe's {CONFIG['epochs']}")
    parser.add_argument("--batch-size", type=int, default=None, help=f"default: the recipe's {CONFIG['batch_size']}")
    parser.add_argument("--train-subset", type=int, default=None)
    parser.add_argument("--eval-subset", type=int, default=None)
    parser.add_argument("--profile", action="store_true", help="print where one training step's time goes, and stop")
    parser.add_argument("--skip-d2l", action="store_true", help="leave out the d2l ResNet-18 comparison")
    args = parser.parse_args()
    changes = {"epochs": args.epochs, "batch_size": args.batch_size}
    config = {**CONFIG, **{key: value for key, value in changes.items() if value}}
    print(machine(), flush=True)
    if args.profile:
        print(profile_step(config))
        return
    targets = [float(t) for t in args.targets.split(",")]
    d2l_target = D2L_RESNET18["test_acc"]
    timed = sorted(set(targets) | ({d2l_target} if args.dataset == "fashion-mnist" else set()))
    records = []
    for seed in range(args.seeds):
        print(f"\nseed {seed}", flush=True)
        record = run(config, seed=seed, dataset=args.dataset, split=args.split, targets=timed,
                     train_subset=args.train_subset, eval_subset=args.eval_subset)
        records.append(record)
        reached = "  ".join(f"{t:.3f}: " + ("-" if record["time_to"][t] is None else f"{record['time_to'][t]:.1f} s")
                            for t in timed)
        print(f"seed {seed}: final {args.split} acc {record['acc']:.4f} in {record['seconds']:.1f} s, "
              f"{record['examples_per_s']:.0f} training examples/s | time to {reached}", flush=True)

    print(f"\n{args.dataset}, {args.seeds} seed(s), {config['epochs']} epochs; {machine()}")
    print(f"seconds to target ({args.split} accuracy), median / min / max:")
    for t in timed:
        print(f"  {t:.3f}  {spread([r['time_to'][t] for r in records])}")
    accs = [r["acc"] for r in records]
    print(f"final accuracy       {statistics.median(accs):.4f} / {min(accs):.4f} / {max(accs):.4f}"
          f"  (mean {statistics.fmean(accs):.4f})")
    print(f"examples/s           {spread([r['examples_per_s'] for r in records])}")
    if args.dataset == "fashion-mnist" and not args.skip_d2l:
        r = D2L_RESNET18
        steps = r["epochs"] * math.ceil(r["train_images"] / r["batch_size"])
        step = d2l_step_seconds()
        print(f"\nd2l's ResNet-18 recipe ({r['resize']}x{r['resize']}, batch {r['batch_size']}, lr {r['lr']}, "
              f"{r['epochs']} epochs, test {r['test_acc']}): {step:.2f} s per step x {steps} steps = "
              f"{step * steps:,.0f} s here (training steps only)")
        ours = [t["time_to"][d2l_target] for t in records if t["time_to"][d2l_target] is not None]
        if ours:
            print(f"ours to {d2l_target}: {statistics.median(ours):.1f} s (median), "
                  f"{step * steps / statistics.median(ours):.0f}x faster")
    print(f"load average now {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
