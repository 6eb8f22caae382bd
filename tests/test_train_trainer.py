"""The training model, loop, checkpoints and delta on a tiny random Gemma 3 built here (float32)."""

import copy
import json

import pytest
import torch

from aspd_local.aspd.encode import EncodedRow, encode_answer
from aspd_local.aspd.layout import layout_of
from aspd_local.aspd.tokens import AspdTokens
from aspd_local.train.data import TrainSet
from aspd_local.build import load_manifest
from aspd_local.train.delta import apply_delta, save_delta
from aspd_local.train.lm import AspdLM
from aspd_local.train.mask import collate
from aspd_local.train.recipe import Recipe, compute_dtype
from aspd_local.train.trainer import Trainer, lr_factor, plan_steps, widest_block

A = AspdTokens(1, 2, 3, 4, 5, 6)
EOT = 9
V = 200


def tok(text):
    return [20 + ord(c) % 150 for c in text]


def tiny_gemma(seed=0):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    cfg = Gemma3TextConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=6,
                           layer_types=["sliding_attention", "full_attention"], max_position_embeddings=256,
                           tie_word_embeddings=True, pad_token_id=0)
    m = Gemma3ForCausalLM(cfg).eval()
    with torch.no_grad():  # random, but not so small that every logit is the same
        for p in m.parameters():
            p.normal_(0, 0.3)
    m.tie_weights()
    return m


def row(i=0):
    segs = [{"type": "serial", "text": f"intro {i}: "},
            {"type": "block", "branches": [{"title": "Aa", "content": "first part here"},
                                           {"title": "Bb", "content": "two"},
                                           {"title": "Cc", "content": "the third one, longer still"}]},
            {"type": "serial", "text": " end."}]
    ans, gen = encode_answer(segs, A, tok, EOT)
    prompt = tok(f"question {i}?")
    return EncodedRow(prompt + ans, len(prompt), [False] * len(prompt) + gen)


def test_widest_block_counts_branches_of_the_encoded_row():
    r = row()
    assert widest_block(r.tokens[r.n_prompt:], A) == 3
    two = [{"type": "block", "branches": [{"title": "Aa", "content": "one"}, {"title": "Bb", "content": "two"}]},
           {"type": "serial", "text": " then "},
           {"type": "block", "branches": [{"title": t, "content": t.lower()} for t in ("Xx", "Yy", "Zz", "Ww")]}]
    assert widest_block(encode_answer(two, A, tok, EOT)[0], A) == 4
    assert widest_block(encode_answer([{"type": "serial", "text": "plain"}], A, tok, EOT)[0], A) == 0


def batch_of(rows, lm):
    return collate(rows, A, pad_id=0, dtype=torch.float32, sliding_window=lm.sliding_window)


def test_serial_text_matches_the_plain_model():
    """Without blocks, the training path (embedding with rows, 4-D masks, sliding window by position) is
    the model's own forward pass."""
    m = tiny_gemma()
    lm = AspdLM(m, A.ids)
    ids = tok("a serial text long enough to pass the window") + [A.title_open] + tok("x")
    r = EncodedRow(ids, 0, [True] * len(ids))
    with torch.no_grad():
        got = lm.logits(batch_of([r], lm))[0]
        want = m(torch.tensor([ids])).logits[0].float()
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_each_branch_sees_only_its_prefix():
    """A branch's logits equal those of the same branch decoded alone after the prefix (positions P + 1 + j)."""
    m = tiny_gemma()
    lm = AspdLM(m, A.ids)
    r = row()
    lay = layout_of(r.tokens, A)
    para, spans = lay.blocks[0]
    with torch.no_grad():
        full = lm.logits(batch_of([r], lm))[0]
        for s, e in spans:
            alone = r.tokens[:para + 1] + r.tokens[s:e]
            pos = list(range(para + 1)) + [para + 1 + j for j in range(e - s)]
            out = m(torch.tensor([alone]), position_ids=torch.tensor([pos])).logits[0]
            assert torch.allclose(full[s:e], out[para + 1:], atol=1e-4)


