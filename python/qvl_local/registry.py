"""Pull models from an Ollama registry (the Docker registry v2 protocol) into the local store.

    GET {registry}/v2/{namespace}/{model}/manifests/{tag}     -> the manifest (config + layers)
    GET {registry}/v2/{namespace}/{model}/blobs/sha256:{hex}  -> each blob, often via a redirect to a CDN

A blob is written to `blobs/sha256-<hex>-qvl-partial` in parallel byte ranges, with the progress of each
range saved beside it (`...-qvl-partial.json`) so an interrupted pull resumes where it stopped. Only after
its sha256 verifies does it get its final name (an atomic rename). A lock file per blob makes concurrent
pulls of the same blob wait for each other instead of writing the same bytes twice.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from tqdm import tqdm

from .config import refuse_unsupported_single_file
from .errors import QvlError
from .store import (
    MAX_MANIFEST_BYTES,
    MANIFEST_MEDIA_TYPE,
    MODEL_MEDIA_TYPE,
    PROJECTOR_MEDIA_TYPE,
    Layer,
    Manifest,
    ModelName,
    ModelNotFoundError,
    ModelStore,
    check_digest,
    parse_manifest,
    parse_name,
    single_file_family,
    split_scheme,
)

DEFAULT_REGISTRY = "https://registry.ollama.ai"
DEFAULT_PART_SIZE = 64 << 20
DEFAULT_MAX_PARALLEL = 8
_CHUNK_SIZE = 1 << 20
# Range progress is saved at least this often, so a killed process refetches at most this much per range.
_SAVE_EVERY_BYTES = 8 << 20
_RETRYABLE_STATUSES = {408, 429, 500, 502, 503, 504}


class RegistryError(QvlError):
    """The registry could not be reached or answered something unusable."""


class RegistryAuthError(RegistryError):
    """The registry wants credentials (HTTP 401/403): private models are not supported."""


class DigestMismatchError(RegistryError):
    """A downloaded blob's sha256 is not the digest the manifest promised."""


class DiskFullError(QvlError):
    """Not enough free space in the model store for the download."""


class _TransientError(Exception):
    """A failure worth retrying (connection drop, timeout, 5xx, 429)."""


@dataclass(frozen=True)
class PullResult:
    name: ModelName
    model_path: Path | None  # the GGUF weights blob
    mmproj_path: Path | None  # the vision projector blob, if the model has one
    downloaded_bytes: int  # fetched over the network by this call
    reused_bytes: int  # already in the store (complete blobs or resumed ranges)


def pull(
    name: str,
    *,
    registry: str | None = None,
    models_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    part_size: int = DEFAULT_PART_SIZE,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
    retries: int = 5,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
) -> PullResult:
    """Download `[host/][namespace/]model[:tag]` into the Ollama-layout store and return where it is.

    `registry` is the base URL to fetch from (default: `https://<host of the name>`, i.e. the public
    Ollama registry); a name without a host is then stored under the registry's host. `progress` shows
    one bar per layer on stderr (default: only when stderr is a terminal). Blobs already in the store,
    whoever downloaded them, are not fetched again.
    """
    model_name, base_url = _locate(name, registry)
    store = ModelStore(models_dir)
    show_progress = progress_shown(progress)
    with httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0)),
        headers={"User-Agent": "qvl-local"},
        limits=httpx.Limits(max_connections=max_parallel + 2),
    ) as client:
        fetcher = _Fetcher(client, base_url, model_name, retries=retries, backoff_s=backoff_s)
        manifest = fetcher.manifest()
        blobs = list({blob.digest: blob for blob in manifest.blobs}.values())
        _check_free_space(store, [blob for blob in blobs if not store.has_blob(blob)])
        downloaded = 0
        for blob in blobs:  # the config first: it is small, and may say that the model cannot be loaded
            downloader = _BlobDownloader(fetcher, store, blob, part_size, max_parallel, show_progress)
            downloaded += downloader.run()
            if blob.digest == manifest.config.digest:
                _refuse_unloadable(model_name, manifest, store)
    store.write_manifest(model_name, manifest.raw)
    return PullResult(
        name=model_name,
        model_path=_layer_path(store, manifest, MODEL_MEDIA_TYPE),
        mmproj_path=_layer_path(store, manifest, PROJECTOR_MEDIA_TYPE),
        downloaded_bytes=downloaded,
        reused_bytes=manifest.total_size - downloaded,
    )


