"""The shipped delta, built into a GGUF (base + LoRA merged + control rows, converted with the ASPD metadata),
serves what was trained: engine logits on that GGUF equal torch logits of base + delta under the training
mask, on the structured sequence of test_train_serving."""

import hashlib

import pytest
import torch

from aspd_local.aspd.encode import RowEncoder
from aspd_local.models import DEFAULT_DELTA_DIR, base_model_path, cache_dir
from aspd_local.train.base import float_model_dir, load_float_model
from aspd_local.build import MANIFEST, load_manifest
from aspd_local.train.delta import apply_delta
from aspd_local.train.export import build_gguf
from aspd_local.train.lm import AspdLM
from aspd_local.train.mask import collate
from conftest import make_engine
from test_train_serving import ROW, TOL, _engine_run, _engine_vs_torch, _predecessor_rows

DELTA = DEFAULT_DELTA_DIR

pytestmark = pytest.mark.skipif(not (DELTA / MANIFEST).exists(), reason="no trained delta in models/aspd-gemma3-270m/delta")


@pytest.fixture(scope="module")
def delta_gguf():
    key = hashlib.sha256((DELTA / MANIFEST).read_bytes()).hexdigest()[:12]
    path = cache_dir() / "test" / f"aspd-gemma3-270m-{key}-f16.gguf"
    if not path.exists():
        build_gguf(DELTA, path, base_gguf=base_model_path(), outtype="f16", progress=False)
    return str(path)


def test_delta_gguf_serves_the_trained_model(delta_gguf):
    man = load_manifest(DELTA)
    e = make_engine(delta_gguf, aspd_tokens=None, n_threads=1)  # ASPD ids from the GGUF's metadata
    try:
        assert e.aspd is not None and list(e.aspd.ids) == [man["aspd"]["tokens"][r]["id"] for r in
                                                           ("title_open", "title_close", "para_open", "para_close",
                                                            "branch_open", "branch_close")]
        enc = RowEncoder(e.model, e.aspd, e.chat_format).encode(ROW)
        r, seen = _engine_run(e, enc)
        assert r.text == ROW["answer"]
    finally:
        e.close()
    model = apply_delta(load_float_model(float_model_dir(base_model_path())), DELTA)
    lm = AspdLM(model, e.aspd.ids)
    batch = collate([enc], e.aspd, pad_id=0, dtype=torch.float32, sliding_window=lm.sliding_window)
    with torch.no_grad():
        logits = lm.logits(batch)[0].numpy()
    rows = _predecessor_rows(enc, e.aspd)
    worst = _engine_vs_torch(seen, logits, rows)
    assert len(seen) == len(rows) > 60
    assert worst < TOL, worst
    print(f"\n{len(seen)} positions, same top-1 (or a near tie), max abs logit difference {worst:.4f}")
