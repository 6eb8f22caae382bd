"""Progress for long steps: a tqdm bar over items and one-line notes, both on stderr and both optional."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def note(enabled: bool, message: str) -> None:
    if enabled:
        print(f"[convert] {message}", file=sys.stderr, flush=True)


def bar(items: Iterable[T], enabled: bool, total: int | None = None, desc: str = "") -> Iterator[T]:
    if not enabled:
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="tensor", file=sys.stderr, leave=False)
