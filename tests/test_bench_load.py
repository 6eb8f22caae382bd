"""The closed-loop load benchmark (``python -m aspd_local bench-load``): its statistics on recorded timings
with known values, its option checks, and one real run against ``python -m aspd_local serve`` on the base
model, where its token counts and texts are checked against plain (non-streamed) requests."""

import json
import os
import subprocess
import sys

import httpx
import pytest

from aspd_local.bench.load import (COMPLETION_TEMPLATE, RequestRecord, ServerProcess, add_speedups, aggregate_level, append_to_report,
                                   default_requests, format_row, free_port, load_prompt_texts, normalize_base,
                                   percentile, run_level, run_load)
from aspd_local.cli.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------------------
# pure functions


def test_percentile_interpolates_like_numpy():
    assert percentile([], 50) is None
    assert percentile([7], 95) == 7
    xs = [1, 2, 3, 4]
    assert percentile(xs, 0) == 1 and percentile(xs, 100) == 4
    assert percentile(xs, 50) == pytest.approx(2.5)
    assert percentile(reversed(xs), 50) == pytest.approx(2.5)  # order does not matter
    assert percentile(range(1, 11), 95) == pytest.approx(9.55)  # numpy.percentile(range(1, 11), 95)
    assert percentile([10, 20, 30], 25) == pytest.approx(15)
    with pytest.raises(ValueError):
        percentile(xs, 101)


def _rec(i, ttft, itls, tokens, start=0.0, end=None, error=None, finish="length", usage=True):
    end = end if end is not None else start + (ttft or 0) + sum(itls)
    return RequestRecord(index=i, worker=i % 2, prompt_index=i, start=start, end=end, ttft=ttft, itls=list(itls),
                         completion_tokens=tokens, content_chunks=len(itls) + (ttft is not None),
                         tokens_from_usage=usage, finish_reason=finish, error=error)


def test_aggregate_level_from_known_timings():
    recs = [
        _rec(0, 0.10, [0.02, 0.04], 3, start=0.0),            # ends at 0.16
        _rec(1, 0.30, [0.01, 0.03, 0.05], 4, start=0.0),      # ends at 0.39
        _rec(2, 0.20, [0.02], 2, start=0.16, finish="stop"),   # ends at 0.38
        _rec(3, None, [], 0, start=0.39, end=0.5, error="APIConnectionError: refused"),
    ]
    row = aggregate_level(2, recs, wall_s=0.5)
    assert (row["concurrency"], row["requests"], row["ok"], row["errors"]) == (2, 4, 3, 1)
    assert row["error_samples"] == ["APIConnectionError: refused"]
    assert row["completion_tokens"] == 9
    assert row["tokens_per_s"] == pytest.approx(18.0)  # 9 tokens / 0.5 s; the failed request counts no tokens
    assert row["requests_per_s"] == pytest.approx(6.0)
    assert row["ttft_p50_s"] == pytest.approx(0.20)
    assert row["ttft_p95_s"] == pytest.approx(0.29)  # between 0.2 and 0.3 at rank 1.9
    # ITLs pooled over requests: 0.01 0.02 0.02 0.03 0.04 0.05
    assert row["itl_p50_s"] == pytest.approx(0.025)
    assert row["itl_p95_s"] == pytest.approx(0.0475)
    assert row["finish_reasons"] == {"length": 2, "stop": 1}
    assert row["mean_completion_tokens"] == pytest.approx(3.0)
    assert row["tokens_from_usage"] is True
    assert row["request_wall_p50_s"] == pytest.approx(0.22)  # walls 0.16 0.39 0.22
    assert "C=2" in format_row(row) and "1 errors" in format_row(row)


def test_speedups_against_concurrency_one():
    rows = [aggregate_level(c, [_rec(0, 0.1, [0.1], n)], wall_s=1.0) for c, n in ((1, 10), (2, 15), (4, 25))]
    add_speedups(rows)
    assert [r["speedup_vs_c1"] for r in rows] == [1.0, 1.5, 2.5]
    rows = [aggregate_level(c, [_rec(0, 0.1, [0.1], 5)], wall_s=1.0) for c in (2, 4)]
    add_speedups(rows)
    assert [r["speedup_vs_c1"] for r in rows] == [None, None]  # no C=1 level, no ratio
    empty = aggregate_level(1, [_rec(0, None, [], 0, end=1.0, error="X: y")], wall_s=1.0)
    assert empty["ttft_p50_s"] is None and empty["tokens_per_s"] == 0 and empty["tokens_from_usage"] is False
    assert "-" in format_row(empty)


def test_completion_template_is_the_chat_fallback():
    """--endpoint completions sends what our server renders for one user turn on a GGUF without a template."""
    import jinja2

    from aspd_local.chat import PLAIN_TEMPLATE

    rendered = jinja2.Template(PLAIN_TEMPLATE).render(messages=[{"role": "user", "content": "{prompt}"}],
                                                      add_generation_prompt=True)
    assert rendered == COMPLETION_TEMPLATE


