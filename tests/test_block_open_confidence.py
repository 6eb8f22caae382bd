"""benchmarks/block_open_confidence.py: recording p(<|title|>) leaves the answer as it is, the recorded
probability belongs to the step where the block opened, and the summary counts what a threshold keeps."""

import importlib.util
import json
from pathlib import Path

from aspd_local import Engine

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("block_open_confidence",
                                                  ROOT / "benchmarks" / "block_open_confidence.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_probe_records_without_changing_the_answer(aspd_f16_path, tmp_path):
    mod = _module()
    prompts = [{"id": "a", "category": "list", "prompt": "List three fruits."},
               {"id": "b", "category": "serial_fact", "prompt": "What is the capital of France?"}]
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in prompts))
    out = tmp_path / "out.jsonl"
    mod.main([aspd_f16_path, str(src), str(out), "--max-tokens", "60"])
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    e = Engine(aspd_f16_path, n_ctx=4096, n_slots=1, suffix_cache=False, speculate="none")
    try:
        for p in prompts:
            plain = e.generate(p["prompt"], mode="parallel", max_tokens=60, keep=False, temperature=0)
            got = rows[p["id"]]
            assert got["text"] == plain.text and got["blocks"] == plain.stats.blocks
            assert (got["p_open"] is None) == (got["blocks"] == 0)
            if got["p_open"] is not None:  # greedy opened the block: <|title|> was the most likely token
                assert 0.0 < got["p_open"] <= 1.0
    finally:
        e.close()
    assert rows["a"]["blocks"] >= 1  # the fine-tuned model lists fruits in a block
    before = out.read_text()
    mod.main([aspd_f16_path, str(src), str(out), "--max-tokens", "60"])  # resumes: nothing left to do
    assert out.read_text() == before


def test_summary_counts_what_each_threshold_keeps(tmp_path):
    mod = _module()
    rows = [{"id": "1", "category": "serial_fact", "p_open": 0.6}, {"id": "2", "category": "serial_fact", "p_open": None},
            {"id": "3", "category": "list", "p_open": 1.0}, {"id": "4", "category": "tips", "p_open": 0.85}]
    out = tmp_path / "out.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = mod.summary(str(out))
    assert s["serial"]["prompts"] == 2 and s["list"]["prompts"] == 2
    assert s["serial"]["blocks_if_threshold"][0.0] == 0.5 and s["serial"]["blocks_if_threshold"][0.7] == 0.0
    assert s["list"]["blocks_if_threshold"][0.8] == 1.0 and s["list"]["blocks_if_threshold"][0.9] == 0.5
