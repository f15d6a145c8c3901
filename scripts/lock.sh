#!/usr/bin/env bash
# Regenerate requirements.lock (runtime) and requirements-dev.lock (runtime + [dev])
# from pyproject.toml with pip-tools. Lock files carry hashes and no URLs.
#
# Uses .venv/bin/pip-compile when present (pip-tools is pinned in the dev lock);
# otherwise bootstraps pip-tools into a throwaway venv.
# Extra arguments go to pip-compile, e.g. `scripts/lock.sh --upgrade` or
# `scripts/lock.sh --upgrade-package anyio`; by default existing pins are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_TOOLS_VERSION=7.6.2
VENV="${WEALTHWISE_VENV:-.venv}"

# Resolve against the default package index only: ignore machine-local pip config
# (extra indexes, find-links, constraints) so the locks are reproducible anywhere.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT PIP_NO_INDEX || true

if [[ -x "$VENV/bin/pip-compile" ]]; then
    PIP_COMPILE="$VENV/bin/pip-compile"
else
    tools="$(mktemp -d)"
    trap 'rm -rf "$tools"' EXIT
    echo "bootstrapping pip-tools==$PIP_TOOLS_VERSION in $tools"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install --quiet "pip-tools==$PIP_TOOLS_VERSION"
    PIP_COMPILE="$tools/venv/bin/pip-compile"
fi

opts=(--quiet --generate-hashes --no-emit-index-url --no-emit-trusted-host
      --no-emit-find-links --strip-extras --allow-unsafe)

"$PIP_COMPILE" "${opts[@]}" "$@" --output-file=requirements.lock pyproject.toml
"$PIP_COMPILE" "${opts[@]}" "$@" --extra=dev --output-file=requirements-dev.lock pyproject.toml

if grep -nE 'https?://|file:/' requirements.lock requirements-dev.lock; then
    echo "error: lock files contain URLs" >&2
    exit 1
fi
echo "wrote requirements.lock and requirements-dev.lock"
