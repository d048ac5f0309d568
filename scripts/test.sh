#!/usr/bin/env bash
# Install what the tests need and run them: the README's test command, and what CI runs.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -r requirements-dev.txt
# The browser tests drive Debian's Chromium through Playwright (Playwright's own browser
# download is not used). Install it when we can; otherwise those tests skip with a reason.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "note: could not install chromium; browser tests will skip"
fi
python -m pytest "$@"
