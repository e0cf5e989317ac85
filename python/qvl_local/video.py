"""Videos to uint8 frames: decoding with PyAV, frame sampling and the per-frame pixel budget.

Follows qwen-vl-utils (``fetch_video``): the number of frames comes from the sampling rate and the
duration, is a multiple of 2 (one temporal patch) and lies within [min_frames, max_frames]; frames
are picked evenly (linspace, rounded) and each is resized so that all frames together stay within a
total pixel budget. The frames then go through ``preprocess.preprocess_frames``. Each frame keeps its
time in the source (its index there / the source's frame rate), which Qwen3-VL writes into the prompt.
"""
from __future__ import annotations

import io
import math
import urllib.parse
import urllib.request
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Union

import av
import numpy as np
from PIL import Image

from qvl_local.preprocess import (
    ImageSource,
    MediaError,
    MediaWarning,
    check_sizes,
    decode_data_uri,
    describe_source,
    load_image,
    smart_resize,
)

FRAME_FACTOR = 2  # frames per temporal patch
DEFAULT_FPS = 2.0
MIN_FRAMES = 4
MAX_FRAMES = 768
# qwen-vl-utils' per-frame budget in vision tokens (pixels = tokens * factor^2, factor = patch * merge:
# 28 for Qwen2-VL and Qwen2.5-VL, 32 for Qwen3-VL), and for all frames of one video: 90% of a
# 128K-token context.
VIDEO_MIN_TOKENS = 128
VIDEO_MAX_TOKENS = 768
VIDEO_TOTAL_TOKENS = 128000 * 0.9
IMAGE_FACTOR = 28
VIDEO_MIN_PIXELS = VIDEO_MIN_TOKENS * IMAGE_FACTOR**2
VIDEO_MAX_PIXELS = VIDEO_MAX_TOKENS * IMAGE_FACTOR**2
VIDEO_TOTAL_PIXELS = int(VIDEO_TOTAL_TOKENS * IMAGE_FACTOR**2)

VideoSource = Union[str, Path, bytes, Sequence[ImageSource]]


class SampledVideo(NamedTuple):
    """What load_video returns."""

    frames: np.ndarray  # uint8 [T, H, W, 3], T even
    sample_fps: float  # the rate the frames were sampled at, in frames per second
    frame_seconds: np.ndarray  # float64 [T]: each frame's time in the source (a repeated frame repeats it)

    def pair_seconds(self, temporal_patch_size: int = FRAME_FACTOR) -> list[float]:
        """Per temporal patch, the mean time of its first and last frame (HF Qwen3-VL's timestamps)."""
        times = self.frame_seconds.reshape(-1, temporal_patch_size)
        return ((times[:, 0] + times[:, -1]) / 2).tolist()


