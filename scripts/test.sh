#!/usr/bin/env bash
# Install and run every check: lint, format, types, the docs site, then the whole test suite.
# Arguments go to pytest: `bash scripts/test.sh -m "not slow"` is the fast tier (about 90 s).
source "$(dirname "$0")/bootstrap.sh"
# The control page's browser tests drive the system chromium (CI runs as root).
command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
.venv/bin/mypy --strict src
# The docs site (mkdocs.yml): a broken link or a page left out of the nav fails the build.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
exec .venv/bin/pytest "$@"
