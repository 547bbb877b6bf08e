"""Which SSH keys sshd would accept for an account, read from the host (for the lockout guard)."""

from __future__ import annotations

import re

from pyinfra.api import FactBase

_USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$")
_MISSING = "__sparkdeploy_no_such_user__"


class AuthorizedKeyCount(FactBase):
    """
    How many keys sshd would accept for ``user``: non-comment lines of every file its
    effective ``AuthorizedKeysFile`` names (``sshd -T``, so drop-ins count), ``None`` if the
    account does not exist. Needs root to read other users' homes.
    """

    def command(self, user: str) -> str:
        if not _USER_NAME.match(user):
            raise ValueError(f"not an account name: {user!r}")
        return f"""
home=$(getent passwd {user} | cut -d: -f6)
if [ -z "$home" ]; then echo {_MISSING}; exit 0; fi
files=$(sshd -T -C user={user},host=localhost,addr=127.0.0.1 2>/dev/null \
    | sed -n 's/^authorizedkeysfile //p')
[ -n "$files" ] || files=".ssh/authorized_keys .ssh/authorized_keys2"
count=0
for file in $files; do
    file=$(printf '%s' "$file" | sed "s|%h|$home|g; s|%u|{user}|g; s|%%|%|g")
    case "$file" in /*) ;; *) file="$home/$file" ;; esac
    [ -f "$file" ] || continue
    keys=$(grep -cE '^[[:space:]]*[^#[:space:]]' "$file" || true)
    count=$((count + keys))
done
echo "$count"
""".strip()

    def process(self, output: list[str]) -> int | None:
        value = output[-1].strip() if output else ""
        if value == _MISSING:
            return None
        return int(value) if value.isdigit() else 0
