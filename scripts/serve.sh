#!/usr/bin/env bash
# Install (only when the lock changed) and run the gateway on the embedded default
# (SQLite in ~/.sessiongate, two echo agents). Arguments go to `sessiongate serve`,
# e.g. --detach to return once it is ready, --config my.json5, --port 28789.
SESSIONGATE_EXTRAS="${SESSIONGATE_EXTRAS:-all}"
source "$(dirname "$0")/bootstrap.sh"
exec .venv/bin/sessiongate serve "$@"
