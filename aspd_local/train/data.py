"""Training rows -> encoded token sequences, with the statistics the manifest records."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..aspd.encode import EncodedRow, RowEncoder, check_segments
from ..data.jsonl import read_jsonl
from ..data.segments import has_block
from .base import TrainError


@dataclass
class TrainSet:
    rows: list[EncodedRow]
    stats: dict = field(default_factory=dict)


def data_stats(raw: Sequence[dict], rows: Sequence[EncodedRow], skipped: dict[str, int]) -> dict:
    blocks = [seg for r in raw for seg in r["segments"] if seg.get("type") == "block"]
    branches = [len(b["branches"]) for b in blocks]
    cats: dict[str, int] = {}
    for r in raw:
        c = str(r.get("category", "?"))
        cats[c] = cats.get(c, 0) + 1
    n_parallel = sum(1 for r in raw if has_block(r))
    return {
        "rows": len(rows),
        "rows_parallel": n_parallel,
        "share_parallel": round(n_parallel / len(raw), 3) if raw else 0.0,
        "blocks": len(blocks),
        "branches_per_block_mean": round(sum(branches) / len(branches), 2) if branches else 0.0,
        "tokens": sum(len(r.tokens) for r in rows),
        "answer_tokens": sum(r.n_answer for r in rows),
        "loss_tokens": sum(sum(r.generated) for r in rows),
        "longest": max((len(r.tokens) for r in rows), default=0),
        "categories": dict(sorted(cats.items())),
        "skipped": dict(skipped),
    }


def serial_copy(row: dict) -> dict | None:
    """The row's answer as one serial segment, or None for a row without a parallel block."""
    if not has_block(row):
        return None
    text = check_segments(row["segments"], row.get("answer"))
    return {**row, "id": f"{row.get('id', '')}/serial", "segments": [{"type": "serial", "text": text}]}


def load_train_set(path, encoder: RowEncoder, max_len: int, max_rows: int | None = None,
                   serial_copies: bool = False) -> TrainSet:
    """Read and encode a training JSONL file. Rows longer than ``max_len`` tokens are skipped (counted).
    With ``serial_copies`` every row with a parallel block is followed by its :func:`serial_copy`."""
    raw = read_jsonl(path, required=("messages", "segments"))
    if max_rows is not None:
        raw = raw[:max_rows]
    if serial_copies:
        raw = [r for row in raw for r in (row, serial_copy(row)) if r is not None]
    kept_raw, rows = [], []
    skipped = {"too_long": 0}
    for r in raw:
        enc = encoder.encode(r)
        if len(enc.tokens) > max_len:
            skipped["too_long"] += 1
            continue
        kept_raw.append(r)
        rows.append(enc)
    if not rows:
        raise TrainError(f"{path}: no usable training rows (of {len(raw)}; skipped {skipped})")
    return TrainSet(rows, data_stats(kept_raw, rows, skipped))


def rows_digest(rows: Sequence[EncodedRow]) -> str:
    """Fingerprint of the encoded data (a resumed run must train on the same rows)."""
    h = hashlib.sha256()
    for r in rows:
        h.update(repr((r.tokens, r.n_prompt, r.generated)).encode())
    return h.hexdigest()[:16]
