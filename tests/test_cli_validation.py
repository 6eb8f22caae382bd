"""The command line's input checks (issue 14): a bad value is one line on stderr and exit status 2, never a
traceback, and nothing is loaded first; ``--help`` shows the real defaults. No model is needed.

Most cases run in-process through ``aspd_local.cli.main.main`` (the code path of the command line, without a
0.5 s interpreter start per case); a sample runs as real subprocesses."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from aspd_local.cli import main as cli_main
from aspd_local.cli import setup as setup_cmd
from aspd_local.cli.checks import one_line
from aspd_local.engine import EngineConfig
from aspd_local.params import GenerationParams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
G = GenerationParams()
E = EngineConfig()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    text = d / "notes.txt"
    text.write_text("not a model\n")
    rows = d / "rows.jsonl"
    rows.write_text('{"prompt": "hi"}\n')
    bad_rows = d / "bad.jsonl"
    bad_rows.write_text("{not json\n")
    return {"TEXT": str(text), "ROWS": str(rows), "BAD_ROWS": str(bad_rows), "DIR": str(d)}


def _fill(args, files):
    return [files.get(a[1:-1], a) if a.startswith("{") and a.endswith("}") else a for a in args]


# (arguments, what the one error line contains)
BAD = [
    # sampling and decoding: run, serve and ui share these
    (["run", "--temperature", "-1"], "--temperature must be >= 0, got -1"),
    (["run", "--temperature", "warm"], "--temperature must be a number, got 'warm'"),
    (["run", "--temperature", "nan"], "--temperature must be >= 0"),
    (["run", "--temperature", "inf"], "--temperature must be >= 0"),
    (["run", "--top-p", "0"], "--top-p must be in (0, 1], got 0"),
    (["run", "--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    (["run", "--top-p", "-0.2"], "--top-p must be in (0, 1]"),
    (["run", "--top-k", "-1"], "--top-k must be >= 0, got -1"),
    (["run", "--top-k", "2.5"], "--top-k must be an integer, got '2.5'"),
    (["run", "--min-p", "1"], "--min-p must be in [0, 1), got 1"),
    (["run", "--min-p", "-0.1"], "--min-p must be in [0, 1)"),
    (["run", "--repeat-penalty", "0"], "--repeat-penalty must be > 0, got 0"),
    (["run", "--max-tokens", "0"], "--max-tokens must be >= 1, got 0"),
    (["run", "--max-tokens", "-5"], "--max-tokens must be >= 1, got -5"),
    (["run", "--max-tokens", "many"], "--max-tokens must be an integer, got 'many'"),
    (["run", "--max-tokens"], "--max-tokens: expected one argument"),
    (["run", "--seed", "x"], "--seed must be an integer, got 'x'"),
    (["run", "--mode", "fast"], "--mode: invalid choice: 'fast'"),
    (["run", "--speculate", "maybe"], "--speculate: invalid choice: 'maybe'"),
    # engine settings
    (["run", "--n-ctx", "0"], "--n-ctx must be >= 1, got 0"),
    (["run", "--n-ctx", "8"], f"too small for {E.n_slots * (E.max_branches + E.max_draft_paths) + E.max_cached} sequence ids"),
    (["run", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["run", "--n-gpu-layers", "-2"], "--n-gpu-layers must be >= -1, got -2"),
    (["run", "--max-branches", "0"], "--max-branches must be >= 1, got 0"),
    (["run", "--parallel", "0"], "--parallel must be >= 1, got 0"),
    (["run", "--parallel", "20"], "sequence ids"),
    (["run", "--max-branches", "100"], "sequence ids"),
    (["run", "--queue", "-1"], "--queue must be >= 0, got -1"),
    (["run", "--aspd-tokens", "a,b"], "--aspd-tokens must be 6 comma-separated tokens"),
    (["run", "--suffix-alpha", "0"], "--suffix-alpha must be > 0, got 0"),
    (["run", "--suffix-min-prob", "2"], "--suffix-min-prob must be in [0, 1], got 2"),
    (["run", "--suffix-depth", "0"], "--suffix-depth must be >= 1, got 0"),
    (["run", "--suffix-budget", "some"], "--suffix-budget: invalid choice: 'some'"),
    (["run", "--suffix-cache-tokens", "-1"], "--suffix-cache-tokens must be >= 0, got -1"),
    # the model file: checked before anything is loaded (same line as the engine's own check)
    (["run", "/nonexistent/model.gguf"], "model file not found: /nonexistent/model.gguf"),
    (["run", "{TEXT}"], "not a GGUF file"),
    (["serve", "/nonexistent/model.gguf", "--port", "0"], "model file not found"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    # serve and ui
    (["serve", "--port", "70000"], "--port must be in [0, 65535], got 70000"),
    (["serve", "--port", "-1"], "--port must be in [0, 65535], got -1"),
    (["serve", "--log-level", "loud"], "--log-level: invalid choice: 'loud'"),
    (["serve", "--temperature", "-0.5"], "--temperature must be >= 0"),
    (["serve", "--mode", "turbo"], "--mode: invalid choice"),
    (["ui", "--port", "0"], "--port must be in [1, 65535], got 0"),
    (["ui", "--top-p", "2"], "--top-p must be in (0, 1]"),
    # bench
    (["bench", "--modes", "ar,fast"], "--modes: unknown mode 'fast'"),
    (["bench", "--modes", "ar,ar"], "--modes: a mode is listed twice"),
    (["bench", "--modes", ","], "--modes must list at least one mode"),
    (["bench", "--judges", "jury"], "--judges must be comma-separated names out of chat, fewshot"),
    (["bench", "--judges", ""], "--judges must be comma-separated names"),
    (["bench", "--lookup-tokens", "0"], "--lookup-tokens must be >= 1, got 0"),
    (["bench", "--limit", "0"], "--limit must be >= 1, got 0"),
    (["bench", "--max-tokens", "0"], "--max-tokens must be >= 1, got 0"),
    (["bench", "--repeat-penalty", "-1"], "--repeat-penalty must be > 0"),
    (["bench", "--prompts", "/nonexistent.jsonl"], "--prompts: no such file: /nonexistent.jsonl"),
    (["bench", "--prompts", "{BAD_ROWS}"], "not JSON"),  # found when read: still one line, before any model
    (["bench", "--quality", "/nonexistent.gguf"], "--quality: model file not found: /nonexistent.gguf"),
    (["bench", "--json", "/nonexistent/dir/out.json"], "--json: no such directory: /nonexistent/dir"),
    (["bench", "--rescore", "/nonexistent.json"], "--rescore: no such file"),
    # bench-load
    (["bench-load", "--url", "http://x", "--concurrency", "0"], "--concurrency must be in [1, 1024], got 0"),
    (["bench-load", "--url", "http://x", "--concurrency", "1,x"], "--concurrency must be an integer, got 'x'"),
    (["bench-load", "--url", "http://x", "--requests", "0"], "--requests must be >= 1, got 0"),
    (["bench-load", "--url", "http://x", "--limit", "-3"], "--limit must be >= 1, got -3"),
    (["bench-load", "--url", "http://x", "--timeout", "0"], "--timeout must be > 0, got 0"),
    (["bench-load", "--server", "aspd", "--startup-timeout", "-1"], "--startup-timeout must be > 0, got -1"),
    (["bench-load", "--server", "aspd", "--port", "65536"], "--port must be in [0, 65535], got 65536"),
    (["bench-load", "--server", "vllm"], "--server must be one of aspd, llama-cpp-python, llama-server"),
    (["bench-load", "--url", "http://x", "--endpoint", "embeddings"], "--endpoint must be chat or completions"),
    (["bench-load", "--url", "ftp://x"], "--url must start with http:// or https://"),
    (["bench-load", "--url", "http://x", "--extra-body", "[1]"], "--extra-body must be a JSON object"),
    (["bench-load", "--url", "http://x", "--append-to", "/nonexistent/dir/r.json"], "--append-to: no such directory"),
    (["bench-load"], "give either --url"),
    # data
    (["data", "prompts", "--n-train", "0"], "--n-train must be >= 1, got 0"),
    (["data", "prompts", "--extra", "-1"], "--extra must be >= 0, got -1"),
    (["data", "prompts", "--seed", "s"], "--seed must be an integer"),
    (["data", "prompts", "--serial-lists", "-1"], "--serial-lists must be >= 0, got -1"),
    (["data", "prompts", "--dir", "{DIR}", "--paired-lists"], "--paired-lists needs"),  # and nothing written
    (["data", "answers", "--max-tokens", "0"], "--max-tokens must be >= 1"),
    (["data", "answers", "--by-parts", "--finish-lists"], "--by-parts and --finish-lists are two separate runs"),
    (["data", "answers", "--threads", "0"], "--threads must be >= 1"),
    (["data", "answers", "--model", "/nonexistent.gguf"], "--model: model file not found"),
    (["data", "answers", "--prompts", "/nonexistent.jsonl"], "--prompts: no such file"),
    (["data", "build", "--threshold", "high"], "--threshold must be a number"),
    (["data", "build", "--answers", "/nonexistent.jsonl"], "--answers: no such file"),
    (["data", "build", "--independent", "/nonexistent.jsonl"], "--independent: no such file"),
    (["data", "shuffle"], "invalid choice: 'shuffle'"),
    # convert
    (["convert", "/nonexistent/hf", "out.gguf"], "hf_dir: no such directory: /nonexistent/hf"),
    (["convert", "{DIR}", "out.gguf", "--outtype", "q9"], "--outtype: invalid choice: 'q9'"),
    (["convert", "{DIR}", "out.gguf", "--position-mode", "flat"], "position mode 'flat' cannot be served"),
    (["convert", "{DIR}", "out.gguf", "--lora", "/nonexistent/lora"], "--lora: no such directory"),
    (["convert", "{DIR}", "out.gguf", "--aspd-tokens", "a,b,c"], "--aspd-tokens must be 6"),
    # train
    (["train", "/nonexistent.jsonl"], "data: no such file: /nonexistent.jsonl"),
    (["train", "{ROWS}", "--epochs", "0"], "--epochs must be > 0, got 0"),
    (["train", "{ROWS}", "--decision-weight", "-1"], "--decision-weight must be > 0, got -1"),
    (["train", "{ROWS}", "--lr", "-1"], "--lr must be > 0"),
    (["train", "{ROWS}", "--rows-lr", "-1"], "--rows-lr must be >= 0"),
    (["train", "{ROWS}", "--warmup", "1"], "--warmup must be in [0, 1), got 1"),
    (["train", "{ROWS}", "--init", "/nonexistent"], "--init: no such directory: /nonexistent"),
    (["train", "{ROWS}", "--grad-accum", "0"], "--grad-accum must be >= 1"),
    (["train", "{ROWS}", "--batch-rows", "0"], "--batch-rows must be >= 1"),
    (["train", "{ROWS}", "--max-len", "0"], "--max-len must be >= 1"),
    (["train", "{ROWS}", "--parallel-repeat", "0"], "--parallel-repeat must be >= 1"),
    (["train", "{ROWS}", "--lora-r", "0"], "--lora-r must be >= 1"),
    (["train", "{ROWS}", "--lora-alpha", "x"], "--lora-alpha must be an integer"),
    (["train", "{ROWS}", "--dtype", "float8"], "--dtype: invalid choice"),
    (["train", "{ROWS}", "--save-every", "0"], "--save-every must be >= 1"),
    (["train", "{ROWS}", "--max-steps", "0"], "--max-steps must be >= 1"),
    (["train", "{ROWS}", "--max-rows", "0"], "--max-rows must be >= 1"),
    (["train", "{ROWS}", "--threads", "-1"], "--threads must be >= 1"),
    (["train", "{ROWS}", "--base", "/nonexistent.gguf"], "--base: model file not found"),
    (["train", "{ROWS}", "--aspd-tokens", "a"], "--aspd-tokens must be 6"),
    # the command itself
    ([], "the following arguments are required: command"),
    (["fly"], "invalid choice: 'fly'"),
]


def _one_error_line(err: str, expected: str) -> None:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], err


@pytest.mark.parametrize("args,expected", BAD, ids=[" ".join(a) or "(none)" for a, _ in BAD])
def test_bad_value_is_one_line(args, expected, files, capsys, monkeypatch):
    # nothing may be loaded for a bad command line: a model load or setup would fail the test here
    monkeypatch.setattr("aspd_local.models.default_model_path", _no_loading)
    monkeypatch.setattr("aspd_local.models.base_model_path", _no_loading)
    assert cli_main.main(_fill(args, files)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    _one_error_line(err, expected)


def _no_loading(*_a, **_k):
    raise AssertionError("a model was about to be set up for a bad command line")


def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "aspd_local", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


SUBPROCESS = [
    (["run", "--temperature", "-1"], "--temperature must be >= 0, got -1"),
    (["run", "--top-p", "1.01"], "--top-p must be in (0, 1], got 1.01"),
    (["run", "--mode", "fast"], "--mode: invalid choice: 'fast'"),
    (["run", "--max-tokens", "0"], "--max-tokens must be >= 1, got 0"),
    (["serve", "--port", "99999"], "--port must be in [0, 65535], got 99999"),
    (["bench", "--modes", "ar,warp"], "--modes: unknown mode 'warp'"),
    (["bench-load", "--url", "http://x", "--concurrency", "1,-2"], "--concurrency must be in [1, 1024], got -2"),
]


def test_bad_values_on_the_real_command_line():
    procs = [(subprocess.Popen([sys.executable, "-m", "aspd_local", *a], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=ROOT), e) for a, e in SUBPROCESS]
    for p, expected in procs:  # started together: the interpreter starts overlap
        out, err = p.communicate(timeout=60)
        assert p.returncode == 2, err
        assert out == ""
        _one_error_line(err, expected)


def test_help_shows_the_real_defaults():
    p = _cli("run", "--help")
    assert p.returncode == 0 and "Traceback" not in p.stderr
    text = " ".join(p.stdout.split())  # undo the line wrapping
    assert "default" in text
    for value in (G.temperature, G.max_tokens, G.top_k, G.top_p, G.min_p, G.mode, E.n_ctx, E.n_slots,
                  E.max_queue, E.speculate, E.suffix_alpha):
        assert f"(default: {value})" in text, value
    assert f"--temperature T 0 = greedy (default: {G.temperature})" in text
    assert f"--max-tokens N most tokens of an answer (default: {G.max_tokens})" in text


def _subparsers(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subparsers(sub, (*prefix, name))


# options whose value is free text (an address, a label, a path that is made, a string passed on), or that
# their command checks first thing, before it loads or writes anything (bench-load --model, --template and
# --llama-server with the other options; convert --position-mode with the converter's own message)
FREE_TEXT = {"--host", "--prompt", "--out", "--delta", "--dir", "--label", "--model-id", "--api-key", "--template",
             "--title-separator", "--llama-server", "--peer-python", "--model", "out", "--position-mode"}


def test_every_option_is_checked_and_shows_its_default():
    parser = cli_main.build_parser()
    subs = list(_subparsers(parser))
    assert {s[0] for s, _ in subs} >= {"run", "ui", "serve", "bench", "bench-load", "setup", "data", "convert",
                                       "train"}
    for path, sub in subs:
        sub.format_help()  # every help text formats (a stray % would raise here)
        formatter = sub._get_formatter()
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction, argparse._StoreTrueAction)):
                continue
            name = action.option_strings[-1] if action.option_strings else action.dest
            where = f"{' '.join(path)} {name}"
            if name not in FREE_TEXT:
                assert action.type is not None or action.choices is not None, f"{where} is not checked"
            if action.default == argparse.SUPPRESS:  # a default that depends on another option: said in words
                assert "(default: " in (action.help or ""), f"{where}: --help hides its default"
            elif action.default is not None and action.option_strings:
                assert "%(default)" in formatter._get_help_string(action), f"{where}: --help hides its default"


def test_defaults_come_from_generation_params_and_engine_config():
    for cmd in ("run", "serve", "ui"):
        a = cli_main.build_parser().parse_args([cmd])
        assert (a.mode, a.max_tokens, a.temperature, a.top_k, a.top_p, a.min_p, a.repeat_penalty, a.seed) == \
               (G.mode, G.max_tokens, G.temperature, G.top_k, G.top_p, G.min_p, G.repeat_penalty, G.seed)
        assert (a.n_ctx, a.threads, a.n_gpu_layers, a.max_branches, a.parallel, a.queue, a.speculate) == \
               (E.n_ctx, E.n_threads, E.n_gpu_layers, E.max_branches, E.n_slots, E.max_queue, E.speculate)
        assert (a.suffix_alpha, a.suffix_min_prob, a.suffix_depth, a.suffix_budget, a.suffix_cache_tokens) == \
               (E.suffix_alpha, E.suffix_min_token_prob, E.suffix_max_depth, E.suffix_budget, E.suffix_cache_tokens)


def test_good_values_parse():
    a = cli_main.build_parser().parse_args(
        ["run", "--temperature", "0.7", "--top-p", "1", "--top-k", "0", "--min-p", "0", "--max-tokens", "1",
         "--seed", "-3", "--mode", "ar", "--n-gpu-layers", "-1", "--queue", "0", "--suffix-min-prob", "1",
         "--aspd-tokens", "<unused0>,<unused1>,<unused2>,<unused3>,<unused4>,<unused5>"])
    assert (a.temperature, a.top_p, a.top_k, a.min_p, a.max_tokens, a.seed, a.mode) == (0.7, 1.0, 0, 0.0, 1, -3, "ar")
    b = cli_main.build_parser().parse_args(["bench", "--modes", "ar,parallel+suffix", "--judges", "chat"])
    assert b.modes == ["ar", "parallel+suffix"] and b.judges == ["chat"]
    assert cli_main.build_parser().parse_args(["bench", "--judges", "none"]).judges == []  # objective checks alone
    c = cli_main.build_parser().parse_args(["bench-load", "--url", "http://x", "--concurrency", "1,4",
                                            "--extra-body", '{"aspd_mode": "ar"}', "--server-args", "-np 4"])
    assert c.concurrency == [1, 4] and c.extra_body == {"aspd_mode": "ar"} and c.server_args == ["-np", "4"]
    assert c.port == 0 and c.max_tokens == 120  # string defaults go through the same checks


def test_user_errors_at_run_time_are_one_line(monkeypatch, capsys):
    from aspd_local.errors import ModelLoadError

    def fails(_args):
        raise ModelLoadError("cannot load model x.gguf: bad tensor")

    monkeypatch.setattr(setup_cmd, "main", fails)
    assert cli_main.main(["setup"]) == 2
    _one_error_line(capsys.readouterr().err, "error: cannot load model x.gguf: bad tensor")


def test_missing_optional_package_is_one_line(monkeypatch, capsys):
    def needs_gradio(_args):
        raise ModuleNotFoundError("No module named 'gradio'", name="gradio")

    monkeypatch.setattr(setup_cmd, "main", needs_gradio)
    assert cli_main.main(["setup"]) == 2
    _one_error_line(capsys.readouterr().err, "needs gradio, which is not installed")

    def bug(_args):
        raise ModuleNotFoundError("No module named 'aspd_local.nothing'", name="aspd_local.nothing")

    monkeypatch.setattr(setup_cmd, "main", bug)
    with pytest.raises(ModuleNotFoundError):  # a missing module of our own is a bug: its traceback stays
        cli_main.main(["setup"])


@pytest.mark.parametrize("message,line", [
    ("argument --top-p: must be in (0, 1], got 2", "--top-p must be in (0, 1], got 2"),
    ("argument --mode: invalid choice: 'x' (choose from 'ar')", "--mode: invalid choice: 'x' (choose from 'ar')"),
    ("argument model: model file not found: /x.gguf", "model file not found: /x.gguf"),
    ("argument -h/--help: ignored explicit argument 'x'", "--help: ignored explicit argument 'x'"),
    ("unrecognized arguments: --x\n--y", "unrecognized arguments: --x --y"),
])
def test_one_line(message, line):
    assert one_line(message) == line
