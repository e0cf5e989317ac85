"""The model users hold: `qvl_local.load(...)` -> `Model`, with chat, generate, forward and the vision encoder.

Python keeps the glue (files, tokenizer, chat template, media, positions, sampling); the C++ core runs
the decoder with its KV cache and the vision encoder, with the GIL released.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .chat import MEDIA_OPTIONS, render_chat
from .chat import builtin_chat_template
from .config import Qwen2VLConfig, holds_vision_encoder, text_spec, vision_spec
from .errors import QvlError
from .generation import GenerationConfig, GenerationResult, Sampler, StopStringMatcher
from .gguf_file import GGUFFile
from .preprocess import preprocess_frames, preprocess_image
from .rope_index import expand_media_tokens, mrope_positions, positions_for_generated
from .tokenizer import Tokenizer
from .video import DEFAULT_FPS, load_video

PRECISIONS = ("exact", "fast", "int8")
# The model's default image budget: 1280 tokens (1280 * 28 * 28 pixels), the top of the range Qwen
# recommends. HF's processor allows 12.8 M pixels (16384 tokens): a phone photo would then need hours
# of ViT on a CPU, gigabytes of activations, and more context than the default n_ctx. Images within
# this budget are processed exactly as HF does; pass max_pixels=12845056 for HF's ceiling.
DEFAULT_MAX_PIXELS = 1280 * 28 * 28


def _media_settings(item: Any, kind: str, defaults: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """An image / video item and its preprocessing settings: an item may be a dict
    {"image"|"video": source, **settings} (per-item settings, as chat parts carry them) that
    override the call's."""
    if isinstance(item, Mapping) and kind in item:
        settings = {key: value for key, value in item.items() if key != kind}
        unknown = set(settings) - set(MEDIA_OPTIONS[kind])
        if unknown:
            raise ValueError(f"unknown {kind} settings {sorted(unknown)}; expected some of {MEDIA_OPTIONS[kind]}")
        return item[kind], {**defaults, **settings}
    return item, defaults


class VisionUnavailableError(QvlError, ValueError):
    """An image or video was given to a model loaded without its vision projector (mmproj)."""


def find_mmproj(model_path: Path) -> Path | None:
    """The projector beside a model file: the one `mmproj*.gguf` in its folder, if any."""
    candidates = sorted(p for p in model_path.parent.glob("mmproj*.gguf") if p.is_file())
    if len(candidates) > 1:
        listing = ", ".join(p.name for p in candidates)
        raise QvlError(f"several mmproj files next to {model_path.name} ({listing}); pass mmproj= to choose one")
    return candidates[0] if candidates else None


def load(
    path: str | os.PathLike[str],
    *,
    mmproj: str | os.PathLike[str] | bool | None = None,
    n_threads: int | None = None,
    n_ctx: int = 4096,
    n_batch: int = 512,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    precision: str = "fast",
    models_dir: str | os.PathLike[str] | None = None,
) -> "Model":
    """Open a Qwen2-VL model from a GGUF path or a pulled model name ("qwen2-vl:2b").

    `mmproj`: the vision projector file; None finds `mmproj*.gguf` beside the model (or the
    projector layer of a pulled model); False loads the text model alone.
    `precision`: "fast" (8-bit activations, integer kernels), "exact" (float activations) or
    "int8" ("fast", and float weights such as an F16 projector's are also multiplied as 8-bit
    Q8_0 blocks: the quickest image encoding, with ~2% RMS error in the vision embeddings against
    ~1e-6 for "fast").
    `min_pixels` / `max_pixels`: the image budget; the default max is 1280 tokens (see
    DEFAULT_MAX_PIXELS), HF's processor allows 12845056 pixels.
    """
    from .store import resolve_model

    model_path, store_mmproj = resolve_model(path, models_dir=models_dir)
    if mmproj is None and holds_vision_encoder(model_path):
        mmproj_path = model_path  # one file with text and vision (Ollama's layout)
    elif mmproj is None:
        mmproj_path = store_mmproj or find_mmproj(model_path)
    elif mmproj is False:
        mmproj_path = None
    else:
        mmproj_path = Path(mmproj)
    return Model(
        model_path,
        mmproj_path,
        n_threads=n_threads,
        n_ctx=n_ctx,
        n_batch=n_batch,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        precision=precision,
    )


