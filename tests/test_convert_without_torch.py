"""The converter reads safetensors checkpoints and LoRA adapters with numpy alone: the same GGUF, byte
for byte, whether torch can be imported or not. Only a pickled ``.bin`` needs torch, and without it the
converter says so in one line, naming the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from test_convert_fixtures import make_model, make_tokenizer

from convert import convert_checkpoint

# torch, transformers and the safetensors package made unimportable, as in the core install
BLOCK = "import sys\nfor m in ('torch', 'transformers', 'safetensors', 'peft'): sys.modules[m] = None\n"


def _convert_blocked(src, out, extra: str = "") -> subprocess.CompletedProcess:
    code = BLOCK + textwrap.dedent(f"""
        from convert import convert_checkpoint
        {extra}
        convert_checkpoint({str(src)!r}, {str(out)!r}, "f16", progress=False)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-llama")
    tok = make_tokenizer("llama-spm", d)
    make_model("llama", len(tok), d, tokenizer=tok)
    return d


def test_safetensors_checkpoint_converts_without_torch(tiny, tmp_path):
    with_torch = convert_checkpoint(tiny, tmp_path / "a.gguf", "f16", progress=False)
    r = _convert_blocked(tiny, tmp_path / "b.gguf")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "b.gguf").read_bytes() == with_torch.read_bytes()


def test_lora_adapter_merges_without_torch(tiny, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"]))
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.05)
    peft.save_pretrained(tmp_path / "adapter")
    a = convert_checkpoint(tiny, tmp_path / "a.gguf", "f16", lora_dir=tmp_path / "adapter", progress=False)
    code = BLOCK + textwrap.dedent(f"""
        from convert import convert_checkpoint
        convert_checkpoint({str(tiny)!r}, {str(tmp_path / 'b.gguf')!r}, "f16", lora_dir={str(tmp_path / "adapter")!r},
                           progress=False)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "b.gguf").read_bytes() == a.read_bytes()


def test_bin_checkpoint_without_torch_names_the_extra(tmp_path):
    d = tmp_path / "bin"
    tok = make_tokenizer("llama-spm", d)
    model = make_model("llama", len(tok), d, tokenizer=tok)
    for f in d.glob("*.safetensors"):
        f.unlink()
    import torch

    torch.save(model.state_dict(), d / "pytorch_model.bin")
    r = _convert_blocked(d, tmp_path / "out.gguf")
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "needs torch" in last and "pip install 'aspd-local[convert]'" in last
    assert not (tmp_path / "out.gguf").exists() and not list(tmp_path.glob("*.partial*"))