def test_small_helpers(tmp_path):
    assert [default_requests(c) for c in (1, 4, 8, 16)] == [8, 8, 16, 32]
    for u in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"):
        assert normalize_base(u) == "http://h:1"
    f = tmp_path / "p.jsonl"
    f.write_text('{"id": "a", "prompt": "one"}\n\n{"prompt": "two"}\n{"prompt": "three"}\n')
    assert load_prompt_texts(str(f)) == ["one", "two", "three"]
    assert load_prompt_texts(str(f), 2) == ["one", "two"]
    report = tmp_path / "all.json"
    block = {"label": "x", "levels": [aggregate_level(1, [_rec(0, 0.1, [0.1], 2)], wall_s=1.0)]}
    append_to_report(str(report), block)
    append_to_report(str(report), dict(block, label="y"))
    append_to_report(str(report), dict(block, label="x", note="again"))  # same label: replaced
    data = json.loads(report.read_text())
    assert sorted(data["runs"]) == ["x", "y"] and data["runs"]["x"]["note"] == "again"
    assert data["summary"]["y"][0]["tokens_per_s"] == 2.0


def _cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "aspd_local", "bench-load", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout, env=env)


@pytest.mark.parametrize("args,message", [
    ([], "error: give either --url (a running server) or --server KIND (one to start)"),
    (["--url", "http://x", "--server", "aspd"], "error: give either --url"),
    (["--server", "vllm"], "error: --server must be one of aspd, llama-cpp-python, llama-server, got 'vllm'"),
    (["--url", "http://x", "--concurrency", "1,0"], "error: --concurrency must be in [1, 1024], got 0"),
    (["--url", "http://x", "--concurrency", "1,,2"], "error: --concurrency must be comma-separated"),
    (["--url", "http://x", "--concurrency", "2,2"], "error: --concurrency lists a level twice"),
    (["--url", "http://x", "--requests", "many"], "error: --requests must be an integer, got 'many'"),
    (["--url", "http://x", "--max-tokens", "0"], "error: --max-tokens must be >= 1, got 0"),
    (["--url", "http://x", "--extra-body", "[1]"], "error: --extra-body must be a JSON object"),
    (["--url", "http://x", "--extra-body", "{"], "error: --extra-body is not JSON"),
    (["--url", "localhost:8000"], "error: --url must start with http:// or https://"),
    (["--url", "http://x", "--model", "m.gguf"], "error: --model goes with --server, not --url"),
    (["--url", "http://x", "--prompts", "/nonexistent.jsonl"], "error: --prompts: no such file"),
    (["--server", "llama-server", "--llama-server", "/nonexistent/llama-server"],
     "error: llama-server binary not found or not executable: /nonexistent/llama-server"),
    (["--server", "aspd", "--server-args", "'unclosed"], "error: --server-args: No closing quotation"),
    (["--server", "aspd", "--port", "70000"], "error: --port must be in [0, 65535], got 70000"),
    (["--url", "http://x", "--endpoint", "embeddings"], "error: --endpoint must be chat or completions"),
    (["--url", "http://x", "--template", "{prompt}"], "error: --template goes with --endpoint completions"),
    (["--url", "http://x", "--endpoint", "completions", "--template", "Q:"], "error: --template must contain"),
    (["--url", "http://x", "--endpoint", "completions", "--template", "{x} {prompt}"],
     "error: --template: braces other than {prompt} must be doubled"),
])
def test_bad_options_are_one_line(args, message, capsys):
    assert main(["bench-load", *args]) == 2  # in-process: the same path as the command line, faster
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), err


def test_bad_option_on_the_command_line():
    p = _cli("--url", "http://x", "--concurrency", "four")
    assert p.returncode == 2 and p.stderr == "error: --concurrency must be an integer, got 'four'\n"


# ---------------------------------------------------------------------------------------------------------
# a real run: our server as a subprocess, the openai client on loopback


