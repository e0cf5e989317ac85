"""Images to the arrays the Qwen2-VL vision tower takes.

The pipeline is the one of HF's ``Qwen2VLImageProcessorPil`` (the classic PIL path, which is also
what qwen-vl-utils does): ``smart_resize`` picks a size that is a multiple of patch * merge (28) with
an area inside the pixel budget, PIL resizes the uint8 RGB image with BICUBIC, values are rescaled by
1/255 and normalized with the CLIP mean/std, and the result is cut into 14x14 patches laid out the way
the vision tower expects them (2x2 merge windows in raster order).
"""
from __future__ import annotations

import base64
import binascii
import io
import math
import urllib.parse
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import httpx
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from qvl_local.errors import QvlError

# The model's budget, from the Qwen2-VL preprocessor_config.json (4 to 16384 tokens of 28x28 px).
DEFAULT_MIN_PIXELS = 3136
DEFAULT_MAX_PIXELS = 12845056
# CLIP normalization, the values every Qwen2-VL preprocessor_config.json carries.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_ASPECT_RATIO = 200

# Refuse to decode anything larger (a decompression bomb guard: 2**27 px is 384 MiB of RGB).
MAX_DECODE_PIXELS = 2**27
# Downloads: generous for any real photo, small enough to not exhaust memory.
MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 30.0
EXIF_ORIENTATION = 0x0112
TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height

ImageSource = Union[str, Path, bytes, bytearray, memoryview, Image.Image, np.ndarray]


class MediaError(QvlError, ValueError):
    """An image or video could not be read: missing, corrupt, unsupported or too large."""


class MediaTooLargeError(MediaError):
    """An image or video over a size limit (bytes or pixels)."""


class MediaWarning(UserWarning):
    """A media file was read, but not all of it (a truncated video)."""


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = 56 * 56,
    max_pixels: int = 14 * 14 * 4 * 1280,
) -> tuple[int, int]:
    """The (height, width) to resize to: multiples of ``factor``, area within [min, max] pixels.

    Same arithmetic as the reference (round half to even, then floor when shrinking or ceil when
    growing by the common factor ``beta``), so sizes and token counts match HF exactly.
    """
    return _fit_pixel_range(height, width, factor, min_pixels, max_pixels)


# ----------------------------------------------------------------------------------------------
# Loading


def load_image(source: ImageSource, *, max_pixels: int | None = None) -> Image.Image:
    """Open an image from any supported source as an RGB PIL image, upright (EXIF applied).

    ``source``: a path (str or Path), a ``file://`` or ``http(s)://`` URL, a ``data:image/...;base64,``
    URI, encoded bytes, a PIL image, or a uint8 array (HxW, HxWx3 or HxWx4).
    ``max_pixels``: when given, a large JPEG is decoded at a reduced DCT scale (still at least the
    size it will be resized to), so an oversized photo is never decoded at full size.
    Raises MediaError naming the source when it cannot be read.
    """
    label = describe_source(source)
    if isinstance(source, Image.Image):
        image = source
        _check_not_empty(image, label)
    elif isinstance(source, np.ndarray):
        image = _image_from_array(source, label)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        image = _open_encoded(io.BytesIO(bytes(source)), label, max_pixels)
    elif isinstance(source, (str, Path)):
        image = _open_encoded(_read_string_source(source, label), label, max_pixels)
    else:
        raise MediaError(f"unsupported image source type {type(source).__name__}")
    try:
        image.load()  # decode now, so corrupt or truncated data fails here with the source named
        rgb = to_rgb(ImageOps.exif_transpose(image))
    except (OSError, ValueError, SyntaxError) as exc:  # PIL reports truncated/corrupt data lazily
        if image is not source:
            image.close()
        raise MediaError(f"cannot decode image {label}: {exc}") from exc
    if image is not source and rgb is not image:
        image.close()  # release the file handle of what we opened (multi-frame files keep one)
    return rgb


