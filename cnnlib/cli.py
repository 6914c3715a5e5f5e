"""Command-line trainer, on one device or several processes (``torchrun``)::

    cnnlib-train --model resnet18 --dataset fashion-mnist --epochs 10 --batch-size 128 \\
        --lr 0.05 --resize 96 --tricks cosine,warmup,label-smoothing,mixup,no-bias-decay,zero-gamma \\
        --amp bf16 --out history.json
    torchrun --nproc_per_node=2 -m cnnlib.cli --model resnet18 ...   # DistributedDataParallel

(``cnnlib-train`` is the console script of ``run``; ``python -m cnnlib.cli`` runs the same.)

``--batch-size`` is the global batch: with N processes each takes ``batch_size / N`` examples per
step, so the same command line trains the same recipe whatever N is. Under ``torchrun``
(``WORLD_SIZE`` > 1) the process group is initialised from the environment, with NCCL on GPUs
and Gloo on CPUs; only rank 0 prints and writes ``--out`` and checkpoints.

Bad input (an unknown model or variant, an input size the model cannot take, missing data, a
``--resume`` from a checkpoint of another model or recipe) ends with one ``error:`` message and
exit status 2, as argparse does for a bad option: no traceback.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from cnnlib.training.data import DATASETS, DataUnavailable, DeviceLoader
from cnnlib.models.input_checks import input_size_problem
from cnnlib.models import get_model
from cnnlib.training.loop import AMP_MODES, History, checkpoint_recipe, choose_device, fit, seed_everything
from cnnlib.training.tricks import TRICKS, training_recipe

PROG = "cnnlib-train"
NATIVE_SIZE, NUM_CLASSES = 28, 10  # MNIST and Fashion-MNIST: 28x28 images of 10 classes
# The options that decide what a run trains, stored in its checkpoints: --resume must see the same ones.
RECIPE_OPTIONS = ("model", "variant", "dataset", "epochs", "batch_size", "lr", "momentum", "weight_decay", "resize",
                  "augment", "subset", "tricks", "warmup_epochs", "label_smoothing", "mixup_alpha", "seed")


def _fail(message: str) -> None:
    """End as argparse does for a bad option: ``PROG: error: message`` on stderr, exit status 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _variant(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE a Python literal (``depth=20``, ``lrn=False``) or else a string (``layout=small``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _tricks(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in TRICKS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown trick(s) {unknown}: choose from {', '.join(TRICKS)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description="Train a cnnlib model on (Fashion-)MNIST.")
    p.add_argument("--model", required=True, help="a name from cnnlib.models.list_models()")
    p.add_argument("--variant", type=_variant, action="append", default=[], metavar="KEY=VALUE",
                   help="extra keyword argument of get_model (repeatable), e.g. --variant stem_type=deep")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="fashion-mnist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128, help="global batch size, split over the processes")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--resize", type=int, default=None, help="square input size (default: 28)")
    p.add_argument("--augment", action="store_true", help="random crop (+ flip for Fashion-MNIST)")
    p.add_argument("--subset", type=int, default=None, help="class-balanced training subset size")
    p.add_argument("--test-subset", type=int, default=None, help="class-balanced test subset size")
    p.add_argument("--tricks", type=_tricks, default=[], help=f"comma-separated, from: {', '.join(TRICKS)}")
    p.add_argument("--warmup-epochs", type=float, default=1.0, help="length of the 'warmup' trick, in epochs (fractions allowed)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="eps of the 'label-smoothing' trick")
    p.add_argument("--mixup-alpha", type=float, default=0.2, help="alpha of the 'mixup' trick")
    p.add_argument("--amp", choices=[mode for mode in AMP_MODES if mode], default="auto")
    p.add_argument("--channels-last", action="store_true", default=None,
                   help="NHWC (default: fit's choice, on for convolutional networks on a CPU)")
    p.add_argument("--device", default=None, help="default: cuda, then mps, then cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", type=Path, default=None, help="saved after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--out", type=Path, default=None, help="write the History here as JSON")
    p.add_argument("--save-weights", type=Path, default=None,
                   help="save the final state dict here (under torchrun: one file per rank, NAME.rankR.pt)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    args = p.parse_args(argv)
    if args.resume and args.checkpoint is None:
        _fail("--resume needs --checkpoint PATH (the file to continue from)")
    return args


def _init_distributed(device: str | None) -> torch.device:
    """Join the ``torchrun`` process group (NCCL on CUDA, Gloo otherwise); return this rank's device."""
    if torch.cuda.is_available() and device in (None, "cuda"):
        local = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl", device_id=local)
        return local
    dist.init_process_group("gloo")
    return choose_device(device)


def main(argv: list[str] | None = None) -> History:
    """Train as the command line says; return the History (on every rank). Bad input: SystemExit(2)."""
    args = parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = _init_distributed(args.device) if distributed else choose_device(args.device)
    try:
        return _train(args, device)
    finally:
        if distributed:
            dist.destroy_process_group()


def run(argv: list[str] | None = None) -> None:
    """The ``cnnlib-train`` console script: ``main`` without its return value (which would be the exit status)."""
    main(argv)


def _check_model(args: argparse.Namespace, num_classes: int) -> None:
    """``--model`` and ``--variant`` name a model that takes the input size of ``--resize`` (built on the
    meta device: no weights are allocated)."""
    try:
        with torch.device("meta"):
            model = get_model(args.model, num_classes=num_classes, in_channels=1, **dict(args.variant))
    except (ValueError, TypeError) as error:  # an unknown name, or a variant the model does not take
        _fail(f"--model {args.model}: {error}")
    size = args.resize or NATIVE_SIZE
    problem = input_size_problem(model, size, size)
    if problem is not None:
        _fail(f"--resize {size}: {problem}")


def recipe_of(args: argparse.Namespace) -> dict:
    """The options of ``RECIPE_OPTIONS`` as plain values, as the checkpoints store them."""
    recipe = {option: getattr(args, option) for option in RECIPE_OPTIONS}
    recipe["variant"] = dict(args.variant)
    return recipe


def _check_resumable(path: Path, model: torch.nn.Module, recipe: dict) -> None:
    """Refuse a checkpoint of another model, or one written with other options of ``RECIPE_OPTIONS``."""
    saved = torch.load(path, map_location="cpu", weights_only=True)["model"]
    own = model.state_dict()
    differing = [name for name in own if name not in saved or saved[name].shape != own[name].shape]
    differing += [name for name in saved if name not in own]
    if differing:
        _fail(f"--resume: {path} holds the weights of another model ({len(differing)} tensor(s) differ, e.g. "
              f"{differing[0]!r}): use another --checkpoint, or drop --resume")
    stored = checkpoint_recipe(path)
    if stored is None:
        _fail(f"--resume: {path} stores no recipe (it was not written by {PROG}): use another --checkpoint, "
              "or drop --resume")
    changed = [f"--{option.replace('_', '-')} {stored.get(option)!r} (this run: {value!r})"
               for option, value in recipe.items() if stored.get(option) != value]
    if changed:
        _fail(f"--resume: {path} was written with another recipe: {', '.join(changed)}; run with its options, "
              "use another --checkpoint, or drop --resume")


def _train(args: argparse.Namespace, device: torch.device) -> History:
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if args.batch_size % world:
        _fail(f"--batch-size {args.batch_size} must be a multiple of the number of processes ({world})")
    load = DATASETS[args.dataset]
    _check_model(args, NUM_CLASSES)
    if rank > 0:
        dist.barrier()  # rank 0 downloads and extracts first
    try:
        train_set, test_set = load(train=True), load(train=False)
    except DataUnavailable as missing:
        _fail(f"--dataset {args.dataset}: {missing}")
    if rank == 0 and world > 1:
        dist.barrier()
    per_rank = args.batch_size // world
    try:
        train = DeviceLoader(train_set, per_rank, shuffle=True, resize=args.resize, augment=args.augment,
                             subset=args.subset, device=device, seed=args.seed)
        test = DeviceLoader(test_set, per_rank, shuffle=False, resize=args.resize, subset=args.test_subset,
                            device=device, seed=args.seed)
    except ValueError as error:  # a subset or batch size the data cannot give
        _fail(str(error))

    seed_everything(args.seed)  # the same initial weights on every rank
    model = get_model(args.model, num_classes=len(train.classes), in_channels=1, **dict(args.variant))
    setup = training_recipe(model, args.tricks, lr=args.lr, epochs=args.epochs, steps_per_epoch=len(train),
                            momentum=args.momentum, weight_decay=args.weight_decay,
                            warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
                            mixup_alpha=args.mixup_alpha, num_classes=len(train.classes), seed=args.seed)
    recipe = recipe_of(args)
    if args.resume and args.checkpoint.exists():
        _check_resumable(args.checkpoint, model, recipe)

    if rank == 0 and not args.quiet:
        params_count = sum(p.numel() for p in model.parameters())
        print(f"{args.model}: {params_count:,} parameters | {args.dataset}: {train.num_examples:,} train / "
              f"{test.num_examples:,} test images | {args.epochs} epochs of {len(train)} steps, batch "
              f"{args.batch_size} ({world} process{'es' * (world > 1)}) | {device} | tricks: "
              f"{', '.join(args.tricks) or 'none'}", flush=True)
    history = fit(model, train, test, args.epochs, device=device, amp=args.amp,
                  channels_last=args.channels_last, progress=not args.quiet, checkpoint=args.checkpoint,
                  resume=args.resume, recipe=recipe, **setup)
    if rank == 0 and args.out is not None:
        history.save(args.out)
    if args.save_weights is not None:
        path = args.save_weights
        if world > 1:
            path = path.with_name(f"{path.stem}.rank{rank}{path.suffix}")
        torch.save(model.state_dict(), path)
    return history


if __name__ == "__main__":
    run()
