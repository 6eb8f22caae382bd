#!/usr/bin/env bash
# Set up aspd-local in .venv/ (first run: llama-cpp-python is compiled, about 5-10 minutes on 2 cores),
# then prepare the default model. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.11 python3 python; do
    if command -v "$c" >/dev/null 2>&1; then PY="$c"; break; fi
  done
fi
"$PY" - <<'PYCHECK' || { echo "aspd-local needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }
import sys; raise SystemExit(0 if sys.version_info >= (3, 11) else 1)
PYCHECK

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$PY" --version)" >&2
  "$PY" -m venv .venv
fi

stamp=.venv/.aspd-local-installed
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1) ${CMAKE_ARGS:-}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing dependencies (llama-cpp-python is built from source the first time: 5-10 minutes)" >&2
  .venv/bin/python -m pip install --upgrade pip >/dev/null
  .venv/bin/python -m pip install -e ".[all,test]" 2>&1 | { grep -v "Requirement already satisfied" || true; } >&2
  if [ -n "${CMAKE_ARGS:-}" ]; then
    # a GPU build (CUDA, Metal, ...): rebuild llama-cpp-python with these flags, not a cached CPU wheel
    echo "[setup] rebuilding llama-cpp-python with CMAKE_ARGS=$CMAKE_ARGS" >&2
    .venv/bin/python -m pip install --force-reinstall --no-cache-dir --no-deps "llama-cpp-python==0.3.36" >&2
  fi
  echo "$want" > "$stamp"
fi

.venv/bin/python -m aspd_local setup
