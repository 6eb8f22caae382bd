"""A Hugging Face checkpoint directory: its config and its tensors, read one at a time.

Weights are ``*.safetensors`` (one file or shards with ``model.safetensors.index.json``) or
``pytorch_model*.bin``. Tensors come back as float32 numpy arrays (bf16 and f16 widened), so a
sharded 7B checkpoint never has to be in memory at once. Safetensors are read with numpy alone; only a
``.bin`` pickle needs torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ConvertError
from .safetensors_np import SafetensorsFile


def torch_for(path: Path):
    """torch, to read a pickled ``.bin`` file; a one-line error naming the extra when it is not installed."""
    try:
        import torch
    except ImportError:
        raise ConvertError(f"{path.name} is a PyTorch pickle, and reading it needs torch: "
                           "pip install 'aspd-local[convert]' (safetensors files need no torch)") from None
    return torch


class Checkpoint:
    """Config and tensor index of one HF directory."""

    def __init__(self, src):
        self.dir = Path(src)
        if not self.dir.is_dir():
            raise ConvertError(f"not a directory: {self.dir}")
        cfg_path = self.dir / "config.json"
        if not cfg_path.is_file():
            raise ConvertError(f"no config.json in {self.dir}: not a Hugging Face model directory")
        try:
            self.config: dict = json.loads(cfg_path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ConvertError(f"cannot read {cfg_path}: {e}") from None
        self._open: dict[Path, object] = {}
        self._files: dict[str, Path] = self._index()

    # -- index ----------------------------------------------------------------------------------
    def _index(self) -> dict[str, Path]:
        d = self.dir
        for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
            index = d / index_name
            if index.is_file():
                try:
                    weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                except (ValueError, KeyError) as e:
                    raise ConvertError(f"cannot read {index}: {e}") from None
                files = {name: d / f for name, f in weight_map.items()}
                absent = sorted({str(p.name) for p in files.values() if not p.is_file()})
                if absent:
                    raise ConvertError(f"{index} names shards that are missing: {', '.join(absent[:3])}")
                for shard in set(files.values()):
                    held = set(self._names_in(shard))
                    lost = [n for n, f in files.items() if f == shard and n not in held]
                    if lost:
                        raise ConvertError(f"{index} places {lost[0]} in {shard.name}, which does not hold it")
                return files
        shards = sorted(d.glob("*.safetensors")) or sorted(d.glob("pytorch_model*.bin"))
        if not shards:
            raise ConvertError(f"no weights in {d}: expected *.safetensors or pytorch_model*.bin")
        files: dict[str, Path] = {}
        for shard in shards:
            for name in self._names_in(shard):
                files[name] = shard
        return files

    def _names_in(self, shard: Path) -> list[str]:
        return list(self._handle(shard).keys())

    def _handle(self, shard: Path):
        h = self._open.get(shard)
        if h is None:
            if shard.suffix == ".safetensors":
                h = SafetensorsFile(shard)  # numpy alone
            else:
                torch = torch_for(shard)
                try:
                    h = torch.load(shard, map_location="cpu", weights_only=True, mmap=True)
                except Exception as e:
                    raise ConvertError(f"cannot read {shard}: {e}") from None
            self._open[shard] = h
        return h

    # -- access ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self._files)

    def __contains__(self, name: str) -> bool:
        return name in self._files

    def shape(self, name: str) -> tuple[int, ...]:
        shard = self._files[name]
        h = self._handle(shard)
        if shard.suffix == ".safetensors":
            return h.shape(name)
        return tuple(h[name].shape)

    def load(self, name: str) -> np.ndarray:
        """The tensor as a float32 numpy array."""
        shard = self._files[name]
        h = self._handle(shard)
        if shard.suffix == ".safetensors":
            return h.load(name).astype(np.float32, copy=False)
        return h[name].float().numpy()

    def close(self) -> None:
        self._open.clear()
