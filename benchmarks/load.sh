#!/usr/bin/env bash
# The load benchmark behind docs/benchmarks.md ("Many clients at once"): closed-loop clients against
# this server and its peers, greedy, 120 tokens, the bundled set's first 8 prompts, one combined report.
#   bash benchmarks/peers.sh          # once: llama-cpp-python's server and llama-server, under /tmp/peers
#   bash benchmarks/load.sh [OUT.json] [THREADS] [plain|aspd|all]
# Plain decoding is compared on the base GGUF through /v1/completions (the same prompt text for every
# server: the GGUF has no chat template, and each server has another fallback); the ASPD default model
# runs through /v1/chat/completions with its own template, speculation on (the defaults).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/bench/load-cpu.json}"
T="${2:-2}"
WHAT="${3:-all}"
PY=.venv/bin/python
BASE=$($PY -c "from aspd_local.models import base_model_path; print(base_model_path())")
ASPD=$($PY -c "from aspd_local.models import default_model_path; print(default_model_path())")
rm -f "$OUT"
run() { $PY -m aspd_local bench-load --append-to "$OUT" --max-tokens 120 "$@"; }
PLAIN=(--model "$BASE" --endpoint completions --concurrency 1,2,4)
if [ "$WHAT" != aspd ]; then
run --label llama-server-np4 --server llama-server --server-args "-np 4 -kvu -t $T -c 4096" "${PLAIN[@]}"
run --label llama-cpp-python --server llama-cpp-python --server-args "--n_threads $T --n_threads_batch $T --n_ctx 4096" "${PLAIN[@]}"
run --label aspd-parallel1-ar --server aspd --server-args "--threads $T --parallel 1 --speculate none --no-suffix-cache" \
    --extra-body '{"aspd_mode": "ar", "speculate": "none"}' "${PLAIN[@]}"
run --label aspd-parallel4-ar --server aspd --server-args "--threads $T --parallel 4 --speculate none --no-suffix-cache" \
    --extra-body '{"aspd_mode": "ar", "speculate": "none"}' "${PLAIN[@]}"
fi
[ "$WHAT" = plain ] && exit 0
run --label aspd-default-parallel1 --server aspd --model "$ASPD" --server-args "--threads $T --parallel 1 --no-suffix-cache" \
    --concurrency 1,4
run --label aspd-default-parallel4 --server aspd --model "$ASPD" --server-args "--threads $T --parallel 4 --no-suffix-cache" \
    --concurrency 1,2,4,8
run --label aspd-default-parallel4-nospec --server aspd --model "$ASPD" \
    --server-args "--threads $T --parallel 4 --speculate none --no-suffix-cache" --concurrency 1,4
