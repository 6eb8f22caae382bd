"""The answer stage: greedy answers of the base model through the engine, appended as they come, resumed
by id, with the KV cache clean after every (possibly early-stopped) answer."""

from __future__ import annotations

import json

from conftest import make_engine

from aspd_local.data.answers import AnswerSettings, answer_once, generate_answers
from aspd_local.data.fewshot import messages_for


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
        ref = e.generate(messages_for(prompts[0]["prompt"]), mode="ar", max_tokens=12, speculate="none").text
        assert rows[0]["answer"] and ref.startswith(rows[0]["answer"])
        assert rows[0]["ended"] in ("turn", "eos", "length", "loop")
        text, ended, n = answer_once(e, prompts[0]["prompt"], 12, 1.0)
        assert text == rows[0]["answer"] and e.check_cache() == []
