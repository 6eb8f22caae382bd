"""Positions and branch membership of an ASPD token stream (docs/format.md section 3).

Training (attention mask, position ids), the engine's structured prefill and the tests all
derive the layout from token ids through this one function.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .tokens import AspdTokens


@dataclass
class Layout:
    """Per token of a stream: its position and, for branch tokens, ``(block, branch)``."""

    positions: list[int] = field(default_factory=list)
    branch: list[tuple[int, int] | None] = field(default_factory=list)
    # per block: (index of <|para|>, [(start index, end index exclusive) of each branch])
    blocks: list[tuple[int, list[tuple[int, int]]]] = field(default_factory=list)

    @property
    def next_position(self) -> int:
        """Position of the next serial token after the stream."""
        return (max(self.positions) + 1) if self.positions else 0

    def can_see(self, i: int, j: int) -> bool:
        """Whether token i attends to token j (the ASPD "cantsee" mask)."""
        if j > i:
            return False
        bi, bj = self.branch[i], self.branch[j]
        if bi is None or bj is None:
            return True
        return bi[0] != bj[0] or bi[1] == bj[1]


class LayoutError(ValueError):
    """A token stream that breaks the ASPD layout (e.g. text between branches)."""


def layout_of(tokens: Sequence[int], ids: AspdTokens | None, start: int = 0) -> Layout:
    """Assign positions by the max_para rule. Without ASPD ids every token is serial."""
    lay = Layout()
    pos = start
    if ids is None:
        lay.positions = list(range(start, start + len(tokens)))
        lay.branch = [None] * len(tokens)
        return lay
    in_block = False
    para_pos = 0
    lmax = 0
    j = -1  # index within the current branch, -1 when between branches
    block = -1
    k = -1
    for i, t in enumerate(tokens):
        if not in_block:
            lay.positions.append(pos)
            lay.branch.append(None)
            pos += 1
            if t == ids.para_open:
                in_block, para_pos, lmax, j, k = True, pos - 1, 0, -1, -1
                block += 1
                lay.blocks.append((i, []))
            continue
        if t == ids.para_close and j < 0:
            pos = para_pos + 1 + lmax
            lay.positions.append(pos)
            lay.branch.append(None)
            pos += 1
            in_block = False
            continue
        if j < 0:
            if t != ids.branch_open:
                raise LayoutError(f"token {t} at index {i} sits inside a block but outside any branch")
            k += 1
            lay.blocks[-1][1].append((i, i))
        j += 1
        lay.positions.append(para_pos + 1 + j)
        lay.branch.append((block, k))
        lmax = max(lmax, j + 1)
        start_i, _ = lay.blocks[-1][1][k]
        lay.blocks[-1][1][k] = (start_i, i + 1)
        if t == ids.branch_close:
            j = -1
    return lay


_LIST_ITEM = re.compile(r"[ \t]*(?:[-*+\u2022]|\d{1,3}[.)])[ \t]")


def branch_ending(text: str, last: bool) -> str:
    """What a finished branch's rendered text gets added so the joined block is well formed (docs/format.md
    section 4): every branch with text ends its line; a branch other than the last that is not a list item (a bold
    lead, a heading, a paragraph) ends with a blank line, so that the next branch starts a paragraph of its
    own instead of running into this one. Display only: no token is added."""
    if not text.strip():  # nothing written (the budget was spent before the branch's first token): no line
        return ""
    if not last and not _LIST_ITEM.match(text):
        return "" if text.endswith("\n\n") else "\n" if text.endswith("\n") else "\n\n"
    return "" if text.endswith("\n") else "\n"


def render_tokens(tokens: Sequence[int], ids: AspdTokens | None, piece) -> str:
    """The text a user sees (docs/format.md section 4) from a token stream, given ``piece(token) -> bytes``.

    Titles are dropped; each branch loses its ``<|branch|>Title: `` prefix and its closing token.
    """
    if ids is None:
        return b"".join(piece(t) for t in tokens).decode("utf-8", errors="replace")
    control = set(ids.ids)
    sep = ids.separator.encode()
    out: list[bytes] = []
    titles: list[bytes] = []
    cur_title: list[bytes] | None = None
    branch: list[bytes] | None = None
    k = 0

    def content(parts: list[bytes]) -> bytes:
        text = b"".join(parts)
        prefix = titles[k] + sep if k < len(titles) else None
        text = text[len(prefix):] if prefix is not None and text.startswith(prefix) else text
        # the engine adds the same ending to what it streams
        return text + branch_ending(text.decode("utf-8", errors="replace"), k >= len(titles) - 1).encode()

    for t in tokens:
        if t == ids.title_open:
            cur_title = []
        elif t == ids.title_close:
            titles.append(b"".join(cur_title or []))
            cur_title = None
        elif t == ids.para_open:
            k = 0
        elif t == ids.branch_open:
            branch = []
        elif t == ids.branch_close:
            out.append(content(branch or []))
            branch = None
            k += 1
        elif t == ids.para_close:
            titles = []
        elif t in control:
            continue
        elif cur_title is not None:
            cur_title.append(piece(t))
        elif branch is not None:
            branch.append(piece(t))
        else:
            out.append(piece(t))
    if branch is not None:
        out.append(content(branch))
    return b"".join(out).decode("utf-8", errors="replace")
