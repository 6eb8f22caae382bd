"""Which tokens the model may produce in each phase of an answer (docs/format.md sections 6.3, 6.4, 6.6)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import numpy as np

from .tokens import AspdTokens


class Phase(enum.Enum):
    SERIAL = "serial"
    TITLE = "title"  # inside <|title|> ... <|/title|>
    AFTER_TITLE = "after_title"  # right after <|/title|>: another title or <|para|>
    BRANCH = "branch"


@dataclass(frozen=True)
class Constraint:
    """Either a set of banned ids (everything else allowed) or the only allowed ids."""

    ids: np.ndarray
    only: bool
    banned_mask: np.ndarray | None = None  # bool over the vocabulary, for the fast greedy check

    def allows(self, token: int) -> bool:
        if self.only:
            return bool(np.any(self.ids == token))
        return not bool(self.banned_mask[token])


def _ban(n_vocab: int, banned: set[int]) -> Constraint:
    ids = np.array(sorted(banned), dtype=np.int64)
    mask = np.zeros(n_vocab, dtype=bool)
    mask[ids] = True
    return Constraint(ids=ids, only=False, banned_mask=mask)


_ITEM_NUMBER = re.compile(r"^\s*(?:\(\d+\)|\d+[.)])(?=\s|$)\s*")


def title_key(title: str) -> str:
    """What makes two titles of a block the same title: the text without case, surrounding space and a
    leading item number ("2. Rinse" and "3. rinse" are the same title)."""
    return " ".join(_ITEM_NUMBER.sub("", title).split()).casefold()


class Grammar:
    """Constraints per phase. ``aspd=None`` or ``structured=False`` gives plain autoregressive decoding."""

    def __init__(self, n_vocab: int, control_ids, eog_ids, aspd: AspdTokens | None, structured: bool):
        self.aspd = aspd
        self.structured = structured and aspd is not None
        self.eog = frozenset(int(t) for t in eog_ids)
        special = set(int(t) for t in control_ids) | set(self.eog)
        if aspd is not None:
            special |= set(aspd.ids)
        if self.structured:
            a = aspd
            self._by_phase = {
                Phase.SERIAL: _ban(n_vocab, special - {a.title_open} - self.eog),
                Phase.TITLE: _ban(n_vocab, special - {a.title_close}),
                Phase.AFTER_TITLE: Constraint(ids=np.array([a.title_open, a.para_open], dtype=np.int64), only=True),
                Phase.BRANCH: _ban(n_vocab, special - {a.branch_close} - self.eog),
            }
        else:
            serial = _ban(n_vocab, special - self.eog)
            self._by_phase = {p: serial for p in Phase}
        # serial text where no block fits the answer's budget any more: no control token either
        self.serial_only = _ban(n_vocab, special - self.eog)

    def constraint(self, phase: Phase) -> Constraint:
        return self._by_phase[phase]

    def is_eog(self, token: int) -> bool:
        return token in self.eog
