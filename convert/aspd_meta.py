"""The six ASPD control tokens of a checkpoint and the ``aspd.*`` GGUF keys (docs/format.md sections 1, 5).

The ids are found as tokens named ``<|title|>`` ... ``<|/branch|>`` (a checkpoint from the reference
pipeline has them as added special tokens), or given as a mapping onto six existing tokens (such as
Gemma's ``<unused0>`` .. ``<unused5>``), which are then renamed to the ASPD names in the written
vocabulary, so the vocabulary size and the embedding matrix stay as they are. Either way they are
written as CONTROL tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

from gguf import GGUFWriter

from aspd_local.aspd.tokens import DEFAULT_SEPARATOR, ROLES, SUPPORTED_POSITION_MODES, AspdTokens
from aspd_local.errors import AspdFormatError

from .errors import ConvertError
from .vocab import Vocab

ASPD_VERSION = 1
NAMES = dict(zip(ROLES, ("<|title|>", "<|/title|>", "<|para|>", "<|/para|>", "<|branch|>", "<|/branch|>")))


def check_position_mode(mode: str) -> None:
    if mode not in SUPPORTED_POSITION_MODES:
        raise ConvertError(f"position mode {mode!r} cannot be served by the llama.cpp engine (the positions of a "
                           f"sequence must stay consecutive); supported: {', '.join(SUPPORTED_POSITION_MODES)}")


def parse_mapping(mapping: str | Sequence | None) -> list[str | int] | None:
    """A comma-separated string or a 6-item sequence of token texts or ids, in ROLES order."""
    if mapping is None:
        return None
    items = [p.strip() for p in mapping.split(",") if p.strip()] if isinstance(mapping, str) else list(mapping)
    if len(items) != 6:
        raise ConvertError(f"--aspd-tokens needs 6 tokens ({', '.join(NAMES.values())} in this order), "
                           f"got {len(items)}")
    return items


def resolve(vocab: Vocab, mapping: str | Sequence | None, separator: str = DEFAULT_SEPARATOR) -> AspdTokens | None:
    """The six ids; with a mapping, the mapped tokens are renamed in ``vocab``. None for a model without
    ASPD tokens and no mapping."""
    items = parse_mapping(mapping)
    index: dict[str, int] = {}
    for i, t in enumerate(vocab.tokens):
        index.setdefault(t, i)
    if items is None:
        found = {role: index.get(name) for role, name in NAMES.items()}
        if all(v is None for v in found.values()):
            return None
        missing = [NAMES[r] for r, v in found.items() if v is None]
        if missing:
            raise ConvertError(f"the tokenizer has some ASPD tokens but not {', '.join(missing)}; add all six or "
                               "map them onto existing tokens with --aspd-tokens")
        ids = [found[r] for r in ROLES]
    else:
        ids = []
        for role, item in zip(ROLES, items):
            if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
                tid = int(item)
                if not 0 <= tid < len(vocab):
                    raise ConvertError(f"ASPD token id {tid} ({role}) is outside the vocabulary (size {len(vocab)})")
            else:
                tid = index.get(item)
                if tid is None:
                    raise ConvertError(f"ASPD token {item!r} ({role}) is not in the vocabulary")
            ids.append(tid)
    try:
        tokens = AspdTokens(*ids, separator=separator)
    except AspdFormatError as e:
        raise ConvertError(str(e)) from None
    for role, tid in zip(ROLES, ids):
        other = index.get(NAMES[role])
        if other is not None and other != tid:
            raise ConvertError(f"cannot rename token {tid} to {NAMES[role]}: the vocabulary already has "
                               f"{NAMES[role]} as token {other}")
        vocab.rename(tid, NAMES[role])
    return tokens


def write_keys(w: GGUFWriter, tokens: AspdTokens, position_mode: str) -> None:
    w.add_uint32("aspd.version", ASPD_VERSION)
    for role, tid in zip(ROLES, tokens.ids):
        w.add_uint32(f"aspd.token.{role}", tid)
    w.add_string("aspd.position_mode", position_mode)
    w.add_string("aspd.title_separator", tokens.separator)
