#!/usr/bin/env bash
# Set everything up (first run only) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
# the UI test drives a real browser: Debian's chromium (installed here when we may, else that test is skipped)
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing chromium for the browser test (apt-get) ..." >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
    || echo "[test] could not install chromium: the browser test will be skipped" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
