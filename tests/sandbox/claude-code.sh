#!/usr/bin/env bash
# The real Claude Code CLI, pinned, from the npm registry (idempotent). Prints the claude binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=2.1.332
prefix=.sparkdeploy/claude-code
stamp=$prefix/.claude-code-$version-installed
if [ ! -f "$stamp" ]; then
    npm install --silent --no-audit --no-fund --prefix "$prefix" "@anthropic-ai/claude-code@$version" >&2
    touch "$stamp"
fi
echo "$PWD/$prefix/node_modules/.bin/claude"
