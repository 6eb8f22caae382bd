"""Base GGUF + delta -> the servable GGUF, with numpy and gguf-py alone (no torch, no transformers).

What ``setup`` builds once: the base GGUF's tensors are dequantized one at a time (``gguf.quants``), the
delta's LoRA merged into the GGUF tensors it adapts (``W += s * B @ A``, rows permuted the way the
GGUF's architecture stores them), the control-token rows written into the token embedding, and the
result written with the base's metadata (tokenizer included), the six ASPD tokens renamed and marked
CONTROL, and the ``aspd.*`` keys, by the converter's writer (q8_0 / f16 / bf16 / f32 by gguf's own
quantizer, as the transformers path writes them; other types through llama.cpp's quantizer). The
file appears only when complete (a temporary file next to it, renamed at the end).

Everything the inputs can get wrong (a different base, a missing or truncated file, an adapter that
does not fit the base, an unsupported architecture) is checked before the first byte is written.

The delta's safetensors files are read by the converter's numpy reader, so the ``safetensors`` package
is not needed either.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from . import bases
from .aspd.tokens import DEFAULT_SEPARATOR, ROLES, AspdTokens
from .errors import AspdLocalError
from .store import sha256_of

MANIFEST = "manifest.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ROWS = "control_rows.safetensors"
TOKEN_EMBD = "token_embd.weight"


class BuildError(AspdLocalError):
    """The delta cannot be built onto this base (another base, missing or damaged files, shapes that do not fit)."""


def read_safetensors(path) -> dict[str, np.ndarray]:
    """All tensors of one of the delta's ``.safetensors`` files as float32 (the converter's numpy reader)."""
    from convert.errors import ConvertError
    from convert.safetensors_np import load_file

    path = Path(path)
    if not path.is_file():
        raise BuildError(f"missing file: {path}")
    try:
        return load_file(path)
    except ConvertError as e:
        raise BuildError(str(e)) from None


# -- the delta's manifest (the torch-free counterparts of aspd_local.train.delta's helpers) ---------

def load_manifest(delta_dir) -> dict:
    path = Path(delta_dir) / MANIFEST
    if not path.is_file():
        raise BuildError(f"no delta at {delta_dir} (missing {MANIFEST})")
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise BuildError(f"{path} is not a delta manifest: {e}") from None
    base, aspd = (man.get("base"), man.get("aspd")) if isinstance(man, dict) else (None, None)
    if not (isinstance(base, dict) and isinstance(base.get("sha256"), str) and isinstance(aspd, dict)
            and isinstance(aspd.get("tokens"), dict)):
        raise BuildError(f"{path} is not a delta manifest (it needs base.sha256 and aspd.tokens)")
    return man


def missing_delta_file(delta_dir) -> str | None:
    """The first of the delta's three files (adapter config, adapter weights, control rows) that
    ``delta_dir`` lacks; None for a complete delta."""
    return next((n for n in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, ROWS) if not (Path(delta_dir) / n).is_file()), None)


def check_base(delta_dir, gguf_path) -> None:
    """Raise unless ``gguf_path`` is the base the delta was trained on (by sha256)."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise BuildError(f"base model not found: {gguf_path}")
    want = load_manifest(delta_dir)["base"]["sha256"]
    got = sha256_of(gguf_path)
    if got != want:
        raise BuildError(f"{gguf_path} is not the base of the delta in {delta_dir} (sha256 {got[:12]}... , "
                         f"expected {want[:12]}...)")


def aspd_tokens_of(delta_dir) -> str:
    """The token mapping of a delta (comma-separated texts in ROLES order)."""
    toks = load_manifest(delta_dir)["aspd"]["tokens"]
    return ",".join(toks[r]["text"] for r in ROLES)


# -- architectures: how a GGUF stores an HF linear weight -------------------------------------------

