"""Training masks, positions and loss targets (docs/format.md section 3), token-level, no model needed."""

import numpy as np
import pytest
import torch

from aspd_local.aspd.encode import EncodedRow, RowError, branch_prefix, check_segments, encode_answer
from aspd_local.aspd.layout import layout_of
from aspd_local.aspd.tokens import AspdTokens
from aspd_local.train.mask import IGNORE, collate, count_decisions, positions_and_mask, targets_of, windowed

A = AspdTokens(1, 2, 3, 4, 5, 6)
TO, TC, PO, PC, BO, BC = A.ids
EOT = 9


def tok(text):
    """A toy tokenizer: one token per character (ids >= 100), so seams are visible."""
    return [100 + ord(c) % 100 for c in text]


SEGMENTS = [
    {"type": "serial", "text": "ab"},
    {"type": "block", "branches": [{"title": "X", "content": "cde"}, {"title": "Y", "content": "f"}]},
    {"type": "serial", "text": "g"},
    {"type": "block", "branches": [{"title": "Z", "content": "h"}, {"title": "W", "content": "ij"}]},
]


def _row(prompt_len=3):
    ans, gen = encode_answer(SEGMENTS, A, tok, EOT)
    return EncodedRow([50 + i for i in range(prompt_len)] + ans, prompt_len, [False] * prompt_len + gen)


def test_encoding_piece_by_piece():
    ans, gen = encode_answer(SEGMENTS[:2], A, tok, EOT)
    block = ([TO] + tok("X") + [TC, TO] + tok("Y") + [TC, PO]
             + [BO] + tok("X: ") + tok("cde") + [BC] + [BO] + tok("Y: ") + tok("f") + [BC] + [PC])
    assert ans == tok("ab") + block + [EOT]
    assert branch_prefix("X", A, tok) == [BO] + tok("X: ")
    # forced: each branch prefix and <|/para|>; everything else is generated
    forced = [t for t, g in zip(ans, gen) if not g]
    assert forced == [BO] + tok("X: ") + [BO] + tok("Y: ") + [PC]


@pytest.mark.parametrize("segments, answer, msg", [
    ([{"type": "serial", "text": "a"}], "b", "render"),
    ([{"type": "block", "branches": [{"title": "A", "content": "x"}, {"title": "A", "content": "y"}]}], None, "unique"),
    ([{"type": "block", "branches": [{"title": " ", "content": "x"}]}], None, "empty"),
    ([{"type": "list", "text": "x"}], None, "unknown segment type"),
    ([], None, "non-empty"),
])
def test_bad_segments_are_refused(segments, answer, msg):
    with pytest.raises(RowError, match=msg):
        check_segments(segments, answer)


def test_positions_are_the_layout_positions():
    row = _row()
    pos, _ = positions_and_mask(row.tokens, A)
    assert pos.tolist() == layout_of(row.tokens, A).positions


def test_mask_rules_of_section_3():
    row = _row()
    toks = row.tokens
    pos, allowed = positions_and_mask(toks, A)
    lay = layout_of(toks, A)
    n = len(toks)
    # the mask is exactly the layout's "can see" relation (causal minus siblings)
    assert all(allowed[i, j] == lay.can_see(i, j) for i in range(n) for j in range(n))
    para, spans = lay.blocks[0]
    (a0, b0), (a1, b1) = spans
    # branch 1 sees everything up to <|para|> and its own earlier tokens, never branch 0
    assert allowed[a1 + 1, :para + 1].all() and allowed[a1 + 1, a1:a1 + 2].all()
    assert not allowed[a1:b1, a0:b0].any()
    # branch positions restart at P + 1; <|/para|> sits at P + 1 + Lmax and sees every branch
    assert pos[a0] == pos[a1] == pos[para] + 1
    close = b1
    assert toks[close] == PC and pos[close] == pos[para] + 1 + max(b0 - a0, b1 - a1)
    assert allowed[close, :close + 1].all()
    # a later serial token (and the second block) sees both branches of the first block
    assert allowed[close + 1, a0:b1].all()
    # nothing sees the future
    assert not np.triu(allowed, 1).any()


def test_sliding_window_counts_positions_not_indices():
    row = _row()
    pos, allowed = positions_and_mask(row.tokens, A)
    w = windowed(allowed, pos, 4)
    i, j = np.nonzero(allowed)
    keep = (pos[i] - pos[j]) < 4
    assert (w[i, j] == keep).all() and not (w & ~allowed).any()
    # branch 1's first token is at P + 1, so it still sees <|para|> even though branch 0 lies between them
    lay = layout_of(row.tokens, A)
    para, spans = lay.blocks[0]
    assert w[spans[1][0], para]


def test_targets_cover_generated_tokens_only():
    row = _row(prompt_len=3)
    t = targets_of(row)
    n = len(row.tokens)
    for i in range(1, n):
        assert t[i - 1] == (row.tokens[i] if row.generated[i] else IGNORE)
    assert t[n - 1] == IGNORE
    assert (t[:2] == IGNORE).all()  # inside the prompt nothing is predicted
    assert t[2] == row.tokens[3]  # the last prompt token predicts the first answer token
    trained = {row.tokens[i] for i in range(n) if row.generated[i]}
    assert {TO, TC, PO, BC, EOT} <= trained and BO not in trained and PC not in trained


def test_collate_pads_without_leaking():
    short, long_ = _row(1), _row(5)
    b = collate([short, long_], A, pad_id=0, dtype=torch.float32, sliding_window=3)
    L = len(long_.tokens)
    n = len(short.tokens)
    assert b.input_ids.shape == (2, L) and b.masks["full_attention"].shape == (2, 1, L, L)
    m = b.masks["full_attention"][0, 0]
    ok = m == 0
    assert ((m == 0) | (m == torch.finfo(torch.float32).min)).all()
    _, allowed = positions_and_mask(short.tokens, A)
    assert (ok[:n, :n].numpy() == allowed).all()
    assert not ok[:n, n:].any()  # real tokens never see padding
    assert ok[n:, n:].numpy().diagonal().all() and (ok[n:].sum(-1) == 1).all()  # padding sees only itself
    assert (b.targets[0, n:] == IGNORE).all()
    assert b.n_targets == sum(short.generated[1:]) + sum(long_.generated[1:])
    sw = b.masks["sliding_attention"][1, 0] == 0
    pos, al = positions_and_mask(long_.tokens, A)
    assert (sw.numpy() == windowed(al, pos, 3)).all()


def test_count_decisions_are_the_rows_after_each_title():
    row = _row(prompt_len=3)
    d = count_decisions(row, A)
    t = targets_of(row)
    # exactly the rows whose input is <|/title|>: they predict another <|title|> or <|para|>
    want = [i for i in range(len(row.tokens) - 1) if row.tokens[i] == TC]
    assert list(np.flatnonzero(d)) == want and len(want) == 4
    assert [int(t[i]) for i in want] == [TO, PO, TO, PO]
    assert not count_decisions(row, None).any()


def test_collate_weights_only_the_count_decisions():
    row = _row(prompt_len=3)
    assert collate([row], A, pad_id=0).weights is None  # weight 1: no weights at all
    b = collate([row, _row(1)], A, pad_id=0, decision_weight=4.0)
    w = b.weights[0].numpy()
    d = count_decisions(row, A)
    assert (w[: len(d)][d] == 4.0).all() and (w[: len(d)][~d] == 1.0).all()
    assert (b.weights[1, len(_row(1).tokens):] == 1.0).all()  # padding keeps weight 1 (and no target)