def _refuse_unloadable(name: ModelName, manifest: Manifest, store: ModelStore) -> None:
    """A ModelFormatError, before the large blobs are fetched, for a model whose config says it is in a
    single-file layout we cannot load (Ollama's own Qwen3-VL files)."""
    family = single_file_family(manifest, store.read_config(manifest))
    if family is not None:
        refuse_unsupported_single_file(f"the model {name.short}", family)


def progress_shown(progress: bool | None) -> bool:
    """Whether a pull with this `progress` setting draws progress bars: None means when stderr is a terminal."""
    return sys.stderr.isatty() if progress is None else progress


def _locate(name: str, registry: str | None) -> tuple[ModelName, str]:
    """The fully qualified name to store under, and the base URL to fetch from."""
    if registry is None:
        scheme, _ = split_scheme(name)
        model_name = parse_name(name)
        return model_name, f"{scheme or 'https'}://{model_name.host}"
    parts = urlsplit(registry)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
        raise RegistryError(f"registry must be a base URL like https://registry.ollama.ai, got {registry!r}")
    return parse_name(name, default_host=parts.netloc), f"{parts.scheme}://{parts.netloc}"


def _layer_path(store: ModelStore, manifest: Manifest, media_type: str) -> Path | None:
    layer = manifest.layer(media_type)
    return store.blob_path(layer.digest) if layer else None


def _check_free_space(store: ModelStore, missing: list[Layer]) -> None:
    """Fail before downloading anything when the blobs cannot fit (resumed bytes already count)."""
    store.blobs_dir.mkdir(parents=True, exist_ok=True)
    needed = 0
    for blob in missing:
        partial = _partial_path(store, blob)
        allocated = partial.stat().st_blocks * 512 if partial.exists() else 0
        needed += max(blob.size - allocated, 0)
    free = shutil.disk_usage(store.blobs_dir).free
    if needed > free:
        raise DiskFullError(
            f"not enough disk space in {store.blobs_dir}: the download needs {_human(needed)}, "
            f"{_human(free)} is free"
        )


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    raise AssertionError("unreachable")


def _partial_path(store: ModelStore, blob: Layer) -> Path:
    return store.blobs_dir / f"sha256-{check_digest(blob.digest)}-qvl-partial"


# ---------------------------------------------------------------------------------------------------
# HTTP


