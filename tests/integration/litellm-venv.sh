#!/usr/bin/env bash
# Give the LiteLLM proxy its own venv for the integration tests (idempotent): litellm[proxy]'s
# dependencies would clash with pyinfra's in .venv. Prints the venv's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=1.106.2
venv=.sparkdeploy/venvs/litellm
stamp=$venv/.litellm-$version-installed
if [ ! -f "$stamp" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "litellm[proxy]==$version"
    touch "$stamp"
fi
echo "$PWD/$venv"
