#!/usr/bin/env bash
# Install and run the gateway on the embedded default (SQLite in ~/.sessiongate, two echo agents).
source "$(dirname "$0")/bootstrap.sh"
exec .venv/bin/sessiongate serve "$@"
