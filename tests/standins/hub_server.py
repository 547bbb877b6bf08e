"""A stand-in for the Hugging Face hub: small real model repositories over the hub's HTTP API.

It answers the requests ``huggingface_hub.snapshot_download`` makes (release 1.17, the one the
deploy installs on hosts), so the deploy's real download path runs without huggingface.co:

    GET  /api/models/ORG/NAME[/revision/REV][?blobs=true]   model info: commit sha, siblings, sizes
    GET  /api/models/ORG/NAME/tree/REV[/PATH]?recursive=..  file listing (the large-repo fallback)
    HEAD /ORG/NAME/resolve/REV/PATH                          X-Repo-Commit, ETag, X-Linked-Etag/-Size
    GET  /ORG/NAME/resolve/REV/PATH                          the bytes; ``Range: bytes=N-`` → 206

Knobs a test turns (``HubServer.options``): throttle file bodies, cut the next N file bodies
after some bytes (an interrupted download; the client keeps ``.incomplete`` and resumes with
Range), advertise a huge size in the API listing (the deploy's free-space check must refuse),
and gate a repository behind a token (401 ``GatedRepo`` without it). Every request is logged
(method, path, Range, status, whether a token came, bytes sent; never the token itself).

It also serves a PEP 503 index of a wheel folder under ``/simple/``, so a sandbox host installs
the hub client without reaching PyPI.

The default repository is a tiny gpt-oss under the real id ``openai/gpt-oss-120b``: config and
tokenizer files, an index and two safetensors shards with real headers, one nested file. Stdlib
only; run ``python tests/standins/hub_server.py --help`` for a standalone server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

DEFAULT_REPO_ID = "openai/gpt-oss-120b"
# Bigger than the client's 10 MiB write chunk, so a body cut after 12 MiB leaves a partial file.
DEFAULT_SHARD_BYTES = 16 * 2**20
# Further repositories (a draft model, another model) only need to be there, not to be big.
EXTRA_SHARD_BYTES = 2**20
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class HubFile:
    """One file of a repository; ``lfs`` files are the big ones, named by sha256 in the cache."""

    path: str
    content: bytes
    lfs: bool = False

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def blob_id(self) -> str:
        """The git blob id, as the hub reports it for every file."""
        return hashlib.sha1(b"blob %d\0" % self.size + self.content).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def etag(self) -> str:
        """What the client names the cached blob after (X-Linked-Etag for LFS files)."""
        return self.sha256 if self.lfs else self.blob_id


@dataclass(frozen=True)
class HubRepo:
    repo_id: str
    files: tuple[HubFile, ...]
    gated: bool = False
    branch: str = "main"

    @property
    def commit(self) -> str:
        """A stable commit id derived from the content, so the same build always has the same sha."""
        digest = hashlib.sha1()
        for item in sorted(self.files, key=lambda f: f.path):
            digest.update(f"{item.path}\0{item.blob_id}\n".encode())
        return digest.hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(item.size for item in self.files)

    def file(self, path: str) -> HubFile | None:
        return next((item for item in self.files if item.path == path), None)


@dataclass
class HubOptions:
    """What the next requests get; tests change these while the server runs."""

    # file bodies are sent at most this fast (None: as fast as possible)
    bytes_per_second: int | None = None
    # the next ``cut_count`` LFS file bodies stop after ``cut_after_bytes`` and the connection drops
    cut_after_bytes: int | None = None
    cut_count: int = 0
    # the size the API reports for every LFS file (None: the real size)
    advertised_lfs_size: int | None = None
    # the token a gated repository accepts
    token: str | None = None


@dataclass
class LoggedRequest:
    method: str
    path: str
    range: str | None
    status: int
    authorized: bool
    sent: int


@dataclass
class HubServer:
    """The stand-in, in a thread of the test process (``start``/``stop``) or standalone (``main``)."""

    repos: list[HubRepo]
    bind: str = "127.0.0.1"
    port: int = 0
    wheel_dir: Path | None = None
    options: HubOptions = field(default_factory=HubOptions)
    requests: list[LoggedRequest] = field(default_factory=list)
    request_log: Path | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        handler = type("BoundHubHandler", (HubHandler,), {"hub": self})
        self._server = ThreadingHTTPServer((self.bind, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def repo(self, repo_id: str) -> HubRepo | None:
        return next((repo for repo in self.repos if repo.repo_id == repo_id), None)

    def take_cut(self) -> int | None:
        """Bytes to send before cutting this body, or None; each cut is used once."""
        with self._lock:
            if self.options.cut_after_bytes is None or self.options.cut_count <= 0:
                return None
            self.options.cut_count -= 1
            return self.options.cut_after_bytes

    def log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.requests.append(entry)
            if self.request_log is not None:
                with self.request_log.open("a") as handle:
                    handle.write(json.dumps(entry.__dict__) + "\n")

    def file_requests(self, method: str = "GET") -> list[LoggedRequest]:
        """Logged requests for file contents (resolve URLs) with the given method."""
        with self._lock:
            return [r for r in self.requests if r.method == method and "/resolve/" in r.path]


class HubHandler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    server_version = "standin-hub/1"

    def log_message(self, format: str, *args: Any) -> None:  # the request log replaces it
        pass

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        self._sent = 0
        self._status = 500
        try:
            if path.startswith("/api/models/"):
                self._api(path[len("/api/models/"):], query, head)
            elif path.startswith("/simple/") or path.startswith("/wheels/"):
                self._index(path, head)
            elif "/resolve/" in path:
                self._resolve(path.lstrip("/"), head)
            else:
                self._error(404, "EntryNotFound", f"no route for {path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self.hub.log(LoggedRequest(
                method=self.command, path=path, range=self.headers.get("Range"),
                status=self._status, authorized=bool(self.headers.get("Authorization")),
                sent=self._sent))

    # --- the hub API ---------------------------------------------------------------------

    def _api(self, rest: str, query: dict[str, list[str]], head: bool) -> None:
        match = re.fullmatch(r"([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(?:/(.*))?)?", rest)
        if not match:
            self._error(404, "EntryNotFound", f"unknown API path {rest}")
            return
        repo_id, kind, revision, subpath = match.groups()
        repo = self.hub.repo(repo_id)
        if repo is None:
            self._error(401, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
            return
        if revision is not None and revision not in (repo.branch, repo.commit):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        if kind == "tree":
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            self._json(self._tree(repo, subpath or "", recursive), head)
        else:
            self._json(self._model_info(repo, files_metadata="blobs" in query), head)

    def _listed_size(self, item: HubFile) -> int:
        advertised = self.hub.options.advertised_lfs_size
        return advertised if item.lfs and advertised is not None else item.size

    def _lfs(self, item: HubFile) -> dict[str, Any]:
        return {"sha256": item.sha256, "size": self._listed_size(item), "pointerSize": 134}

    def _model_info(self, repo: HubRepo, files_metadata: bool) -> dict[str, Any]:
        siblings = []
        for item in repo.files:
            sibling: dict[str, Any] = {"rfilename": item.path}
            if files_metadata:
                sibling.update(size=self._listed_size(item), blobId=item.blob_id)
                if item.lfs:
                    sibling["lfs"] = self._lfs(item)
            siblings.append(sibling)
        return {
            "_id": repo.commit[:24], "id": repo.repo_id, "modelId": repo.repo_id,
            "author": repo.repo_id.split("/")[0], "sha": repo.commit,
            "lastModified": "2026-08-01T00:00:00.000Z", "private": False,
            "gated": "manual" if repo.gated else False, "disabled": False,
            "library_name": "transformers", "tags": ["transformers", "safetensors", "gpt_oss"],
            "pipeline_tag": "text-generation", "siblings": siblings,
        }

    def _tree(self, repo: HubRepo, subpath: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = subpath.strip("/") + "/" if subpath.strip("/") else ""
        entries: dict[str, dict[str, Any]] = {}
        for item in repo.files:
            if not item.path.startswith(prefix):
                continue
            rest = item.path[len(prefix):]
            if "/" in rest:
                folder = prefix + rest.split("/", 1)[0]
                entries.setdefault(folder, {"type": "directory", "oid": "0" * 40, "size": 0,
                                            "path": folder})
                if not recursive:
                    continue
            entry: dict[str, Any] = {"type": "file", "oid": item.blob_id,
                                     "size": self._listed_size(item), "path": item.path}
            if item.lfs:
                entry["lfs"] = {"oid": item.sha256, "size": self._listed_size(item),
                                "pointerSize": 134}
            entries[item.path] = entry
        return [entries[key] for key in sorted(entries)]

    # --- file contents ---------------------------------------------------------------------

    def _resolve(self, rest: str, head: bool) -> None:
        match = re.fullmatch(r"([^/]+/[^/]+)/resolve/([^/]+)/(.+)", rest)
        repo = self.hub.repo(match.group(1)) if match else None
        if match is None or repo is None:
            self._error(401, "RepoNotFound", "Repository Not Found")
            return
        revision, file_path = match.group(2), match.group(3)
        if revision not in (repo.branch, repo.commit):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return
        if repo.gated and not self._authorized():
            self._error(401, "GatedRepo",
                        f"Access to model {repo.repo_id} is restricted. You must have access to it "
                        "and be authenticated to access it. Please log in.")
            return
        item = repo.file(file_path)
        if item is None:
            self._error(404, "EntryNotFound", f"{file_path} does not exist", commit=repo.commit)
            return
        start = self._range_start(item.size)
        if start is None:
            self._status = 416
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{item.size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = item.content[start:]
        self._status = 206 if start else 200
        self.send_response(self._status)
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("ETag", f'"{item.blob_id}"')
        if item.lfs:
            self.send_header("X-Linked-Etag", f'"{item.sha256}"')
            self.send_header("X-Linked-Size", str(item.size))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{item.size - 1}/{item.size}")
        self.end_headers()
        if not head:
            self._send_body(body, cut=self.hub.take_cut() if item.lfs else None)

    def _authorized(self) -> bool:
        token = self.hub.options.token
        return token is not None and self.headers.get("Authorization") == f"Bearer {token}"

    def _range_start(self, size: int) -> int | None:
        header = self.headers.get("Range")
        if not header:
            return 0
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", header.strip())
        if not match or int(match.group(1)) >= size:
            return None
        return int(match.group(1))

    def _send_body(self, body: bytes, cut: int | None) -> None:
        limit = len(body) if cut is None else min(cut, len(body))
        rate = self.hub.options.bytes_per_second
        offset = 0
        while offset < limit:
            chunk = body[offset:min(offset + _CHUNK, limit)]
            self.wfile.write(chunk)
            self.wfile.flush()
            offset += len(chunk)
            self._sent = offset
            if rate:
                time.sleep(len(chunk) / rate)
        if cut is not None and limit < len(body):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- the wheel index -------------------------------------------------------------------

    def _index(self, path: str, head: bool) -> None:
        wheels = sorted(self.hub.wheel_dir.glob("*.whl")) if self.hub.wheel_dir else []
        if path.startswith("/wheels/"):
            name = path[len("/wheels/"):]
            match = next((wheel for wheel in wheels if wheel.name == name), None)
            if match is None:
                self._error(404, "EntryNotFound", f"no wheel {name}")
                return
            self._bytes(match.read_bytes(), "application/octet-stream", head)
            return
        project = path[len("/simple/"):].strip("/")
        by_project: dict[str, list[Path]] = {}
        for wheel in wheels:
            by_project.setdefault(_normalize(wheel.name.split("-", 1)[0]), []).append(wheel)
        if not project:
            links = [f'<a href="{name}/">{name}</a>' for name in sorted(by_project)]
        elif _normalize(project) in by_project:
            links = [f'<a href="../../wheels/{quote(wheel.name)}#sha256='
                     f'{hashlib.sha256(wheel.read_bytes()).hexdigest()}">{wheel.name}</a>'
                     for wheel in by_project[_normalize(project)]]
        else:
            self._error(404, "EntryNotFound", f"no project {project}")
            return
        page = "<!DOCTYPE html><html><body>\n" + "<br>\n".join(links) + "\n</body></html>\n"
        self._bytes(page.encode(), "text/html", head)

    # --- plumbing --------------------------------------------------------------------------

    def _json(self, document: Any, head: bool) -> None:
        self._bytes(json.dumps(document).encode(), "application/json", head)

    def _bytes(self, body: bytes, content_type: str, head: bool) -> None:
        self._status = 200
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
            self._sent = len(body)

    def _error(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        self._status = status
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- the tiny gpt-oss repository --------------------------------------------------------------


def safetensors_file(tensors: dict[str, tuple[str, list[int]]], seed: int) -> bytes:
    """A valid safetensors file: little-endian header length, JSON header, then tensor bytes."""
    itemsize = {"F32": 4, "BF16": 2, "U8": 1}
    rng = random.Random(seed)
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        count = itemsize[dtype]
        for dim in shape:
            count *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + count]}
        offset += count
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format aligns the data start to 8 bytes
    return struct.pack("<Q", len(encoded)) + encoded + rng.randbytes(offset)


def tiny_gpt_oss(repo_id: str = DEFAULT_REPO_ID, shard_bytes: int = DEFAULT_SHARD_BYTES,
                 gated: bool = False) -> HubRepo:
    """gpt-oss's repository layout in miniature: same file names, small real contents."""
    hidden = 64
    rows = max(1, shard_bytes // (hidden * 2))
    shards = {
        "model-00000-of-00001.safetensors": {
            "model.embed_tokens.weight": ("BF16", [rows, hidden]),
            "model.norm.weight": ("BF16", [hidden]),
        },
        "model-00001-of-00001.safetensors": {
            "lm_head.weight": ("BF16", [rows, hidden]),
            "model.layers.0.mlp.router.weight": ("BF16", [4, hidden]),
        },
    }
    files = [HubFile(name, safetensors_file(tensors, seed=index), lfs=True)
             for index, (name, tensors) in enumerate(shards.items())]
    weight_map = {tensor: name for name, tensors in shards.items() for tensor in tensors}
    config = {
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": hidden,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "vocab_size": rows, "num_local_experts": 4, "experts_per_token": 2,
        "intermediate_size": hidden, "max_position_embeddings": 4096, "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "mxfp4",
                                "modules_to_not_convert": ["model.layers.*.self_attn",
                                                           "model.embed_tokens", "lm_head"]},
    }
    vocab = {"<|endoftext|>": 0, "<|start|>": 1, "<|message|>": 2, "<|end|>": 3}
    vocab.update({chr(97 + i): 4 + i for i in range(26)})
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
        "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<|endoftext|>"},
    }
    text_files = {
        ".gitattributes": "*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": (f"# {repo_id.split('/')[1] if repo_id != DEFAULT_REPO_ID else 'gpt-oss-120b'} "
                      "(stand-in)\n\nA tiny repository with gpt-oss's layout, for tests.\n"),
        "config.json": json.dumps(config, indent=2),
        "generation_config.json": json.dumps({"bos_token_id": 1, "eos_token_id": [0, 3]}, indent=2),
        "tokenizer.json": json.dumps(tokenizer),
        "tokenizer_config.json": json.dumps({"model_max_length": 4096,
                                             "tokenizer_class": "PreTrainedTokenizerFast"}),
        "special_tokens_map.json": json.dumps({"eos_token": "<|end|>"}),
        "chat_template.jinja": "{% for m in messages %}<|start|>{{ m.role }}<|message|>"
                               "{{ m.content }}<|end|>{% endfor %}",
        "model.safetensors.index.json": json.dumps(
            {"metadata": {"total_size": sum(f.size for f in files)}, "weight_map": weight_map},
            indent=2),
        "original/config.json": json.dumps({"num_hidden_layers": 1, "hidden_size": hidden}),
    }
    files += [HubFile(path, text.encode()) for path, text in text_files.items()]
    return HubRepo(repo_id, tuple(sorted(files, key=lambda f: f.path)), gated=gated)