def _permute_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's q/k row order for the llama architecture (HF halves -> interleaved pairs per head);
    the same permutation as the converter's ``convert.arch.llama.permute_rows``."""
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _llama_rows(name: str, delta: np.ndarray, hp: dict) -> np.ndarray:
    if name.endswith("attn_q.weight"):
        return _permute_rows(delta, hp["n_head"])
    if name.endswith("attn_k.weight"):
        return _permute_rows(delta, hp["n_head_kv"])
    return delta


def _as_is(name: str, delta: np.ndarray, hp: dict) -> np.ndarray:
    return delta


# A LoRA delta is computed in the HF layout; per GGUF architecture, what turns it into the GGUF layout
# of the weight it is added to (llama.cpp's converter permutes llama's q/k rows; the gemma and qwen
# families store linear weights as HF does: their only rewrite, Gemma's norm + 1, is on tensors LoRA
# never adapts). Architectures not listed are refused rather than merged wrongly.
LORA_LAYOUTS = {
    "llama": _llama_rows,
    "gemma": _as_is,
    "gemma2": _as_is,
    "gemma3": _as_is,
    "qwen2": _as_is,
    "qwen3": _as_is,
}


# -- the LoRA adapter in GGUF terms ----------------------------------------------------------------

class _Lora:
    """The delta's LoRA adapter (``convert.lora.LoraAdapter``: its checks, A/B pairs and scale), bound to the
    GGUF tensor names of a base."""

    def __init__(self, delta_dir: Path):
        from convert.errors import ConvertError
        from convert.lora import LoraAdapter

        try:
            self.adapter = LoraAdapter(delta_dir)
        except ConvertError as e:
            raise BuildError(str(e)) from None
        if self.adapter.replacements:
            key = next(iter(self.adapter.replacements))
            raise BuildError(f"{delta_dir / ADAPTER_WEIGHTS}: {key} is not a LoRA weight (whole tensors saved "
                             "with the adapter, modules_to_save, are not supported)")
        self.dir = delta_dir
        self.pairs: dict[str, tuple[str, np.ndarray, np.ndarray]] = {}

    def bind(self, arch: str, n_blocks: int, hp: dict) -> None:
        """Name the GGUF tensor of each adapted module (``arch``: a GGUF architecture in LORA_LAYOUTS)."""
        from gguf import MODEL_ARCH_NAMES, TensorNameMap

        self.layout = LORA_LAYOUTS[arch]
        self.hp = hp
        arch_enum = next(a for a, n in MODEL_ARCH_NAMES.items() if n == arch)
        # name layers the base may lack too, so that such an adapter is refused as not fitting the base
        modules = self.adapter.pairs.values()  # (HF module name, A, B)
        layers = [int(m[1]) for module, _, _ in modules if (m := re.search(r"\.(\d+)\.", module))]
        names = TensorNameMap(arch_enum, max([n_blocks] + [i + 1 for i in layers]))
        for module, a, b in modules:
            gguf_name = names.get_name(module + ".weight", try_suffixes=(".weight",))
            if gguf_name is None:
                raise BuildError(f"the LoRA adapter in {self.dir} adapts {module}, which has no place in a "
                                 f"llama.cpp {arch} model")
            if gguf_name in self.pairs:
                raise BuildError(f"the LoRA adapter in {self.dir} adapts {gguf_name} twice")
            self.pairs[gguf_name] = (module, a, b)

    def apply(self, name: str, data: np.ndarray) -> np.ndarray:
        """The base tensor ``name`` (a GGUF name) with the adapter merged in, rows in llama.cpp's order."""
        entry = self.pairs.get(name)
        if entry is None:
            return data
        return data + self.layout(name, self.adapter.delta(entry[0] + ".weight"), self.hp)


# -- the build -------------------------------------------------------------------------------------

def _note(progress: bool, message: str) -> None:
    if progress:
        print(f"[build] {message}", file=sys.stderr, flush=True)


def _field_value(field):
    from gguf import GGUFValueType

    value = field.contents()
    if field.types[0] == GGUFValueType.ARRAY:
        if len(field.types) != 2:
            raise BuildError(f"metadata {field.name} is a nested array, which this build does not copy")
        return value, GGUFValueType.ARRAY, field.types[1]
    return value, field.types[0], None


