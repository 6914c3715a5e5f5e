"""Training: ``fit`` / ``evaluate`` / ``History``, device choice, mixed precision, checkpoints.

The course's one training loop, visible in ``fit``: for each batch, optional ``batch_transform``
(mixup), forward under autocast, loss, a check that it is finite, backward, optimizer step,
scheduler step. Every epoch records train loss and accuracy, test accuracy, and wall-clock
throughput measured around the whole training pass, data loading included (d2l's ``train_ch6``
leaves the loading out). What a recipe adds (an average of the weights, progressive resizing, a
live plot) hooks in through a ``Callback``, as fast.ai's Learner callbacks do, kept to three hooks.

Under ``torch.distributed`` (``torchrun``) the model is wrapped in ``DistributedDataParallel``,
metrics are summed over ranks, and only rank 0 prints and writes checkpoints (every rank calls the
callbacks).
"""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from cnnlib.files import atomic_open, write_json_atomic
from cnnlib.training.profiles import active_profile, choose_device

__all__ = ["Callback", "History", "TrainingDiverged", "autocast_dtype", "checkpoint_recipe", "choose_device",
           "cpu_has_fast_bf16", "evaluate", "fit", "load_checkpoint", "predict", "prefers_channels_last",
           "save_checkpoint", "seed_everything", "xavier_init_"]

Batches = Iterable[tuple[Tensor, Tensor]]
LogitsFn = Callable[[nn.Module, Tensor], Tensor]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; raised by ``fit`` with ``.history``, the finished epochs."""


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (every CUDA device too) and make cuDNN pick deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def xavier_init_(model: nn.Module) -> nn.Module:
    """Glorot and Bengio's uniform initialisation of every conv and linear weight, as d2l's
    ``train_ch6`` applies it before training: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).
    Biases and normalisation layers keep their values. Returns the model."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
    return model


# --- mixed precision -------------------------------------------------------------------------