class _Fetcher:
    """Registry requests for one model, with retries and one clear error per HTTP failure."""

    def __init__(self, client: httpx.Client, base_url: str, name: ModelName, *, retries: int, backoff_s: float):
        self.client, self.name = client, name
        self.repository_url = f"{base_url}/v2/{name.namespace}/{name.model}"
        self.retries, self.backoff_s = retries, backoff_s

    def manifest(self) -> Manifest:
        url = f"{self.repository_url}/manifests/{self.name.tag}"

        def attempt() -> bytes:
            with self.client.stream("GET", url, headers={"Accept": MANIFEST_MEDIA_TYPE}) as response:
                self.check_status(response, f"manifest of {self.name.short}")
                return _read_capped(response, MAX_MANIFEST_BYTES, url)

        raw = self.with_retries(f"manifest of {self.name.short}", attempt)
        try:
            return parse_manifest(raw)
        except ValueError as exc:
            raise RegistryError(f"{url} returned an unusable manifest: {exc}") from None

    def blob_url(self, digest: str) -> str:
        return f"{self.repository_url}/blobs/{digest}"

    def with_retries(self, what: str, attempt: Callable[[], bytes]) -> bytes:
        for failures in range(self.retries + 1):
            try:
                return attempt()
            except (_TransientError, httpx.TransportError) as exc:
                if failures == self.retries:
                    raise RegistryError(f"{what}: {_describe(exc)} (gave up after {failures + 1} attempts)") from None
                self.wait_before_retry(failures)
        raise AssertionError("unreachable")

    def wait_before_retry(self, failures: int) -> None:
        time.sleep(min(self.backoff_s * 2**failures, 30.0))

    def check_status(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 300:
            return
        if status == 404:
            raise ModelNotFoundError(f"{what}: not found on {response.url.scheme}://{response.url.netloc.decode()} (HTTP 404)")
        if status in (401, 403):
            raise RegistryAuthError(
                f"{what}: the registry requires authentication (HTTP {status}); only public models can be pulled"
            )
        if status in _RETRYABLE_STATUSES:
            raise _TransientError(f"HTTP {status} from {response.url}")
        raise RegistryError(f"{what}: unexpected HTTP {status} from {response.url}")


def _read_capped(response: httpx.Response, limit: int, url: str) -> bytes:
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise RegistryError(f"{url}: response larger than {limit} bytes")
    return bytes(body)


def _layer_label(media_type: str) -> str:
    """'application/vnd.ollama.image.projector' -> 'projector'; the Docker config blob -> 'config'."""
    if media_type.startswith("application/vnd.ollama.image."):
        return media_type.rsplit(".", 1)[-1]
    return "config" if "container.image" in media_type else "blob"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------------
# Blob download: ranges, resume, verification


@dataclass
class _Range:
    offset: int
    size: int
    done: int = 0

    @property
    def remaining(self) -> int:
        return self.size - self.done

    @property
    def next_byte(self) -> int:
        return self.offset + self.done


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """flock on a lock file that is deleted on release. A waiter that wakes up holding a file that was
    deleted meanwhile retries on the new one, so two holders can never coexist."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        os.unlink(path)
        os.close(fd)


class _BlobDownloader:
    """Fetch one blob into the store: reuse, resume, download ranges in parallel, verify, rename."""

    def __init__(
        self,
        fetcher: _Fetcher,
        store: ModelStore,
        blob: Layer,
        part_size: int,
        max_parallel: int,
        show_progress: bool,
    ) -> None:
        self.fetcher, self.store, self.blob = fetcher, store, blob
        self.part_size, self.max_parallel = max(part_size, 1), max(max_parallel, 1)
        self.show_progress = show_progress
        self.final_path = store.blob_path(blob.digest)
        self.partial_path = _partial_path(store, blob)
        self.state_path = self.partial_path.with_name(self.partial_path.name + ".json")
        self.lock = threading.Lock()
        self.failed = threading.Event()  # set by the first failing range so the others stop early
        self.downloaded = 0
        self.unsaved = 0

    def run(self) -> int:
        """Make the blob present under its final name; returns the bytes fetched over the network."""
        if self.store.has_blob(self.blob):
            return 0
        lock_path = self.partial_path.with_name(self.final_path.name + "-qvl-lock")
        with _exclusive_lock(lock_path):
            if self.store.has_blob(self.blob):  # another pull finished it while we waited
                return 0
            ranges = self._resume_or_plan()
            fd = os.open(self.partial_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.ftruncate(fd, self.blob.size)
                with self._progress_bar(ranges) as bar:
                    self._fetch_ranges(fd, ranges, bar)
            finally:
                os.close(fd)
            self._verify_and_publish()
        return self.downloaded

    def _progress_bar(self, ranges: list[_Range]) -> tqdm:
        return tqdm(
            total=self.blob.size,
            initial=sum(r.done for r in ranges),
            desc=f"{_layer_label(self.blob.media_type)} {self.blob.digest[7:19]}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not self.show_progress,
            file=sys.stderr,
        )

    def _resume_or_plan(self) -> list[_Range]:
        saved = self._load_state()
        if saved is not None:
            return saved
        self.partial_path.unlink(missing_ok=True)
        size, step = self.blob.size, self.part_size
        return [_Range(offset, min(step, size - offset)) for offset in range(0, size, step)] or [_Range(0, 0)]

    def _load_state(self) -> list[_Range] | None:
        """Saved range progress, when it describes this blob and the partial file is still there."""
        try:
            state = json.loads(self.state_path.read_text())
            ranges = [_Range(int(o), int(s), int(d)) for o, s, d in state["ranges"]]
            partial_size = self.partial_path.stat().st_size
        except (OSError, ValueError, KeyError, TypeError):
            return None
        covers_blob = all(a.offset + a.size == b.offset for a, b in zip(ranges, ranges[1:]))
        consistent = (
            state.get("digest") == self.blob.digest
            and partial_size == self.blob.size
            and ranges
            and ranges[0].offset == 0
            and ranges[-1].offset + ranges[-1].size == self.blob.size
            and covers_blob
            and all(0 <= r.done <= r.size for r in ranges)
        )
        return ranges if consistent else None

    def _save_state(self, ranges: list[_Range]) -> None:
        state = {"digest": self.blob.digest, "ranges": [[r.offset, r.size, r.done] for r in ranges]}
        temporary = self.state_path.with_name(self.state_path.name + ".tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self.state_path)
        self.unsaved = 0

    def _fetch_ranges(self, fd: int, ranges: list[_Range], bar: tqdm) -> None:
        pending = [r for r in ranges if r.remaining > 0]
        try:
            with ThreadPoolExecutor(max_workers=min(self.max_parallel, max(len(pending), 1))) as pool:
                futures = [pool.submit(self._fetch_range, fd, r, ranges, bar) for r in pending]
                errors = [f.exception() for f in futures]
        finally:
            # Whatever happened, what reached the disk is recorded, so the next pull resumes from it.
            with self.lock:
                self._save_state(ranges)
        first_error = next((e for e in errors if e is not None), None)
        if first_error is not None:
            raise first_error

    def _fetch_range(self, fd: int, part: _Range, ranges: list[_Range], bar: tqdm) -> None:
        url = self.fetcher.blob_url(self.blob.digest)
        what = f"blob {self.blob.digest[:19]}"
        failures = 0
        while part.remaining > 0 and not self.failed.is_set():
            done_before = part.done
            try:
                self._stream_range(url, what, fd, part, ranges, bar)
                if part.remaining > 0 and not self.failed.is_set():
                    raise _TransientError(f"connection closed with {part.remaining} bytes of the range missing")
            except (_TransientError, httpx.TransportError) as exc:
                # A connection that made progress before dropping starts the count of failures afresh.
                failures = 1 if part.done > done_before else failures + 1
                if failures > self.fetcher.retries:
                    self.failed.set()
                    raise RegistryError(f"{what}: {_describe(exc)} (gave up after {failures} attempts)") from None
                self.fetcher.wait_before_retry(failures - 1)
            except BaseException:
                self.failed.set()
                raise

    def _stream_range(self, url: str, what: str, fd: int, part: _Range, ranges: list[_Range], bar: tqdm) -> None:
        start, end = part.next_byte, part.offset + part.size - 1
        headers = {"Range": f"bytes={start}-{end}"}
        with self.fetcher.client.stream("GET", url, headers=headers) as response:
            self.fetcher.check_status(response, what)
            skip = self._bytes_before_range(response, start)
            # No chunk_size: httpx would hold back a partial chunk and lose it when the connection drops.
            for chunk in response.iter_bytes():
                if self.failed.is_set():
                    break
                if skip:  # a server that ignores Range sends the blob from its first byte
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                chunk = chunk[: part.remaining]
                if chunk:
                    self._write(fd, part, chunk, ranges, bar)
                if part.remaining == 0:
                    break

    def _bytes_before_range(self, response: httpx.Response, start: int) -> int:
        if response.status_code == 200:
            return start
        content_range = response.headers.get("Content-Range", "")
        try:
            unit, _, span = content_range.partition(" ")
            first, _, rest = span.partition("-")
            total = rest.partition("/")[2]
            valid = unit == "bytes" and int(first) == start and total in ("*", str(self.blob.size))
        except ValueError:
            valid = False
        if not valid:
            raise RegistryError(
                f"{response.url}: asked for bytes from {start} of {self.blob.size}, got Content-Range {content_range!r}"
            )
        return 0

    def _write(self, fd: int, part: _Range, chunk: bytes, ranges: list[_Range], bar: tqdm) -> None:
        try:
            os.pwrite(fd, chunk, part.next_byte)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(f"disk full while writing {self.partial_path}") from None
            raise
        with self.lock:
            part.done += len(chunk)
            self.downloaded += len(chunk)
            self.unsaved += len(chunk)
            bar.update(len(chunk))
            if self.unsaved >= _SAVE_EVERY_BYTES:
                self._save_state(ranges)

    def _verify_and_publish(self) -> None:
        sha = hashlib.sha256()
        with open(self.partial_path, "rb") as file:
            while block := file.read(_CHUNK_SIZE):
                sha.update(block)
        actual = f"sha256:{sha.hexdigest()}"
        if actual != self.blob.digest:
            # Resuming corrupt bytes cannot help: start the next attempt from scratch.
            self.partial_path.unlink(missing_ok=True)
            self.state_path.unlink(missing_ok=True)
            raise DigestMismatchError(
                f"blob {self.blob.digest} downloaded with digest {actual}: the download was corrupted "
                f"or the registry is inconsistent; nothing was kept, pull again"
            )
        os.replace(self.partial_path, self.final_path)
        self.state_path.unlink(missing_ok=True)