def build_gguf(delta_dir, out_path, *, base_gguf=None, outtype: str = "q8_0", progress: bool = True,
               check_sha256: bool = True) -> Path:
    """The servable GGUF of ``delta_dir`` (on the base ``base_gguf``, default the registered base the delta's
    manifest names, ``aspd_local.bases``) at ``out_path``.

    ``outtype``: any of the converter's output types (q8_0 as ``setup`` builds it; f16, bf16, f32; or a
    llama.cpp type such as q4_k_m). ``check_sha256=False`` skips the base checksum (the caller checked it)."""
    from gguf import GGUFReader, GGUFValueType, TokenType
    from gguf.quants import dequantize

    from convert import aspd_meta
    from convert.writer import Tensor, check_outtype, write_gguf

    t0 = time.perf_counter()
    try:
        check_outtype(outtype)
    except AspdLocalError as e:
        raise BuildError(str(e)) from None
    delta_dir = Path(delta_dir)
    out_path = Path(out_path)
    man = load_manifest(delta_dir)
    missing = missing_delta_file(delta_dir)
    if missing:
        raise BuildError(f"incomplete delta in {delta_dir}: {missing} is missing")
    lora = _Lora(delta_dir)
    rows = read_safetensors(delta_dir / ROWS)
    if "rows" not in rows or "ids" not in rows:
        raise BuildError(f"{delta_dir / ROWS} lacks 'rows' or 'ids'")
    row_ids = np.asarray(rows["ids"]).astype(np.int64).reshape(-1)
    row_data = np.asarray(rows["rows"], dtype=np.float32)
    if not base_gguf:
        base_gguf = (bases.for_manifest(man) or bases.get()).gguf()
    base_gguf = Path(base_gguf)
    if check_sha256:
        check_base(delta_dir, base_gguf)
    elif not base_gguf.is_file():
        raise BuildError(f"base model not found: {base_gguf}")
    if out_path.exists() and out_path.resolve() == base_gguf.resolve():
        raise BuildError(f"the output would overwrite the base model {base_gguf}")

    try:
        reader = GGUFReader(base_gguf)
    except (ValueError, OSError) as e:
        raise BuildError(f"cannot read {base_gguf}: {e}") from None
    fields = reader.fields
    arch = fields["general.architecture"].contents() if "general.architecture" in fields else None
    if arch not in LORA_LAYOUTS:
        raise BuildError(f"{base_gguf.name}: architecture {arch!r} is not supported by the torch-free build "
                         f"(supported: {', '.join(LORA_LAYOUTS)})")

    def hparam(key, default=None):
        f = fields.get(f"{arch}.{key}")
        if f is None:
            if default is None:
                raise BuildError(f"{base_gguf.name} lacks {arch}.{key}")
            return default
        v = f.contents()
        if isinstance(v, list):
            raise BuildError(f"{base_gguf.name}: per-layer {arch}.{key} is not supported by the torch-free build")
        return v

    n_head = int(hparam("attention.head_count"))
    lora.bind(arch, int(hparam("block_count")), {"n_head": n_head,
                                                  "n_head_kv": int(hparam("attention.head_count_kv", n_head))})

    tensors = {t.name: t for t in reader.tensors}

    def shape_of(t) -> tuple[int, ...]:  # numpy (HF) order; GGUFReader gives ggml order
        return tuple(int(d) for d in reversed(t.shape.tolist()))

    for name, (module, a, b) in lora.pairs.items():
        if name not in tensors:
            raise BuildError(f"the LoRA adapter in {delta_dir} does not match the base model: {base_gguf.name} "
                             f"has no {name} ({module})")
        want = lora.adapter.delta_shape(module, a, b)
        if shape_of(tensors[name]) != want:
            raise BuildError(f"the LoRA adapter in {delta_dir} does not match the base model: {name} ({module}) "
                             f"is {shape_of(tensors[name])} in {base_gguf.name}, the adapter was trained on {want}")

    if TOKEN_EMBD not in tensors:
        raise BuildError(f"{base_gguf.name} has no {TOKEN_EMBD}")
    emb_shape = shape_of(tensors[TOKEN_EMBD])
    if row_data.ndim != 2 or row_data.shape != (len(row_ids), emb_shape[1]):
        raise BuildError(f"the delta's control rows are {tuple(row_data.shape)} for {len(row_ids)} ids, the "
                         f"model's embedding is {emb_shape}: not the same base")
    if len(row_ids) and (row_ids.min() < 0 or row_ids.max() >= emb_shape[0]):
        raise BuildError(f"the delta's control row ids {row_ids.tolist()} fall outside the embedding "
                         f"({emb_shape[0]} rows)")

    # the vocabulary: the base's, with the six ASPD tokens renamed and made CONTROL (as the converter does)
    if "tokenizer.ggml.tokens" not in fields or "tokenizer.ggml.token_type" not in fields:
        raise BuildError(f"{base_gguf.name} has no tokenizer")
    tokens = fields["tokenizer.ggml.tokens"].contents()
    types = fields["tokenizer.ggml.token_type"].contents()
    index: dict[str, int] = {}
    for i, t in enumerate(tokens):
        index.setdefault(t, i)
    mapping = man["aspd"]["tokens"]
    ids = []
    for role in ROLES:
        entry = mapping.get(role) or {}
        tid = index.get(entry.get("text"))
        if tid is None or tid != entry.get("id"):
            raise BuildError(f"the delta maps {role} to token {entry.get('id')} {entry.get('text')!r}, which the "
                             f"vocabulary of {base_gguf.name} does not have")
        other = index.get(aspd_meta.NAMES[role])
        if other is not None and other != tid:
            raise BuildError(f"cannot rename token {tid} to {aspd_meta.NAMES[role]}: the vocabulary already "
                             f"has it as token {other}")
        ids.append(tid)
    try:
        aspd = AspdTokens(*ids, separator=man["aspd"].get("title_separator", DEFAULT_SEPARATOR))
        position_mode = man["aspd"].get("position_mode", "max_para")
        aspd_meta.check_position_mode(position_mode)
    except AspdLocalError as e:
        raise BuildError(str(e)) from None
    for role, tid in zip(ROLES, ids):
        tokens[tid] = aspd_meta.NAMES[role]
        types[tid] = int(TokenType.CONTROL)

    skip = {"general.architecture", "general.file_type", "general.quantization_version", "general.alignment"}

    def write_kv(w) -> None:
        for key, field in fields.items():
            if key.startswith("GGUF.") or key in skip or key.startswith("aspd."):
                continue
            if key == "tokenizer.ggml.tokens":
                w.add_key_value(key, tokens, GGUFValueType.ARRAY, GGUFValueType.STRING)
            elif key == "tokenizer.ggml.token_type":
                w.add_key_value(key, types, GGUFValueType.ARRAY, field.types[1])
            else:
                w.add_key_value(key, *_field_value(field))
        aspd_meta.write_keys(w, aspd, position_mode)

    def loader(t):
        def load() -> np.ndarray:
            data = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(shape_of(t))
            data = lora.apply(t.name, data)
            if t.name == TOKEN_EMBD:
                data = np.array(data, dtype=np.float32)  # a writable copy
                data[row_ids] = row_data
            return data

        return load

    plan = [Tensor(t.name, shape_of(t), loader(t)) for t in reader.tensors]
    _note(progress, f"{arch}: {len(plan)} tensors, LoRA on {len(lora.pairs)}, {len(row_ids)} control rows, "
                    f"ASPD ids {list(aspd.ids)} -> {out_path} ({outtype})")
    try:
        write_gguf(out_path, arch, write_kv, plan, outtype, progress=False)
    except AspdLocalError as e:
        raise BuildError(str(e)) from None
    _note(progress, f"wrote {out_path} in {time.perf_counter() - t0:.1f} s")
    return out_path