def parse_args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address to listen on: loopback, or a Docker bridge's gateway address")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--repo-id", default=DEFAULT_REPO_ID)
    parser.add_argument("--extra-repo", action="append", default=[], metavar="ORG/NAME",
                        help="also serve a small repository of the same layout under this id")
    parser.add_argument("--shard-bytes", type=int, default=DEFAULT_SHARD_BYTES)
    parser.add_argument("--token", help="gate the repository behind this token")
    parser.add_argument("--wheels", type=Path, help="serve these wheels as a PEP 503 index at /simple/")
    parser.add_argument("--bytes-per-second", type=int, help="throttle file bodies")
    parser.add_argument("--request-log", type=Path, help="append each request here as one JSON line")
    return parser.parse_args(list(argv) if argv is not None else None)


def main(argv: Iterable[str] | None = None) -> None:
    args = parse_args(argv)
    repo = tiny_gpt_oss(args.repo_id, args.shard_bytes, gated=bool(args.token))
    extra = [tiny_gpt_oss(repo_id, EXTRA_SHARD_BYTES) for repo_id in args.extra_repo]
    hub = HubServer([repo, *extra], bind=args.bind, port=args.port, wheel_dir=args.wheels,
                    options=HubOptions(token=args.token, bytes_per_second=args.bytes_per_second),
                    request_log=args.request_log).start()
    for served in (repo, *extra):
        print(f"stand-in hub for {served.repo_id} ({served.total_bytes} bytes, commit "
              f"{served.commit}) at {hub.endpoint}", file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        hub.stop()


if __name__ == "__main__":
    main()
