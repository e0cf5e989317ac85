"""A real Ollama-style registry for tests: a threaded HTTP server on 127.0.0.1 (ephemeral port).

It serves `/v2/<namespace>/<model>/manifests/<tag>` and `/v2/<namespace>/<model>/blobs/sha256:<hex>`
(with HTTP Range), built from the fixture GGUFs, and can inject the faults a real network has: a
connection cut mid-body, corrupted bytes, error statuses, redirects of blobs to another server.
Every request is logged, and the body bytes sent per blob are counted, so tests can prove what was
(not) downloaded. With `tags_ignore_case`, it answers a tag in any case, as Hugging Face's
Ollama-compatible endpoint does for quantization tags (`:Q4_K_M`, `:q4_k_m`).
"""
from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
PROJECTOR_MEDIA_TYPE = "application/vnd.ollama.image.projector"
TEMPLATE_MEDIA_TYPE = "application/vnd.ollama.image.template"
PARAMS_MEDIA_TYPE = "application/vnd.ollama.image.params"

# Ollama's template layers are Go templates (this one is the shape of its qwen2.5vl template's start).
FIXTURE_TEMPLATE = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"
FIXTURE_PARAMS = {"stop": ["<|im_end|>"], "temperature": 0.1}

_MANIFEST_ROUTE = re.compile(r"/v2/([^/]+)/([^/]+)/manifests/([^/]+)")
_BLOB_ROUTE = re.compile(r"/v2/([^/]+)/([^/]+)/blobs/(sha256:[0-9a-f]{64})")
_SEND_CHUNK = 256 << 10


@lru_cache(maxsize=None)
def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            sha.update(block)
    return f"sha256:{sha.hexdigest()}"


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int
    path: Path | None = None  # big blobs are read from their fixture file
    data: bytes | None = None  # small ones live in memory

    def read(self, start: int, length: int) -> bytes:
        if self.data is not None:
            return self.data[start : start + length]
        with open(self.path, "rb") as file:
            file.seek(start)
            return file.read(length)


def bytes_blob(data: bytes) -> Blob:
    return Blob(digest=f"sha256:{hashlib.sha256(data).hexdigest()}", size=len(data), data=data)


def file_blob(path: Path) -> Blob:
    return Blob(digest=file_digest(path), size=path.stat().st_size, path=path)


@dataclass(frozen=True)
class PublishedModel:
    """What the server serves for one name; `layers` maps a media type to its blob."""

    manifest: bytes
    config: Blob
    layers: dict[str, Blob]

    @property
    def total_size(self) -> int:
        return self.config.size + sum(blob.size for blob in self.layers.values())


@dataclass
class Faults:
    """Switches for the next requests. Each one-shot list/counter is consumed as it fires."""

    status: int | None = None  # every request is answered with this status (404, 401, ...)
    blob_statuses: list[int] = field(default_factory=list)  # the next blob requests get these statuses
    cut_after: int | None = None  # blob bodies longer than this stop there and the connection closes...
    cuts: int = 1  # ...for this many responses
    corrupt: set[str] = field(default_factory=set)  # digests served with one byte flipped
    redirect_blobs_to: str | None = None  # base URL of another server: blob requests get a 307 there
    ignore_range: bool = False  # answer 200 with the whole blob even when a Range is asked


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    status: int


