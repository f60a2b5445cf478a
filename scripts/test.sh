#!/usr/bin/env bash
# Install and run every check: lint, format, types, then the whole test suite.
source "$(dirname "$0")/bootstrap.sh"
# The control page's browser tests drive the system chromium (CI runs as root).
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy --strict src
exec .venv/bin/pytest "$@"
