"""The stand-in image registry: where the sandbox pulls upstream's "prebuilt" images from.

Upstream's ``build-and-copy.sh`` makes ``vllm-node`` by pulling ``eugr/spark-vllm:latest`` from
Docker Hub; the sandbox reaches no registry, so the real distribution registry (Debian's
``docker-registry``, unpacked here without installing its system service) serves stand-in
images under the names ``group_data/sandbox.py`` gives in ``upstream_prebuilt_images``, over
TLS with a certificate from a CA made here, which the sandbox's Docker trusts through
``/etc/docker/certs.d``. The stand-in upstream's script pulls and tags from it, so the deploy's
real prebuilt and pinned-digest paths run unchanged.
"""

from __future__ import annotations

import runpy
import tempfile
from pathlib import Path

from sparkdeploy.data import PROJECT_ROOT
from sparkdeploy.sandbox.local import (
    SandboxError,
    require_commands,
    run,
    runs,
    start_background,
    stop_process,
)

WORK_DIR = PROJECT_ROOT / ".sparkdeploy" / "standins" / "registry"
BINARY = WORK_DIR / "bin" / "docker-registry"
STORAGE_DIR = WORK_DIR / "storage"
CA_CERT = WORK_DIR / "tls" / "ca.crt"
SANDBOX_GROUP_DATA = PROJECT_ROOT / "group_data" / "sandbox.py"
_SERVER_CERT = WORK_DIR / "tls" / "server.crt"
_SERVER_KEY = WORK_DIR / "tls" / "server.key"


def endpoint() -> tuple[str, int]:
    """Host name and port of the registry the sandbox's ``upstream_prebuilt_images`` name."""
    references = runpy.run_path(str(SANDBOX_GROUP_DATA))["upstream_prebuilt_images"].values()
    hosts = {reference.split("/", 1)[0] for reference in references}
    if len(hosts) != 1:
        raise SandboxError(f"{SANDBOX_GROUP_DATA}: upstream_prebuilt_images must share one registry")
    name, _, port = hosts.pop().partition(":")
    if not port.isdigit():
        raise SandboxError(f"{SANDBOX_GROUP_DATA}: upstream_prebuilt_images need a registry HOST:PORT")
    return name, int(port)


def certs_dir_name() -> str:
    """The ``/etc/docker/certs.d/<name>`` directory under which Docker looks for its CA."""
    name, port = endpoint()
    return f"{name}:{port}"


def serve(address: str, log_file: Path) -> dict[str, object]:
    """Start the registry on ``address`` in the background; return its pid and address."""
    _ensure_binary()
    _ensure_certificates(endpoint()[0])
    port = endpoint()[1]
    config = WORK_DIR / "config.yml"
    STORAGE_DIR.mkdir(parents=True, exist_ok=True)
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {STORAGE_DIR}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}:{port}\n"
        f"  tls:\n    certificate: {_SERVER_CERT}\n    key: {_SERVER_KEY}\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n")
    pid = start_background([str(BINARY), "serve", str(config)], log_file,
                           f"the stand-in registry on {address}:{port}")
    return {"pid": pid, "address": f"{address}:{port}"}


def stop(pid: int | None) -> None:
    stop_process(pid, str(BINARY))


def is_running(pid: int | None) -> bool:
    return runs(pid, str(BINARY))


def push(archive: Path, reference: str, address: str) -> str:
    """Push a ``docker save`` archive to the registry on ``address`` as ``reference``'s
    repository and tag (``HOST:PORT/path:tag``); return the manifest digest it stored.

    The push goes to the registry's address on this machine, where the certificate's host name
    (the sandbox's alias for this machine) does not resolve: it is not verified on this hop,
    which never leaves the machine; the sandbox's pulls are."""
    require_commands({"skopeo": "skopeo"})
    path = reference.split("/", 1)[1]
    with tempfile.TemporaryDirectory(prefix="registry-push-") as tmp:
        digest_file = Path(tmp) / "digest"
        run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--digestfile", str(digest_file),
             f"docker-archive:{archive}", f"docker://{address}/{path}"])
        return digest_file.read_text().strip()


def has_tag(path: str, digest: str | None) -> bool:
    """Whether the registry's storage has ``path`` (``repo:tag``) pointing at ``digest``."""
    repository, _, tag = path.rpartition(":")
    link = (STORAGE_DIR / "docker" / "registry" / "v2" / "repositories" / repository / "_manifests"
            / "tags" / tag / "current" / "link")
    try:
        return bool(digest) and link.read_text().strip() == digest
    except OSError:
        return False


def _ensure_binary() -> None:
    """Debian's registry binary, unpacked from its package (no service, no system user)."""
    if BINARY.is_file():
        return
    require_commands({"apt-get": "apt", "dpkg-deb": "dpkg"})
    with tempfile.TemporaryDirectory(prefix="registry-deb-") as tmp:
        if run(["apt-get", "download", "docker-registry"], check=False, cwd=tmp).returncode != 0:
            run(["apt-get", "update", "-q"])
            run(["apt-get", "download", "docker-registry"], cwd=tmp)
        package = next(Path(tmp).glob("docker-registry_*.deb"))
        run(["dpkg-deb", "-x", str(package), str(Path(tmp, "root"))])
        BINARY.parent.mkdir(parents=True, exist_ok=True)
        Path(tmp, "root", "usr", "bin", "docker-registry").replace(BINARY)


def _ensure_certificates(hostname: str) -> None:
    """A CA and a server certificate for ``hostname``, made once (nothing secret leaves here)."""
    if _SERVER_CERT.is_file() and CA_CERT.is_file():
        return
    require_commands({"openssl": "openssl"})
    tls = CA_CERT.parent
    tls.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = tls / "ca.key"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(ca_key), "-out", str(CA_CERT), "-days", "3650",
         "-subj", "/CN=sparkdeploy stand-in registry CA"])
    request = tls / "server.csr"
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(_SERVER_KEY), "-out", str(request), "-subj", f"/CN={hostname}"])
    extensions = tls / "server.ext"
    extensions.write_text(f"subjectAltName=DNS:{hostname}\n")
    run(["openssl", "x509", "-req", "-in", str(request), "-CA", str(CA_CERT), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(_SERVER_CERT), "-days", "3650", "-extfile", str(extensions)])
