"""One planned step put into the batch and decoded, with one way to run out of room.

Each request's granted ask becomes its part of the batch (its rows, the draft trees granted on its root
rows, the prompt rows it was given), the parts are decoded in one ``llama_decode``, and the new cells are
recorded in the KV mirror. A decode llama.cpp refuses (no room: return code 1; or a failure) is retried
smaller before any request is ended, as llama.cpp's server does: without drafts, then with half the
requests (the others wait for the next step), then, for a request alone, with half its prompt rows.
Only a request whose own mandatory rows fail alone is told: :class:`~aspd_local.step.ContextFull` when
the cache had no room (its answer ends with what it wrote), the error otherwise.
"""

from __future__ import annotations

import time

from .decoding.speculative import add_root_and_draft
from .errors import DecodeError
from .kv import KvCache, Lane
from .llama.context import Context, KvFull
from .step import Ask, ContextFull

DECODED = "decoded"


def fill(lane: Lane, ask: Ask) -> None:
    """Put a granted ask's rows into the lane's part (draft sequences are opened for granted trees)."""
    part = lane.part
    ask.at, ask.pending = [], [None] * len(ask.drafts)
    root_of = {offer.root: j for j, offer in enumerate(ask.drafts) if ask.trees and ask.trees[j] is not None}
    for i, r in enumerate(ask.rows):
        j = root_of.get(i)
        if j is None:
            ask.at.append(part.add(r.token, r.pos, r.seqs, r.logits))
        else:
            d = add_root_and_draft(lane, r, ask.trees[j])
            ask.pending[j] = d
            ask.at.append(d.root_row)
    ask.prefill_at = part.n
    for r in ask.prefill[:ask.n_prefill]:
        part.add(r.token, r.pos, r.seqs, r.logits)


def unfill(lane: Lane) -> None:
    lane.drop_drafts()
    lane.part.clear()


def decode_step(ctx: Context, cache: KvCache, entries: list[tuple[Lane, Ask]]) -> tuple[int, list]:
    """Decode the planned step. Returns (decode calls made, an outcome per entry): ``DECODED``; None (it
    waits for the next step); or an exception to end that request with (ContextFull: no room for it)."""
    outcomes: list = [None] * len(entries)
    todo = list(range(len(entries)))
    calls = 0
    while todo:
        filled = []
        for i in todo:
            lane, ask = entries[i]
            try:
                fill(lane, ask)
                filled.append(i)
            except Exception as e:  # pinned to that request
                unfill(lane)
                outcomes[i] = e
        todo = filled
        if not todo:
            break
        batch = ctx.batch
        batch.clear()
        for i in todo:
            entries[i][0].part.place(batch)
        t0 = time.perf_counter()
        try:
            ctx.decode(batch)
        except (KvFull, DecodeError) as e:  # llama.cpp wrote nothing: try a smaller step
            for i in todo:
                unfill(entries[i][0])
            todo = _smaller(entries, todo, e, outcomes)
            continue
        dt = time.perf_counter() - t0
        calls += 1
        for i in todo:
            part = entries[i][0].part
            cache.record(part)
            part.batch_n, part.decode_s = batch.n, dt
            part.clear()
            outcomes[i] = DECODED
        break
    return calls, outcomes


def _smaller(entries: list[tuple[Lane, Ask]], todo: list[int], err: Exception, outcomes: list) -> list[int]:
    asks = [entries[i][1] for i in todo]
    if any(t is not None for a in asks for t in a.trees):
        for a in asks:
            a.trees = [None] * len(a.drafts)
        return todo
    if len(todo) > 1:
        return todo[:len(todo) // 2]  # the rest wait for the next step
    if asks[0].n_prefill > 1:  # (last: a prompt cut elsewhere than alone may round differently)
        asks[0].n_prefill = (asks[0].n_prefill + 1) // 2
        return todo
    outcomes[todo[0]] = ContextFull() if isinstance(err, KvFull) else err
    return []