@pytest.fixture(scope="module")
def aspd_server(q4_path, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")  # keep the user's suffix cache and cost curves out of it
    port = free_port()
    cmd = [sys.executable, "-m", "aspd_local", "serve", q4_path, "--port", str(port), "--speculate", "none",
           "--no-suffix-cache", "--n-ctx", "2048", "--threads", "1"]
    s = ServerProcess(cmd, f"http://127.0.0.1:{port}", str(cache / "server.log"),
                      env=dict(os.environ, ASPD_LOCAL_CACHE=str(cache)))
    s.start(timeout=120)
    yield s
    assert s.stop() is not None


PROMPTS = ["Name three colours.", "Write a short poem about the sea.", "Tell me a story about a dragon."]
MAX_TOKENS = 12  # every answer runs into it (the base model answers at length), so the counts are known


def test_load_run_against_our_server(aspd_server):
    extra = {"aspd_mode": "ar"}
    rep = run_load(aspd_server.base, [1, 2], PROMPTS, requests=3, max_tokens=MAX_TOKENS, extra_body=extra,
                   label="ours")
    assert rep["model"] == aspd_server.model_id == "gemma-3-270m-q4_k_m"
    assert rep["settings"]["include_usage"] is True  # our server sends usage when asked

    # a reference: the same request not streamed, its usage from the server
    r = httpx.post(aspd_server.base + "/v1/chat/completions", timeout=60, json=dict(
        model=rep["model"], messages=[{"role": "user", "content": PROMPTS[0]}], max_tokens=MAX_TOKENS,
        temperature=0, **extra)).json()
    assert (r["usage"]["completion_tokens"], r["choices"][0]["finish_reason"]) == (MAX_TOKENS, "length")

    assert [r["concurrency"] for r in rep["levels"]] == [1, 2]
    for row in rep["levels"]:
        recs = rep["requests"][str(row["concurrency"])]
        assert row["requests"] == row["ok"] == len(recs) == 3 and row["errors"] == 0
        assert [r["prompt_index"] for r in recs] == [0, 1, 2]  # round-robin
        assert {r["worker"] for r in recs} == set(range(row["concurrency"]))
        for r in recs:
            assert r["error"] is None and r["tokens_from_usage"] and r["text_chars"] > 0
            assert (r["completion_tokens"], r["finish_reason"]) == (MAX_TOKENS, "length")
            assert MAX_TOKENS - 2 <= r["content_chunks"] <= MAX_TOKENS  # ar: about a token a chunk
            assert len(r["itls"]) == r["content_chunks"] - 1
            assert 0 < r["ttft"] <= r["wall"] and r["ttft"] + sum(r["itls"]) <= r["wall"] + 1e-3
        assert row["completion_tokens"] == 3 * MAX_TOKENS
        assert max(r["end"] for r in recs) <= row["wall_s"] + 1e-3
        assert row["tokens_per_s"] == pytest.approx(row["completion_tokens"] / row["wall_s"], rel=1e-2)
        assert row["ttft_p50_s"] == pytest.approx(percentile([r["ttft"] for r in recs], 50), abs=1e-3)
        assert row["itl_p95_s"] == pytest.approx(percentile([g for r in recs for g in r["itls"]], 95), abs=1e-3)
        assert row["finish_reasons"] == {"length": 3} and row["tokens_from_usage"]
    assert rep["levels"][0]["speedup_vs_c1"] == 1.0
    assert rep["levels"][1]["speedup_vs_c1"] == pytest.approx(
        rep["levels"][1]["tokens_per_s"] / rep["levels"][0]["tokens_per_s"], rel=1e-2)


def test_without_usage_chunks_are_counted(aspd_server):
    recs, wall = run_level(aspd_server.base, aspd_server.model_id, PROMPTS[:1], 1, 1, MAX_TOKENS,
                           {"aspd_mode": "ar"}, include_usage=False)
    (r,) = recs
    assert r.ok and not r.tokens_from_usage and r.completion_tokens == r.content_chunks >= MAX_TOKENS - 2
    assert 0 < r.wall <= wall


def test_completions_endpoint(aspd_server):
    rep = run_load(aspd_server.base, [2], PROMPTS[:2], requests=2, max_tokens=MAX_TOKENS, endpoint="completions",
                   extra_body={"aspd_mode": "ar"})
    assert rep["settings"]["endpoint"] == "/v1/completions" and rep["settings"]["include_usage"]
    assert rep["settings"]["completion_template"] == COMPLETION_TEMPLATE
    (row,) = rep["levels"]
    assert row["ok"] == 2 and row["completion_tokens"] == 2 * MAX_TOKENS and row["ttft_p50_s"] > 0
    assert row["speedup_vs_c1"] is None  # no C=1 level


def test_cli_against_a_running_server(aspd_server, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    out, combined = tmp_path / "run.json", tmp_path / "all.json"
    p = _cli("--url", aspd_server.base + "/v1", "--concurrency", "1", "--requests", "2", "--max-tokens", "6",
             "--prompts", str(prompts), "--extra-body", '{"aspd_mode": "ar"}', "--label", "ours-ar",
             "--json", str(out), "--append-to", str(combined))
    assert p.returncode == 0, p.stderr
    assert "ours-ar" in p.stdout and "C=1" in p.stdout and "tok/s" in p.stdout
    rep = json.loads(out.read_text())
    assert rep["label"] == "ours-ar" and rep["server"] == {"kind": "external", "url": aspd_server.base + "/v1"}
    assert rep["settings"]["extra_body"] == {"aspd_mode": "ar"} and rep["settings"]["prompts_file"] == "p.jsonl"
    row = rep["levels"][0]
    assert row["ok"] == 2 and 0 < row["completion_tokens"] <= 12
    assert json.loads(combined.read_text())["runs"]["ours-ar"]["levels"] == rep["levels"]
