"""The service user's cache directories, and the Harmony vocabulary in the tiktoken cache.

vLLM bind-mounts these; a missing one is created by Docker as root and a later run as the
service user cannot write it. gpt-oss fails to load without ``o200k_base.tiktoken`` ("vLLM
startup fails silently: missing cache mounts, especially tiktoken_rs"); it is checked by sha256,
so a correct file stays as it is and a wrong one is replaced.
"""

from io import BytesIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.server import Users
from pyinfra.operations import files

from sparkdeploy import caches
from sparkdeploy.data import service_home
from sparkdeploy.errors import ConfigError


@deploy("Cache directories")
def cache_directories() -> None:
    source = f"host {host.name!r} data"
    user = host.data.service_user
    account = host.get_fact(Users).get(user)
    if account is None:
        raise ConfigError(source, "service_user",
                          f"account {user!r} does not exist on {host.name} (sparkdeploy does not "
                          "create it)", allowed="an existing account, e.g. DGX OS's first user")
    group = account["group"]
    home = service_home(host.data.dict())
    mode = caches.mode(host.data, source)
    tiktoken_dir = caches.tiktoken_dir(host.data, home, source)
    vocab = caches.vocab_source(host.data, source)

    for path in caches.cache_directories(home, host.data.vllm_cache_mounts, source):
        files.directory(
            name=f"Keep {path} for {user}",
            path=path,
            user=user, group=group, mode=mode,
        )

    vocab_path = f"{tiktoken_dir}/{caches.VOCAB_FILE}"
    if vocab.url:
        files.download(
            name="Place the Harmony vocabulary (o200k_base.tiktoken)",
            src=vocab.url,
            dest=vocab_path,
            sha256sum=vocab.sha256,
            user=user, group=group, mode="0644",
        )
    else:
        files.put(
            name="Place the Harmony vocabulary (o200k_base.tiktoken)",
            src=BytesIO(vocab.local_path.read_bytes()),
            dest=vocab_path,
            user=user, group=group, mode="0644",
        )
    files.link(
        name="Let tiktoken-rs find the vocabulary under its cache name",
        path=f"{tiktoken_dir}/{caches.tiktoken_rs_cache_name()}",
        target=caches.VOCAB_FILE,
        user=user, group=group,  # a symlink has no mode of its own
    )
