"""The bench with speculation: ``x+suffix`` modes next to ``x``, the prompt-lookup peer, acceptance rate
and tokens per decode call in the rows, agreement checked per pair; and the CLI options."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aspd_local.bench.runner import agreeing, parse_modes, run_bench
from conftest import make_engine

PROMPTS = [
    {"id": "copy", "category": "code",
     "prompt": "Copy this line exactly: alpha beta gamma delta epsilon zeta eta theta"},
    {"id": "json", "category": "structured", "prompt": "Convert to JSON: name=Ann; age=31; city=Oslo"},
]


def test_parse_modes():
    specs = parse_modes(["ar", "ar+suffix", "parallel+suffix", "ar+lookup"])
    assert [(s.mode, s.speculate) for s in specs] == [("ar", "none"), ("ar", "suffix"), ("parallel", "suffix"),
                                                     ("ar", "lookup")]
    for bad in (["fast"], ["ar+magic"], ["parallel+lookup"], ["ar", "ar"]):
        with pytest.raises(ValueError):
            parse_modes(bad)
    assert agreeing(["ar", "ar+suffix", "ar+lookup", "parallel+suffix"]) == {"ar+suffix": "ar", "ar+lookup": "ar"}


def test_bench_rows_and_summary(q4_path, tmp_path, monkeypatch):
    monkeypatch.setenv("ASPD_LOCAL_CACHE", str(tmp_path))  # nothing of the run may reach the user's cache
    e = make_engine(q4_path, n_threads=1, suffix_cache=True)
    try:
        before = e.global_index()
        modes = ["ar", "ar+suffix", "ar+lookup", "parallel", "parallel+suffix"]
        rep = run_bench(e, PROMPTS, modes, 24, log=lambda m: None)
        assert e.global_index() is before and before.n_tokens == 0
        assert e.config.suffix_cache is True
    finally:
        e.close()
    assert not os.path.exists(tmp_path / "suffix")
    assert [r["mode"] for r in rep["results"][:5]] == modes  # interleaved per prompt
    for r in rep["results"]:
        for key in ("acceptance_rate", "tokens_per_call", "draft_tokens", "accepted_draft_tokens", "decode_calls"):
            assert key in r
        assert r["tokens"] > 0
        if r["mode"] in ("ar", "parallel"):
            assert r["draft_tokens"] == 0 and r["tokens_per_call"] == 1.0
    s = rep["summary"]
    for m in ("ar+suffix", "parallel+suffix", "ar+lookup"):
        assert {"acceptance_rate", "tokens_per_call", "speedup_vs_ar"} <= set(s[m])
    # copying text: both speculators take several tokens per decode call
    assert s["ar+suffix"]["tokens_per_call"] > 1.5 and s["ar+lookup"]["tokens_per_call"] > 1.5
    assert 0 < s["ar+suffix"]["speculate_share_of_decode"] < 1
    # a +suffix mode equals its plain mode, or the report says where and how close the call was
    by = {(r["id"], r["mode"]): r for r in rep["results"]}
    for p in PROMPTS:
        for mode, ref in (("ar+suffix", "ar"), ("parallel+suffix", "parallel"), ("ar+lookup", "ar")):
            row = by[(p["id"], mode)]
            if row["text"] != by[(p["id"], ref)]["text"]:
                d = row["divergence"]
                assert d["vs"] == ref and d["top2_margin"] is not None
    assert set(rep["cost_curve"]) == {"1", "2", "4", "8", "16"} and "32" in rep["cost_curve_drafts"]
    assert rep["lookup"]["num_pred_tokens"] == 10


def _cli(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "aspd_local", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.parametrize("args,message", [
    (["--suffix-alpha", "0"], "error: --suffix-alpha must be > 0, got 0"),
    (["--suffix-min-prob", "1.5"], "error: --suffix-min-prob must be in [0, 1], got 1.5"),
])
def test_bad_suffix_options_are_one_line(q4_path, args, message):
    p = _cli("run", q4_path, "--prompt", "x", *args)
    assert p.returncode == 2 and p.stderr.strip() == message


def test_bench_unknown_mode_is_one_line(q4_path):
    p = _cli("bench", q4_path, "--modes", "ar,ar+magic")
    assert p.returncode == 2 and p.stderr.strip().startswith("error: --modes: unknown mode 'ar+magic'")


def test_run_with_suffix_options(q4_path, tmp_path):
    env_cache = str(tmp_path)
    p = subprocess.run([sys.executable, "-m", "aspd_local", "run", q4_path, "--prompt", "Count from 1 to 10.",
                        "--max-tokens", "12", "--threads", "1", "--speculate", "suffix", "--suffix-budget", "all",
                        "--suffix-alpha", "3", "--suffix-depth", "32", "--suffix-cache-tokens", "1000", "--json"],
                       capture_output=True, text=True, env=dict(os.environ, ASPD_LOCAL_CACHE=env_cache), timeout=600)
    assert p.returncode == 0, p.stderr
    done = [line for line in p.stdout.splitlines() if '"done"' in line or '"stats"' in line]
    assert done and '"draft_tokens"' in done[-1]
    assert os.path.exists(os.path.join(env_cache, "suffix"))  # the answer went into the saved global index
