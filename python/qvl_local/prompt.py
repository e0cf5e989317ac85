"""Prompt building: a prompt's text and media become the decoder's input rows.

`PromptBuilder.prepare` refuses text that cannot fit the context, tokenizes the rest, turns each image
and video into `Media` (pixels, grid, digest), expands each pad token to its vision tokens and hands
the result to `layout`. `layout` is the one place that decides which rows of a prompt take which
media's embeddings and what positions the rows get: `Model.forward` (ids the caller already
expanded), `generate` and `chat` all go through it, and `vision_rows` reads a range of those rows
back for the decoder.

What a model variant changes lives in `expand` (how a pad token becomes vision tokens: Qwen3-VL also
writes each video frame pair's time in the source as text, kept in `Media.timestamps`) and `positions`
(Qwen2.5-VL spaces a video's temporal positions by its sampled frame rate, kept in `Media.sample_fps`).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .chat import MEDIA_OPTIONS
from .config import Qwen2VLConfig, VisionConfig
from .errors import ContextLengthError, VisionUnavailableError
from .preprocess import MediaError, preprocess_frames, preprocess_image, smart_resize, video_frame_size
from .rope_index import expand_media_tokens, mrope_positions
from .tokenizer import Tokenizer
from .video import DEFAULT_FPS, load_video

# The model's default image budget: 1280 tokens (1280 * 28 * 28 pixels for Qwen2-VL and Qwen2.5-VL,
# 1280 * 32 * 32 for Qwen3-VL's 16-pixel patches), the top of the range Qwen recommends. HF's processors
# allow 12.8 M (Qwen2/2.5-VL) or 16.8 M (Qwen3-VL) pixels, 16384 tokens: a phone photo would then need
# hours of ViT on a CPU, gigabytes of activations, and more context than the default n_ctx. Images within
# this budget are processed exactly as HF does; pass max_pixels=12845056 (or 16777216) for HF's ceiling.
DEFAULT_MAX_TOKENS = 1280
DEFAULT_MAX_PIXELS = DEFAULT_MAX_TOKENS * 28 * 28


def default_max_pixels(vision: VisionConfig | None) -> int:
    """The default image budget of a vision encoder: DEFAULT_MAX_TOKENS tokens, within its processor's range."""
    if vision is None:
        return DEFAULT_MAX_PIXELS
    token_side = vision.patch_size * vision.spatial_merge_size
    return min(vision.variant.max_pixels, DEFAULT_MAX_TOKENS * token_side * token_side)


@dataclass(frozen=True)
class Media:
    """One preprocessed image or video, with the digest that identifies it in the prompt cache."""

    pixel_values: np.ndarray  # float32 [patches, channels * temporal_patch * patch * patch]
    grid_thw: np.ndarray  # int64 [1, 3]
    digest: str
    tokens: int  # vision tokens after the merger: t * h * w / merge^2
    sample_fps: float | None = None  # a video's frames per second after sampling
    timestamps: tuple[float, ...] | None = None  # a video's seconds per frame pair, in the source

    def frame_pairs(self, merge: int) -> list[Media]:
        """A video as one Media per temporal patch (frame pair), each a vision block of its own: the
        encoder treats every frame pair on its own, so their embeddings are the whole video's."""
        t, h, w = (int(v) for v in self.grid_thw[0])
        if t == 1:
            return [self]
        return [Media.from_arrays(self.pixel_values[k * h * w:(k + 1) * h * w], [1, h, w], merge, self.sample_fps)
                for k in range(t)]

    @classmethod
    def from_arrays(cls, pixel_values: np.ndarray, grid_thw: np.ndarray, merge: int,
                    sample_fps: float | None = None, timestamps: Sequence[float] | None = None) -> Media:
        grid = np.asarray(grid_thw, dtype=np.int64).reshape(1, 3)
        digest = hashlib.blake2b(np.ascontiguousarray(pixel_values).tobytes(), digest_size=16)
        digest.update(grid.tobytes())
        digest.update(repr(sample_fps).encode())  # a video's positions may depend on its frame rate
        return cls(pixel_values, grid, digest.hexdigest(), int(np.prod(grid[0])) // merge**2, sample_fps,
                   None if timestamps is None else tuple(timestamps))


class MediaSpan(NamedTuple):
    """Where one image or video sits in a prompt: its vision tokens are rows first..end-1."""

    first: int
    media: Media
    is_video: bool

    @property
    def end(self) -> int:
        return self.first + self.media.tokens


@dataclass
class PreparedPrompt:
    """A prompt ready for the decoder: its media preprocessed, pad tokens expanded, positions computed.
    `Model.prepare_prompt` makes it; `len(prepared)` is the exact number of prompt tokens."""

    ids: np.ndarray  # int32 [N]
    positions: np.ndarray  # int32 [3, N]
    rope_delta: int
    keys: list  # per position: the token id, or (media digest, index) for a vision token
    media_spans: list[MediaSpan]  # in prompt order

    def __len__(self) -> int:
        return len(self.ids)