class RegistryServer:
    """Start with `with RegistryServer() as server:`; `server.url` is its base URL."""

    def __init__(self, host: str = "127.0.0.1", *, tags_ignore_case: bool = False) -> None:
        self.tags_ignore_case = tags_ignore_case
        self.faults = Faults()
        self.requests: list[Request] = []
        self.blob_bytes_sent: dict[str, int] = {}
        self._models: dict[tuple[str, str, str], PublishedModel] = {}
        self._blobs: dict[str, Blob] = {}
        self._lock = threading.Lock()
        self._httpd = _QuietServer((host, 0), _handler_for(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def netloc(self) -> str:
        return self.url.removeprefix("http://")

    def __enter__(self) -> RegistryServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- content --------------------------------------------------------------------------------
    def publish(self, name: str, config: Blob, layers: list[tuple[str, Blob]]) -> PublishedModel:
        """Serve `namespace/model:tag` with these blobs, under a manifest built like Ollama's."""
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": kind, "digest": blob.digest, "size": blob.size} for kind, blob in layers],
        }
        return self.publish_manifest(name, json.dumps(manifest).encode(), [config] + [b for _, b in layers])

    def publish_manifest(self, name: str, manifest: bytes, blobs: list[Blob]) -> PublishedModel:
        """Serve raw manifest bytes (which may be hostile) and the given blobs."""
        repository, _, tag = name.partition(":")
        namespace, _, model = repository.partition("/")
        config, *rest = blobs
        published = PublishedModel(manifest=manifest, config=config, layers={})
        try:
            kinds = [layer["mediaType"] for layer in json.loads(manifest)["layers"]]
            published = PublishedModel(manifest=manifest, config=config, layers=dict(zip(kinds, rest)))
        except (ValueError, KeyError, TypeError):
            pass  # a deliberately broken manifest: served as is
        with self._lock:
            self._models[self.model_key(namespace, model, tag)] = published
            self._blobs.update({blob.digest: blob for blob in blobs})
        return published

    def model_key(self, namespace: str, model: str, tag: str) -> tuple[str, str, str]:
        return namespace, model, tag.casefold() if self.tags_ignore_case else tag

    def publish_fixture_model(self, fixtures: Path, name: str, *, gguf: str = "qwen2vl-tiny-Q8_0.gguf") -> PublishedModel:
        """The tiny Qwen2-VL fixture as an Ollama model: weights, mmproj, template and params."""
        return self.publish_model(name, fixtures / "gguf" / gguf, fixtures / "gguf" / "mmproj-qwen2vl-tiny-F16.gguf")

    def publish_model(self, name: str, model_file: Path, projector_file: Path | None = None, *,
                      template: str | None = FIXTURE_TEMPLATE, family: str = "qwen2vl") -> PublishedModel:
        """A GGUF (and its projector, if any) as an Ollama model, with a template layer (Go, like
        Ollama's, unless another text is given) and params."""
        model = file_blob(model_file)
        projector = file_blob(projector_file) if projector_file is not None else None
        quant = model_file.name.removesuffix(".gguf").rsplit("-", 1)[-1]
        config = bytes_blob(
            json.dumps(
                {
                    "model_format": "gguf",
                    "model_family": family,
                    "model_families": [family, "clip"] if projector else [family],
                    "model_type": "40M",
                    "file_type": quant,
                    "architecture": "amd64",
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": [b.digest for b in (model, projector) if b]},
                }
            ).encode()
        )
        layers = [(MODEL_MEDIA_TYPE, model)]
        if projector is not None:
            layers.append((PROJECTOR_MEDIA_TYPE, projector))
        if template is not None:
            layers.append((TEMPLATE_MEDIA_TYPE, bytes_blob(template.encode())))
        layers.append((PARAMS_MEDIA_TYPE, bytes_blob(json.dumps(FIXTURE_PARAMS).encode())))
        return self.publish(name, config, layers)

    # -- what happened --------------------------------------------------------------------------
    def blob_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if "/blobs/" in r.path]

    def total_blob_bytes_sent(self) -> int:
        with self._lock:
            return sum(self.blob_bytes_sent.values())

    # -- request handling (called from the handler threads) ------------------------------------
    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _count_sent(self, digest: str, size: int) -> None:
        with self._lock:
            self.blob_bytes_sent[digest] = self.blob_bytes_sent.get(digest, 0) + size

    def _take_blob_status(self) -> int | None:
        with self._lock:
            return self.faults.blob_statuses.pop(0) if self.faults.blob_statuses else None

    def _take_cut(self, body_length: int) -> int | None:
        with self._lock:
            cut_after = self.faults.cut_after
            if cut_after is None or self.faults.cuts <= 0 or body_length <= cut_after:
                return None
            self.faults.cuts -= 1
            return self.faults.cut_after


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-response is what the fault tests do; anything else is still shown.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`bytes=a-b` / `bytes=a-` -> (first, last) inclusive; None when absent or unsatisfiable."""
    match = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
    if not match:
        return None
    first = int(match.group(1))
    last = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
    return (first, last) if first <= last else None


def _handler_for(server: RegistryServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            faults = server.faults
            if faults.status is not None:
                return self._reply_status(faults.status)
            if match := _MANIFEST_ROUTE.fullmatch(self.path):
                return self._manifest(match.groups())
            if match := _BLOB_ROUTE.fullmatch(self.path):
                return self._blob(match.group(3))
            self._reply_status(404)

        def _manifest(self, key: tuple[str, ...]) -> None:
            published = server._models.get(server.model_key(*key))
            if published is None:
                return self._reply_status(404)
            self._record(200)
            self.send_response(200)
            self.send_header("Content-Type", MANIFEST_MEDIA_TYPE)
            self.send_header("Content-Length", str(len(published.manifest)))
            self.end_headers()
            self.wfile.write(published.manifest)

        def _blob(self, digest: str) -> None:
            faults = server.faults
            status = server._take_blob_status()
            if status is not None:
                return self._reply_status(status)
            if faults.redirect_blobs_to:
                self._record(307)
                self.send_response(307)
                self.send_header("Location", f"{faults.redirect_blobs_to}{self.path}")
                self.send_header("Content-Length", "0")
                return self.end_headers()
            blob = server._blobs.get(digest)
            if blob is None:
                return self._reply_status(404)
            wanted = None if faults.ignore_range else _parse_range(self.headers.get("Range"), blob.size)
            first, last = wanted if wanted else (0, blob.size - 1)
            status = 206 if wanted else 200
            self._record(status)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(last - first + 1))
            if wanted:
                self.send_header("Content-Range", f"bytes {first}-{last}/{blob.size}")
            self.end_headers()
            self._send_body(blob, first, last, corrupt=digest in faults.corrupt, cut_after=server._take_cut(last - first + 1))

        def _send_body(self, blob: Blob, first: int, last: int, *, corrupt: bool, cut_after: int | None) -> None:
            end = last + 1 if cut_after is None else min(last + 1, first + cut_after)
            flip_at = blob.size // 2
            position = first
            while position < end:
                data = bytearray(blob.read(position, min(_SEND_CHUNK, end - position)))
                if corrupt and position <= flip_at < position + len(data):
                    data[flip_at - position] ^= 0xFF
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client hung up (e.g. stopped early)
                    return
                server._count_sent(blob.digest, len(data))
                position += len(data)
            if cut_after is not None:
                # Content-Length promised more: closing now is a connection cut mid-body.
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        def _reply_status(self, status: int) -> None:
            self._record(status)
            body = json.dumps({"errors": [{"code": str(status), "message": "injected"}]}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self, status: int) -> None:
            server._record(Request(self.command, self.path, self.headers.get("Range"), status))

    return Handler
