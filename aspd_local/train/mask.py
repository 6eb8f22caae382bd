"""Attention masks, position ids and loss targets for training, from token ids (docs/format.md section 3).

Everything is derived from ``aspd_local.aspd.layout.layout_of``, the one place where the layout
rules live: positions come from it as they are, and the mask is causal minus, for each block, every
pair of different branches (``Layout.blocks``), so a branch never sees its siblings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..aspd.encode import EncodedRow
from ..aspd.layout import layout_of
from ..aspd.tokens import AspdTokens

IGNORE = -100


def positions_and_mask(tokens: Sequence[int], ids: AspdTokens | None) -> tuple[np.ndarray, np.ndarray]:
    """Position ids (int64, L) and the boolean ``allowed[i, j]`` = token i attends to token j (L x L)."""
    lay = layout_of(tokens, ids)
    n = len(tokens)
    allowed = np.tril(np.ones((n, n), dtype=bool))
    for _, spans in lay.blocks:
        for k, (a, b) in enumerate(spans):
            for c, d in spans[:k]:
                allowed[a:b, c:d] = False  # branch k never sees an earlier branch of its block
    return np.asarray(lay.positions, dtype=np.int64), allowed


def windowed(allowed: np.ndarray, positions: np.ndarray, window: int) -> np.ndarray:
    """Sliding-window layers: also hide keys ``window`` or more positions behind the query (llama.cpp's
    rule, by position, not by index)."""
    dist = positions[:, None] - positions[None, :]
    return allowed & (dist < window)


def targets_of(row: EncodedRow) -> np.ndarray:
    """Per row of logits, the token it must predict (IGNORE where none): logits at index i - 1 predict
    token i when the model generates token i itself (answer tokens, not forced prefixes nor the prompt)."""
    t = np.full(len(row.tokens), IGNORE, dtype=np.int64)
    for i in range(1, len(row.tokens)):
        if row.generated[i]:
            t[i - 1] = row.tokens[i]
    return t


def count_decisions(row: EncodedRow, ids: AspdTokens | None) -> np.ndarray:
    """Per row of logits, whether it predicts a block's count decision: the token right after a
    ``<|/title|>`` (another ``<|title|>``, or ``<|para|>`` that ends the title list). How many titles a
    block gets, so how many items an answer has, is decided at these rows and nowhere else."""
    t = np.zeros(len(row.tokens), dtype=bool)
    if ids is None:
        return t
    for i in range(1, len(row.tokens)):
        if row.generated[i] and row.tokens[i - 1] == ids.title_close:
            t[i - 1] = True
    return t


def float_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean (B, L, L) mask as the (B, 1, L, L) additive float mask transformers takes: 0 or the
    dtype's minimum."""
    m = torch.zeros(allowed.shape, dtype=dtype)
    m.masked_fill_(~allowed, torch.finfo(dtype).min)
    return m[:, None]


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L)
    position_ids: torch.Tensor  # (B, L)
    masks: dict[str, torch.Tensor]  # "full_attention" and, with a window, "sliding_attention": (B, 1, L, L)
    targets: torch.Tensor  # (B, L), IGNORE where no loss
    weights: torch.Tensor | None = None  # (B, L) loss weight per target; None: all 1

    @property
    def n_targets(self) -> int:
        return int((self.targets != IGNORE).sum())


def collate(rows: Sequence[EncodedRow], ids: AspdTokens | None, *, pad_id: int, dtype: torch.dtype = torch.float32,
            sliding_window: int | None = None, decision_weight: float = 1.0) -> Batch:
    """Right-padded batch. Padding tokens see only themselves and nobody sees them; they carry no loss.
    ``decision_weight``: the loss weight of the count decisions (:func:`count_decisions`), 1 elsewhere."""
    L = max(len(r.tokens) for r in rows)
    B = len(rows)
    input_ids = np.full((B, L), pad_id, dtype=np.int64)
    position_ids = np.zeros((B, L), dtype=np.int64)
    targets = np.full((B, L), IGNORE, dtype=np.int64)
    weights = np.ones((B, L), dtype=np.float32) if decision_weight != 1.0 else None
    full = np.zeros((B, L, L), dtype=bool)
    full[:, np.arange(L), np.arange(L)] = True
    swa = full.copy() if sliding_window else None
    for b, row in enumerate(rows):
        n = len(row.tokens)
        pos, allowed = positions_and_mask(row.tokens, ids)
        input_ids[b, :n] = row.tokens
        position_ids[b, :n] = pos
        targets[b, :n] = targets_of(row)
        if weights is not None:
            weights[b, :n][count_decisions(row, ids)] = decision_weight
        full[b, :n, :n] = allowed
        if swa is not None:
            swa[b, :n, :n] = windowed(allowed, pos, sliding_window)
    masks = {"full_attention": float_mask(torch.from_numpy(full), dtype)}
    if swa is not None:
        masks["sliding_attention"] = float_mask(torch.from_numpy(swa), dtype)
    return Batch(torch.from_numpy(input_ids), torch.from_numpy(position_ids), masks, torch.from_numpy(targets),
                 None if weights is None else torch.from_numpy(weights))
