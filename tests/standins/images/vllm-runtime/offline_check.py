"""What the stand-in vLLM checks before it serves, as real vLLM fails at start without them.

With ``HF_HUB_OFFLINE=1`` vLLM resolves every repository it loads (the model, a separate
tokenizer, a speculative draft model) in the Hugging Face cache and exits when one is missing;
``--chat-template FILE`` must exist (a mod usually writes it). Exits 1 with vLLM's message.
Stdlib only; argv is what ``vllm serve`` got.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def flag(argv: list[str], name: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def repositories(argv: list[str]) -> list[tuple[str, str | None]]:
    """(repository, revision) pairs vLLM loads for ``serve MODEL ...``."""
    model = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else flag(argv, "--model")
    found = [(model, flag(argv, "--revision"))] if model else []
    tokenizer = flag(argv, "--tokenizer")
    if tokenizer:
        found.append((tokenizer, flag(argv, "--tokenizer-revision")))
    speculative = flag(argv, "--speculative-config")
    if speculative:
        config = json.loads(speculative)
        if isinstance(config.get("model"), str):
            found.append((config["model"], config.get("revision")))
    return [(repo, revision) for repo, revision in found if "/" in repo and not repo.startswith((".", "/"))]


def cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface")
    return Path(home) / "hub"


def cached(repo: str, revision: str | None) -> bool:
    folder = cache_dir() / ("models--" + repo.replace("/", "--"))
    revision = revision or "main"
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    return (folder / "snapshots" / commit / "config.json").is_file()


def main(argv: list[str]) -> int:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        for repo, revision in repositories(argv):
            if not cached(repo, revision):
                print(f"OSError: We couldn't connect to 'https://huggingface.co' to load the files of "
                      f"{repo}, and couldn't find them in the cached files ({cache_dir()}). Check your "
                      "internet connection or see how to run the library in offline mode.",
                      file=sys.stderr)
                return 1
    template = flag(argv, "--chat-template")
    if template and "{" not in template and not Path(template).is_file():
        print(f"ValueError: The supplied chat template ({template}) looks like a file path, but it "
              "failed to be opened.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