AMP_MODES = ("auto", "bf16", "fp16", "off", None)


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX), so that autocast can pay off.

    Without it, oneDNN falls back to bf16 kernels slower than fp32 (several times slower per step in
    the measurements of ``benchmarks/README.md``), so ``amp="auto"`` stays fp32 there.
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private to torch.cpu; absent counts as no
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def autocast_dtype(amp: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for an ``amp`` mode on ``device`` (``None``: full fp32).

    ``"auto"``: bfloat16 on CUDA GPUs that support it and on CPUs with native bf16, else fp32.
    ``"bf16"``: bfloat16 wherever asked. ``"fp16"``: float16 with loss scaling, CUDA only.
    """
    if amp not in AMP_MODES:
        raise ValueError(f"amp={amp!r} is not a mode: use one of {AMP_MODES}")
    if amp in (None, "off"):
        return None
    if amp == "fp16":
        if device.type != "cuda":
            raise ValueError(f"amp='fp16' needs a CUDA device (it uses a GradScaler), not {device}: "
                             "use amp='bf16' or amp=None")
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if device.type == "cpu" and cpu_has_fast_bf16() else None


# --- history ---------------------------------------------------------------------------------

@dataclass
class History:
    """Per-epoch rows ``{epoch, train_loss, train_acc, test_acc, examples_per_s, seconds, lr}``.

    ``examples_per_s``: training examples over the wall-clock time of the training pass (data
    loading, forward, backward, step); ``seconds``: the whole epoch including evaluation; ``lr``:
    the first parameter group's learning rate at the epoch's last step.
    """

    epochs: list[dict] = field(default_factory=list)
    interrupted: bool = False

    def _column(self, key: str) -> list:
        return [row[key] for row in self.epochs]

    @property
    def train_loss(self) -> list[float]:
        return self._column("train_loss")

    @property
    def train_acc(self) -> list[float]:
        return self._column("train_acc")

    @property
    def test_acc(self) -> list[float]:
        return self._column("test_acc")

    @property
    def examples_per_s(self) -> list[float]:
        return self._column("examples_per_s")

    @property
    def seconds(self) -> list[float]:
        return self._column("seconds")

    @property
    def lr(self) -> list[float]:
        return self._column("lr")

    def to_dict(self) -> dict:
        return {"epochs": [dict(row) for row in self.epochs], "interrupted": self.interrupted}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls([dict(row) for row in d["epochs"]], d.get("interrupted", False))

    def save(self, path: str | os.PathLike) -> None:
        """Write the history as JSON in one step (:func:`cnnlib.files.write_json_atomic`)."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _format_row(row: dict, epochs: int) -> str:
    return (f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  train acc {row['train_acc']:.3f}"
            f"  test acc {row['test_acc']:.3f}  {row['examples_per_s']:.0f} examples/s  {row['seconds']:.1f} s")


class Callback:
    """What a recipe adds to ``fit``, at three points of the loop; override the hooks you need.

    ``before_epoch(epoch)``: before the epoch's first batch (0-based; progressive resizing sets the
    loader's image size). ``after_step(model)``: after every optimizer and scheduler step (the EMA
    of the weights). ``after_epoch(history)``: after the epoch's evaluation, its row in
    ``history.epochs[-1]`` (a live plot, a log line). Under ``torch.distributed`` every rank calls them.
    """

    def before_epoch(self, epoch: int) -> None:
        pass

    def after_step(self, model: nn.Module) -> None:
        pass

    def after_epoch(self, history: History) -> None:
        pass


# --- distributed -----------------------------------------------------------------------------

def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _is_main() -> bool:
    return not _distributed() or dist.get_rank() == 0


def _sum_over_ranks(*values: Tensor | float) -> list[float]:
    """Sums of scalar metrics (e.g. correct, count) over all ranks, as Python floats."""
    total = torch.stack([torch.as_tensor(v, dtype=torch.float64).cpu() for v in values])
    if _distributed():
        total = total.to("cuda" if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(total)
    return total.tolist()


FINITE_CHECK_EVERY = 50  # steps between the host's looks at the device-side finiteness record
_NO_BAD_STEP = 2**62


def _record_nonfinite(first_bad: Tensor, loss: Tensor, step: int) -> Tensor:
    """``first_bad`` lowered to ``step`` if ``loss`` is NaN or infinite: recorded on the device, no host sync."""
    return torch.minimum(first_bad, torch.where(torch.isfinite(loss.detach()), _NO_BAD_STEP, step))


def _first_nonfinite_step(first_bad: Tensor) -> int | None:
    """The first step whose loss was not finite on any rank (all ranks agree), or None; synchronises the device."""
    if _distributed():
        first_bad = first_bad.clone()
        dist.all_reduce(first_bad, op=dist.ReduceOp.MIN)
    step = int(first_bad.item())
    return None if step == _NO_BAD_STEP else step


def prefers_channels_last(model: nn.Module, device: torch.device) -> bool:
    """fit's default memory format: NHWC for a network with 2-d convolutions on the CPU, where oneDNN's
    convolutions run faster on it (``benchmarks/README.md`` has the measurements), NCHW otherwise.

    Not for a network with a strided 1x1 convolution of fewer than 8 input channels: on torch 2.14.1's
    CPU the NHWC backward pass of such a layer hung or crashed in our runs (3 to 6 input channels,
    batch 128 at 28x28; 2, 8 and 12 channels ran).
    """
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fragile = any(m.kernel_size == (1, 1) and m.stride != (1, 1) and m.in_channels < 8 for m in convs)
    return device.type == "cpu" and bool(convs) and not fragile


def _raise_if_diverged(first_bad: Tensor, step_lrs: list[float], epoch: int, steps: int) -> None:
    """``TrainingDiverged`` naming the first step of this epoch whose loss was not finite, if there was one."""
    step = _first_nonfinite_step(first_bad)
    if step is not None:
        raise TrainingDiverged(f"the loss became NaN or infinite at epoch {epoch + 1}, step {step + 1} of {steps}: "
                               f"training diverged. Try a lower learning rate (lr was {step_lrs[step]:g} there), "
                               "or a warmup.")


# --- evaluation and training -----------------------------------------------------------------

@torch.no_grad()
def predict(model: nn.Module, loader: Batches, device: str | torch.device | None = None,
            amp: str | None = "auto", channels_last: bool = False,
            logits_fn: LogitsFn | None = None) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """``(x, y, predicted class)`` for each batch of ``loader``, on ``device`` (default: the model's).

    The model runs in eval mode under ``amp``'s autocast (see ``autocast_dtype``) and gets its
    train/eval mode back when the loop ends, or is left early. The class is the argmax of
    ``logits_fn(model, x)``, default ``model(x)`` (``speed.flip_tta_logits``: test-time flips).
    """
    if device is not None:
        device = choose_device(device)
    else:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    dtype = autocast_dtype(amp, device)
    was_training = model.training
    model.eval()
    try:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(x) if logits_fn is None else logits_fn(model, x)
                yield x, y, logits.argmax(1)
    finally:
        model.train(was_training)


def evaluate(model: nn.Module, loader: Batches, device: str | torch.device | None = None,
             amp: str | None = "auto", channels_last: bool = False, logits_fn: LogitsFn | None = None) -> float:
    """Top-1 accuracy of ``model`` on ``loader`` (summed over ranks), from ``predict`` (same arguments)."""
    correct, count = 0, 0
    for _, y, predicted in predict(model, loader, device, amp, channels_last, logits_fn):
        correct += (predicted == y).sum()
        count += len(y)
    correct, count = _sum_over_ranks(correct, count)
    return correct / max(count, 1)


def fit(model: nn.Module, train_loader: Batches, test_loader: Batches, epochs: int, lr: float = 0.05,
        optimizer: torch.optim.Optimizer | None = None, scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        loss_fn: Callable[..., Tensor] | None = None, device: str | torch.device | None = None,
        amp: str | None = "auto", channels_last: bool | None = None, progress: bool | None = None,
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        batch_transform: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
        weight_decay: float = 0.0, momentum: float = 0.9, recipe: dict | None = None,
        callbacks: Sequence[Callback] = (), eval_model: nn.Module | None = None,
        eval_logits: LogitsFn | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs, evaluating on ``test_loader`` after each; return the ``History``.

    - ``device``: default the train loader's ``.device`` if it has one, else ``choose_device()``.
    - ``optimizer``: default ``SGD(lr, momentum, weight_decay)``. ``scheduler`` is stepped after
      every optimizer step, so build it with ``epochs * len(train_loader)`` total steps.
    - ``loss_fn(logits, targets)``, default cross-entropy; if it has ``uses_inputs = True`` it is
      called ``loss_fn(logits, targets, inputs)`` (distillation).
    - ``batch_transform(x, y) -> (x, targets)`` on training batches only (mixup); soft targets
      [B, C] count as correct when the argmax matches.
    - ``amp``: see ``autocast_dtype``. ``channels_last``: NHWC model and batches; default (None) on
      for a convolutional network on the CPU, where it is faster, off otherwise.
    - ``progress``: a bar per epoch and a line per finished epoch; default on, except under the
      ``smoke`` profile (``cnnlib.training.profiles``: the tests and CI).
    - ``callbacks``: ``Callback`` hooks, called in order (EMA, progressive resizing, a live plot).
    - ``eval_model``: the network ``evaluate`` judges after each epoch, default ``model`` (an EMA's
      averaged copy); ``eval_logits(model, x)``: its logits, default ``model(x)`` (flip TTA).
      The evaluation runs under the same ``amp`` and ``channels_last`` as the training.
    - ``checkpoint``: written atomically after every epoch; ``resume=True`` continues from it
      (if it exists) and ends with the same weights as an uninterrupted run. ``recipe``: a dict of
      plain values (the settings the run was built from) stored in the checkpoint, which
      ``checkpoint_recipe`` reads back, so that a caller can refuse to resume under other settings.

    A NaN or infinite loss raises ``TrainingDiverged``, naming the step where it first appeared. The
    check runs on the device; the host looks every ``FINITE_CHECK_EVERY`` steps and at the epoch's end,
    so the steps between go without a synchronisation (and may train on: the weights are lost anyway).
    The exception's ``.history`` holds the finished epochs. Ctrl-C (KeyboardInterrupt) returns the
    finished epochs with ``interrupted=True``.
    """
    device = choose_device(device if device is not None else getattr(train_loader, "device", None))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # DistributedDataParallel wants the index
    dtype = autocast_dtype(amp, device)
    model.to(device)
    if channels_last is None:
        channels_last = prefers_channels_last(model, device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    uses_inputs = getattr(loss_fn, "uses_inputs", False)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    net = (DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
           if _distributed() else model)
    if progress is None:
        progress = active_profile() != "smoke"
    progress = progress and _is_main()

    history, start = History(), 0
    if resume:
        if checkpoint is None:
            raise ValueError("resume=True needs checkpoint=<path of the checkpoint file>")
        if Path(checkpoint).exists():
            start, history = load_checkpoint(checkpoint, model, optimizer, scheduler, scaler)
    epoch, bar = start, None
    try:
        for epoch in range(start, epochs):
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(epoch)
            for callback in callbacks:
                callback.before_epoch(epoch)
            net.train()
            loss_sum, correct, count = torch.zeros((), device=device), torch.zeros((), device=device), 0
            first_bad, step_lrs = torch.full((), _NO_BAD_STEP, device=device), []
            bar = tqdm(total=len(train_loader), desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not progress)
            began = time.perf_counter()
            for step, (x, y) in enumerate(train_loader):
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if batch_transform is not None:
                    x, y = batch_transform(x, y)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = net(x)
                    loss = loss_fn(logits, y, x) if uses_inputs else loss_fn(logits, y)
                step_lrs.append(optimizer.param_groups[0]["lr"])
                first_bad = _record_nonfinite(first_bad, loss, step)
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                if scheduler is not None:
                    scheduler.step()
                for callback in callbacks:
                    callback.after_step(model)
                labels = y.argmax(1) if y.ndim > 1 else y
                loss_sum += loss.detach().float() * len(labels)
                correct += (logits.argmax(1) == labels).sum()
                count += len(labels)
                bar.update()
                if (step + 1) % FINITE_CHECK_EVERY == 0:
                    _raise_if_diverged(first_bad, step_lrs, epoch, len(train_loader))
                    if progress:
                        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            _raise_if_diverged(first_bad, step_lrs, epoch, len(train_loader))
            lr_now = step_lrs[-1] if step_lrs else optimizer.param_groups[0]["lr"]
            loss_sum, correct, count = _sum_over_ranks(loss_sum, correct, count)  # synchronises the device
            train_seconds = time.perf_counter() - began
            bar.close()
            test_acc = evaluate(model if eval_model is None else eval_model, test_loader, device, amp, channels_last,
                                eval_logits)
            history.epochs.append(dict(epoch=epoch + 1, train_loss=loss_sum / count, train_acc=correct / count,
                                       test_acc=test_acc, examples_per_s=count / train_seconds,
                                       seconds=time.perf_counter() - began, lr=lr_now))
            if progress:
                print(_format_row(history.epochs[-1], epochs), flush=True)
            for callback in callbacks:
                callback.after_epoch(history)
            if checkpoint is not None and _is_main():
                save_checkpoint(checkpoint, model, optimizer, scheduler, history, epoch + 1, scaler, recipe)
    except TrainingDiverged as err:
        err.history = history  # the finished epochs, for a look at what led up to it
        raise
    except KeyboardInterrupt:
        history.interrupted = True
        warnings.warn(f"training interrupted during epoch {epoch + 1}: returning the History of the "
                      f"{len(history.epochs)} finished epoch(s)", stacklevel=2)
    finally:
        if bar is not None:
            bar.close()
    return history


# --- checkpoints -----------------------------------------------------------------------------

def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None, history: History, epoch: int,
                    scaler: torch.amp.GradScaler | None = None, recipe: dict | None = None) -> None:
    """Write everything needed to continue after ``epoch`` finished epochs (and ``recipe``), atomically.

    The state goes to a temporary file in the same folder, which ``os.replace`` then renames over
    ``path`` in one step: an interruption leaves the previous checkpoint intact, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        "history": history.to_dict(),
        "recipe": recipe,
        "rng": {"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
                    scaler: torch.amp.GradScaler | None = None) -> tuple[int, History]:
    """Restore what ``save_checkpoint`` wrote (and the torch RNG state); return ``(finished epochs, history)``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    for target, key in ((optimizer, "optimizer"), (scheduler, "scheduler"), (scaler, "scaler")):
        if target is not None and state[key] is not None:
            target.load_state_dict(state[key])
    torch.set_rng_state(state["rng"]["cpu"])
    if state["rng"]["cuda"] and torch.cuda.device_count() == len(state["rng"]["cuda"]):
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state["epoch"], History.from_dict(state["history"])


def checkpoint_recipe(path: str | os.PathLike) -> dict | None:
    """The ``recipe`` that ``fit`` stored in the checkpoint at ``path`` (None if it stored none)."""
    return torch.load(path, map_location="cpu", weights_only=True).get("recipe")

