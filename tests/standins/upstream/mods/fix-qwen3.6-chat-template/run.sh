#!/bin/bash
# Stand-in for upstream's mod of the same name: puts the fixed chat template where the recipe's
# --chat-template names it (the working directory of the vLLM command).
set -e
cp chat_template.jinja "$WORKSPACE_DIR/fixed_chat_template.jinja"
echo "=======> to apply chat template, use --chat-template fixed_chat_template.jinja"
