"""The answer stage: greedy answers of the base model through the engine, appended as they come, resumed
by id, with the KV cache clean after every (possibly early-stopped) answer."""

from __future__ import annotations

import json

from conftest import make_engine

from aspd_local.data.answers import AnswerSettings, answer_once, generate_answers
from aspd_local.data.fewshot import DEFAULT_FEWSHOT, messages_for, shots_named


def test_answers_are_the_engines_greedy_text_and_resume(q4_path, tmp_path):
    prompts = [{"id": "a", "prompt": "What is the capital of France?", "category": "serial_fact"},
               {"id": "b", "prompt": "Name three fruits.", "category": "list"}]
    out = tmp_path / "answers.jsonl"
    settings = AnswerSettings(max_tokens=12, repeat_penalties=(1.0,))
    with make_engine(q4_path, n_ctx=2048, max_branches=2, max_draft_paths=1) as e:
        r1 = generate_answers(e, prompts, out, settings, limit=1, log=lambda m: None)
        assert r1["new"] == 1 and e.check_cache() == []
        r2 = generate_answers(e, prompts, out, settings, log=lambda m: None)
        assert r2["already"] == 1 and r2["new"] == 1
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        assert [r["id"] for r in rows] == ["a", "b"]
        # the stored answer is what a plain greedy decode of the same messages starts with
        shots = shots_named(DEFAULT_FEWSHOT)
        ref = e.generate(messages_for(prompts[0]["prompt"], shots), mode="ar", max_tokens=12, speculate="none").text
        assert rows[0]["answer"] and ref.startswith(rows[0]["answer"])
        assert rows[0]["ended"] in ("turn", "eos", "length", "loop")
        text, ended, n = answer_once(e, prompts[0]["prompt"], 12, 1.0, shots)
        assert text == rows[0]["answer"] and e.check_cache() == []


class _Spy:
    """The engine, with the number of answers in flight at once recorded."""

    def __init__(self, engine):
        self.engine, self.active, self.most = engine, 0, 0
        import threading

        self.lock = threading.Lock()

    def stream(self, *a, **kw):
        inner = self.engine.stream(*a, **kw)
        spy = self

        def gen():
            with spy.lock:
                spy.active += 1
                spy.most = max(spy.most, spy.active)
            try:
                yield from inner
            finally:
                inner.close()
                with spy.lock:
                    spy.active -= 1

        return gen()

    def cancel(self):
        self.engine.cancel()


def test_answers_run_concurrently_and_resume(q4_path, tmp_path):
    """Three prompts, up to three in flight: every row once, appended as it finishes; the count-aware retry
    tries a count-asking prompt again when its first answer has another number of items; the cache is
    clean after."""
    prompts = [{"id": "a", "prompt": "What is 7 + 8?", "category": "serial_math", "count": None},
               {"id": "b", "prompt": "Name three fruits.", "category": "list", "count": 3},
               {"id": "c", "prompt": "Give me 2 tips for sleeping better.", "category": "tips", "count": 2},
               {"id": "d", "prompt": "What is 7 + 8?", "category": "serial_math", "count": None},  # answered: skipped
               {"id": "e", "prompt": "Name three fruits.", "category": "list", "count": 3}]  # same text as b: skipped
    out = tmp_path / "answers.jsonl"
    settings = AnswerSettings(max_tokens=10, concurrency=3, count_retry=True)
    # one thread: on a machine where other jobs run, llama.cpp's threads spin at their barriers (4x slower)
    with make_engine(q4_path, n_ctx=3072, max_branches=2, max_draft_paths=1, n_slots=3, n_threads=1) as e:
        spy = _Spy(e)
        r1 = generate_answers(spy, prompts[:1], out, settings, log=lambda m: None)  # caches the examples once
        r2 = generate_answers(spy, prompts, out, settings, log=lambda m: None)
        assert e.check_cache() == []
    assert r1["new"] == 1 and r2 == {**r2, "already": 1, "new": 2, "concurrency": 2}
    assert spy.most == 2  # both answers were decoded at the same time
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["a", "b", "c"] and rows[0]["id"] == "a"
    by = {r["id"]: r for r in rows}
    assert all(r["max_tokens"] == 10 and r["tokens"] <= 10 for r in rows)  # each row keeps the cap it was written under
    assert by["a"]["count"] is None and "count_ok" not in by["a"] and len(by["a"]["tries"]) == 1
    for k in ("b", "c"):
        r = by[k]
        assert r["count"] == prompts["bc".index(k) + 1]["count"] and r["fewshot"] == DEFAULT_FEWSHOT
        first = r["tries"][0]
        assert [t["repeat_penalty"] for t in r["tries"]] == [1.0, 1.1][:len(r["tries"])]
        if first["problems"] == []:  # usable: tried again exactly when its number of items was wrong
            assert len(r["tries"]) == (2 if first["count_ok"] is False else 1)
    assert r2["count_asked"] == 2
