"""Looking a name up in a table of named things (models, experiments, layouts), with a "did you
mean" hint for a misspelt one: the one place every registry of cnnlib raises its unknown-name error."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(table: Mapping[str, T], name: str, kind: str, advice: str = "") -> T:
    """``table[name]``, or a ValueError that names the closest known names and all of them.

    The closest come from ``difflib.get_close_matches``, all of them sorted, as in
    ``unknown model 'resnet05'. Did you mean 'resnet50'? Known models: ...``.

    Args:
        table: the known names and what each one stands for.
        name: the name asked for.
        kind: what a name names, singular ("model", "experiment"), for the message.
        advice: a sentence appended to the message (e.g. where the names are described).
    """
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    known = ", ".join(sorted(table))
    raise ValueError(f"unknown {kind} {name!r}.{hint} Known {kind}s: {known}.{' ' + advice if advice else ''}")
