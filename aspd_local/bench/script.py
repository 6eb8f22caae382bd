"""Forced token scripts: a logits processor that makes a real model "say" a given structure.

Tests use it to drive the engine through blocks (and malformed ones) on a model that was never
fine-tuned for ASPD; the engine benchmark uses it to measure parallel decoding on such a model.
A script entry is a token id to force, or None (FREE) to let the model choose. The engine's own
masks still apply after the processor, exactly as they would to a model that wanted that token.
"""

from __future__ import annotations

import numpy as np

FREE = None


class Script:
    def __init__(self, serial, branches=None, bias: float = 1e4):
        self.serial = list(serial)
        self.branches = {k: list(v) for k, v in (branches or {}).items()}  # (block, branch) -> entries
        self.bias = bias
        self.seen: list = []  # (stream key, index, copy of logits) for every step, when recording
        self.record = False

    def __call__(self, info, logits: np.ndarray) -> None:
        key = None if info.branch is None else (info.block, info.branch)
        seq = self.serial if key is None else self.branches.get(key, [])
        n = len(info.tokens)
        if self.record:
            self.seen.append((key, n, logits.copy()))
        if n < len(seq) and seq[n] is not FREE:
            logits[seq[n]] = float(np.max(logits)) + self.bias


def block_script(engine, titles, lens, lead="Here are the parts:\n", block=0):
    """Serial script that announces ``titles`` and opens a block, plus branch scripts: branch k lets the
    model choose ``lens[k]`` content tokens, then closes (``None`` in lens: never closes by itself)."""
    a = engine.aspd
    tok = engine.tokenize
    serial = tok(lead) if lead else []
    for t in titles:
        serial += [a.title_open] + tok(t) + [a.title_close]
    serial += [a.para_open]
    branches = {}
    for k, n in enumerate(lens):
        branches[(block, k)] = [FREE] * (n if n is not None else 10_000) + ([a.branch_close] if n is not None else [])
    return serial, branches
