#!/usr/bin/env bash
# Create .venv and install pinned requirements into it.
#   scripts/bootstrap.sh base   runtime only (make run)
#   scripts/bootstrap.sh dev    runtime + test/lint tools (make test)
# Uses uv (installed into the venv from PyPI) for speed, and falls back to pip.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-base}
PYTHON=${PYTHON:-python3}
VENV=.venv

if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    # Debian ships venv separately (python3-venv).
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      rm -rf "$VENV" && "$PYTHON" -m venv "$VENV"
    else
      echo "cannot create a virtualenv: install python3-venv" >&2; exit 1
    fi
  fi
fi

reqs=(-r requirements/base.txt)
[ "$kind" = dev ] && reqs+=(-r requirements/dev.txt)

"$VENV/bin/python" -m pip install -q --disable-pip-version-check uv >/dev/null 2>&1 || true
if [ -x "$VENV/bin/uv" ]; then
  # --compile-bytecode: uv leaves compiling to the first import, and where PYTHONDONTWRITEBYTECODE
  # is set (as on these machines) nothing is ever cached, so every process compiled dbt, Dagster
  # and pandas from source again: `import dbt.cli.main` took 7.7 s instead of 4.6 s, `import
  # dagster` 4.6 s instead of 2.2 s, in every dbt invocation, run worker and code server.
  "$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python" "${reqs[@]}" \
    && "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps -e . \
    && exit 0
  echo "uv install failed; falling back to pip" >&2
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "${reqs[@]}"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
