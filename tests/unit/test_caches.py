"""Cache directories under the service home and the Harmony vocabulary source."""

from __future__ import annotations

import hashlib

import pytest

from sparkdeploy import caches
from sparkdeploy.data import PROJECT_ROOT, documented_defaults
from sparkdeploy.errors import ConfigError

SOURCE = "host 'h' data"


def test_the_seeds_seven_directories_and_their_parents_are_managed():
    directories = caches.cache_directories("/home/cluster", documented_defaults()["vllm_cache_mounts"],
                                           SOURCE)
    assert directories == [
        "/home/cluster/.cache",
        "/home/cluster/.cache/huggingface",
        "/home/cluster/.cache/flashinfer",
        "/home/cluster/.cache/vllm",
        "/home/cluster/.cache/ccache",
        "/home/cluster/.cache/tiktoken_rs",
        "/home/cluster/.triton",
        "/home/cluster/.tilelang",
    ]


@pytest.mark.parametrize("path", ["/abs", "../escape", ".cache/../../x", "a b", ""])
def test_cache_paths_stay_under_the_home(path):
    with pytest.raises(ConfigError, match="vllm_cache_mounts"):
        caches.cache_directories("/home/cluster", {path: "/root/x"}, SOURCE)


def test_tiktoken_rs_finds_the_vocabulary_under_sha1_of_harmonys_url():
    assert caches.tiktoken_rs_cache_name() == "fb374d419588a4632f3f557e76b4b70aebbca790"


def test_the_tiktoken_directory_must_be_mounted_into_vllm():
    data = documented_defaults()
    assert caches.tiktoken_dir(data, "/home/cluster", SOURCE) == "/home/cluster/.cache/tiktoken_rs"
    with pytest.raises(ConfigError, match="caches_tiktoken_dir"):
        caches.tiktoken_dir({**data, "caches_tiktoken_dir": ".cache/other"}, "/home/cluster", SOURCE)


def test_a_url_source_is_downloaded_on_the_host():
    vocab = caches.vocab_source(documented_defaults(), SOURCE)
    assert vocab.url.endswith("/o200k_base.tiktoken") and vocab.local_path is None
    assert vocab.sha256 == "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"


def test_a_local_source_must_have_the_stated_digest(tmp_path):
    vocab_file = tmp_path / "o200k_base.tiktoken"
    vocab_file.write_bytes(b"YQ== 0\n")
    digest = hashlib.sha256(b"YQ== 0\n").hexdigest()
    vocab = caches.vocab_source({"caches_tiktoken_source": str(vocab_file),
                                 "caches_tiktoken_sha256": digest}, SOURCE)
    assert vocab.local_path == vocab_file and vocab.url is None
    with pytest.raises(ConfigError, match="caches_tiktoken_sha256"):
        caches.vocab_source({"caches_tiktoken_source": str(vocab_file),
                             "caches_tiktoken_sha256": "0" * 64}, SOURCE)


def test_the_sandbox_stand_in_matches_its_digest():
    sandbox = {}
    exec((PROJECT_ROOT / "group_data" / "sandbox.py").read_text(), sandbox)
    vocab = caches.vocab_source(sandbox, SOURCE)
    assert vocab.local_path.name == "o200k_base.tiktoken"


@pytest.mark.parametrize("digest", ["", "ABC", "g" * 64, None])
def test_the_digest_must_be_sha256_hex(digest):
    with pytest.raises(ConfigError, match="caches_tiktoken_sha256"):
        caches.vocab_source({"caches_tiktoken_source": "https://x/y", "caches_tiktoken_sha256": digest},
                            SOURCE)


@pytest.mark.parametrize(("value", "expected"), [("0755", "0755"), ("750", "0750"), ("0700", "0700")])
def test_modes(value, expected):
    assert caches.mode({"caches_mode": value}, SOURCE) == expected


@pytest.mark.parametrize("value", ["0644", "rwx", "0999", 755])
def test_bad_modes(value):
    with pytest.raises(ConfigError, match="caches_mode"):
        caches.mode({"caches_mode": value}, SOURCE)
