"""Which authorized SSH keys would let an account log in as pyinfra does (for the lockout guard).

A key line only counts when sshd would accept it for a plain login from the workstation: a key
of a type sshd accepts (``PubkeyAcceptedAlgorithms``, ``RequiredRSASize``), with no option that
limits where it may come from or what it may run (``from=``, ``command=``, ``restrict``,
``expiry-time=``; a ``cert-authority`` line is no key to log in with), in a file sshd's
``StrictModes`` reads (file and directories up to the home owned by root or the account, not
group- or world-writable: stricter than Debian's sshd, which lets a group-writable file of the
account's private group pass, so the guard may ask for a ``chmod g-w`` sshd would not need).
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pyinfra.api import FactBase

_USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]*\$?$")
_MISSING = "missing"
# Options that keep a key from giving pyinfra a shell from the workstation.
_RESTRICTING = ("from", "command", "restrict", "expiry-time", "cert-authority")
# What sshd requires of RSA keys when the host's sshd -T does not say (OpenSSH 9.1's default).
_DEFAULT_RSA_BITS = 1024
_RSA_SIGNATURES = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
                   "ssh-rsa-cert-v01@openssh.com": ("rsa-sha2-512-cert-v01@openssh.com",
                                                    "rsa-sha2-256-cert-v01@openssh.com")}


@dataclass(frozen=True)
class KeyFile:
    """One authorized keys file as sshd would see it."""

    path: str
    # (owner uid, octal mode) of the file, then of each directory up to the home or /
    modes: tuple[tuple[int, str], ...]
    lines: tuple[str, ...]


@dataclass(frozen=True)
class AccountKeys:
    """An account's authorized keys, read from the host before any change."""

    uid: int
    home: str
    # None: the host's sshd -T did not say, so no key type is ruled out
    accepted_algorithms: frozenset[str] | None
    required_rsa_bits: int
    files: tuple[KeyFile, ...] = field(default=())

    def refusals(self) -> Counter[str]:
        """Why each key line would not get pyinfra in (reason -> how many lines)."""
        reasons: Counter[str] = Counter()
        for key_file in self.files:
            unsafe = _strict_modes_problem(key_file, self.uid)
            for line in key_file.lines:
                reason = unsafe or key_problem(line, self.accepted_algorithms, self.required_rsa_bits)
                if reason:
                    reasons[reason] += 1
        return reasons

    def usable_count(self) -> int:
        lines = sum(len(key_file.lines) for key_file in self.files)
        return lines - sum(self.refusals().values())


def key_problem(line: str, accepted: frozenset[str] | None, rsa_bits: int = _DEFAULT_RSA_BITS) -> str | None:
    """Why sshd would not let this authorized_keys line log pyinfra in; None if it would."""
    options, key_type, blob = _split_line(line)
    if key_type is None:
        return "not a key line"
    names = {name.split("=", 1)[0].lower() for name in _split_options(options)}
    restricting = sorted(names.intersection(_RESTRICTING))
    if restricting:
        return f"restricted ({', '.join(restricting)})"
    if accepted is not None and not accepted.intersection((key_type, *_RSA_SIGNATURES.get(key_type, ()))):
        return f"{key_type} keys not accepted by sshd"
    fields = _blob_fields(blob)
    if not fields or fields[0] != key_type.encode():
        return "malformed key"
    if key_type == "ssh-rsa" and (len(fields) < 3 or _mpint_bits(fields[2]) < rsa_bits):
        return f"RSA key shorter than {rsa_bits} bits"
    return None


