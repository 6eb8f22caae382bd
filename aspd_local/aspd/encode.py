"""A training row -> token ids, piece by piece exactly as the engine forces them (docs/format.md section 2).

Training and serving share this module: the engine builds each branch's forced prefix with
``branch_prefix``, and training encodes every branch with the same function, so the model is
trained on the very tokens it is later made to continue. Tokenization is llama.cpp's, of the
served model's vocabulary, without special-token parsing (plain text never becomes a control token).

Row format (the data pipeline's output, one JSON object per line)::

    {"messages": [{"role": "user", "content": ...}], "answer": "...",
     "segments": [{"type": "serial", "text": ...},
                  {"type": "block", "branches": [{"title": ..., "content": ...}, ...]}, ...]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import AspdLocalError
from .tokens import AspdTokens

Tokenize = Callable[[str], list[int]]


class RowError(AspdLocalError):
    """A training row that cannot be encoded (missing fields, broken segments)."""


def branch_prefix(title: str, ids: AspdTokens, tokenize: Tokenize) -> list[int]:
    """The forced start of a branch: ``<|branch|>`` + tokens of ``title + separator``."""
    return [ids.branch_open] + tokenize(title + ids.separator)


def title_tokens(title: str, ids: AspdTokens, tokenize: Tokenize) -> list[int]:
    """One title announcement: ``<|title|>`` + tokens of the title + ``<|/title|>``."""
    return [ids.title_open] + tokenize(title) + [ids.title_close]


def check_segments(segments: Sequence[Mapping], answer: str | None = None) -> str:
    """Raise RowError unless the segments are well formed (and render to ``answer`` when given);
    return the text they render to (docs/format.md section 4)."""
    if not isinstance(segments, Sequence) or not segments:
        raise RowError("a row needs a non-empty list of segments")
    parts: list[str] = []
    for i, seg in enumerate(segments):
        kind = seg.get("type") if isinstance(seg, Mapping) else None
        if kind == "serial":
            if not isinstance(seg.get("text"), str):
                raise RowError(f"segment {i}: a serial segment needs a 'text' string")
            parts.append(seg["text"])
        elif kind == "block":
            branches = seg.get("branches")
            if not isinstance(branches, Sequence) or not branches:
                raise RowError(f"segment {i}: a block needs a non-empty list of branches")
            titles = []
            for b in branches:
                if not (isinstance(b, Mapping) and isinstance(b.get("title"), str) and isinstance(b.get("content"), str)):
                    raise RowError(f"segment {i}: every branch needs 'title' and 'content' strings")
                if not b["title"].strip():
                    raise RowError(f"segment {i}: a branch title is empty")
                titles.append(b["title"])
                parts.append(b["content"])
            if len(set(titles)) != len(titles):
                raise RowError(f"segment {i}: branch titles are not unique: {titles}")
        else:
            raise RowError(f"segment {i}: unknown segment type {kind!r} (expected 'serial' or 'block')")
    text = "".join(parts)
    if answer is not None and text != answer:
        raise RowError("the segments do not render to the row's answer (docs/format.md section 4)")
    return text


def answer_tokens(segments: Sequence[Mapping], ids: AspdTokens, tokenize: Tokenize, end: int | None) -> list[int]:
    """The answer's token stream: serial text and blocks in order, then ``end`` (the end-of-turn token)."""
    return encode_answer(segments, ids, tokenize, end)[0]


def encode_answer(segments: Sequence[Mapping], ids: AspdTokens, tokenize: Tokenize,
                  end: int | None) -> tuple[list[int], list[bool]]:
    """The answer's tokens and, per token, whether the model generates it (False for what the engine
    forces: each branch's prefix and ``<|/para|>``)."""
    check_segments(segments)
    out: list[int] = []
    gen: list[bool] = []

    def add(toks: list[int], generated: bool) -> None:
        out.extend(toks)
        gen.extend([generated] * len(toks))

    for seg in segments:
        if seg["type"] == "serial":
            if seg["text"]:
                add(tokenize(seg["text"]), True)
            continue
        for b in seg["branches"]:
            add(title_tokens(b["title"], ids, tokenize), True)
        add([ids.para_open], True)
        for b in seg["branches"]:
            add(branch_prefix(b["title"], ids, tokenize), False)
            add(tokenize(b["content"]) + [ids.branch_close], True)
        add([ids.para_close], False)
    if end is not None:
        add([end], True)
    return out, gen


@dataclass
class EncodedRow:
    """Prompt and answer tokens of one row; the loss covers the answer only."""

    tokens: list[int]
    n_prompt: int
    generated: list[bool]  # per token: an answer token the model produces itself (the loss covers these)
    id: str = ""

    @property
    def n_answer(self) -> int:
        return len(self.tokens) - self.n_prompt


class RowEncoder:
    """Encodes rows with a served model's tokenizer and chat template (llama.cpp, as the engine does).

    ``model`` is an ``aspd_local.llama.model.Model``; ``chat`` an ``aspd_local.chat.ChatFormat`` of it.
    """

    def __init__(self, model, ids: AspdTokens, chat=None):
        from ..chat import ChatFormat

        self.model = model
        self.ids = ids
        self.chat = chat or ChatFormat(model)
        self.end_of_turn = end_of_turn_token(model, self.chat)

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenize(text, add_special=False, parse_special=False)

    def prompt_tokens(self, messages) -> list[int]:
        return self.chat.prompt_tokens(messages)

    def encode(self, row: Mapping) -> EncodedRow:
        rid = str(row.get("id", "")) if isinstance(row, Mapping) else ""
        try:
            messages, segments = row["messages"], row["segments"]
        except (KeyError, TypeError):
            raise RowError(f"row {rid or '?'}: a training row needs 'messages' and 'segments'") from None
        try:
            check_segments(segments, row.get("answer"))
            prompt = self.prompt_tokens(messages)
            answer, generated = encode_answer(segments, self.ids, self.tokenize, self.end_of_turn)
        except AspdLocalError as e:
            raise RowError(f"row {rid or '?'}: {e}") from None
        return EncodedRow(prompt + answer, len(prompt), [False] * len(prompt) + generated, rid)


def end_of_turn_token(model, chat) -> int:
    """The token that ends an assistant turn in the chat template (Gemma: ``<end_of_turn>``), which the
    engine treats as end of generation; the model's EOS when the template has none."""
    slot = "\ue000ANSWER\ue001"
    try:
        text = chat.render([{"role": "user", "content": "q"}, {"role": "assistant", "content": slot}],
                           add_generation_prompt=False)
    except AspdLocalError:
        return model.eos
    tail = text.split(slot, 1)[1] if slot in text else ""
    for t in model.tokenize(tail, add_special=False, parse_special=True):
        if model.is_eog(t):
            return t
    return model.eos
