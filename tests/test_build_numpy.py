"""The default model without torch (issue 14): ``aspd_local.build`` makes the servable GGUF from the base
GGUF and the delta with numpy and gguf-py alone (dequantize, merge the LoRA, replace the control rows,
write the ASPD metadata, requantize).

- The shipped delta, built in a process where torch, transformers, safetensors and peft cannot be
  imported, answers as today's build (the transformers path) does: the same tokens and the same top-1
  at every position of eight texts, max abs logit difference <= TOL (measured: 0, the tensors are byte
  for byte the same; q8_0 itself moves these logits by up to 3.6 from the f16 build's).
- The merge is right per architecture: on tiny random llama (q/k rows permuted in GGUF) and gemma3
  models, the build's llama.cpp logits equal transformers' on the peft-merged model with the same rows.
- A delta that does not fit (another base, a missing or truncated file, shapes or names the base does
  not have, an unsupported architecture) gives one clear error, and no file is left behind, also when
  the build fails half-way.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter, TokenType
from gguf.quants import dequantize, quantize

from aspd_local.build import BuildError, build_gguf, read_safetensors
from aspd_local.models import DEFAULT_DELTA_DIR, base_model_path, cache_dir

ROOT = Path(__file__).resolve().parents[1]
DELTA = DEFAULT_DELTA_DIR
ROLES = ("title_open", "title_close", "para_open", "para_close", "branch_open", "branch_close")
ASPD_NAMES = ["<|title|>", "<|/title|>", "<|para|>", "<|/para|>", "<|branch|>", "<|/branch|>"]
BLOCKED = ("torch", "transformers", "safetensors", "peft", "accelerate", "tqdm")

# Both builds are q8_0 of the same float weights; the measured difference is 0 (identical tensors). The
# bound leaves room for a BLAS that sums the rank-16 LoRA product in another order (a q8_0 step in a few
# blocks) and is ~1/70 of what q8_0 rounding itself does to these logits (f16 vs q8_0 build: up to 3.6).
TOL = 0.05

TEXTS = [
    "The capital of France is",
    "<start_of_turn>user\nGive three tips for staying healthy.<end_of_turn>\n<start_of_turn>model\n",
    "<start_of_turn>user\nList the pros and cons of remote work.<end_of_turn>\n<start_of_turn>model\n"
    "<|title|>Pros<|/title|><|para|><|branch|>Flexible hours: ",
    "def add(a, b):\n    return a + b\n\n\nprint(add(2,  3))",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Q: What is 17 times 3?\nA:",
    "   leading spaces,\ttabs\t\tand  double  spaces   everywhere.",
    "Émile a mangé 3 crêpes à Zürich — naïve café ☕ 日本語のテキスト。",
]


# -- helpers ---------------------------------------------------------------------------------------

_ST = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i8"): "I64"}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """A safetensors file from numpy arrays (no safetensors package)."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        raw = arr.tobytes()
        header[name] = {"dtype": _ST[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    Path(path).write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def llama_logits(path, texts, n_threads: int = 1) -> list[tuple[list[int], np.ndarray]]:
    """(tokens, logits at every position) of each text, decoded alone from position 0 by llama.cpp."""
    from aspd_local.llama import Context, ContextParams, Model, ModelParams

    model = Model(str(path), ModelParams(n_gpu_layers=0))
    ctx = Context(model, ContextParams(n_ctx=512, n_batch=512, n_seq_max=1, n_threads=n_threads))
    out = []
    try:
        for text in texts:
            ids = model.tokenize(text, add_special=True, parse_special=True) if isinstance(text, str) else list(text)
            ctx.clear()
            ctx.batch.clear()
            for pos, t in enumerate(ids):
                ctx.batch.add(t, pos, 0, True)
            ctx.decode()
            out.append((ids, np.stack([np.array(ctx.logits(i)) for i in range(len(ids))])))
    finally:
        ctx.close()
        model.close()
    return out


def tensors_of(path) -> dict[str, tuple[str, np.ndarray]]:
    r = GGUFReader(str(path))
    return {t.name: (t.tensor_type.name, np.array(t.data)) for t in r.tensors}


# -- the shipped delta on the real base ------------------------------------------------------------

needs_delta = pytest.mark.skipif(not (DELTA / "manifest.json").exists(),
                                 reason="no trained delta in models/aspd-gemma3-270m/delta")


@pytest.fixture(scope="module")
def numpy_build(tmp_path_factory):
    """The default model built torch-free, in a process where torch & co. cannot be imported."""
    base = base_model_path()
    out = tmp_path_factory.mktemp("numpy-build") / "aspd-gemma3-270m-q8_0.gguf"
    code = textwrap.dedent(f"""
        import sys, time
        for m in {BLOCKED!r}:
            sys.modules[m] = None  # "import torch" now raises ImportError
        from aspd_local.build import build_gguf
        t = time.perf_counter()
        build_gguf({str(DELTA)!r}, {str(out)!r}, base_gguf={str(base)!r}, outtype="q8_0", progress=False)
        print(f"{{time.perf_counter() - t:.1f}}")
        loaded = sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in {BLOCKED!r})
        assert not loaded, loaded
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"\n[build] torch-free build of the default model: {r.stdout.strip()} s")
    return out


def transformers_gguf(delta: Path, name: str, base_gguf=None) -> Path:
    """Today's build of ``delta`` (base read back by transformers, delta applied by peft, converted to
    q8_0), cached per manifest as ``name-<key>-transformers-q8_0.gguf``; skips where a package is missing."""
    for pkg in ("torch", "transformers", "peft"):
        pytest.importorskip(pkg, reason=f"the reference build (today's path) needs {pkg}")
    from aspd_local.train.export import build_gguf as export_build

    key = sha256(delta / "manifest.json")[:12]
    path = cache_dir() / "test" / f"{name}-{key}-transformers-q8_0.gguf"
    if not path.exists():
        export_build(delta, path, base_gguf=base_gguf, outtype="q8_0", progress=False, via="transformers")
    return path


@pytest.fixture(scope="module")
def transformers_build():
    return transformers_gguf(DELTA, "aspd-gemma3-270m", base_gguf=base_model_path())


@pytest.fixture(scope="module")
def readers(numpy_build, transformers_build):
    return {k: GGUFReader(str(p)) for k, p in (("new", numpy_build), ("ref", transformers_build),
                                                ("base", base_model_path()))}


@needs_delta
def test_default_model_matches_the_transformers_build(numpy_build, transformers_build, readers):
    got = llama_logits(numpy_build, TEXTS)
    want = llama_logits(transformers_build, TEXTS)
    worst, positions = 0.0, 0
    for text, (tg, lg), (tw, lw) in zip(TEXTS, got, want):
        assert tg == tw, f"tokenized differently: {text!r}"
        assert (lg.argmax(-1) == lw.argmax(-1)).all(), f"top-1 differs on {text!r}"
        worst = max(worst, float(np.abs(lg - lw).max()))
        positions += len(tg)
    a, b = ({t.name: (t.tensor_type.name, t.data) for t in readers[k].tensors} for k in ("new", "ref"))
    same = sum(np.array_equal(a[n][1], b[n][1]) for n in a)
    print(f"\n[build] {len(TEXTS)} texts, {positions} positions: same top-1 everywhere, max abs logit difference "
          f"{worst:.3g} (bound {TOL}); {same}/{len(a)} tensors byte-identical")
    assert worst <= TOL
    # the same tensors in the same types (q8_0 matrices, f32 vectors)
    assert set(a) == set(b)
    assert {n: t for n, (t, _) in a.items()} == {n: t for n, (t, _) in b.items()}


@needs_delta
def test_default_model_metadata(readers):
    new, ref, base = readers["new"], readers["ref"], readers["base"]
    aspd = {k: f.contents() for k, f in ref.fields.items() if k.startswith("aspd.")}
    assert len(aspd) == 9 and aspd == {k: f.contents() for k, f in new.fields.items() if k.startswith("aspd.")}
    assert new.fields["general.file_type"].contents() == ref.fields["general.file_type"].contents() == 7  # q8_0
    # everything else as the base has it: tokenizer (scores, whitespace tokens) and hyper-parameters included
    for key, f in base.fields.items():
        if key.startswith("GGUF.") or key in ("general.file_type", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
            continue
        assert new.fields[key].contents() == f.contents(), key
    tokens = new.fields["tokenizer.ggml.tokens"].contents()
    types = new.fields["tokenizer.ggml.token_type"].contents()
    base_tokens = base.fields["tokenizer.ggml.tokens"].contents()
    base_types = base.fields["tokenizer.ggml.token_type"].contents()
    ids = [aspd[f"aspd.token.{r}"] for r in ROLES]
    assert [tokens[i] for i in ids] == ASPD_NAMES == [ref.fields["tokenizer.ggml.tokens"].contents(i) for i in ids]
    assert all(types[i] == TokenType.CONTROL for i in ids)
    assert [t for i, t in enumerate(tokens) if i not in ids] == [t for i, t in enumerate(base_tokens) if i not in ids]
    assert [t for i, t in enumerate(types) if i not in ids] == [t for i, t in enumerate(base_types) if i not in ids]


# -- the merge per architecture, on tiny handmade GGUFs (no torch) ---------------------------------

H, V, N_HEAD, N_HEAD_KV, FF = 32, 24, 4, 2, 64
HEAD_DIM = H // N_HEAD
UNUSED = [f"<unused{i}>" for i in range(6)]


def make_base(path: Path, arch: str = "llama") -> dict[str, np.ndarray]:
    """A one-layer GGUF of ``arch`` (only the tensors the build touches; llama.cpp could not run it):
    q8_0 matrices and f32 norms. Returns the float tensors as stored."""
    rng = np.random.default_rng(0)
    w = GGUFWriter(str(path), arch)
    w.add_name("tiny")
    w.add_block_count(1)
    w.add_embedding_length(H)
    w.add_feed_forward_length(FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_context_length(128)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_tokenizer_model("llama")
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + UNUSED + [f"t{i}" for i in range(V - 10)]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * 4 + [-1000.0] * 6 + [-float(i) for i in range(V - 10)])
    w.add_token_types([int(TokenType.CONTROL)] * 10 + [int(TokenType.NORMAL)] * (V - 10))
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_file_type(7)
    shapes = {"token_embd.weight": (V, H), "blk.0.attn_q.weight": (N_HEAD * HEAD_DIM, H),
              "blk.0.attn_k.weight": (N_HEAD_KV * HEAD_DIM, H), "blk.0.attn_v.weight": (N_HEAD_KV * HEAD_DIM, H),
              "blk.0.ffn_down.weight": (H, FF), "blk.0.attn_norm.weight": (H,), "output_norm.weight": (H,)}
    stored = {}
    for name, shape in shapes.items():
        data = rng.normal(size=shape).astype(np.float32)
        if len(shape) == 1:
            w.add_tensor(name, data)
            stored[name] = data
        else:
            q = quantize(data, GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_dtype=GGMLQuantizationType.Q8_0)
            stored[name] = dequantize(q, GGMLQuantizationType.Q8_0).reshape(shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return stored


def make_delta(d: Path, base_gguf: Path, *, r: int = 2, alpha: int = 4, mapping=None,
               modules=("self_attn.q_proj", "self_attn.k_proj", "mlp.down_proj")) -> dict:
    """A delta directory for the tiny base: LoRA (float16) on ``modules`` of layer 0, six control rows."""
    rng = np.random.default_rng(1)
    d.mkdir(parents=True, exist_ok=True)
    out_dim = {"self_attn.q_proj": N_HEAD * HEAD_DIM, "self_attn.k_proj": N_HEAD_KV * HEAD_DIM, "mlp.down_proj": H}
    in_dim = {"self_attn.q_proj": H, "self_attn.k_proj": H, "mlp.down_proj": FF}
    weights = {}
    for m in modules:
        key = f"base_model.model.model.layers.0.{m}"
        weights[f"{key}.lora_A.weight"] = rng.normal(size=(r, in_dim[m])).astype(np.float16)
        weights[f"{key}.lora_B.weight"] = rng.normal(size=(out_dim[m], r)).astype(np.float16)
    write_safetensors(d / "adapter_model.safetensors", weights)
    (d / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": r, "lora_alpha": alpha,
                                                       "target_modules": [m.split(".")[-1] for m in modules]}))
    ids = np.arange(4, 10, dtype=np.int64)
    rows = rng.normal(size=(6, H)).astype(np.float32)
    write_safetensors(d / "control_rows.safetensors", {"ids": ids, "rows": rows})
    mapping = mapping or {role: {"id": 4 + i, "text": UNUSED[i]} for i, role in enumerate(ROLES)}
    (d / "manifest.json").write_text(json.dumps({
        "format": "aspd-local delta 1", "base": {"file": base_gguf.name, "sha256": sha256(base_gguf)},
        "aspd": {"tokens": mapping, "title_separator": ": ", "position_mode": "max_para"}}))
    return {"weights": weights, "ids": ids, "rows": rows, "scale": alpha / r}


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_merge_in_the_gguf_layout(tmp_path, arch):
    from convert.arch.llama import permute_rows  # the converter's HF -> llama.cpp layout

    base = tmp_path / "base.gguf"
    stored = make_base(base, arch)
    delta = make_delta(tmp_path / "delta", base)
    out = build_gguf(tmp_path / "delta", tmp_path / "out" / "m.gguf", base_gguf=base, outtype="f32", progress=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.gguf"]
    r = GGUFReader(str(out))
    got = {t.name: np.array(t.data).reshape(tuple(reversed(t.shape.tolist()))) for t in r.tensors}
    assert {t.name: t.tensor_type.name for t in r.tensors} == {n: "F32" for n in stored}
    w = delta["weights"]
    for name, module, heads in (("attn_q", "self_attn.q_proj", N_HEAD), ("attn_k", "self_attn.k_proj", N_HEAD_KV),
                                ("ffn_down", "mlp.down_proj", None)):
        key = f"base_model.model.model.layers.0.{module}"
        d = w[f"{key}.lora_B.weight"].astype(np.float32) @ w[f"{key}.lora_A.weight"].astype(np.float32)
        if arch == "llama" and heads:
            d = permute_rows(d, heads)  # llama.cpp stores llama's q/k rows interleaved per head
        np.testing.assert_allclose(got[f"blk.0.{name}.weight"], stored[f"blk.0.{name}.weight"] + delta["scale"] * d,
                                   rtol=0, atol=1e-5)
    emb = stored["token_embd.weight"].copy()
    emb[delta["ids"]] = delta["rows"]
    np.testing.assert_array_equal(got["token_embd.weight"], emb)
    for name in ("blk.0.attn_v.weight", "blk.0.attn_norm.weight", "output_norm.weight"):
        np.testing.assert_array_equal(got[name], stored[name])
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    assert tokens[4:10] == ASPD_NAMES and types[4:10] == [int(TokenType.CONTROL)] * 6
    assert r.fields["aspd.version"].contents() == 1
    assert [r.fields[f"aspd.token.{role}"].contents() for role in ROLES] == list(range(4, 10))
    assert r.fields["general.name"].contents() == "tiny"
    assert r.fields[f"{arch}.attention.head_count_kv"].contents() == N_HEAD_KV


def test_safetensors_reader(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    write_safetensors(tmp_path / "x.safetensors", {"a": a, "h": a.astype(np.float16), "i": np.arange(3, dtype=np.int64)})
    got = read_safetensors(tmp_path / "x.safetensors")
    np.testing.assert_array_equal(got["a"], a)
    np.testing.assert_array_equal(got["h"], a.astype(np.float16))
    np.testing.assert_array_equal(got["i"], [0, 1, 2])
    # bf16: the upper half of a float32
    bf = (a.view(np.uint32) >> 16).astype(np.uint16)
    head = json.dumps({"b": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}}).encode()
    (tmp_path / "b.safetensors").write_bytes(len(head).to_bytes(8, "little") + head + bf.tobytes())
    np.testing.assert_array_equal(read_safetensors(tmp_path / "b.safetensors")["b"],
                                  (bf.astype(np.uint32) << 16).view(np.float32))
    if _importable("safetensors"):  # the package agrees (it has no numpy bf16)
        from safetensors.numpy import load_file

        theirs, ours = load_file(str(tmp_path / "x.safetensors")), read_safetensors(tmp_path / "x.safetensors")
        assert set(theirs) == set(ours) and all(np.array_equal(theirs[k], ours[k]) for k in ours)
        theirs = load_file(str(DELTA / "control_rows.safetensors")) if (DELTA / "control_rows.safetensors").exists() else {}
        ours = read_safetensors(DELTA / "control_rows.safetensors") if theirs else {}
        assert all(np.array_equal(theirs[k], ours[k]) and theirs[k].dtype == ours[k].dtype for k in theirs)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# -- errors: one clear message, no file left behind ------------------------------------------------

def _break(case: str, d: Path, base: Path) -> None:
    if case == "another base":
        man = json.loads((d / "manifest.json").read_text())
        man["base"]["sha256"] = "0" * 64
        (d / "manifest.json").write_text(json.dumps(man))
    elif case == "no manifest":
        (d / "manifest.json").unlink()
    elif case == "no adapter":
        (d / "adapter_model.safetensors").unlink()
    elif case == "no control rows":
        (d / "control_rows.safetensors").unlink()
    elif case == "truncated adapter":
        raw = (d / "adapter_model.safetensors").read_bytes()
        (d / "adapter_model.safetensors").write_bytes(raw[: len(raw) - 100])
    elif case == "adapter of another shape":
        w = read_safetensors(d / "adapter_model.safetensors")
        key = "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight"
        w[key] = np.zeros((2, FF // 2), np.float16)
        write_safetensors(d / "adapter_model.safetensors", w)
    elif case == "adapter of an unknown module":
        w = read_safetensors(d / "adapter_model.safetensors")
        w = {k.replace("mlp.down_proj", "mlp.sideways_proj"): v for k, v in w.items()}
        write_safetensors(d / "adapter_model.safetensors", w)
    elif case == "layer the base lacks":
        w = read_safetensors(d / "adapter_model.safetensors")
        w = {k.replace("layers.0.", "layers.7."): v for k, v in w.items()}
        write_safetensors(d / "adapter_model.safetensors", w)
    elif case == "rows of another width":
        write_safetensors(d / "control_rows.safetensors", {"ids": np.arange(4, 10, dtype=np.int64),
                                                          "rows": np.zeros((6, H // 2), np.float32)})
    elif case == "token the base lacks":
        man = json.loads((d / "manifest.json").read_text())
        man["aspd"]["tokens"]["branch_close"] = {"id": 11, "text": "<unused9>"}
        (d / "manifest.json").write_text(json.dumps(man))
    elif case == "DoRA":
        cfg = json.loads((d / "adapter_config.json").read_text())
        cfg["use_dora"] = True
        (d / "adapter_config.json").write_text(json.dumps(cfg))
    else:
        raise ValueError(case)


ERRORS = {
    "another base": r"base\.gguf is not the base of the delta in .* \(sha256 [0-9a-f]{12}\.\.\. , expected 000000000000",
    "no manifest": r"no delta at .* \(missing manifest\.json\)",
    "no adapter": r"incomplete delta in .*: adapter_model\.safetensors is missing",
    "no control rows": r"incomplete delta in .*: control_rows\.safetensors is missing",
    "truncated adapter": r"adapter_model\.safetensors: tensor .* does not fit its byte range \(truncated file\?\)",
    "adapter of another shape": r"does not match the base model: blk\.0\.ffn_down\.weight \(model\.layers\.0\.mlp\.down_proj\) "
                                r"is \(32, 64\) in base\.gguf, the adapter was trained on \(32, 32\)",
    "adapter of an unknown module": r"adapts model\.layers\.0\.mlp\.sideways_proj, which has no place in a llama\.cpp llama model",
    "layer the base lacks": r"does not match the base model: base\.gguf has no blk\.7\.attn_q\.weight",
    "rows of another width": r"control rows are \(6, 16\) for 6 ids, the model's embedding is \(24, 32\): not the same base",
    "token the base lacks": r"maps branch_close to token 11 '<unused9>', which the vocabulary of base\.gguf does not have",
    "DoRA": r"DoRA adapters are not supported",
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_a_delta_that_does_not_fit_is_refused(tmp_path, case):
    base = tmp_path / "base.gguf"
    make_base(base)
    make_delta(tmp_path / "delta", base)
    _break(case, tmp_path / "delta", base)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BuildError, match=ERRORS[case]):
        build_gguf(tmp_path / "delta", out / "m.gguf", base_gguf=base, progress=False)
    assert list(out.iterdir()) == []


def test_unsupported_architecture(tmp_path):
    base = tmp_path / "base.gguf"
    make_base(base, "phi2")
    make_delta(tmp_path / "delta", base)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BuildError, match=r"architecture 'phi2' is not supported by the torch-free build "
                                         r"\(supported: llama, gemma, gemma2, gemma3, qwen2, qwen3\)"):
        build_gguf(tmp_path / "delta", out / "m.gguf", base_gguf=base, progress=False)
    assert list(out.iterdir()) == []


@needs_delta
def test_shipped_delta_on_another_base(tmp_path):
    base = tmp_path / "other.gguf"
    make_base(base, "gemma3")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BuildError, match=r"other\.gguf is not the base of the delta in .*aspd-gemma3-270m"):
        build_gguf(DELTA, out / "m.gguf", base_gguf=base, progress=False)
    assert list(out.iterdir()) == []


def test_failure_half_way_leaves_no_file(tmp_path, monkeypatch):
    import gguf.quants

    base = tmp_path / "base.gguf"
    make_base(base)
    make_delta(tmp_path / "delta", base)
    out = tmp_path / "out"
    out.mkdir()
    calls = {"n": 0}
    real = gguf.quants.dequantize

    def failing(data, qtype):
        calls["n"] += 1
        if calls["n"] == 4:
            raise MemoryError("simulated failure while writing tensors")
        return real(data, qtype)

    monkeypatch.setattr(gguf.quants, "dequantize", failing)
    with pytest.raises(MemoryError):
        build_gguf(tmp_path / "delta", out / "m.gguf", base_gguf=base, progress=False)
    assert calls["n"] == 4
    assert list(out.iterdir()) == []
    # an existing model is not touched by a failed rebuild
    (out / "m.gguf").write_bytes(b"previous")
    calls["n"] = 0
    with pytest.raises(MemoryError):
        build_gguf(tmp_path / "delta", out / "m.gguf", base_gguf=base, progress=False)
    assert [p.name for p in out.iterdir()] == ["m.gguf"] and (out / "m.gguf").read_bytes() == b"previous"


# -- tiny real models: the build's llama.cpp logits equal transformers' on the peft-merged model --------

@pytest.mark.parametrize("arch,kind", [("llama", "llama-spm"), ("gemma3", "gemma-spm")])
def test_tiny_model_matches_peft_merge(tmp_path, arch, kind):
    torch = pytest.importorskip("torch", reason="the reference (peft merge) needs torch")
    pytest.importorskip("transformers", reason="the reference needs transformers")
    peft = pytest.importorskip("peft", reason="the reference needs peft")
    from test_convert_fixtures import ASPD_NAMES as NAMES, UNUSED as UNUSED_TOKENS, hf_logits, make_model, make_tokenizer

    from convert import convert_checkpoint

    tok = make_tokenizer(kind, tmp_path / "hf")
    model = make_model(arch, len(tok), tmp_path / "hf", tokenizer=tok)
    base = convert_checkpoint(tmp_path / "hf", tmp_path / "base.gguf", "f32", progress=False)
    texts = NAMES if kind == "llama-spm" else UNUSED_TOKENS
    ids = [tok.convert_tokens_to_ids(t) for t in texts]
    torch.manual_seed(3)
    cfg = peft.LoraConfig(r=4, lora_alpha=8, init_lora_weights=False,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    pm = peft.get_peft_model(model, cfg)
    d = tmp_path / "delta"
    pm.save_pretrained(d)
    merged = pm.merge_and_unload()
    rows = torch.randn(6, merged.config.hidden_size) * 0.5
    with torch.no_grad():
        merged.get_input_embeddings().weight[ids] = rows
    write_safetensors(d / "control_rows.safetensors", {"ids": np.array(ids, np.int64), "rows": rows.numpy()})
    (d / "manifest.json").write_text(json.dumps({
        "base": {"sha256": sha256(base)},
        "aspd": {"tokens": {r: {"id": i, "text": t} for r, i, t in zip(ROLES, ids, texts)}}}))
    out = build_gguf(d, tmp_path / "built.gguf", base_gguf=base, outtype="f32", progress=False)

    seqs = [tok("The quick brown fox jumps over the lazy dog.")["input_ids"],
            tok("Paris is the capital of France.")["input_ids"][:4] + ids[:4] + tok("Hello world!")["input_ids"][1:]]
    want = hf_logits(merged, seqs)
    got = [lg for _, lg in llama_logits(out, seqs, n_threads=2)]
    worst = max(float(np.abs(a - b).max()) for a, b in zip(got, want))
    base_logits = [lg for _, lg in llama_logits(base, seqs, n_threads=2)]
    moved = max(float(np.abs(a - b).max()) for a, b in zip(base_logits, want))
    print(f"\n[build] tiny {arch}: f32 build vs peft merge in transformers, max abs logit diff {worst:.4f} "
          f"(the delta moves them by {moved:.2f})")
    assert worst < 0.05
    assert moved > 1.0  # the adapter and rows really matter
    for a, b in zip(got, want):
        top2 = np.sort(b, axis=-1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 0.05
        assert (a.argmax(-1) == b.argmax(-1))[clear].all()
    # tensor by tensor, as the converter writes the merged model
    merged.save_pretrained(tmp_path / "merged")
    tok.save_pretrained(tmp_path / "merged")
    ref = convert_checkpoint(tmp_path / "merged", tmp_path / "merged.gguf", "f32", progress=False)
    a, b = tensors_of(out), tensors_of(ref)
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_allclose(a[name][1], b[name][1], rtol=0, atol=2e-5, err_msg=name)
