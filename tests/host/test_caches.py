"""The service user's cache directories and the Harmony vocabulary."""

from __future__ import annotations

from sparkdeploy import caches
from sparkdeploy.data import service_home


def test_every_cache_directory_belongs_to_the_service_user(host, host_data):
    user = host.user(host_data["service_user"])
    mode = int(host_data["caches_mode"], 8)
    home = service_home(host_data)
    for path in caches.cache_directories(home, host_data["vllm_cache_mounts"], "host data"):
        directory = host.file(path)
        assert directory.is_directory, path
        assert (directory.user, directory.group, directory.mode) == (user.name, user.group, mode), path


def test_the_service_user_can_write_every_cache(host, host_data):
    user = host_data["service_user"]
    home = service_home(host_data)
    for relative in host_data["vllm_cache_mounts"]:
        assert host.run(f"runuser -u {user} -- test -w {home}/{relative}").rc == 0, relative


def test_the_harmony_vocabulary_has_its_sha256(host, host_data):
    directory = caches.tiktoken_dir(host_data, service_home(host_data), "host data")
    vocab = host.file(f"{directory}/{caches.VOCAB_FILE}")
    assert vocab.is_file
    assert vocab.sha256sum == host_data["caches_tiktoken_sha256"]
    assert (vocab.user, vocab.mode) == (host_data["service_user"], 0o644)


def test_tiktoken_rs_finds_it_under_its_cache_name(host, host_data):
    directory = caches.tiktoken_dir(host_data, service_home(host_data), "host data")
    link = host.file(f"{directory}/{caches.tiktoken_rs_cache_name()}")
    assert link.is_symlink and link.linked_to == f"{directory}/{caches.VOCAB_FILE}"
    assert link.sha256sum == host_data["caches_tiktoken_sha256"]
