"""`train()` end to end on the real base (Gemma 3 270M): rows from a JSONL file, a run stopped after one
step and resumed, and the delta of an unfinished run written from its checkpoint (``delta_now``) with the
steps done and planned in its manifest."""

from __future__ import annotations

import dataclasses
import json

import pytest

from aspd_local.build import MANIFEST, load_manifest
from aspd_local.train.base import TrainError
from aspd_local.train.recipe import Recipe
from aspd_local.train.trainer import train

ROWS = [
    {"id": "r1", "messages": [{"role": "user", "content": "Name two fruits."}],
     "segments": [{"type": "block", "branches": [{"title": "Apple", "content": "**Apple**: crisp and sweet."},
                                                 {"title": "Pear", "content": "**Pear**: soft and juicy."}]}]},
    {"id": "r2", "messages": [{"role": "user", "content": "What is 2 plus 2?"}],
     "segments": [{"type": "serial", "text": "2 plus 2 is 4."}]},
]


def test_train_stops_resumes_and_writes_the_delta_of_an_unfinished_run(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    run = tmp_path / "run"
    recipe = Recipe(epochs=2, grad_accum=1, lora_r=2, lora_alpha=4, dtype="float32", seed=1)
    with pytest.raises(TrainError, match="no checkpoint"):
        train(data, run, recipe, resume=True, delta_now=True, progress=False)
    first = train(data, run, recipe, max_steps=1, save_every=1, progress=False)
    assert first.steps == 1 and first.delta_dir is None  # 4 steps planned: not finished, no delta
    with pytest.raises(TrainError, match="already holds checkpoints"):
        train(data, run, recipe, progress=False)
    done = train(data, run, recipe, resume=True, delta_now=True, progress=False)
    manifest = load_manifest(done.delta_dir)
    assert done.steps == 1 and (done.delta_dir / MANIFEST).exists()
    assert manifest["steps"] == {"done": 1, "planned": 4}
    assert manifest["data"]["rows"] == 2 and manifest["recipe"]["wide_repeat"] == 1
    # another run starts from that delta: with nothing learned (learning rates 0) it writes the same delta
    # back, so the adapter and the control rows were loaded in full
    from safetensors.torch import load_file

    still = Recipe(epochs=1, grad_accum=2, lora_r=2, lora_alpha=4, dtype="float32", seed=2, lr=0.0, rows_lr=0.0,
                   init=str(done.delta_dir))
    again = train(data, tmp_path / "run2", still, progress=False)
    assert load_manifest(again.delta_dir)["recipe"]["init"] == str(done.delta_dir)
    for name in ("adapter_model.safetensors", "control_rows.safetensors"):
        a, b = load_file(str(done.delta_dir / name)), load_file(str(again.delta_dir / name))
        assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a), name
    fresh = train(data, tmp_path / "run3", dataclasses.replace(still, init=""), progress=False)
    assert not load_file(str(fresh.delta_dir / "control_rows.safetensors"))["rows"].equal(
        load_file(str(done.delta_dir / "control_rows.safetensors"))["rows"])
    # a delta of another LoRA shape is refused with one line
    with pytest.raises(TrainError, match="another LoRA shape .*lora_r"):
        train(data, tmp_path / "run4", dataclasses.replace(still, lora_r=4), progress=False)
