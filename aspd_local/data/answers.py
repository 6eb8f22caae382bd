"""The base model's own answers, decoded autoregressively (greedy) through the engine.

``concurrency`` requests are kept in flight at once (the engine's scheduler decodes them together, one
``llama_decode`` per step; give the engine at least that many slots). One row per prompt is appended to
a JSONL file as soon as it is done, in the order answers finish, so the job shows progress and resumes
where it stopped (ids, and prompt texts, already in the file are skipped). A row records why an answer
was dropped, if it was: the model looped (tried once more with a repetition penalty; the loop is seen
while decoding and the request cancelled at once), or it was cut by the token cap in the middle of a
sentence. With ``count_retry``, a prompt that asks for a number of items whose answer has another number
is tried once more with the retry settings too; the try whose count matches is kept, else the first.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..engine import Engine
from ..events import Done, SerialDelta
from .extract import extract
from .fewshot import DEFAULT_FEWSHOT, messages_for, shots_named, turn_end
from .filters import count_problems
from .jsonl import Appender, read_jsonl
from .parts import compose, part_problem, parts_of
from .quality import LOOPING, answer_problems, count_of, ends_cleanly


def example_answers(fewshot: str | None = None) -> tuple[str, ...]:
    return tuple(a for _, a in shots_named(fewshot))


EXAMPLE_ANSWERS = example_answers()


@dataclass
class AnswerSettings:
    max_tokens: int = 200
    repeat_penalties: tuple[float, ...] = (1.0, 1.1)  # tried in order until an answer is usable
    # an answer with the wrong number of items gets the next try too. Off by default: measured on 120 new
    # prompts it re-decoded 17 answers (10% more tokens) and fixed 2, fewer rows than the same time
    # spent on more prompts gives (docs/aspd-pipeline.md section 2)
    count_retry: bool = False
    concurrency: int = 4  # requests in flight at once
    fewshot: str = DEFAULT_FEWSHOT  # which example turns (fewshot.FEWSHOT_SETS)
    by_parts: bool = False  # a multi-part prompt is answered part by part (aspd_local.data.parts)


class Stopped(Exception):
    """The job was stopped while this answer was being decoded."""


def answer_once(engine: Engine, prompt: str, max_tokens: int, repeat_penalty: float,
                shots=None) -> tuple[str, str, int]:
    """(answer text, how it ended: "turn" | "eos" | "length" | "loop", tokens decoded). Greedy, serial.

    The model looping (a line or phrase repeated) stops the decoding at once: that answer is dropped
    anyway, and the time is better spent on the next try. Raises Stopped when the request was cancelled
    from outside (``engine.cancel()``)."""
    text = ""
    n = 0
    ended = "length"
    msgs = messages_for(prompt) if shots is None else messages_for(prompt, shots)
    stream = engine.stream(msgs, mode="ar", max_tokens=max_tokens, repeat_penalty=repeat_penalty,
                           speculate="none", keep=False)
    try:
        for ev in stream:
            if isinstance(ev, SerialDelta):
                text += ev.text
                n += 1
                # a pretrained model after example turns invents the next turn; a chat model asked alone
                # ends its turn with its end-of-turn token, and a header line such as "### Tips:" is its text
                cut = turn_end(text) if len(msgs) > 1 else None
                if cut is not None:
                    return text[:cut].rstrip(), "turn", n
                if "\n" in ev.text and set(answer_problems(prompt, text)) & LOOPING:
                    return text.rstrip(), "loop", n
            elif isinstance(ev, Done):
                n = len(ev.result.tokens)
                if ev.result.finish_reason == "cancelled":
                    raise Stopped(prompt)
                ended = "eos" if ev.result.finish_reason == "stop" else "length"
    finally:
        stream.close()  # an early stop cancels the request and rolls the KV cache back
    return text.rstrip(), ended, n


def _count_ok(answer: str, count: int | None) -> bool | None:
    return None if count is None else not count_problems(answer, extract(answer), count)


@dataclass
class Try:
    """The kept try of one question: the answer, how it ended, tokens, its repetition penalty, why it is
    unusable (empty: it is usable), whether it has the asked count (None: none asked), and every try."""

    answer: str
    ended: str
    tokens: int
    repeat_penalty: float
    problems: list[str]
    count_ok: bool | None
    tries: list[dict]


def best_try(engine: Engine, prompt: str, settings: AnswerSettings, count: int | None = None,
             check: Callable[[str], str | None] | None = None) -> Try:
    """Answer ``prompt`` with each repetition penalty of ``settings`` in turn until an answer is usable
    (and, with ``count_retry``, has ``count`` items). ``check``: one more reason an answer is unusable."""
    shots = shots_named(settings.fewshot)
    examples = example_answers(settings.fewshot)
    tried: list[dict] = []
    best: Try | None = None
    for rp in settings.repeat_penalties:
        answer, ended, n = answer_once(engine, prompt, settings.max_tokens, rp, shots)
        problems = answer_problems(prompt, answer, examples)
        if ended == "length" and not ends_cleanly(answer):
            problems.append("token_cap")
        if ended == "loop" and not problems:
            problems.append("repeated_line")
        if not problems and check is not None and (why := check(answer)):
            problems.append(why)
        ok = _count_ok(answer, count) if not problems else None
        tried.append({"repeat_penalty": rp, "problems": problems, "tokens": n,
                      **({"count_ok": ok} if count is not None else {})})
        this = Try(answer, ended, n, rp, problems, ok, tried)
        if best is None or (best.problems and not problems) or (not problems and ok and best.count_ok is False):
            best = this
        if not problems and (ok is not False or not settings.count_retry):
            break
    return best


def answer_row(engine: Engine, prompt_row: dict, settings: AnswerSettings) -> dict:
    """The answer row of one prompt: the base model's answer to it (``settings.by_parts``: to each part
    it names, composed, for a prompt :func:`parts.parts_of` knows)."""
    t0 = time.perf_counter()
    count = None if prompt_row["category"].startswith("serial") else count_of(prompt_row)
    parts = parts_of(prompt_row["prompt"]) if settings.by_parts else None
    row = {"id": prompt_row["id"], "category": prompt_row["category"], "prompt": prompt_row["prompt"],
           "count": count}
    if parts is None:
        t = best_try(engine, prompt_row["prompt"], settings, count)
        row.update(answer=t.answer, ended=t.ended, tokens=t.tokens, repeat_penalty=t.repeat_penalty,
                   rejected=t.problems[0] if t.problems else None, tries=t.tries)
        count_ok = t.count_ok  # best_try checked the kept answer's count already
    else:  # each part alone; a part without a usable answer drops the row (its tries are under "parts")
        done: list[Try] = []
        for p in parts:
            done.append(best_try(engine, p.question, settings, check=part_problem))
            if done[-1].problems:
                break
        bad = done[-1] if done[-1].problems else None
        row.update(answer=compose(parts, [t.answer for t in done]) if bad is None else "",
                   ended="turn", tokens=sum(t.tokens for t in done),
                   repeat_penalty=max(t.repeat_penalty for t in done),
                   rejected=f"part: {bad.problems[0]}" if bad else None, tries=[],
                   parts=[{"title": p.title, "question": p.question, "answer": t.answer,
                           "repeat_penalty": t.repeat_penalty, "problems": t.problems, "tries": t.tries}
                          for p, t in zip(parts, done)])
        count_ok = None if bad else _count_ok(row["answer"], count)
    row.update(max_tokens=settings.max_tokens, fewshot=settings.fewshot,
               seconds=round(time.perf_counter() - t0, 2))
    if count is not None:
        row["count_ok"] = count_ok
    return row


def pending(prompts: list[dict], out_path) -> tuple[list[dict], int]:
    """(prompts not yet answered in ``out_path``, rows already there). A prompt is answered when its id,
    or its text, is in the file; of two prompts with one text only the first is answered."""
    try:
        rows = read_jsonl(out_path)
    except Exception:
        rows = []
    ids = {r["id"] for r in rows}
    texts = {r.get("prompt") for r in rows}
    todo = []
    for p in prompts:
        if p["id"] not in ids and p["prompt"] not in texts:
            todo.append(p)
            texts.add(p["prompt"])
    return todo, len(rows)


def generate_answers(engine: Engine, prompts: list[dict], out_path, settings: AnswerSettings | None = None,
                     limit: int | None = None, log: Callable[[str], None] | None = None,
                     answer: Callable[[Engine, dict, AnswerSettings], dict] = answer_row) -> dict:
    """Answer every prompt not yet in ``out_path``, ``settings.concurrency`` at a time; returns counts.
    ``answer`` writes one row (default: :func:`answer_row`; ``lists.finish_list`` takes answer rows and
    finishes their lists). Interrupted (Ctrl-C), it cancels the requests in flight and keeps every row
    already written."""
    settings = settings or AnswerSettings()
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    todo, already = pending(prompts, out_path)
    todo = todo[:limit]
    k_flight = max(1, min(settings.concurrency, len(todo) or 1))
    log(f"answers: {already} already in {out_path}, {len(todo)} to go, {k_flight} at a time")
    kept = dropped = 0
    count_asked = count_matched = count_retried = count_fixed = 0
    t_start = time.perf_counter()
    work = iter(todo)
    lock = threading.Lock()
    done_q: queue.Queue = queue.Queue()
    stop = threading.Event()

    def worker():
        while not stop.is_set():
            with lock:
                p = next(work, None)
            if p is None:
                return
            try:
                done_q.put((p, answer(engine, p, settings), None))
            except Stopped:
                return
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                done_q.put((p, None, e))
                return

    threads = [threading.Thread(target=worker, name=f"answers-{i}", daemon=True) for i in range(k_flight)]
    for t in threads:
        t.start()
    finished = 0
    try:
        with Appender(out_path) as out:
            while finished < len(todo):
                try:
                    p, row, err = done_q.get(timeout=0.5)
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and done_q.empty():
                        break
                    continue
                if err is not None:
                    raise err
                out.add(row)
                finished += 1
                kept += row["rejected"] is None
                dropped += row["rejected"] is not None
                if row.get("count") is not None:
                    count_asked += 1
                    count_matched += bool(row.get("count_ok"))
                    retried = any(t.get("count_ok") is False for t in row["tries"][:-1])
                    count_retried += retried
                    count_fixed += retried and bool(row.get("count_ok"))
                el = time.perf_counter() - t_start
                eta = el / finished * (len(todo) - finished)
                count = "" if row.get("count") is None else f" asked {row['count']}: {'ok' if row.get('count_ok') else 'no'}"
                log(f"[{finished}/{len(todo)}] {p['id']} {p['category']:<17} {row['tokens']:>4} tok "
                    f"{row['seconds']:6.1f}s {'kept' if row['rejected'] is None else 'dropped: ' + row['rejected']:<24}"
                    f"{count} eta {eta / 60:.0f} min")
    finally:
        stop.set()
        for t in threads:
            while t.is_alive():
                if finished < len(todo):
                    engine.cancel()  # the requests in flight (and a retry started since) stop at their next step
                t.join(0.2)
    seconds = time.perf_counter() - t_start
    return {"already": already, "new": finished, "kept": kept, "dropped": dropped,
            "count_asked": count_asked, "count_matched": count_matched, "count_retried": count_retried,
            "count_fixed_by_retry": count_fixed, "concurrency": k_flight,
            "seconds": round(seconds, 1), "seconds_per_answer": round(seconds / finished, 2) if finished else None}
