#!/usr/bin/env bash
# Set everything up (first run only) and start a chat on the default model. Extra arguments go to `run`.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m aspd_local run "$@"
