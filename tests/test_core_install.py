"""The core install as an app gets it (``benchmarks/core_install.py``): the wheel alone in a fresh virtual
environment answers on the default model, built there without torch, from the CLI and from Python; torch,
transformers, gradio and the server's packages are absent, and a command that needs one says which extra
to install. Takes about two minutes (llama-cpp-python comes from pip's wheel cache)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_core_install_answers_without_the_extras(tmp_path):
    out = tmp_path / "report.json"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "core_install.py"), "--json", str(out)],
                       capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, (r.stderr or r.stdout)[-3000:]
    report = json.loads(out.read_text())
    print(json.dumps({k: v for k, v in report.items() if k not in ("cli", "api")}, indent=1))
    assert sorted(report["absent"]) == sorted(["torch", "transformers", "gradio", "fastapi", "uvicorn", "peft",
                                               "safetensors"])
    assert report["loaded_optional"] == []
    # the same greedy answer from the command line and from Python, with a parallel block
    assert report["cli"]["text"] == report["api"]["text"] and report["api"]["blocks"] >= 1
    assert report["serve_without_extra"]["stderr_lines"] == 1
    assert "pip install 'aspd-local[server]'" in report["serve_without_extra"]["message"]
    assert report["installed_without_model_weights_mb"] <= 150