@dataclass(frozen=True)
class _Media:
    """One preprocessed image or video, with the digest that identifies it in the prefix cache."""

    pixel_values: np.ndarray
    grid_thw: np.ndarray  # [1, 3]
    digest: str
    second_per_grid_t: float = 1.0  # a video's seconds between temporal grid steps (positions may follow time)


@dataclass
class PreparedPrompt:
    """A prompt ready for the decoder: its media preprocessed, pad tokens expanded, positions computed.
    `Model.prepare_prompt` makes it; `len(prepared)` is the exact number of prompt tokens."""

    ids: np.ndarray  # int32 [N]
    positions: np.ndarray  # int32 [3, N]
    rope_delta: int
    keys: list  # per position: the token id, or (media digest, index) for a vision token
    media_spans: list  # (first row, media, is_video) per image / video, in order

    def __len__(self) -> int:
        return len(self.ids)


class Model:
    """A loaded Qwen2-VL model. Not thread-safe: one call at a time."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        mmproj_path: str | os.PathLike[str] | None = None,
        *,
        n_threads: int | None = None,
        n_ctx: int = 4096,
        n_batch: int = 512,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        precision: str = "fast",
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if n_ctx <= 0 or n_batch <= 0:
            raise ValueError("n_ctx and n_batch must be positive")
        self.text_file = GGUFFile(model_path)
        # The vision encoder's file: an mmproj, or the model file itself when it holds both parts.
        if mmproj_path is None or Path(mmproj_path) == Path(model_path):
            self.mmproj_file = None if mmproj_path is None else self.text_file
        else:
            self.mmproj_file = GGUFFile(mmproj_path)
        self.config = Qwen2VLConfig.from_gguf(self.text_file, self.mmproj_file)
        self.tokenizer = Tokenizer.from_fields(
            self.text_file.require("tokenizer.ggml.tokens"),
            self.text_file.require("tokenizer.ggml.token_type"),
            self.text_file.require("tokenizer.ggml.merges"),
            eos_id=self.config.tokens.eos,
            pad_id=self.text_file.get("tokenizer.ggml.padding_token_id"),
            chat_template=self.text_file.get("tokenizer.chat_template")
            or builtin_chat_template(self.config.text.variant.chat_template),
        )
        self.n_threads = n_threads or len(os.sched_getaffinity(0))
        self.n_ctx = min(n_ctx, self.config.text.context_length)
        self.precision = precision
        self.min_pixels = min_pixels
        self.max_pixels = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        self._pool = _core.ThreadPool(self.n_threads)  # the decoder's and the vision encoder's threads
        self._decoder = _core.TextModel(self.text_file.handle, text_spec(self.config.text), self.n_ctx, n_batch, self._pool)
        self._vision = (
            _core.VisionModel(self.mmproj_file.handle, vision_spec(self.config.vision), self._pool)
            if self.mmproj_file is not None
            else None
        )
        self._cached_keys: list = []  # what the decoder's KV cache holds, position by position
        self.last_finish_reason: str | None = None  # "stop" or "length", once a generation ends
        self._embedding_cache: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    # -- text ------------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    @property
    def has_vision(self) -> bool:
        return self._vision is not None

    # -- vision ----------------------------------------------------------------------------------

    def preprocess_image(self, image: Any, *, min_pixels: int | None = None, max_pixels: int | None = None,
                         resized_height: int | None = None, resized_width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(pixel_values float32 [patches, 1176], grid_thw int64 [1, 3]) with this model's mean/std."""
        vision = self._require_vision()
        return preprocess_image(
            image,
            mean=vision.image_mean,
            std=vision.image_std,
            min_pixels=min_pixels if min_pixels is not None else self.min_pixels,
            max_pixels=max_pixels if max_pixels is not None else self.max_pixels,
            resized_height=resized_height,
            resized_width=resized_width,
            patch_size=vision.patch_size,
            temporal_patch_size=vision.temporal_patch_size,
            merge_size=vision.spatial_merge_size,
        )

    def preprocess_video(self, video: Any, *, fps: float = DEFAULT_FPS, min_pixels: int | None = None,
                         max_pixels: int | None = None, **sampling: Any) -> tuple[np.ndarray, np.ndarray]:
        """(pixel_values_videos float32 [patches, 1176], video_grid_thw int64 [1, 3]) for a file or frame
        list. `sampling`: load_video's nframes, min_frames, max_frames, total_pixels."""
        pixel_values, grid, _ = self._preprocess_video(video, fps=fps, min_pixels=min_pixels, max_pixels=max_pixels,
                                                       **sampling)
        return pixel_values, grid

    def _preprocess_video(self, video: Any, *, fps: float, min_pixels: int | None, max_pixels: int | None,
                          **sampling: Any) -> tuple[np.ndarray, np.ndarray, float]:
        """preprocess_video's arrays and the seconds between temporal grid steps (the frames' rate)."""
        vision = self._require_vision()
        # A video's frames get the video budget (per frame and in total) unless the call sets one;
        # the model's image budget only caps what comes out of it.
        frames, sampled_fps = load_video(video, fps=fps, min_pixels=min_pixels, max_pixels=max_pixels, **sampling)
        pixel_values, grid = preprocess_frames(
            list(frames),
            mean=vision.image_mean,
            std=vision.image_std,
            min_pixels=min_pixels if min_pixels is not None else self.min_pixels,
            max_pixels=max_pixels if max_pixels is not None else self.max_pixels,
            patch_size=vision.patch_size,
            temporal_patch_size=vision.temporal_patch_size,
            merge_size=vision.spatial_merge_size,
        )
        return pixel_values, grid, vision.temporal_patch_size / sampled_fps

    def encode_image(self, image: Any, *, min_pixels: int | None = None, max_pixels: int | None = None,
                     pre_merge: bool = False, precision: str | None = None) -> np.ndarray:
        """Merged vision tokens float32 [tokens, text_hidden], or with pre_merge the ViT's patch
        features float32 [patches, vision_hidden]."""
        pixel_values, grid = self.preprocess_image(image, min_pixels=min_pixels, max_pixels=max_pixels)
        return self.encode_pixels(pixel_values, grid, pre_merge=pre_merge, precision=precision)

    def encode_pixels(self, pixel_values: np.ndarray, grid_thw: np.ndarray, *, pre_merge: bool = False,
                      precision: str | None = None) -> np.ndarray:
        """The vision encoder on preprocessed pixels (the HF processor's arrays)."""
        self._require_vision()
        return self._vision.encode(
            np.ascontiguousarray(pixel_values, dtype=np.float32),
            np.ascontiguousarray(grid_thw, dtype=np.int64).reshape(-1, 3),
            pre_merge=pre_merge,
            precision=self._precision(precision),
        )

    def _require_vision(self):
        if self.config.vision is None:
            raise VisionUnavailableError(
                f"{self.text_file.path.name} was loaded without a vision projector: pass mmproj= to load() "
                "(or put an mmproj*.gguf beside the model) to use images and videos"
            )
        return self.config.vision

    # -- the decoder -------------------------------------------------------------------------------

    def forward(self, input_ids: Sequence[int] | np.ndarray, *, pixel_values: np.ndarray | None = None,
                image_grid_thw: np.ndarray | None = None, pixel_values_videos: np.ndarray | None = None,
                video_grid_thw: np.ndarray | None = None, second_per_grid_ts: Sequence[float] | None = None,
                precision: str | None = None) -> np.ndarray:
        """Logits float32 [N, vocab] for every position of `input_ids` (already expanded, as the HF
        processor makes them), on a fresh cache. `second_per_grid_ts`: per video, the seconds between
        its temporal grid steps (HF's name; 1.0 when not given), for models whose positions follow time."""
        return self._run_arrays(input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw,
                                second_per_grid_ts, precision, trace=False)

    def trace(self, input_ids: Sequence[int] | np.ndarray, *, pixel_values: np.ndarray | None = None,
              image_grid_thw: np.ndarray | None = None, pixel_values_videos: np.ndarray | None = None,
              video_grid_thw: np.ndarray | None = None, second_per_grid_ts: Sequence[float] | None = None,
              precision: str | None = None) -> dict[str, np.ndarray]:
        """`forward`, returning every stage's activations by name (a debug hook: compare one stage with a
        reference on its own). The vision encoder's under "image." / "video.": "patch_embed", "block.<i>"
        (patches in the preprocessor's order), "merger" (the embeddings); the decoder's under "text.":
        "input" (the embedded prompt), "block.<i>" (hidden states after layer i), "logits" (= forward's)."""
        return self._run_arrays(input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw,
                                second_per_grid_ts, precision, trace=True)

    def _run_arrays(self, input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw,
                    second_per_grid_ts, precision: str | None, *, trace: bool):
        precision = self._precision(precision)
        named: dict[str, np.ndarray] = {}
        media = []
        for kind, pixels, grids in (("image", pixel_values, image_grid_thw), ("video", pixel_values_videos, video_grid_thw)):
            if pixels is None:
                continue
            grids = np.asarray(grids, dtype=np.int64).reshape(-1, 3)
            if trace:
                self._require_vision()
                stages = self._vision.trace(np.ascontiguousarray(pixels, dtype=np.float32), grids, precision=precision)
                named.update({f"{kind}.{name}": value for name, value in stages.items()})
                embeddings = stages["merger"]
            else:
                embeddings = self.encode_pixels(pixels, grids, precision=precision)
            media.append((embeddings, grids, kind == "video"))
        ids = np.asarray(input_ids, dtype=np.int64)
        positions, _ = self._positions(ids, image_grid_thw, video_grid_thw, second_per_grid_ts)
        embeddings, rows = self._vision_rows(ids, media)
        self._reset_cache()
        arguments = dict(embeddings=embeddings, embedded_rows=rows, precision=precision)
        try:
            if trace:
                stages = self._decoder.trace(ids.astype(np.int32), positions.astype(np.int32), **arguments)
                named.update({f"text.{name}": value for name, value in stages.items()})
                return named
            return self._decoder.forward(ids.astype(np.int32), positions.astype(np.int32), logits="all", **arguments)
        finally:
            self._reset_cache()

    def _vision_rows(self, ids: np.ndarray, media: list) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Concatenated vision embeddings and the rows of `ids` they replace."""
        tokens = self.config.tokens
        parts, rows = [], []
        for embeddings, _, is_video in media:
            pad = tokens.video_pad if is_video else tokens.image_pad
            positions = np.flatnonzero(ids == pad)
            if len(positions) != len(embeddings):
                kind = "video" if is_video else "image"
                raise ValueError(f"{len(positions)} {kind} pad tokens in input_ids but the {kind}s give {len(embeddings)} embeddings")
            parts.append(embeddings)
            rows.append(positions)
        if not parts:
            return None, None
        return np.concatenate(parts), np.concatenate(rows).astype(np.int32)

    def _positions(self, ids: np.ndarray, image_grid_thw, video_grid_thw,
                   second_per_grid_ts: Sequence[float] | None = None) -> tuple[np.ndarray, int]:
        tokens = self.config.tokens
        vision = self.config.vision
        merge = vision.spatial_merge_size if vision else 2
        time_scales = None
        if video_grid_thw is not None and vision is not None:
            n_videos = len(np.asarray(video_grid_thw).reshape(-1, 3))
            seconds = [1.0] * n_videos if second_per_grid_ts is None else [float(t) for t in second_per_grid_ts]
            time_scales = [vision.variant.video_time_scale(t) for t in seconds]
        return mrope_positions(
            ids,
            image_grid_thw=None if image_grid_thw is None else np.asarray(image_grid_thw).reshape(-1, 3),
            video_grid_thw=None if video_grid_thw is None else np.asarray(video_grid_thw).reshape(-1, 3),
            image_token_id=tokens.image_pad,
            video_token_id=tokens.video_pad,
            vision_start_token_id=tokens.vision_start,
            spatial_merge_size=merge,
            video_time_scale=time_scales,
        )

    def _precision(self, precision: str | None) -> str:
        precision = precision or self.precision
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        return precision

    def _reset_cache(self) -> None:
        self._decoder.truncate(0)
        self._cached_keys = []

    # -- generation --------------------------------------------------------------------------------

    def generate(self, prompt: str | PreparedPrompt, *, images: Sequence[Any] = (), videos: Sequence[Any] = (),
                 config: GenerationConfig | None = None, stream: bool = False, fps: float = DEFAULT_FPS,
                 min_pixels: int | None = None, max_pixels: int | None = None, precision: str | None = None,
                 **generation: Any) -> GenerationResult | Iterator[tuple[str, int]]:
        """Continue `prompt` (chat markup included; one `<|image_pad|>` / `<|video_pad|>` per image /
        video), or a PreparedPrompt. Returns a GenerationResult, or with stream=True an iterator of
        (text, token_id) per token (text is empty while a multi-byte character is incomplete)."""
        if config is None:
            config = GenerationConfig(**generation)
        elif generation:
            config = dataclasses.replace(config, **generation)
        prepared = prompt if isinstance(prompt, PreparedPrompt) else self.prepare_prompt(
            prompt, images, videos, fps=fps, min_pixels=min_pixels, max_pixels=max_pixels)
        if len(prepared.ids) + 1 > self.n_ctx:
            raise ValueError(f"the prompt has {len(prepared.ids)} tokens, more than the context of {self.n_ctx} allows")
        chunks = self._generate(prepared, config, self._precision(precision))
        if stream:
            return chunks
        return self._collect(chunks, len(prepared.ids))

    def chat(self, messages: Sequence[Mapping[str, Any]], *, stream: bool = False, **generation: Any) -> str | Iterator[str]:
        """Answer the conversation (HF/OpenAI message shape). Returns the assistant's text, or with
        stream=True an iterator of text pieces. A conversation that continues reuses the cached
        prefix: earlier turns and their images are not computed again."""
        rendered = render_chat(messages, template=self.tokenizer.chat_template)
        result = self.generate(rendered.prompt, images=rendered.images, videos=rendered.videos, stream=stream, **generation)
        if stream:
            return (text for text, _ in result if text)
        return result.text

    def _collect(self, chunks: Iterator[tuple[str, int]], prompt_tokens: int) -> GenerationResult:
        pieces, ids = [], []
        for text, token in chunks:
            pieces.append(text)
            ids.append(token)
        return GenerationResult(text="".join(pieces), token_ids=ids, prompt_tokens=prompt_tokens,
                                finish_reason=self.last_finish_reason)

    def _generate(self, prompt: PreparedPrompt, config: GenerationConfig, precision: str) -> Iterator[tuple[str, int]]:
        self.last_finish_reason = "length"
        logits = self._prefill(prompt, precision)
        sampler = Sampler(config)
        stops = StopStringMatcher(config.stop)
        decoder = self.tokenizer.stream_decoder(skip_special_tokens=True)
        end_ids = {self.config.tokens.eos, self.config.tokens.im_end, self.config.tokens.endoftext}
        history = list(prompt.ids)
        n = len(prompt.ids)
        for step in range(config.max_new_tokens):
            token = sampler.sample(logits, history)
            if token in end_ids:
                self.last_finish_reason = "stop"
                break
            history.append(token)
            yield stops.feed(decoder.feed(token)), token
            if stops.stopped:
                self.last_finish_reason = "stop"
                break
            if step + 1 == config.max_new_tokens:
                break
            if n + 1 > self.n_ctx:
                break  # the context is full: stop as if max_new_tokens were reached
            position = positions_for_generated(prompt.rope_delta, n, 1).astype(np.int32)
            logits = self._decoder.forward(np.array([token], dtype=np.int32), position, precision=precision)
            self._cached_keys.append(token)
            n += 1
        tail = "" if stops.stopped else stops.feed(decoder.flush()) + stops.flush()
        if tail:
            yield tail, -1  # held-back text (an incomplete character or a partial stop string), no new token

    def _prefill(self, prompt: PreparedPrompt, precision: str) -> np.ndarray:
        """Runs what the cache does not already hold and returns the last position's logits."""
        common = 0
        limit = min(len(self._cached_keys), len(prompt.keys) - 1)  # always run at least one token
        while common < limit and self._cached_keys[common] == prompt.keys[common]:
            common += 1
        self._decoder.truncate(common)
        self._cached_keys = self._cached_keys[:common]
        embeddings, rows = self._suffix_embeddings(prompt, common, precision)
        logits = self._decoder.forward(
            prompt.ids[common:], np.ascontiguousarray(prompt.positions[:, common:]),
            embeddings=embeddings, embedded_rows=rows, logits="last", precision=precision,
        )
        self._cached_keys = list(prompt.keys)
        return logits

    def _suffix_embeddings(self, prompt: PreparedPrompt, common: int, precision: str):
        parts, rows = [], []
        for first, media, _ in prompt.media_spans:
            count = int(np.prod(media.grid_thw[0])) // self.config.vision.spatial_merge_size ** 2
            if first + count <= common:
                continue  # already in the KV cache: no need to encode it again
            embeddings = self._embeddings_for(media, precision)
            keep = np.arange(count) + first >= common
            parts.append(embeddings[keep])
            rows.append(np.arange(first, first + count)[keep] - common)
        if not parts:
            return None, None
        return np.concatenate(parts), np.concatenate(rows).astype(np.int32)

    def _embeddings_for(self, media: _Media, precision: str) -> np.ndarray:
        key = (media.digest, precision)
        if key in self._embedding_cache:
            self._embedding_cache.move_to_end(key)
            return self._embedding_cache[key]
        embeddings = self.encode_pixels(media.pixel_values, media.grid_thw, precision=precision)
        self._embedding_cache[key] = embeddings
        while len(self._embedding_cache) > 8:
            self._embedding_cache.popitem(last=False)
        return embeddings

    def prepare_prompt(self, prompt: str, images: Sequence[Any] = (), videos: Sequence[Any] = (), *,
                       fps: float = DEFAULT_FPS, min_pixels: int | None = None,
                       max_pixels: int | None = None) -> PreparedPrompt:
        """Tokenize the prompt and preprocess its media (no model compute): the step before
        `generate`, for callers that need the exact prompt length first (e.g. a server checking
        the context). Reads only the model's configuration, so it may run beside a generation."""
        tokens = self.config.tokens
        ids = np.asarray(self.tokenize(prompt), dtype=np.int64)
        n_image_pads = int(np.sum(ids == tokens.image_pad))
        n_video_pads = int(np.sum(ids == tokens.video_pad))
        if n_image_pads != len(images) or n_video_pads != len(videos):
            raise ValueError(
                f"the prompt has {n_image_pads} <|image_pad|> and {n_video_pads} <|video_pad|> markers but "
                f"{len(images)} images and {len(videos)} videos were given"
            )
        call_settings = {"min_pixels": min_pixels, "max_pixels": max_pixels}
        image_media = []
        for item in images:
            source, settings = _media_settings(item, "image", call_settings)
            image_media.append(self._media(self.preprocess_image(source, **settings)))
        video_media = []
        for item in videos:
            source, settings = _media_settings(item, "video", {**call_settings, "fps": fps})
            pixel_values, grid, second_per_grid_t = self._preprocess_video(source, **settings)
            video_media.append(self._media((pixel_values, grid), second_per_grid_t))
        image_grids = np.concatenate([m.grid_thw for m in image_media]) if image_media else None
        video_grids = np.concatenate([m.grid_thw for m in video_media]) if video_media else None
        merge = self.config.vision.spatial_merge_size if self.config.vision else 2
        expanded = expand_media_tokens(ids, image_grids, video_grids, tokens.image_pad, tokens.video_pad, merge)
        positions, rope_delta = self._positions(expanded, image_grids, video_grids,
                                                [m.second_per_grid_t for m in video_media])
        keys: list = [int(t) for t in expanded]
        spans = []
        for pad, media_list, is_video in ((tokens.image_pad, image_media, False), (tokens.video_pad, video_media, True)):
            rows = np.flatnonzero(expanded == pad)
            offset = 0
            for media in media_list:
                count = int(np.prod(media.grid_thw[0])) // merge**2
                first = int(rows[offset])
                spans.append((first, media, is_video))
                for i in range(count):
                    keys[first + i] = (media.digest, i)
                offset += count
        spans.sort(key=lambda span: span[0])
        return PreparedPrompt(expanded.astype(np.int32), positions.astype(np.int32), int(rope_delta), keys, spans)

    @staticmethod
    def _media(arrays: tuple[np.ndarray, np.ndarray], second_per_grid_t: float = 1.0) -> _Media:
        pixel_values, grid = arrays
        digest = hashlib.blake2b(pixel_values.tobytes(), digest_size=16)
        digest.update(grid.tobytes())
        digest.update(np.float64(second_per_grid_t).tobytes())  # the positions may depend on it
        return _Media(pixel_values, grid, digest.hexdigest(), second_per_grid_t)

    def reset(self) -> None:
        """Forget the cached conversation and image embeddings: the next call starts from scratch."""
        self._reset_cache()
        self._embedding_cache.clear()

    def __repr__(self) -> str:
        vision = f", mmproj={self.mmproj_file.path.name!r}" if self.mmproj_file else ""
        return f"Model({self.text_file.path.name!r}{vision}, n_ctx={self.n_ctx}, threads={self.n_threads})"
