"""The cumulative ablation of "Bag of Tricks" (He et al., 2018, Tables 5 and 6) at any scale.

Each row of the table adds one change to all the changes above it and trains a fresh model
from the same seed: the difference between two consecutive rows is what that change bought.
A change is a trick name of `cnnlib.training.tricks.TRICKS`, or one of two that are not training
options (`cnnlib.training.tricks.MODEL_TWEAK` and `DISTILLATION`): "resnet-d" (the model tweak,
asked of the model builder) and "distillation" (a trained teacher, given to the loss)::

    rows = run_ablation(make_model, train, test, epochs=2, lr=0.05, teacher=teacher, weight_decay=1e-4)
    pandas.DataFrame(rows)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Literal

from torch import nn

from cnnlib.training.loop import fit, seed_everything
from cnnlib.training.tricks import DISTILLATION, MODEL_TWEAK, TRICKS, training_recipe

# The rows of the paper's Tables 5 and 6, in its order: the model tweak, then the efficient
# training of section 3, then the refinements of section 5.
STACK: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("baseline", ()),
    ("+ ResNet-D", (MODEL_TWEAK,)),
    ("+ warmup, cosine", ("warmup", "cosine")),
    ("+ zero gamma", ("zero-gamma",)),
    ("+ no bias decay", ("no-bias-decay",)),
    ("+ label smoothing", ("label-smoothing",)),
    ("+ mixup", ("mixup",)),
    ("+ distillation", (DISTILLATION,)),
)


def cumulative(stack: Iterable[tuple[str, Sequence[str]]] = STACK) -> list[tuple[str, list[str]]]:
    """Each row's label with every change of that row and of the rows above it, in order."""
    rows, changes = [], []
    for label, added in stack:
        unknown = [c for c in added if c not in (*TRICKS, MODEL_TWEAK, DISTILLATION)]
        if unknown:
            raise ValueError(f"row {label!r}: unknown change(s) {unknown}; "
                             f"choose from {', '.join((*TRICKS, MODEL_TWEAK, DISTILLATION))}")
        changes = changes + [c for c in added if c not in changes]
        rows.append((label, changes))
    return rows


def run_ablation(
    make_model: Callable[[bool], nn.Module],
    train_loader,
    test_loader,
    epochs: int,
    *,
    stack: Iterable[tuple[str, Sequence[str]]] = STACK,
    teacher: nn.Module | None = None,
    seed: int = 0,
    amp: Literal["auto", "bf16", "fp16", "off"] | None = "auto",
    **recipe,
) -> list[dict]:
    """Train one model per row of `cumulative(stack)` and return one dict per row:
    ``{"row", "test_acc", "train_loss", "seconds"}`` (final epoch; seconds: the whole `fit`, evaluation included).
    Every row reseeds with `seed` first, so the rows differ by their changes, not by their random draws.

    Args:
        make_model: `make_model(resnet_d)` builds the network, with the ResNet-D tweak or without.
        train_loader, test_loader: the batches `fit` trains on and measures with.
        epochs: the training length of every row.
        stack: the rows, each a label and the changes it adds (default: the paper's `STACK`).
        teacher: the trained teacher of the "distillation" row (needed when the stack has one).
        seed: the seed every row starts from.
        amp: `fit`'s mixed precision ("auto", "bf16", "fp16", or "off" / None for fp32).
        **recipe: `cnnlib.training.tricks.training_recipe`'s keywords (lr, weight_decay, warmup_epochs, ...).
    """
    plan, rows = cumulative(stack), []
    if teacher is None and any(DISTILLATION in changes for _, changes in plan):
        raise ValueError(f"the stack has a {DISTILLATION!r} row: pass the trained teacher (teacher=...)")
    for label, changes in plan:
        seed_everything(seed)
        model = make_model(MODEL_TWEAK in changes)
        setup = training_recipe(model, [c for c in changes if c in TRICKS], epochs=epochs,
                                steps_per_epoch=len(train_loader), seed=seed,
                                teacher=teacher if DISTILLATION in changes else None, **recipe)
        history = fit(model, train_loader, test_loader, epochs, amp=amp, progress=False, **setup)
        rows.append(dict(row=label, test_acc=history.test_acc[-1], train_loss=history.train_loss[-1],
                         seconds=sum(history.seconds)))
    return rows