class AuthorizedKeys(FactBase):
    """
    ``user``'s authorized keys in ``files`` (sshd's ``AuthorizedKeysFile`` tokens: ``%h``,
    ``%u``, ``%%``, relative to the home), with what sshd needs to judge them: the account's
    uid and home, the key algorithms the host's sshd accepts and its RSA floor, and the owner
    and mode of each file and of the directories ``StrictModes`` checks. ``None`` if the
    account does not exist. Needs root to read other users' homes and sshd's configuration.
    """

    def command(self, user: str, files: Sequence[str]) -> str:
        if not _USER_NAME.match(user):
            raise ValueError(f"not an account name: {user!r}")
        return f"""
home=$(getent passwd {user} | cut -d: -f6)
if [ -z "$home" ]; then echo {_MISSING}; exit 0; fi
echo "home $(id -u {user}) $home"
sshd -T -C user={user},host=localhost,addr=127.0.0.1 2>/dev/null \\
    | grep -E '^(pubkeyacceptedalgorithms|requiredrsasize) ' || true
for file in {" ".join(shlex.quote(path) for path in files)}; do
    file=$(printf '%s' "$file" | sed "s|%h|$home|g; s|%u|{user}|g; s|%%|%|g")
    case "$file" in /*) ;; *) file="$home/$file" ;; esac
    [ -f "$file" ] || continue
    file=$(readlink -f "$file")
    echo "file $file"
    path=$file
    while :; do
        stat -Lc 'mode %u %a' "$path"
        if [ "$path" = "$home" ] || [ "$path" = / ]; then break; fi
        path=$(dirname "$path")
    done
    grep -E '^[[:space:]]*[^#[:space:]]' "$file" | sed 's/^/key /' || true
done
""".strip()

    def process(self, output: list[str]) -> AccountKeys | None:
        return parse_account_keys(output)


def parse_account_keys(output: Sequence[str]) -> AccountKeys | None:
    """The :class:`AuthorizedKeys` fact's output as an :class:`AccountKeys`."""
    if not output or output[0].strip() == _MISSING:
        return None
    uid, home, accepted, rsa_bits = -1, "", None, _DEFAULT_RSA_BITS
    files: list[KeyFile] = []
    for line in output:
        tag, _, rest = line.partition(" ")
        if tag == "home":
            uid_text, _, home = rest.partition(" ")
            uid = int(uid_text) if uid_text.isdigit() else -1
        elif tag == "pubkeyacceptedalgorithms":
            accepted = frozenset(rest.strip().split(","))
        elif tag == "requiredrsasize" and rest.strip().isdigit():
            rsa_bits = int(rest)
        elif tag == "file":
            files.append(KeyFile(rest, (), ()))
        elif tag == "mode" and files:
            owner, _, mode = rest.partition(" ")
            last = files[-1]
            files[-1] = KeyFile(last.path, (*last.modes, (int(owner), mode.strip())), last.lines)
        elif tag == "key" and files:
            last = files[-1]
            files[-1] = KeyFile(last.path, last.modes, (*last.lines, rest))
    return AccountKeys(uid, home, accepted, rsa_bits, tuple(files))


def _strict_modes_problem(key_file: KeyFile, uid: int) -> str | None:
    for owner, mode in key_file.modes:
        if owner not in (0, uid) or not mode.isdigit() or int(mode, 8) & 0o022:
            return "file or directory writable by others (StrictModes)"
    return None


def _split_line(line: str) -> tuple[str, str | None, str]:
    """(options, key type, base64 blob) of an authorized_keys line; key type None if none."""
    text = line.strip()
    first = text.split(None, 1)
    if first and _is_key_type(first[0]):
        options = ""
    else:
        options, text = _take_options(text)
    parts = text.split()
    if len(parts) < 2 or not _is_key_type(parts[0]):
        return options, None, ""
    return options, parts[0], parts[1]


def _is_key_type(word: str) -> bool:
    return word.startswith(("ssh-", "ecdsa-sha2-", "sk-"))


def _take_options(text: str) -> tuple[str, str]:
    """Split the leading options field (quotes may hold spaces) from the rest of the line."""
    quoted = False
    for index, char in enumerate(text):
        if char == '"' and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        elif char in " \t" and not quoted:
            return text[:index], text[index:].strip()
    return text, ""


def _split_options(options: str) -> list[str]:
    names, current, quoted = [], "", False
    for index, char in enumerate(options):
        if char == '"' and (index == 0 or options[index - 1] != "\\"):
            quoted = not quoted
        if char == "," and not quoted:
            names.append(current)
            current = ""
        else:
            current += char
    return [*names, current] if current else names


def _blob_fields(blob: str) -> list[bytes]:
    """The length-prefixed strings of an SSH public key blob (empty if it is not one)."""
    try:
        data = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return []
    fields, offset = [], 0
    while offset + 4 <= len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        offset += 4
        if offset + length > len(data):
            return []
        fields.append(data[offset:offset + length])
        offset += length
    return fields if offset == len(data) else []


def _mpint_bits(value: bytes) -> int:
    return int.from_bytes(value, "big").bit_length()
