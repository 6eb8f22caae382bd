"""The command line, as a user runs it."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, timeout=300, cache=None):
    env = dict(os.environ)
    if cache is not None:  # keep the user's suffix cache and cost curves out of the tests
        env["ASPD_LOCAL_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "aspd_local", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_run_one_shot_json(q4_path, tmp_path):
    p = _cli("run", q4_path, "--prompt", "Say hello.", "--max-tokens", "8", "--json", cache=tmp_path)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    done = events[-1]
    assert done["event"] == "done" and done["stats"]["tokens"] <= 8
    assert "".join(e["text"] for e in events if e["event"] == "serial") == done["text"]
    assert "llama_model_loader" not in p.stderr  # llama.cpp's log is silent by default


def test_run_accepts_token_mapping(f16_path):
    # the base model never opens a block by itself; with the mapping it is served as an ASPD model
    p = _cli("run", f16_path, "--prompt", "Hi", "--max-tokens", "6", "--aspd-tokens",
             "<unused0>,<unused1>,<unused2>,<unused3>,<unused4>,<unused5>", "--stats", "--speculate", "none")
    assert p.returncode == 0, p.stderr
    assert "[parallel]" in p.stderr and "served serially" not in p.stderr


def test_missing_model_is_one_line():
    p = _cli("run", "/nonexistent.gguf", "--prompt", "x")
    assert p.returncode == 2
    assert p.stderr.strip() == "error: model file not found: /nonexistent.gguf"


def test_corrupt_model_is_one_line(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    p = _cli("run", str(bad), "--prompt", "x")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot load model") and "Traceback" not in p.stderr


def test_bench_report(q4_path, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "List two colours.", "category": "list"}\n'
                       '{"id": "b", "prompt": "What is 2 plus 2?", "category": "serial"}\n')
    out = tmp_path / "out.json"
    p = _cli("bench", q4_path, "--prompts", str(prompts), "--modes", "ar,sequential,parallel",
             "--max-tokens", "6", "--json", str(out), "--speculate", "none")
    assert p.returncode == 0, p.stderr
    rep = json.loads(out.read_text())
    assert set(rep["cost_curve"]) == {"1", "2", "4", "8", "16"}
    assert all(v > 0 for v in rep["cost_curve"].values())
    assert rep["machine"]["threads"] >= 1
    assert len(rep["results"]) == 6
    row = rep["results"][0]
    for key in ("id", "category", "mode", "text", "tokens", "decode_calls", "wall_s", "blocks", "branches"):
        assert key in row
    assert [r["mode"] for r in rep["results"][:3]] == ["ar", "sequential", "parallel"]  # interleaved per prompt
    s = rep["summary"]
    assert {"tokens_per_s", "speedup_vs_ar", "speedup_vs_sequential"} <= set(s["parallel"])
    assert "efficiency" in s["parallel"]


def test_bench_stopped_during_the_judges_keeps_its_answers(q4_path, tmp_path, monkeypatch):
    """The judges take minutes after the answers: a run stopped there has written its answers and their
    objective checks already (``bench --rescore`` adds the judges later)."""
    from aspd_local.bench.quality import report_key
    from aspd_local.cli import bench
    from aspd_local.cli.main import build_parser

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "List two colours.", "category": "list", "count": 2}\n')
    out = tmp_path / "out.json"

    def stopped(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "quality", stopped)
    monkeypatch.setenv("ASPD_LOCAL_CACHE", str(tmp_path))
    args = build_parser().parse_args(["bench", q4_path, "--prompts", str(prompts), "--modes", "ar,parallel",
                                      "--max-tokens", "6", "--json", str(out), "--speculate", "none",
                                      "--quality", q4_path, "--judges", "chat"])
    try:
        args.func(args)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the judge was not reached")
    rep = json.loads(out.read_text())
    assert [r["mode"] for r in rep["results"]] == ["ar", "parallel"]
    assert {"ar", "parallel"} <= set(rep["checks"]) and "checks_headline" in rep
    assert report_key("chat") not in rep  # the judge never finished
    assert rep["prompts_file"] == "p.jsonl"


def test_bench_judges_none_gives_the_objective_checks_alone(q4_path, tmp_path, monkeypatch, capsys):
    """``--judges none``: no reference model is loaded and no likelihood figure is written."""
    from aspd_local.bench.quality import JUDGES, report_key
    from aspd_local.cli import bench
    from aspd_local.cli.main import build_parser

    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "List two colours.", "category": "list", "count": 2}\n')
    out = tmp_path / "out.json"

    def judged(*a, **k):
        raise AssertionError("a judge ran")

    monkeypatch.setattr(bench, "quality", judged)
    monkeypatch.setattr("aspd_local.engine.Engine.score", judged)
    monkeypatch.setenv("ASPD_LOCAL_CACHE", str(tmp_path))
    args = build_parser().parse_args(["bench", q4_path, "--prompts", str(prompts), "--modes", "ar,parallel",
                                      "--max-tokens", "6", "--json", str(out), "--speculate", "none",
                                      "--quality", "--judges", "none"])
    assert args.func(args) == 0
    rep = json.loads(out.read_text())
    assert {"ar", "parallel"} <= set(rep["checks"]) and "checks_headline" in rep
    assert not any(report_key(j) in rep for j in JUDGES)
    assert "scoring answers" not in capsys.readouterr().err