def test_plan_and_schedule():
    rec = Recipe(epochs=2.5, grad_accum=3, batch_rows=1, warmup=0.3, seed=1)
    plan = plan_steps([10] * 8, rec)
    flat = [i for step in plan for mb in step for i in mb]
    assert len(flat) == 20 and sorted(flat[:8]) == list(range(8)) and sorted(flat[8:16]) == list(range(8))
    assert plan == plan_steps([10] * 8, rec)  # seeded
    rep = Recipe(epochs=1, grad_accum=1, parallel_repeat=3, seed=1)
    flat = [mb[0] for step in plan_steps([10] * 4, rep, [3, 0, 0, 2]) for mb in step]
    assert sorted(flat) == [0, 0, 0, 1, 2, 3, 3, 3]
    wide = Recipe(epochs=1, grad_accum=1, parallel_repeat=2, wide_repeat=3, wide_branches=5, seed=1)
    flat = [mb[0] for step in plan_steps([10] * 4, wide, [5, 0, 4, 7]) for mb in step]
    assert sorted(flat) == [0] * 6 + [1] + [2] * 2 + [3] * 6
    total = len(plan)
    f = [lr_factor(s, total, rec) for s in range(total)]
    assert f[0] < f[1] <= 1.0 and abs(max(f) - 1.0) < 1e-9 and f[-1] < f[2]


def _trainer(tmp_path, model, steps_recipe=None, **kw):
    rec = steps_recipe or Recipe(epochs=2, grad_accum=2, lr=5e-3, rows_lr=5e-2, dtype="float32", lora_r=4,
                                 lora_alpha=8, warmup=0.1, seed=3)
    data = TrainSet([row(i) for i in range(4)], {"rows": 4})
    return Trainer(data, None, A, rec, tmp_path, progress=False, model=model, **kw)


def test_training_lowers_loss_and_trains_only_lora_and_rows(tmp_path):
    base = tiny_gemma()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tr = _trainer(tmp_path, base)
    losses = [tr.train_step()["loss"] for _ in range(tr.total_steps)]
    assert tr.total_steps == 4
    assert losses[-1] < losses[0]
    trainable = {n for n, p in tr.lm.named_parameters() if p.requires_grad}
    assert "rows" in trainable and all("lora_" in n for n in trainable - {"rows"})
    # the frozen base is untouched, the embedding included (the rows live apart from it)
    for k, v in tr.peft_model.base_model.model.state_dict().items():
        if "lora_" not in k:
            name = k.replace(".base_layer", "")
            assert torch.equal(v, before[name]), k
    assert not torch.equal(tr.lm.rows.detach(), before["model.embed_tokens.weight"][list(A.ids)])


def test_resume_continues_exactly(tmp_path):
    straight = _trainer(tmp_path / "a", tiny_gemma())
    straight.run()
    first = _trainer(tmp_path / "b", tiny_gemma(), save_every=2)
    first.run(max_steps=2)
    second = _trainer(tmp_path / "b", tiny_gemma())
    assert second.resume() and second.step == 2
    second.run()
    for n, p in straight.params.items():
        assert torch.allclose(p, second.params[n], atol=1e-6), n
    # a different recipe refuses to resume the run
    other = _trainer(tmp_path / "b", tiny_gemma(), steps_recipe=Recipe(epochs=3, dtype="float32", lora_r=4))
    with pytest.raises(Exception, match="another recipe"):
        other.resume()


