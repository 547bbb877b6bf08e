"""pyinfra facts sparkdeploy reads from hosts (the serving stack's own are in serving_facts.py).

Facts only read: they decide at prepare time whether an operation is needed at all, so a
converged host yields no operation.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence

from pyinfra.api import FactBase

from sparkdeploy.weights import SnapshotListing, is_commit, parse_listing, repo_folder_name


class HubSnapshot(FactBase):
    """
    What a Hugging Face hub cache holds of one model revision, parsed by
    :func:`sparkdeploy.weights.parse_listing`: whether the directory is there and readable, its
    file system, the commit the revision points to, the file list the download recorded, and the
    size of every snapshot file. Read as root, as the vLLM container reads; ``find`` is bounded
    so a hung NFS server fails the check instead of hanging the deploy. No network needed.
    """

    default = SnapshotListing
    _LISTING_TIMEOUT = 120

    def command(self, cache_dir: str, repo_id: str, revision: str | None = None) -> str:
        repo = shlex.quote(posixpath.join(cache_dir, repo_folder_name(repo_id)))
        rev = revision or "main"
        commit = shlex.quote(rev) if is_commit(rev) else f'"$(cat "$d"/refs/{shlex.quote(rev)} 2>/dev/null)"'
        return "\n".join([
            f"s={shlex.quote(cache_dir)}; d={repo}",
            'if [ ! -d "$s" ]; then echo "store missing"; exit 0; fi',
            'if ! ls "$s" >/dev/null 2>&1; then echo "store unreadable"; exit 0; fi',
            'echo "store ok $(findmnt -n -o FSTYPE -T "$s" 2>/dev/null | head -n 1)"',
            f"c={commit}",
            'echo "commit $c"',
            '[ -n "$c" ] || exit 0',
            'if [ -r "$d/trees/$c.json" ]; then printf "tree "; tr -d "\\n" < "$d/trees/$c.json"; echo;'
            ' elif [ -r "$d/snapshots/$c/model.safetensors.index.json" ]; then printf "index ";'
            ' tr -d "\\n" < "$d/snapshots/$c/model.safetensors.index.json"; echo; fi',
            'if [ -r "$d/snapshots/$c/config.json" ]; then printf "config ";'
            ' tr -d "\\n" < "$d/snapshots/$c/config.json"; echo; fi',
            'if [ -d "$d/snapshots/$c" ]; then'
            f' timeout {self._LISTING_TIMEOUT} find -L "$d/snapshots/$c" -mindepth 1'
            " \\( -type f -readable -printf 'file %s %P\\n' \\)"
            " -o \\( -type f -printf 'unreadable %s %P\\n' \\)"
            " -o \\( -type l -printf 'broken 0 %P\\n' \\) 2>/dev/null;"
            ' [ $? -ne 124 ] || echo timedout; fi',
            "find \"$d/blobs\" -maxdepth 1 -name '*.incomplete' -printf 'partial %s %f\\n' 2>/dev/null",
            "exit 0",
        ])

    def process(self, output: list[str]) -> SnapshotListing:
        return parse_listing(output)


class SshdKexAlgorithms(FactBase):
    """
    Which of ``candidates`` (key exchange method names) the host's sshd has: sshd itself is
    asked (``sshd -T`` with each as ``KexAlgorithms``; it refuses a name it lacks), since sshd
    has no ``-Q``. Needs root (sshd reads its host keys).
    """

    default = list

    def command(self, candidates: Sequence[str]) -> str:
        names = " ".join(shlex.quote(name) for name in candidates)
        return (f"for kex in {names}; do sshd -T -f /dev/null -o KexAlgorithms=\"$kex\" 2>/dev/null"
                ' | grep -qx "kexalgorithms $kex" && echo "$kex"; done; true')

    def process(self, output: list[str]) -> list[str]:
        return [line.strip() for line in output if line.strip()]
