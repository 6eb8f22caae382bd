#!/usr/bin/env bash
# Build the peer servers that `python -m aspd_local bench-load` compares against, OUTSIDE the repository:
#
#   (a) llama-cpp-python's own OpenAI-compatible server (`python -m llama_cpp.server`), same version as the
#       project (0.3.36), in its own venv $PEERS/lcp-venv with the `[server]` extra (sse-starlette,
#       starlette-context, pydantic-settings, PyYAML). The project's .venv is left untouched: pip reuses the
#       llama-cpp-python wheel it built and cached (~/.cache/pip/wheels) when scripts/setup.sh ran, so this
#       takes seconds; with an empty cache it compiles llama.cpp again (5-10 minutes on 2 cores).
#   (b) llama.cpp's `llama-server`, built from the llama.cpp sources vendored in the llama-cpp-python 0.3.36
#       sdist (the same llama.cpp the project links), CPU, Release, -march=native.
#
# Usage:  bash benchmarks/peers.sh [lcp|llama-server|all]     (default all; safe to run again)
# Env:    PEERS=/tmp/peers (where everything goes), PYTHON=python3.11 (for the venv), JOBS=2
# Result: $PEERS/lcp-venv/bin/python              -> --server llama-cpp-python --peer-python <this>
#         $PEERS/llama-server                      -> --server llama-server --llama-server <this>
# Builds run under `nice -n 19` (the machine is shared).
set -euo pipefail

PEERS="${PEERS:-/tmp/peers}"
VERSION=0.3.36
JOBS="${JOBS:-2}"
PY="${PYTHON:-python3}"
what="${1:-all}"
mkdir -p "$PEERS"

sdist_dir() {
  local tgz="$PEERS/llama_cpp_python-$VERSION.tar.gz"
  if [ ! -f "$tgz" ]; then
    echo "[peers] downloading the llama-cpp-python $VERSION sdist" >&2
    "$PY" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$PEERS" >&2
  fi
  if [ ! -d "$PEERS/llama_cpp_python-$VERSION/vendor/llama.cpp" ]; then
    tar -xzf "$tgz" -C "$PEERS"
  fi
  echo "$PEERS/llama_cpp_python-$VERSION"
}

build_llama_server() {
  local src build
  src="$(sdist_dir)/vendor/llama.cpp"
  build="$PEERS/llama.cpp-build"
  if [ ! -f "$build/CMakeCache.txt" ]; then
    echo "[peers] configuring llama.cpp ($src)" >&2
    # LLAMA_CURL is deprecated in this llama.cpp (a warning only); HTTPS (OpenSSL) is not needed on loopback.
    # The web UI is not embedded: no npm build, no download of prebuilt assets (no internet needed).
    nice -n 19 cmake -S "$src" -B "$build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
      -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
      -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >&2
  fi
  echo "[peers] building llama-server (-j $JOBS, nice 19)" >&2
  nice -n 19 cmake --build "$build" --target llama-server -j "$JOBS" >&2
  ln -sf "$build/bin/llama-server" "$PEERS/llama-server"
  "$PEERS/llama-server" --version >&2 || true
  echo "[peers] llama-server: $PEERS/llama-server" >&2
}

install_lcp_server() {
  local venv="$PEERS/lcp-venv"
  if [ ! -x "$venv/bin/python" ]; then
    echo "[peers] creating $venv" >&2
    "$PY" -m venv "$venv"
  fi
  echo "[peers] installing llama-cpp-python[server]==$VERSION into $venv (cached wheel if present)" >&2
  nice -n 19 "$venv/bin/python" -m pip install "llama-cpp-python[server]==$VERSION" >&2
  "$venv/bin/python" -c "import llama_cpp, llama_cpp.server.app; print('llama-cpp-python', llama_cpp.__version__)" >&2
  echo "[peers] llama-cpp-python server: $venv/bin/python -m llama_cpp.server" >&2
}

case "$what" in
  lcp|llama-cpp-python) install_lcp_server ;;
  llama-server) build_llama_server ;;
  all) install_lcp_server; build_llama_server ;;
  *) echo "usage: $0 [lcp|llama-server|all]" >&2; exit 2 ;;
esac
