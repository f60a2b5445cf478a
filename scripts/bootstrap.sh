# Sourced by the other scripts: create .venv with Python 3.11 and install sessiongate with the
# extras named in SESSIONGATE_EXTRAS (default: dev). Installs only when requirements.lock or
# pyproject.toml changed since the last install of those extras (a stamp in .venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
EXTRAS="${SESSIONGATE_EXTRAS:-dev}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
wanted="$(cat requirements.lock pyproject.toml | "$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
# dev includes every runtime extra, so a dev install also satisfies the others.
for stamp in ".venv/.sessiongate-installed-$EXTRAS" .venv/.sessiongate-installed-dev; do
  if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    return 0 2>/dev/null || exit 0
  fi
done
if ls .venv/.sessiongate-installed-* >/dev/null 2>&1; then
  echo "sessiongate: dependencies changed; updating .venv …" >&2
  quiet=(--quiet)
else
  echo "sessiongate: first install of sessiongate[$EXTRAS] into .venv (a minute or two) …" >&2
  quiet=(--progress-bar on)
fi
.venv/bin/python -m pip install "${quiet[@]}" --disable-pip-version-check \
  -c requirements.lock -e ".[$EXTRAS]" >&2
echo "$wanted" > ".venv/.sessiongate-installed-$EXTRAS"
