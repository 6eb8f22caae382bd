"""The step protocol between a request's step function and the scheduler.

A step function (the hybrid decoder, prompt prefill, scoring) is a generator. Between two decodes it
yields its events and then one :class:`Ask`: what it must put into the next ``llama_decode`` (one row per
live stream, forced rows), what it may put in (prompt rows, in order; the scheduler takes as many as the
step's token budget leaves), and the draft trees it offers (the scheduler ranks every request's draft
nodes together and grants some). The scheduler plans the step, puts each granted ask's rows into the
batch, decodes once, and resumes the step function, which reads its rows through the ask.

Two exceptions reach a step function at its ``yield``: :class:`Cancelled` (the caller asked to stop) and
:class:`ContextFull` (llama.cpp had no room for its rows, even alone and with nothing optional: the
answer ends with what it wrote).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .suffix.proposer import DraftTree


class Cancelled(Exception):
    """Raised inside a step function when the caller asked to stop."""


class ContextFull(Exception):
    """Raised inside a step function when its rows found no room in the KV cache (nothing was written)."""


@dataclass(frozen=True)
class Row:
    """One row of a decode: a token at a position in some sequences; ``logits``: whether it is read."""

    token: int
    pos: int
    seqs: tuple[int, ...]
    logits: bool


def row(token: int, pos: int, seq: int | Sequence[int], logits: bool) -> Row:
    return Row(int(token), int(pos), (seq,) if isinstance(seq, int) else tuple(seq), bool(logits))


@dataclass
class DraftOffer:
    """A draft tree a stream offers to verify with its row ``root`` (an index into ``Ask.rows``):
    ``expected[i]``, the expected number of tokens node i adds (the acceptance model's estimate)."""

    root: int
    tree: DraftTree
    expected: list[float]


@dataclass
class Ask:
    """What a request wants from the next decode, and (after it) where its rows are.

    Set by the request: ``rows`` (all go in, or the request waits a step), ``prefill`` (taken in order,
    as many as the budget leaves: at least one), ``drafts``. Set by the scheduler before the decode:
    ``n_prefill`` (prompt rows taken), ``trees`` (granted draft trees, per offer, or None), and after
    filling the request's part, ``at`` (the part's row of each of ``rows``), ``prefill_at`` (the part's
    row of the first prompt row taken) and ``pending`` (per offer, the draft in flight, or None)."""

    rows: list[Row] = field(default_factory=list)
    prefill: Sequence[Row] = ()
    drafts: list[DraftOffer] = field(default_factory=list)
    n_prefill: int = 0
    trees: list[DraftTree | None] = field(default_factory=list)
    at: list[int] = field(default_factory=list)
    prefill_at: int = 0
    pending: list = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        """Rows this ask puts into the decode as granted."""
        return len(self.rows) + self.n_prefill + sum(len(t) for t in self.trees if t is not None)

    def grant_none(self) -> None:
        self.n_prefill = 0
        self.trees = [None] * len(self.drafts)