def test_a_checkpoint_from_before_a_recipe_field_resumes_with_its_default(tmp_path):
    """A run saved before ``wide_repeat``/``wide_branches`` existed resumes (the fields read as their
    defaults); a checkpoint whose value differs from the run's refuses."""
    from aspd_local.train.checkpoint import STATE, latest_checkpoint

    first = _trainer(tmp_path, tiny_gemma(), save_every=1)
    first.run(max_steps=1)
    state = latest_checkpoint(tmp_path) / STATE
    meta = json.loads(state.read_text())
    for k in ("wide_repeat", "wide_branches"):
        del meta["recipe"][k]
    state.write_text(json.dumps(meta))
    again = _trainer(tmp_path, tiny_gemma())
    assert again.resume() and again.step == 1
    meta["recipe"]["wide_repeat"] = 3
    state.write_text(json.dumps(meta))
    with pytest.raises(Exception, match="changed: wide_repeat"):
        _trainer(tmp_path, tiny_gemma()).resume()


def test_auto_dtype_is_recorded_as_what_it_resolved_to(tmp_path):
    """"auto" never reaches a checkpoint: the run records the dtype it computed in, and resumes under
    "auto" or under that name alike; another dtype refuses."""
    kw = dict(epochs=2, grad_accum=2, lora_r=4, lora_alpha=8, seed=3)
    concrete = compute_dtype("auto")
    assert concrete in ("bfloat16", "float32") and compute_dtype("float32") == "float32"
    first = _trainer(tmp_path, tiny_gemma(), steps_recipe=Recipe(dtype="auto", **kw), save_every=1)
    assert first.recipe.dtype == concrete and first.dtype == getattr(torch, concrete)
    first.run(max_steps=1)
    for name in ("auto", concrete):
        again = _trainer(tmp_path, tiny_gemma(), steps_recipe=Recipe(dtype=name, **kw))
        assert again.resume() and again.step == 1
    other = "float32" if concrete == "bfloat16" else "bfloat16"
    with pytest.raises(Exception, match="another recipe"):
        _trainer(tmp_path, tiny_gemma(), steps_recipe=Recipe(dtype=other, **kw)).resume()


def test_delta_round_trip(tmp_path):
    base = tiny_gemma()
    pristine = copy.deepcopy(base)
    tr = _trainer(tmp_path / "run", base)
    tr.run()
    out = save_delta(tr.peft_model, tr.lm, A, tmp_path / "delta", base={"file": "tiny.gguf", "sha256": "0" * 64},
                     recipe=tr.recipe, data_stats={"rows": 4}, log=[{"step": 1, "loss": 2.0}], timings={})
    man = load_manifest(out)
    assert man["aspd"]["tokens"]["title_open"]["text"] == "<unused0>" and man["adapter"]["parameters"] > 0
    size = sum(p.stat().st_size for p in out.iterdir())
    assert size < 200_000
    merged = apply_delta(pristine, out)
    r = row(7)
    with torch.no_grad():
        want = tr.lm.logits(batch_of([r], tr.lm))[0]
        plain = AspdLM(merged, A.ids)  # rows now read from the merged embedding
        got = plain.logits(batch_of([r], plain))[0]
    # the adapter is stored in float16
    assert torch.allclose(got, want, atol=2e-2), (got - want).abs().max()
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_serial_copy_is_the_rendered_answer_as_plain_text():
    from aspd_local.train.data import serial_copy

    segs = [{"type": "serial", "text": "Lead:\n"},
            {"type": "block", "branches": [{"title": "1. A", "content": "1. a\n"}, {"title": "2. B", "content": "2. b\n"}]},
            {"type": "serial", "text": "End."}]
    r = {"id": "x", "messages": [{"role": "user", "content": "q"}], "answer": "Lead:\n1. a\n2. b\nEnd.", "segments": segs}
    c = serial_copy(r)
    assert c["segments"] == [{"type": "serial", "text": r["answer"]}] and c["id"] == "x/serial"
    assert c["messages"] == r["messages"] and r["segments"] is segs  # the original row is untouched
    ans, gen = encode_answer(c["segments"], A, tok, EOT)
    assert not set(A.ids) & set(ans) and all(gen)  # no control token, every answer token trained
    assert serial_copy({**r, "segments": [{"type": "serial", "text": r["answer"]}]}) is None
