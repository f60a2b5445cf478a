#!/usr/bin/env bash
# Install what the benchmarks need (sessiongate[bench]: matplotlib, py-spy, asyncpg, openai)
# and run them; arguments go to `python -m benchmarks` (e.g. --quick).
SESSIONGATE_EXTRAS="${SESSIONGATE_EXTRAS:-bench}"
source "$(dirname "$0")/bootstrap.sh"
exec .venv/bin/python -m benchmarks "$@"