def _check_not_empty(image: Image.Image, label: str) -> None:
    if image.width == 0 or image.height == 0:
        raise MediaError(f"image {label} is empty ({image.width}x{image.height} pixels)")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparent pixels composited on white (qwen-vl-utils does this for RGBA).

    Other modes carrying transparency (LA, PA, P with a transparent index) go through RGBA first
    so they are treated the same way, instead of showing whatever color sits under the alpha.
    """
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    composited = Image.new("RGB", rgba.size, (255, 255, 255))
    composited.paste(rgba, mask=rgba.getchannel("A"))
    return composited


def describe_source(source: object) -> str:
    """A short name for error messages (never a whole data URI or byte string)."""
    if isinstance(source, (str, Path)):
        text = str(source)
        return repr(text if len(text) <= 80 else text[:77] + "...")
    if isinstance(source, np.ndarray):
        return f"<array {source.dtype} {source.shape}>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    return f"<{type(source).__name__}>"


def _read_string_source(source: str | Path, label: str) -> io.BytesIO | Path:
    """Resolve a path or URL string to something PIL can open."""
    text = str(source)
    if isinstance(source, str):
        if text.startswith("data:"):
            return io.BytesIO(decode_data_uri(text, "image"))
        if text.startswith(("http://", "https://")):
            return io.BytesIO(download(text))
        if text.startswith("file://"):
            text = urllib.request.url2pathname(urllib.parse.urlparse(text).path)
    path = Path(text)
    if not path.is_file():
        raise MediaError(f"image file not found: {label}")
    return path


def decode_data_uri(uri: str, kind: str, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a `data:<kind>/...;base64,` URI (kind "image" or "video"). Raises MediaError for
    anything else, MediaTooLargeError when the data is over `max_bytes` (known before decoding)."""
    label = describe_source(uri)
    header, sep, payload = uri.partition(",")
    if not sep or not header.startswith(f"data:{kind}/") or not header.endswith(";base64"):
        raise MediaError(f"expected a data:{kind}/...;base64, URI, got {label}")
    if max_bytes is not None and len(payload) // 4 * 3 > max_bytes + 2:  # base64: 3 bytes per 4 characters
        raise MediaTooLargeError(f"the {kind} in {label} is larger than {max_bytes} bytes")
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise MediaError(f"invalid base64 in data URI {label}: {exc}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise MediaTooLargeError(f"the {kind} in {label} is larger than {max_bytes} bytes")
    return data


def download(url: str, *, max_bytes: int = MAX_DOWNLOAD_BYTES, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """GET ``url`` into memory, refusing bodies over ``max_bytes``; failures become MediaError."""
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            response.raise_for_status()
            chunks = []
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise MediaTooLargeError(f"download of {url!r} exceeds {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise MediaError(f"cannot download {url!r}: {exc}") from exc


def _open_encoded(stream: io.BytesIO | Path, label: str, max_pixels: int | None) -> Image.Image:
    """Open encoded image data lazily (header only) and check its size before any decoding."""
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel cap below; PIL's own warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except Image.DecompressionBombError as exc:
        raise MediaTooLargeError(f"image {label} is too large to decode: {exc}") from exc
    except UnidentifiedImageError:  # its message names the stream object, not the input
        raise MediaError(f"cannot decode image {label}: not a supported image format") from None
    except (OSError, ValueError) as exc:
        raise MediaError(f"cannot decode image {label}: not a supported image format ({exc})") from exc
    width, height = image.size
    if width * height > MAX_DECODE_PIXELS:
        image.close()
        raise MediaTooLargeError(
            f"image {label} is {width}x{height}, above the {MAX_DECODE_PIXELS} pixel decode limit"
        )
    if max_pixels is not None:
        _draft_to_budget(image, max_pixels)
    return image


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image data as the model will see it (EXIF rotation applied), from
    the header alone. Raises MediaError (MediaTooLargeError past the decode limit)."""
    with _open_encoded(io.BytesIO(data), describe_source(data), None) as image:
        width, height = image.size
        orientation = image.getexif().get(EXIF_ORIENTATION)
    return (height, width) if orientation in TRANSPOSED_ORIENTATIONS else (width, height)


def _image_from_array(array: np.ndarray, label: str) -> Image.Image:
    if array.dtype != np.uint8 or not (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    ):
        raise MediaError(f"image arrays must be uint8 HxW, HxWx3 or HxWx4, got {label}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    image = Image.fromarray(np.ascontiguousarray(array))
    _check_not_empty(image, label)
    return image


def _draft_to_budget(image: Image.Image, max_pixels: int) -> None:
    """Let the JPEG decoder shrink by 1/2, 1/4 or 1/8 while staying at or above the target size.

    The target is what smart_resize will ask for (it floors below ``size / beta``), so the bicubic
    resize afterwards still only shrinks.
    """
    width, height = image.size
    if image.format != "JPEG" or width * height <= max_pixels:
        return
    beta = math.sqrt(width * height / max_pixels)
    image.draft(image.mode, (math.ceil(width / beta), math.ceil(height / beta)))


# ----------------------------------------------------------------------------------------------
# Resizing, normalization and patches


def resize_to_budget(
    image: Image.Image,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    resized_height: int | None = None,
    resized_width: int | None = None,
    factor: int = 28,
) -> Image.Image:
    """Resize with PIL BICUBIC to the smart_resize size (or to an explicit, factor-rounded size)."""
    width, height = image.size
    if (resized_height is None) != (resized_width is None):
        raise ValueError("resized_height and resized_width must be given together")
    if resized_height is not None:
        # qwen-vl-utils rounds an explicit size with the default budget, ignoring min/max_pixels.
        target_h, target_w = smart_resize(
            resized_height, resized_width, factor, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS
        )
    else:
        target_h, target_w = smart_resize(
            height,
            width,
            factor,
            DEFAULT_MIN_PIXELS if min_pixels is None else min_pixels,
            DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
        )
    return image.resize((target_w, target_h), resample=Image.Resampling.BICUBIC)


def video_frame_size(
    num_frames: int,
    height: int,
    width: int,
    factor: int,
    temporal_patch_size: int,
    min_pixels: float,
    max_pixels: float,
) -> tuple[int, int]:
    """The (height, width) of every frame of a video whose pixel range bounds ALL its frames together
    (HF's Qwen3-VL video processor): smart_resize's arithmetic on t * h * w, t rounded to whole
    temporal patches for the bounds and the frames as they are for the scale."""
    t_bar = round(num_frames / temporal_patch_size) * temporal_patch_size
    return _fit_pixel_range(height, width, factor, min_pixels, max_pixels, frames=num_frames, rounded_frames=t_bar)


def _fit_pixel_range(height: int, width: int, factor: int, min_pixels: float, max_pixels: float,
                     frames: int = 1, rounded_frames: int = 1) -> tuple[int, int]:
    """smart_resize's arithmetic: sides rounded to multiples of ``factor``; when rounded_frames frames of
    that size leave [min, max] pixels, both sides scaled by the common factor ``beta`` of the ``frames``
    actual frames (floor when shrinking, ceil when growing)."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, "
            f"got {max(height, width) / min(height, width)}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if rounded_frames * h_bar * w_bar > max_pixels:
        beta = math.sqrt(frames * height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif rounded_frames * h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (frames * height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def check_sizes(label: str, **sizes: int | None) -> None:
    """Each given size setting (min_pixels, max_pixels, resized_height, ...) of the input `label`
    names is a positive integer."""
    for name, value in sizes.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise MediaError(f"{label}: {name} must be a positive integer, got {value!r}")


def _resize_named(label: str, image: Image.Image, **settings) -> Image.Image:
    """resize_to_budget, with its errors (an extreme aspect ratio) naming the input."""
    try:
        return resize_to_budget(image, **settings)
    except ValueError as error:
        raise MediaError(f"{label}: {error}") from None


def normalize(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 [..., H, W, 3] -> float32 (x / 255 - mean) / std, with the reference's rounding.

    HF rescales in float64 then casts to float32, and normalizes in float32; doing the same keeps
    our values within a float32 ulp of theirs.
    """
    scaled = (pixels.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)
    return (scaled - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)


def patchify(
    frames: np.ndarray, *, patch_size: int = 14, temporal_patch_size: int = 2, merge_size: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """float32 [T, H, W, C] (T a multiple of temporal_patch_size) -> (patches, grid_thw [1, 3]).

    Row order: grid t, then merge windows in raster order, then the 2x2 patches inside a window.
    Column order: channel, time, row, column (the Conv3d patch kernel's layout).
    """
    t, h, w, c = frames.shape
    grid_t, grid_h, grid_w = t // temporal_patch_size, h // patch_size, w // patch_size
    blocks = frames.reshape(
        grid_t, temporal_patch_size,
        grid_h // merge_size, merge_size, patch_size,
        grid_w // merge_size, merge_size, patch_size,
        c,
    )
    # -> (gt, gh/m, gw/m, m, m, C, tp, p, p)
    blocks = blocks.transpose(0, 2, 5, 3, 6, 8, 1, 4, 7)
    patches = blocks.reshape(grid_t * grid_h * grid_w, c * temporal_patch_size * patch_size * patch_size)
    grid = np.array([[grid_t, grid_h, grid_w]], dtype=np.int64)
    return np.ascontiguousarray(patches, dtype=np.float32), grid


def preprocess_image(
    image: ImageSource,
    *,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    resized_height: int | None = None,
    resized_width: int | None = None,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """One image -> (pixel_values float32 [patches, 3*2*14*14], image_grid_thw int64 [1, 3]).

    ``min_pixels``/``max_pixels`` default to the model's 3136 / 12845056. A still image is repeated
    along time to fill the temporal patch.
    """
    label = f"image {describe_source(image)}"
    check_sizes(label, min_pixels=min_pixels, max_pixels=max_pixels, resized_height=resized_height,
                resized_width=resized_width)
    budget = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    rgb = load_image(image, max_pixels=budget if resized_height is None else None)
    resized = _resize_named(
        label, rgb,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        resized_height=resized_height,
        resized_width=resized_width,
        factor=patch_size * merge_size,
    )
    pixels = normalize(np.asarray(resized), mean, std)
    frames = np.repeat(pixels[np.newaxis], temporal_patch_size, axis=0)
    return patchify(frames, patch_size=patch_size, temporal_patch_size=temporal_patch_size, merge_size=merge_size)


def preprocess_frames(
    frames: Sequence[np.ndarray | Image.Image] | np.ndarray,
    *,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
    resized_hw: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Video frames -> (pixel_values_videos float32 [patches, 1176], video_grid_thw int64 [1, 3]).

    Every frame gets the same resize: to ``resized_hw`` (multiples of patch * merge) when given, else
    the one smart_resize chooses from the frames' size and min/max pixels per frame (the frames must
    all have one size). The frame count is padded to a multiple of the temporal patch by repeating
    the last frame, as the reference does.
    """
    check_sizes("video frames", min_pixels=min_pixels, max_pixels=max_pixels)
    images = [load_image(frame) for frame in frames]
    if not images:
        raise MediaError("a video needs at least one frame")
    sizes = {img.size for img in images}
    if len(sizes) != 1:
        raise MediaError(f"all video frames must have the same size, got {sorted(sizes)}")
    remainder = len(images) % temporal_patch_size
    if remainder:
        images.extend([images[-1]] * (temporal_patch_size - remainder))
    if resized_hw is not None:
        resized = [img.resize(resized_hw[::-1], resample=Image.Resampling.BICUBIC) for img in images]
    else:
        resized = [
            _resize_named("video frame", img, min_pixels=min_pixels, max_pixels=max_pixels,
                          factor=patch_size * merge_size)
            for img in images
        ]
    pixels = normalize(np.stack([np.asarray(img) for img in resized]), mean, std)
    return patchify(pixels, patch_size=patch_size, temporal_patch_size=temporal_patch_size, merge_size=merge_size)
