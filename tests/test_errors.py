"""Bad input gets one clear error and loses nothing."""

import pytest

from aspd_local import AspdFormatError, ContextOverflowError, Engine, ModelLoadError
from conftest import UNUSED, make_engine


def test_missing_file():
    with pytest.raises(ModelLoadError, match="model file not found: /nonexistent/model.gguf"):
        Engine("/nonexistent/model.gguf")


def test_not_a_gguf(tmp_path):
    p = tmp_path / "notes.gguf"
    p.write_text("hello, I am not a model")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        Engine(str(p))


def test_truncated_gguf(tmp_path, q4_path):
    p = tmp_path / "truncated.gguf"
    with open(q4_path, "rb") as fh:
        p.write_bytes(fh.read(2_000_000))
    with pytest.raises(ModelLoadError) as exc:
        Engine(str(p))
    msg = str(exc.value)
    assert msg.startswith(f"cannot load model {p}") and "\n" not in msg


def test_corrupt_header(tmp_path):
    p = tmp_path / "corrupt.gguf"
    p.write_bytes(b"GGUF" + b"\xff" * 4096)
    with pytest.raises(ModelLoadError, match="cannot load model"):
        Engine(str(p))


def test_bad_token_mapping(q4_path):
    with pytest.raises(AspdFormatError, match="not a single vocabulary entry"):
        Engine(q4_path, aspd_tokens="<nope0>,<unused1>,<unused2>,<unused3>,<unused4>,<unused5>")
    with pytest.raises(AspdFormatError, match="outside the vocabulary"):
        Engine(q4_path, aspd_tokens=[1, 2, 3, 4, 5, 10**7])


def test_prompt_longer_than_context(f16_path):
    e = make_engine(f16_path, n_ctx=256)
    try:
        e.generate("Hello.", max_tokens=4)
        before = e.cached_tokens()
        with pytest.raises(ContextOverflowError, match="context holds 256"):
            e.generate("word " * 400)
        assert e.cached_tokens() == before and e.check_cache() == []
        assert e.generate("Hello.", max_tokens=4).finish_reason in ("stop", "length")
    finally:
        e.close()


def test_model_without_aspd_tokens_is_served_serially(q4_path):
    e = Engine(q4_path, speculate="none", suffix_cache=False)
    try:
        assert not e.has_aspd and "served serially" in e.notice
        par = e.generate("List three colours.", mode="parallel", max_tokens=12, keep=False)
        ar = e.generate("List three colours.", mode="ar", max_tokens=12, keep=False)
        assert par.stats.blocks == 0 and par.tokens == ar.tokens
    finally:
        e.close()


def test_ar_mode_masks_control_tokens(f16_engine):
    """In ar mode the model cannot open a block even when it wants to."""
    from aspd_local.bench.script import Script
    a = f16_engine.aspd
    r = f16_engine.generate("Hi", mode="ar", max_tokens=6, keep=False,
                            processors=[Script([a.title_open] * 6, {})])
    assert not set(r.tokens) & set(a.ids) and r.stats.blocks == 0


def test_mapping_is_accepted_as_mapping(q4_path):
    roles = ("title_open", "title_close", "para_open", "para_close", "branch_open", "branch_close")
    e = Engine(q4_path, aspd_tokens=dict(zip(roles, UNUSED.split(","))))
    try:
        assert e.has_aspd and e.notice is None
        assert e.aspd.ids == tuple(e.model.find_token(f"<unused{i}>") for i in range(6))
    finally:
        e.close()


def test_context_smaller_than_the_sequence_ids_is_refused_before_loading(q4_path):
    # llama.cpp aborts the whole process on a context with fewer cells than sequence ids: the engine refuses first
    with pytest.raises(ValueError, match="too small for .* sequence ids"):
        Engine(q4_path, n_ctx=8)
    with pytest.raises(ValueError, match="llama.cpp has 256"):
        Engine(q4_path, n_slots=64, max_branches=16)
