"""Which authorized_keys lines would let pyinfra log in (the lockout guard's count)."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from sparkdeploy.ssh_keys import AuthorizedKeys, key_problem

# PubkeyAcceptedAlgorithms as OpenSSH 9.6's sshd -T prints it (no ssh-dss, no SHA-1 RSA)
ACCEPTED = frozenset(["ssh-ed25519", "ecdsa-sha2-nistp256", "sk-ssh-ed25519@openssh.com", "rsa-sha2-512",
                      "rsa-sha2-256"])


def public(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


ED25519 = public(ed25519.Ed25519PrivateKey.generate())


def test_a_plain_key_counts():
    assert key_problem(f"{ED25519} op@ws", ACCEPTED) is None
    assert key_problem(f"no-pty,no-agent-forwarding {ED25519}", ACCEPTED) is None


@pytest.mark.parametrize("options", [
    'from="10.0.0.0/8"', 'command="/usr/bin/rsync --server"', "restrict", 'expiry-time="20200101"',
    'cert-authority,principals="ops"', 'environment="A=b c",command="x, y"'])
def test_options_that_limit_where_from_or_what_a_key_runs_do_not_count(options):
    assert key_problem(f"{options} {ED25519}", ACCEPTED).startswith("restricted")


def test_rsa_keys_count_through_sha2_signatures_above_sshds_floor():
    small = public(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert key_problem(small, ACCEPTED, rsa_bits=1024) is None
    assert key_problem(small, ACCEPTED, rsa_bits=2048) == "RSA key shorter than 2048 bits"
    assert key_problem(small, frozenset({"ssh-ed25519"})) == "ssh-rsa keys not accepted by sshd"


def test_key_types_sshd_does_not_accept_do_not_count():
    dss = "ssh-dss " + base64.b64encode(b"".join(
        struct.pack(">I", len(part)) + part for part in (b"ssh-dss", b"\x01" * 129, b"\x02" * 21,
                                                         b"\x03" * 128, b"\x04" * 128))).decode()
    assert key_problem(dss, ACCEPTED) == "ssh-dss keys not accepted by sshd"


@pytest.mark.parametrize("line", ["ssh-ed25519 not-base64!", "ssh-rsa " + ED25519.split()[1], "hello"])
def test_lines_sshd_cannot_parse_do_not_count(line):
    assert key_problem(line, ACCEPTED) in ("malformed key", "not a key line")


def test_the_facts_output_is_parsed_per_file():
    fact = AuthorizedKeys()
    output = ["home 1000 /home/ops", "pubkeyacceptedalgorithms ssh-ed25519", "requiredrsasize 2048",
              "file /home/ops/.ssh/authorized_keys", "mode 1000 600", "mode 1000 700", "mode 1000 755",
              f"key {ED25519}", "file /etc/ssh/sparkdeploy-authorized_keys/ops", "mode 0 644", "mode 0 755",
              "mode 0 755", "mode 0 755", "mode 0 755", f'key restrict,from="10.0.0.1" {ED25519}']
    account = fact.process(output)
    assert (account.uid, account.home, account.required_rsa_bits) == (1000, "/home/ops", 2048)
    assert [key_file.path for key_file in account.files] == [
        "/home/ops/.ssh/authorized_keys", "/etc/ssh/sparkdeploy-authorized_keys/ops"]
    assert account.usable_count() == 1
    assert fact.process(["missing"]) is None


def test_the_fact_refuses_a_bad_account_name():
    with pytest.raises(ValueError):
        AuthorizedKeys().command("x; rm -rf /", [".ssh/authorized_keys"])
