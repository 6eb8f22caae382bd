"""Shared fixtures: Gemma 3 270M from its PyPI package (Q4_K_M as shipped, and an f16 copy made here
by llama.cpp's quantizer, for tests that compare decoding schedules; docs/format.md section 8),
with the six ASPD tokens mapped onto <unused0>..<unused5>."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from aspd_local import Engine  # noqa: E402
from aspd_local.llama.quantize import quantize  # noqa: E402
from aspd_local.models import base_model_path, cache_dir  # noqa: E402

UNUSED = "<unused0>,<unused1>,<unused2>,<unused3>,<unused4>,<unused5>"


@pytest.fixture(scope="session")
def q4_path() -> str:
    return str(base_model_path())


@pytest.fixture(scope="session")
def f16_path(q4_path) -> str:
    path = cache_dir() / "test" / "gemma-3-270m-f16.gguf"
    if not path.exists():
        quantize(q4_path, str(path), "f16")
    return str(path)


@pytest.fixture(scope="session")
def aspd_f16_path() -> str:
    """The default ASPD model (fine-tuned here) in f16, whose answers do not depend on what else shares a
    decode call (tests that compare answers alone and together)."""
    from aspd_local.models import default_model_path

    path = cache_dir() / "test" / "aspd-gemma3-270m-f16.gguf"
    if not path.exists():
        quantize(str(default_model_path()), str(path), "f16")
    return str(path)


@pytest.fixture(scope="session")
def f16_engine(f16_path):
    e = make_engine(f16_path)
    yield e
    e.close()


def make_engine(path, **kw) -> Engine:
    """An engine for tests: ASPD tokens on <unused0..5>; no speculation unless a test asks (tests of
    speculation compare against it), and never the user's on-disk suffix cache."""
    kw.setdefault("aspd_tokens", UNUSED)
    kw.setdefault("n_ctx", 2048)
    kw.setdefault("speculate", "none")
    kw.setdefault("suffix_cache", False)
    return Engine(path, **kw)