def vision_rows(prompt: PreparedPrompt, start: int, embeddings_of: Callable[[Media], np.ndarray]
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The vision embeddings of the prompt's rows from `start` on, and those rows counted from
    `start` (the decoder's `embeddings` / `embedded_rows`); (None, None) when no media lies there.
    Media wholly before `start` are not asked for: the KV cache holds their rows already."""
    parts, rows = [], []
    for span in prompt.media_spans:
        if span.end <= start:
            continue
        skip = max(start - span.first, 0)
        parts.append(embeddings_of(span.media)[skip:])
        rows.append(np.arange(span.first + skip, span.end) - start)
    if not parts:
        return None, None
    return np.concatenate(parts), np.concatenate(rows).astype(np.int32)


def split_media(pixel_values: np.ndarray | None, grid_thw: np.ndarray | None, merge: int) -> list[Media]:
    """The HF processor's arrays (all images' patches in one array, one grid row each) as one Media
    per image."""
    if pixel_values is None:
        return []
    grids = np.asarray(grid_thw, dtype=np.int64).reshape(-1, 3)
    sizes = np.prod(grids, axis=1)
    if int(sizes.sum()) != len(pixel_values):
        raise ValueError(f"the grids {grids.tolist()} need {int(sizes.sum())} patch rows, "
                         f"the pixel values have {len(pixel_values)}")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [Media.from_arrays(pixel_values[bounds[i]:bounds[i + 1]], grids[i], merge) for i in range(len(grids))]


def media_settings(item: Any, kind: str, defaults: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """An image / video item and its preprocessing settings: an item may be a dict
    {"image"|"video": source, **settings} (per-item settings, as chat parts carry them) that
    override the call's."""
    if isinstance(item, Mapping) and kind in item:
        settings = {key: value for key, value in item.items() if key != kind}
        unknown = set(settings) - set(MEDIA_OPTIONS[kind])
        if unknown:
            raise ValueError(f"unknown {kind} settings {sorted(unknown)}; expected some of {MEDIA_OPTIONS[kind]}")
        return item[kind], {**defaults, **settings}
    return item, dict(defaults)


class PromptBuilder:
    """Turns prompts and media into PreparedPrompts for one model. Reads only the model's
    configuration, so it may run beside a generation (a server prepares the next request meanwhile)."""

    def __init__(self, config: Qwen2VLConfig, tokenizer: Tokenizer, *, n_ctx: int, model_name: str,
                 min_pixels: int | None = None, max_pixels: int | None = None):
        self.config = config
        self.tokenizer = tokenizer
        self.n_ctx = n_ctx
        self.model_name = model_name
        self.min_pixels = min_pixels
        self.max_pixels = default_max_pixels(config.vision) if max_pixels is None else max_pixels

    @property
    def merge(self) -> int:
        return self.config.vision.spatial_merge_size if self.config.vision else 2

    # -- media -------------------------------------------------------------------------------------

    def require_vision(self) -> VisionConfig:
        if self.config.vision is None:
            raise VisionUnavailableError(
                f"{self.model_name} was loaded without a vision projector: pass mmproj= to load() "
                "(or put an mmproj*.gguf beside the model) to use images and videos"
            )
        return self.config.vision

    def image_arrays(self, image: Any, *, min_pixels: int | None = None, max_pixels: int | None = None,
                     resized_height: int | None = None, resized_width: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """(pixel_values float32 [patches, 1176], grid_thw int64 [1, 3]) with this model's mean/std."""
        vision = self.require_vision()
        if min_pixels is None:
            min_pixels = self.min_pixels if self.min_pixels is not None else vision.variant.min_pixels
        return preprocess_image(
            image,
            mean=vision.image_mean,
            std=vision.image_std,
            min_pixels=min_pixels,
            max_pixels=max_pixels if max_pixels is not None else self.max_pixels,
            resized_height=resized_height,
            resized_width=resized_width,
            patch_size=vision.patch_size,
            temporal_patch_size=vision.temporal_patch_size,
            merge_size=vision.spatial_merge_size,
        )

    def video_arrays(self, video: Any, *, fps: float = DEFAULT_FPS, min_pixels: int | None = None,
                     max_pixels: int | None = None, **sampling: Any
                     ) -> tuple[np.ndarray, np.ndarray, float, list[float]]:
        """(pixel_values_videos, video_grid_thw, the frame rate the frames were sampled at, each frame
        pair's time in the source) for a file, encoded bytes or a frame list. `sampling`: load_video's
        nframes, min_frames, max_frames, total_pixels."""
        vision = self.require_vision()
        # A video's frames get the video budget (per frame and in total) unless the call sets one;
        # the model's image budget only caps what comes out of it.
        sampled = load_video(video, fps=fps, min_pixels=min_pixels, max_pixels=max_pixels,
                             factor=vision.patch_size * vision.spatial_merge_size, **sampling)
        pixel_values, grid = preprocess_frames(
            list(sampled.frames),
            mean=vision.image_mean,
            std=vision.image_std,
            patch_size=vision.patch_size,
            temporal_patch_size=vision.temporal_patch_size,
            merge_size=vision.spatial_merge_size,
            resized_hw=self.video_frame_size(sampled.frames.shape, min_pixels, max_pixels),
        )
        return pixel_values, grid, sampled.sample_fps, sampled.pair_seconds(vision.temporal_patch_size)

    def video_frame_size(self, shape: tuple[int, ...], min_pixels: int | None, max_pixels: int | None
                         ) -> tuple[int, int]:
        """The (height, width) of a video's frames ([T, H, W, ...] `shape`) for the vision encoder: the
        model's video processor range (per frame, or over all frames for Qwen3-VL), with every frame
        under the model's ceiling. A min_pixels the call or load() sets is per frame, as qwen-vl-utils
        reads it."""
        vision = self.require_vision()
        variant = vision.variant
        factor = vision.patch_size * vision.spatial_merge_size
        count, height, width = shape[:3]
        floor = min_pixels if min_pixels is not None else self.min_pixels
        ceiling = max_pixels if max_pixels is not None else self.max_pixels
        try:
            if variant.video_pixel_range == "frame":
                return smart_resize(height, width, factor, variant.video_min_pixels if floor is None else floor, ceiling)
            temporal = vision.temporal_patch_size
            frames = round(count / temporal) * temporal
            low = variant.video_min_pixels if floor is None else floor * frames
            high = min(variant.video_max_pixels, ceiling * frames)
            return video_frame_size(count, height, width, factor, temporal, low, high)
        except ValueError as error:  # an extreme aspect ratio
            raise MediaError(f"video frames of {width}x{height}: {error}") from None

    def image(self, item: Any, call_settings: Mapping[str, Any]) -> Media:
        source, settings = media_settings(item, "image", call_settings)
        return Media.from_arrays(*self.image_arrays(source, **settings), self.merge)

    def video(self, item: Any, call_settings: Mapping[str, Any]) -> Media:
        source, settings = media_settings(item, "video", call_settings)
        pixel_values, grid, sample_fps, timestamps = self.video_arrays(source, **settings)
        return Media.from_arrays(pixel_values, grid, self.merge, sample_fps, timestamps)

    # -- prompts -----------------------------------------------------------------------------------

    def prepare(self, prompt: str, images: Sequence[Any] = (), videos: Sequence[Any] = (), *,
                fps: float = DEFAULT_FPS, min_pixels: int | None = None,
                max_pixels: int | None = None) -> PreparedPrompt:
        """Tokenize the prompt and preprocess its media (no model compute)."""
        self.check_fits(prompt)
        tokens = self.config.tokens
        ids = np.asarray(self.tokenizer.encode(prompt), dtype=np.int64)
        n_image_pads = int(np.sum(ids == tokens.image_pad))
        n_video_pads = int(np.sum(ids == tokens.video_pad))
        if n_image_pads != len(images) or n_video_pads != len(videos):
            raise ValueError(
                f"the prompt has {n_image_pads} <|image_pad|> and {n_video_pads} <|video_pad|> markers but "
                f"{len(images)} images and {len(videos)} videos were given"
            )
        call_settings = {"min_pixels": min_pixels, "max_pixels": max_pixels}
        image_media = [self.image(item, call_settings) for item in images]
        video_media = [self.video(item, {**call_settings, "fps": fps}) for item in videos]
        return self.layout(self.expand(ids, image_media, video_media), image_media, video_media)

    def check_fits(self, prompt: str) -> None:
        """Refuse a prompt whose text alone cannot fit the context, before tokenizing any of it
        (tokenizing megabytes holds the interpreter for seconds)."""
        at_least = self.tokenizer.min_token_count(prompt)
        if at_least + 1 > self.n_ctx:
            raise ContextLengthError(f"the prompt has at least {at_least} tokens ({len(prompt)} characters), "
                                     f"more than the context of {self.n_ctx} allows")

    def expand(self, ids: np.ndarray, images: Sequence[Media], videos: Sequence[Media]) -> np.ndarray:
        """Each image / video pad token repeated once per vision token; with timestamps (Qwen3-VL) a
        video's pad first becomes one block per frame pair, each after its time as text."""
        tokens = self.config.tokens
        if self._timestamps:
            ids = self._timestamped(ids, videos)
        blocks = self.vision_blocks(videos)
        return expand_media_tokens(ids, _grids(images), _grids(blocks), tokens.image_pad, tokens.video_pad, self.merge)

    @property
    def _timestamps(self) -> bool:
        return self.config.vision is not None and self.config.vision.variant.video_time == "timestamps"

    def vision_blocks(self, videos: Sequence[Media]) -> list[Media]:
        """The videos as the decoder sees them: as they are, or one block per frame pair (timestamps)."""
        if not self._timestamps:
            return list(videos)
        return [block for video in videos for block in video.frame_pairs(self.merge)]

    def _timestamped(self, ids: np.ndarray, videos: Sequence[Media]) -> np.ndarray:
        """Each video pad token replaced by `<T seconds><|vision_start|><|video_pad|><|vision_end|>` per
        frame pair, T the mean time in the source of the pair's first and last frame (`Media.timestamps`),
        as Qwen3-VL's processor writes it; the template's own markers around the video stay."""
        tokens = self.config.tokens
        pieces, start = [], 0
        for row, video in zip(np.flatnonzero(ids == tokens.video_pad), videos):
            pieces.append(ids[start:row])
            for seconds in video.timestamps:
                pieces.append(np.asarray(self.tokenizer.encode(f"<{seconds:.1f} seconds>"), dtype=np.int64))
                pieces.append(np.array([tokens.vision_start, tokens.video_pad, tokens.vision_end], dtype=np.int64))
            start = row + 1
        pieces.append(ids[start:])
        return np.concatenate(pieces)

    def timed(self, videos: Sequence[Media], second_per_grid_ts: Sequence[float] | None) -> list[Media]:
        """Videos given as processor arrays, with the frame rate HF's `second_per_grid_ts` (seconds
        per temporal grid step) implies."""
        if second_per_grid_ts is None:
            return list(videos)
        if len(second_per_grid_ts) != len(videos):
            raise ValueError(f"{len(videos)} videos but {len(second_per_grid_ts)} second_per_grid_ts values")
        frames = self.require_vision().temporal_patch_size
        return [Media.from_arrays(media.pixel_values, media.grid_thw, self.merge, frames / float(seconds))
                for media, seconds in zip(videos, second_per_grid_ts)]

    def positions(self, expanded: np.ndarray, images: Sequence[Media], videos: Sequence[Media]) -> tuple[np.ndarray, int]:
        """M-RoPE positions int64 [3, N] of the expanded ids, and the rope delta of what follows."""
        tokens = self.config.tokens
        vision = self.config.vision
        time_scales = None
        if vision is not None and videos:
            # HF's default when a video's rate is unknown: 1 second per temporal grid step.
            seconds = [vision.temporal_patch_size / m.sample_fps if m.sample_fps else 1.0 for m in videos]
            time_scales = [vision.variant.video_time_scale(s) for s in seconds]
        return mrope_positions(
            expanded,
            image_grid_thw=_grids(images),
            video_grid_thw=_grids(videos),
            image_token_id=tokens.image_pad,
            video_token_id=tokens.video_pad,
            vision_start_token_id=tokens.vision_start,
            spatial_merge_size=self.merge,
            video_time_scale=time_scales,
        )

    def layout(self, expanded: np.ndarray, images: Sequence[Media], videos: Sequence[Media]) -> PreparedPrompt:
        """The prompt of expanded ids whose pad runs take `images` and `videos`, in order: the rows of
        each media, the cache keys and the positions."""
        expanded = np.asarray(expanded, dtype=np.int64)
        videos = self.vision_blocks(videos)
        positions, rope_delta = self.positions(expanded, images, videos)
        tokens = self.config.tokens
        keys: list = expanded.tolist()
        spans = []
        for pad, items, is_video in ((tokens.image_pad, images, False), (tokens.video_pad, videos, True)):
            rows = np.flatnonzero(expanded == pad)
            if len(rows) != sum(media.tokens for media in items):
                kind = "video" if is_video else "image"
                raise ValueError(f"{len(rows)} {kind} pad tokens in input_ids but the {kind}s give "
                                 f"{sum(media.tokens for media in items)} embeddings")
            offset = 0
            for media in items:
                span = MediaSpan(int(rows[offset]), media, is_video)
                keys[span.first:span.end] = [(media.digest, i) for i in range(media.tokens)]
                spans.append(span)
                offset += media.tokens
        spans.sort(key=lambda span: span.first)
        return PreparedPrompt(expanded.astype(np.int32), positions.astype(np.int32), int(rope_delta), keys, spans)


def _grids(media: Sequence[Media]) -> np.ndarray | None:
    return np.concatenate([item.grid_thw for item in media]) if media else None
