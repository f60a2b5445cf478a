#!/usr/bin/env bash
# Install and run every check: lint, format, types, then the whole test suite.
source "$(dirname "$0")/bootstrap.sh"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy --strict src
exec .venv/bin/pytest "$@"
