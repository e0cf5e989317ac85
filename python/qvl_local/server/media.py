"""The images and videos of a request, as bytes or a local path the model reads: data URIs, http(s)
downloads and files under the media folder, each checked against the operator's limits.

Decoding is `preprocess.py`'s and `video.py`'s (one data-URI decoder, one image header reader); this
module maps their errors to the API's codes and keeps every read inside the limits.
"""
from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path

from ..preprocess import MediaError, MediaTooLargeError, decode_data_uri, describe_source, download, image_size
from .chat_request import MediaRef
from .errors import APIError
from .settings import ServerSettings


def read_image(ref: MediaRef, settings: ServerSettings) -> bytes:
    """The encoded image, checked against the byte and pixel limits."""
    data = _fetch_image(ref, settings)
    try:
        width, height = image_size(data)
    except MediaError as error:
        code = "image_too_large" if isinstance(error, MediaTooLargeError) else "invalid_image"
        raise APIError(400, f"{ref.param}: {error}", param=ref.param, code=code) from None
    if width * height > settings.max_image_pixels:
        raise APIError(400, f"{ref.param}: the image is {width}x{height}, more than the {settings.max_image_pixels} "
                       "pixels allowed", param=ref.param, code="image_too_large")
    return data


def _fetch_image(ref: MediaRef, settings: ServerSettings) -> bytes:
    limit = settings.max_image_bytes
    try:
        if ref.url.startswith("data:"):
            return decode_data_uri(ref.url, "image", max_bytes=limit)
        if ref.url.startswith(("http://", "https://")):
            return download(ref.url, max_bytes=limit, timeout=settings.download_timeout_s)
        if ref.url.startswith("file:"):
            return _read_local_file(local_media_path(ref, settings), limit)
    except MediaError as error:
        code = "image_too_large" if isinstance(error, MediaTooLargeError) else "invalid_image_url"
        raise APIError(400, f"{ref.param}: {error}", param=ref.param, code=code) from None
    raise _bad_url(ref, "use a data:image/...;base64 URI, an http(s) URL or a file:// URL")


def read_video(ref: MediaRef, settings: ServerSettings) -> str:
    """A video's file under the media folder."""
    return str(local_media_path(ref, settings))


def local_media_path(ref: MediaRef, settings: ServerSettings) -> Path:
    """The file a file:// URL names, which must lie inside the media folder once links and `..` resolve."""
    if settings.media_dir is None:
        raise APIError(400, f"{ref.param}: this server reads no local files (start it with --media-dir to allow "
                       "file:// URLs under one folder)", param=ref.param, code="local_files_disabled")
    parsed = urllib.parse.urlparse(ref.url)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise APIError(400, f"{ref.param}: expected a file:// URL, got {describe_source(ref.url)}", param=ref.param,
                       code=f"invalid_{ref.kind}_url")
    path = Path(urllib.request.url2pathname(parsed.path)).resolve()
    if not path.is_relative_to(settings.media_dir) or not path.is_file():
        raise APIError(400, f"{ref.param}: no such file in the media folder: {describe_source(ref.url)}", param=ref.param,
                       code="file_not_found")
    return path


def _read_local_file(path: Path, limit: int) -> bytes:
    with path.open("rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise MediaTooLargeError(f"the image is larger than {limit} bytes")
    return data


def _bad_url(ref: MediaRef, hint: str) -> APIError:
    return APIError(400, f"{ref.param}: unsupported {ref.kind} URL {describe_source(ref.url)}; {hint}", param=ref.param,
                    code=f"invalid_{ref.kind}_url")
