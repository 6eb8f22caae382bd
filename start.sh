#!/usr/bin/env bash
# Set everything up (first run only) and open the chat page (Gradio, http://127.0.0.1:7860) on the default model.
# Extra arguments go to `ui` (for the terminal chat: .venv/bin/python -m aspd_local run).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
exec .venv/bin/python -m aspd_local ui "$@"
