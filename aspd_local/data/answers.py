"""The base model's own answers, decoded autoregressively (greedy) through the engine.

One row per prompt is appended to a JSONL file as soon as it is done, so the job shows progress
and resumes where it stopped (ids already in the file are skipped). A row records why an answer
was dropped, if it was: the model looped (tried once more with a repetition penalty), or it was
cut by the token cap in the middle of a sentence.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..engine import Engine
from ..events import Done, SerialDelta
from .fewshot import SHOTS, messages_for, turn_end
from .jsonl import Appender, read_jsonl
from .quality import LOOPING, answer_problems, ends_cleanly


EXAMPLE_ANSWERS = tuple(a for _, a in SHOTS)


@dataclass
class AnswerSettings:
    max_tokens: int = 200
    repeat_penalties: tuple[float, ...] = (1.0, 1.1)  # tried in order until an answer is usable


def answer_once(engine: Engine, prompt: str, max_tokens: int, repeat_penalty: float) -> tuple[str, str, int]:
    """(answer text, how it ended: "turn" | "eos" | "length" | "loop", tokens decoded). Greedy, serial.

    The model looping (a line or phrase repeated) stops the decoding at once: that answer is dropped
    anyway, and the time is better spent on the next try."""
    text = ""
    n = 0
    ended = "length"
    stream = engine.stream(messages_for(prompt), mode="ar", max_tokens=max_tokens, repeat_penalty=repeat_penalty,
                           speculate="none", keep=False)
    try:
        for ev in stream:
            if isinstance(ev, SerialDelta):
                text += ev.text
                n += 1
                cut = turn_end(text)
                if cut is not None:
                    return text[:cut].rstrip(), "turn", n
                if "\n" in ev.text and set(answer_problems(prompt, text)) & LOOPING:
                    return text.rstrip(), "loop", n
            elif isinstance(ev, Done):
                n = len(ev.result.tokens)
                ended = "eos" if ev.result.finish_reason == "stop" else "length"
    finally:
        stream.close()  # an early stop cancels the request and rolls the KV cache back
    return text.rstrip(), ended, n


def answer_row(engine: Engine, prompt_row: dict, settings: AnswerSettings) -> dict:
    t0 = time.perf_counter()
    tried = []
    for rp in settings.repeat_penalties:
        answer, ended, n = answer_once(engine, prompt_row["prompt"], settings.max_tokens, rp)
        problems = answer_problems(prompt_row["prompt"], answer, EXAMPLE_ANSWERS)
        if ended == "length" and not ends_cleanly(answer):
            problems.append("token_cap")
        if ended == "loop" and not problems:
            problems.append("repeated_line")
        tried.append({"repeat_penalty": rp, "problems": problems})
        if not problems:
            break
    return {"id": prompt_row["id"], "category": prompt_row["category"], "prompt": prompt_row["prompt"],
            "answer": answer, "ended": ended, "tokens": n, "repeat_penalty": rp,
            "rejected": problems[0] if problems else None, "tries": tried,
            "seconds": round(time.perf_counter() - t0, 2)}


def generate_answers(engine: Engine, prompts: list[dict], out_path, settings: AnswerSettings | None = None,
                     limit: int | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Answer every prompt not yet in ``out_path``; returns counts."""
    settings = settings or AnswerSettings()
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    done = set()
    try:
        done = {r["id"] for r in read_jsonl(out_path)}
    except Exception:
        pass
    todo = [p for p in prompts if p["id"] not in done][:limit]
    log(f"answers: {len(done)} already in {out_path}, {len(todo)} to go")
    kept = dropped = 0
    t_start = time.perf_counter()
    with Appender(out_path) as out:
        for k, p in enumerate(todo, 1):
            row = answer_row(engine, p, settings)
            out.add(row)
            kept += row["rejected"] is None
            dropped += row["rejected"] is not None
            el = time.perf_counter() - t_start
            eta = el / k * (len(todo) - k)
            log(f"[{k}/{len(todo)}] {p['id']} {p['category']:<17} {row['tokens']:>4} tok {row['seconds']:6.1f}s "
                f"{'kept' if row['rejected'] is None else 'dropped: ' + row['rejected']:<24} eta {eta / 60:.0f} min")
    return {"already": len(done), "new": len(todo), "kept": kept, "dropped": dropped,
            "seconds": round(time.perf_counter() - t_start, 1)}
