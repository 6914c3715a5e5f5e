"""Wall-clock training throughput: cnnlib against d2l, same model, data, optimizer and steps.

For each model the two trainers run one after the other in this process:

* d2l:    ``d2l.load_data_fashion_mnist`` (a DataLoader with per-image ``Resize`` and
          ``ToTensor``, 4 workers) and ``d2l.train_ch6`` (plain SGD, Xavier init),
* cnnlib: ``DeviceLoader`` (uint8 images on the device, whole-batch resize and normalisation)
          and ``fit`` with its defaults (same plain SGD and learning rate; no speed option passed:
          ``amp="auto"`` takes bfloat16 where the CPU or GPU computes it natively, and a
          convolutional network on a CPU runs channels_last).

Both start from the same Xavier-initialised weights and take the same number of training
steps on batches of the same size, then evaluate on the same number of test images. The clock is
the caller's wall clock around the whole call: data loading, the training steps and the
evaluation are all inside it (d2l's own examples/s figure leaves out the data loading and the
evaluation; it is printed too, for reference). Last, the FLOPs of one training step (by
``torch.utils.flop_counter``) turn cnnlib's training examples/s into GFLOP/s, printed as a share of
the machine's matrix-multiply rate in the dtype the steps ran in (bfloat16 steps against the
bfloat16 rate, fp32 against fp32): a model whose steps run close to that rate cannot be trained
much faster by any trainer.

    python benchmarks/vs_d2l.py                  # both models, default steps
    python benchmarks/vs_d2l.py --models lenet --steps 200
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from cnnlib.training.data import DeviceLoader, data_root, fashion_mnist
from cnnlib.models import get_model
from cnnlib.training.loop import autocast_dtype, choose_device, fit, seed_everything, xavier_init_

# The recipes of d2l's chapters (lr, batch size, input size), and the default number of steps:
# enough to be past the warm-up of the loaders, few enough that AlexNet at 224 runs in minutes on 2 cores.
RECIPES = {
    "alexnet": dict(lr=0.01, batch_size=128, resize=224, steps=12, test_images=512),
    "lenet": dict(lr=0.9, batch_size=256, resize=None, steps=120, test_images=10_000),
}


def d2l_lenet() -> nn.Module:
    """LeNet-5 as d2l's chapter 7.6 writes it (sigmoid, average pooling, 28x28 input)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )


def build(name: str) -> nn.Module:
    """The model, Xavier-initialised as ``train_ch6`` does, from a fixed seed."""
    seed_everything(0)
    model = d2l_lenet() if name == "lenet" else get_model("alexnet", layout="d2l", num_classes=10, in_channels=1)
    return xavier_init_(model)


class FirstBatches:
    """The first ``n`` batches of a DataLoader, with ``len()`` (train_ch6 needs it)."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)


def run_d2l(name: str, recipe: dict, device: torch.device) -> dict:
    from d2l import torch as d2l

    model = build(name)
    # d2l reads its data from "../data": run it from a folder whose sibling "data" is our data root.
    cwd = Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix="d2l-"))
    (scratch / "data").symlink_to(data_root().resolve(), target_is_directory=True)
    (scratch / "run").mkdir()
    os.chdir(scratch / "run")
    try:
        start = time.perf_counter()
        train_iter, test_iter = d2l.load_data_fashion_mnist(recipe["batch_size"], resize=recipe["resize"])
        train_iter = FirstBatches(train_iter, recipe["steps"])
        test_iter = FirstBatches(test_iter, recipe["test_images"] // recipe["batch_size"])
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            d2l.train_ch6(model, train_iter, test_iter, 1, recipe["lr"], device)
        seconds = time.perf_counter() - start
    finally:
        os.chdir(cwd)
        shutil.rmtree(scratch)
    import matplotlib.pyplot as plt

    plt.close("all")  # train_ch6 draws an animated figure
    last = log.getvalue().strip().splitlines()
    test_acc = float(last[-2].split("test acc")[-1])
    return dict(seconds=seconds, test_acc=test_acc, own_figure=last[-1])


def run_cnnlib(name: str, recipe: dict, device: torch.device) -> dict:
    model = build(name)
    start = time.perf_counter()
    batch = recipe["batch_size"]
    train = DeviceLoader(fashion_mnist(train=True), batch, shuffle=True, resize=recipe["resize"], device=device)
    test = DeviceLoader(fashion_mnist(train=False), batch, shuffle=False, resize=recipe["resize"], device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe["lr"])
    history = fit(model, FirstBatches(train, recipe["steps"]), FirstBatches(test, recipe["test_images"] // batch),
                  epochs=1, optimizer=optimizer, device=device, progress=False)
    seconds = time.perf_counter() - start
    return dict(seconds=seconds, test_acc=history.test_acc[-1], train_examples_per_s=history.examples_per_s[-1])


def training_flops_per_example(name: str, recipe: dict) -> float:
    """FLOPs of one training step (forward, backward) per example, by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    model, size = build(name), recipe["resize"] or 28
    x, y = torch.randn(2, 1, size, size), torch.randint(0, 10, (2,))
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 2


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """The machine's matrix-multiply rate in ``dtype``: a practical ceiling for any trainer's FLOP rate."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="alexnet,lenet")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: per model)")
    args = parser.parse_args()
    fashion_mnist(train=True), fashion_mnist(train=False)  # both trainers find the files in place
    device = choose_device()
    dtype = autocast_dtype("auto", device) or torch.float32  # what fit's default amp="auto" computes in
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    ceiling = matmul_gflops(device, dtype)
    rates = f"{precision} matmul {ceiling:.0f} GFLOP/s"
    if dtype != torch.float32:
        rates += f" (fp32 {matmul_gflops(device):.0f})"
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, fit's steps in"
          f" {precision}, {rates}, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name in args.models.split(","):
        recipe = dict(RECIPES[name])
        if args.steps:
            recipe["steps"] = args.steps
        images = recipe["steps"] * recipe["batch_size"]
        print(f"\n{name}: {recipe['steps']} steps of batch {recipe['batch_size']}"
              f" (resize {recipe['resize']}), lr {recipe['lr']}, {recipe['test_images']} test images")
        d2l_run = run_d2l(name, recipe, device)
        ours = run_cnnlib(name, recipe, device)
        for label, run in (("d2l", d2l_run), ("cnnlib", ours)):
            print(f"  {label:7s} {images / run['seconds']:8.1f} examples/s wall clock"
                  f"  ({run['seconds']:.1f} s)  test acc {run['test_acc']:.3f}")
        print(f"  d2l's own figure (training steps only): {d2l_run['own_figure']}")
        print(f"  ratio cnnlib / d2l: {d2l_run['seconds'] / ours['seconds']:.2f}x")
        flops = training_flops_per_example(name, recipe)
        gflops = flops * ours["train_examples_per_s"] / 1e9
        print(f"  {flops / 1e6:,.1f} MFLOP per training example: cnnlib's training steps ran at"
              f" {gflops:.0f} GFLOP/s ({gflops / ceiling:.0%} of the {precision} matmul rate)")


if __name__ == "__main__":
    main()