def check_fps(fps: Any) -> float:
    """The frame sampling rate, checked: a positive, finite number (API and CLI share this check)."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) \
            or not math.isfinite(fps) or fps <= 0:
        raise MediaError(f"fps must be a positive number of frames per second, got {fps!r}")
    return float(fps)


def sample_frame_count(
    total_frames: int,
    video_fps: float,
    *,
    fps: float = DEFAULT_FPS,
    min_frames: int = MIN_FRAMES,
    max_frames: int = MAX_FRAMES,
    nframes: int | None = None,
) -> int:
    """How many frames to take from a video of ``total_frames`` frames at ``video_fps``.

    ``nframes`` (rounded to a multiple of 2) wins over ``fps``; otherwise the count is duration * fps,
    clamped to [min_frames, max_frames] and to the video's length, floored to a multiple of 2.
    """
    if nframes is not None:
        count = round(nframes / FRAME_FACTOR) * FRAME_FACTOR
    else:
        lower = math.ceil(min_frames / FRAME_FACTOR) * FRAME_FACTOR
        upper = math.floor(min(max_frames, total_frames) / FRAME_FACTOR) * FRAME_FACTOR
        wanted = total_frames / video_fps * fps
        count = min(max(wanted, lower), upper, total_frames)
        count = math.floor(count / FRAME_FACTOR) * FRAME_FACTOR
    if not FRAME_FACTOR <= count <= total_frames:
        raise MediaError(
            f"cannot sample {count} frames from a video of {total_frames} frames "
            f"(need between {FRAME_FACTOR} and the video's length)"
        )
    return count


def sample_indices(total_frames: int, count: int) -> np.ndarray:
    """``count`` evenly spaced frame indices from first to last (half-to-even rounding, as torch)."""
    return np.round(np.linspace(0, total_frames - 1, count)).astype(np.int64)


def frame_pixel_budget(
    nframes: int,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    total_pixels: int | None = None,
    factor: int = IMAGE_FACTOR,
) -> tuple[int, float]:
    """(min, max) pixels per frame: the total budget shared by the frames, a pair per temporal patch.

    A ``max_pixels`` above the share is lowered to it (qwen-vl-utils warns and does the same).
    """
    floor_pixels = VIDEO_MIN_TOKENS * factor**2 if min_pixels is None else min_pixels
    total = VIDEO_TOTAL_TOKENS * factor**2 if total_pixels is None else total_pixels
    share = max(min(VIDEO_MAX_TOKENS * factor**2, total / nframes * FRAME_FACTOR), int(floor_pixels * 1.05))
    return floor_pixels, share if max_pixels is None else min(max_pixels, share)


def load_video(
    source: VideoSource,
    *,
    fps: float = DEFAULT_FPS,
    min_frames: int = MIN_FRAMES,
    max_frames: int = MAX_FRAMES,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    total_pixels: int | None = None,
    nframes: int | None = None,
    factor: int = IMAGE_FACTOR,
) -> SampledVideo:
    """Frames uint8 [T, H, W, 3] (T even), the rate they were sampled at and each one's source time.

    ``source`` is a video file (path or ``file://`` URL, decoded with PyAV), the encoded file itself
    (bytes or a ``data:video/...;base64,`` URI, decoded from memory) or a list of frames (anything
    ``load_image`` takes). A file is sampled per ``fps``/``nframes`` from the frames that decode (a
    truncated file gets a MediaWarning) and every frame is resized (PIL bicubic) to the per-frame
    budget, so H and W are multiples of ``factor`` (the model's patch size * merge size; the budget's
    defaults are in tokens of factor x factor pixels).
    A list is taken as already sampled at ``fps``: every frame is kept (the last one repeated to make
    T even), frame i is at i / fps, all frames must share one size, and they are resized only when a
    pixel budget is given, which is what the reference did for the d_video case (the processor
    resizes later).
    """
    fps = check_fps(fps)
    check_sizes(f"video {describe_source(source)}", min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels,
                min_frames=min_frames, max_frames=max_frames, nframes=nframes)
    encoded = _encoded_video(source)
    if encoded is not None:
        return _load_video_file(
            encoded,
            fps=fps,
            min_frames=min_frames,
            max_frames=max_frames,
            nframes=nframes,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            total_pixels=total_pixels,
            factor=factor,
        )
    if isinstance(source, Sequence):
        return _load_frame_list(source, fps, min_pixels, max_pixels, total_pixels, factor)
    raise MediaError(f"unsupported video source type {type(source).__name__}")


@dataclass(frozen=True)
class _EncodedVideo:
    """A video file on disk or in memory, and how errors name it."""

    label: str
    path: Path | None = None
    data: bytes | None = None

    def open(self) -> av.container.InputContainer:
        return av.open(str(self.path)) if self.path is not None else av.open(io.BytesIO(self.data))


def _encoded_video(source: VideoSource) -> _EncodedVideo | None:
    """The video file `source` names or holds; None for a frame list."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _EncodedVideo(describe_source(source), data=bytes(source))
    if isinstance(source, str) and source.startswith("data:"):
        return _EncodedVideo(describe_source(source), data=decode_data_uri(source, "video"))
    if isinstance(source, (str, Path)):
        return _EncodedVideo(describe_source(source), path=_video_path(source))
    return None


def _video_path(source: str | Path) -> Path:
    text = str(source)
    if isinstance(source, str) and text.startswith("file://"):
        text = urllib.request.url2pathname(urllib.parse.urlparse(text).path)
    path = Path(text)
    if not path.is_file():
        raise MediaError(f"video file not found: {str(source)!r}")
    return path


def _load_frame_list(
    frames: Sequence[ImageSource],
    fps: float,
    min_pixels: int | None,
    max_pixels: int | None,
    total_pixels: int | None,
    factor: int,
) -> SampledVideo:
    images = [load_image(frame) for frame in frames]
    if not images:
        raise MediaError("a video needs at least one frame")
    sizes = sorted({image.size for image in images})
    if len(sizes) != 1:
        raise MediaError(f"all video frames must have the same size, got {sizes}")
    indices = list(range(len(images)))
    if len(images) % FRAME_FACTOR:
        # HF pads the frames and their indices alike: the last one again.
        images.append(images[-1])
        indices.append(indices[-1])
    if not (min_pixels is None and max_pixels is None and total_pixels is None):
        budget = frame_pixel_budget(
            len(images), min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels, factor=factor
        )
        images = [_resize(image, budget, factor) for image in images]
    return SampledVideo(np.stack([np.asarray(image) for image in images]), fps, np.asarray(indices) / fps)


def _resize(image: Image.Image, budget: tuple[int, float], factor: int) -> Image.Image:
    try:
        height, width = smart_resize(image.height, image.width, factor, *budget)
    except ValueError as error:  # an extreme aspect ratio
        raise MediaError(f"video frames of {image.width}x{image.height}: {error}") from None
    return image.resize((width, height), resample=Image.Resampling.BICUBIC)


def _load_video_file(
    video: _EncodedVideo,
    *,
    fps: float,
    min_frames: int,
    max_frames: int,
    nframes: int | None,
    min_pixels: int | None,
    max_pixels: int | None,
    total_pixels: int | None,
    factor: int,
) -> SampledVideo:
    def sample(total_frames: int) -> tuple[np.ndarray | None, int, np.ndarray]:
        count = sample_frame_count(
            total_frames, video_fps, fps=fps, min_frames=min_frames, max_frames=max_frames, nframes=nframes
        )
        budget = frame_pixel_budget(count, min_pixels=min_pixels, max_pixels=max_pixels, total_pixels=total_pixels,
                                    factor=factor)
        indices = sample_indices(total_frames, count)
        return (*_decode_frames(video, indices, budget, factor), indices)

    try:
        total_frames, video_fps = _probe(video)
        frames, decoded, indices = sample(total_frames)
        if frames is None:
            # The stream ended early (a cut file whose header still announces every frame): sample
            # again from the frames that exist rather than repeat the last one.
            if decoded == 0:
                raise MediaError(f"no frame could be decoded from video {video.label}")
            warnings.warn(f"video {video.label} has {decoded} decodable frames, not the {total_frames} its header "
                          f"announces (a truncated file?); sampling from the {decoded}", MediaWarning, stacklevel=4)
            total_frames = decoded
            frames, _, indices = sample(total_frames)
            if frames is None:
                raise MediaError(f"video {video.label} decodes differently on a second reading")
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot decode video {video.label}: {exc}") from exc
    return SampledVideo(frames, len(indices) / total_frames * video_fps, indices / video_fps)


def _probe(video: _EncodedVideo) -> tuple[int, float]:
    """(frame count, frames per second) of the first video stream, as the container announces them."""
    with video.open() as container:
        if not container.streams.video:
            raise MediaError(f"no video stream in {video.label}")
        stream = container.streams.video[0]
        total = stream.frames
        if total <= 0:  # some containers (mkv, webm) do not store it: count the packets
            total = sum(1 for packet in container.demux(stream) if packet.size > 0)
        duration_s = _duration_s(container, stream)
        rate = stream.average_rate or stream.guessed_rate
        video_fps = float(rate) if rate else (total / duration_s if duration_s else 0.0)
    if total <= 0 or video_fps <= 0:
        raise MediaError(f"video {video.label} has no frames or no frame rate")
    return total, video_fps


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def _decode_frames(video: _EncodedVideo, indices: np.ndarray, budget: tuple[int, float],
                   factor: int) -> tuple[np.ndarray | None, int]:
    """The frames at `indices`, resized, and how many frames were decoded to reach them; None for the
    frames when the stream ends (or breaks off) before the last wanted index."""
    wanted = Counter(indices.tolist())
    last_wanted = int(indices.max())
    kept: list[np.ndarray] = []
    decoded = 0
    with video.open() as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if decoded in wanted:
                    pixels = np.asarray(_resize(frame.to_image(), budget, factor))
                    kept.extend([pixels] * wanted[decoded])
                decoded += 1
                if decoded > last_wanted:
                    return np.stack(kept), decoded
        except av.error.FFmpegError:
            if decoded == 0:
                raise
            # the data breaks off in a cut file: what decoded so far is the video
    return None, decoded
