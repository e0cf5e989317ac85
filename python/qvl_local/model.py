"""The model users hold: `qvl_local.load(...)` -> `Model`, with chat, generate, forward and the vision encoder.

Python keeps the glue, one job per module: prompt building (`prompt.py`), the prompt cache
(`prompt_cache.py`), the generation loop (`decoding.py`: prefill, decode_one, sampling, stop strings);
the C++ core runs the decoder with its KV cache and the vision encoder, with the GIL released.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _core
from .chat import builtin_chat_template, render_chat
from .config import Qwen2VLConfig, holds_vision_encoder, text_spec, vision_spec
from .decoding import Outcome, generate_tokens, stream_text
from .errors import ContextLengthError, ModelFormatError, VisionUnavailableError
from .generation import GenerationConfig, GenerationResult
from .gguf_file import GGUFFile
from .ops import PRECISIONS
from .prompt import DEFAULT_MAX_PIXELS, Media, PreparedPrompt, PromptBuilder, split_media, vision_rows
from .prompt_cache import PromptCache
from .tokenizer import Tokenizer
from .threads import thread_count
from .video import DEFAULT_FPS

__all__ = ["DEFAULT_MAX_PIXELS", "Model", "PreparedPrompt", "VisionUnavailableError", "load"]


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
    pull: bool = True,
) -> "Model":
    """Open a Qwen-VL model from a GGUF path or a model name ("qwen2.5vl:3b",
    "hf.co/ggml-org/Qwen2.5-VL-3B-Instruct-GGUF:Q4_K_M").

    A name not in the store yet is pulled from its registry first (progress bars on a terminal;
    an interrupted pull resumes), as `ollama run` does; `pull=False` makes that an error instead.
    `mmproj`: the vision projector file; None takes a pulled model's projector layer, or for a file
    the projector beside it that belongs to it (see `qvl_local.projector`); False loads the text
    model alone.
    `n_threads`: None uses every available core; fewer than 1 is a ValueError, more than a few per
    core are capped with a warning.
    `precision`: "fast" (8-bit activations, integer kernels), "exact" (float activations) or
    "int8" ("fast", and float weights such as an F16 projector's are also multiplied as 8-bit
    Q8_0 blocks: the quickest image encoding, with ~2% RMS error in the vision embeddings against
    ~1e-6 for "fast").
    `min_pixels` / `max_pixels`: the image budget; the default max is 1280 tokens (see
    DEFAULT_MAX_PIXELS), HF's processor allows 12845056 pixels.
    """
    from .projector import find_projector
    from .store import resolve_model

    n_threads = thread_count(n_threads)  # before a pull, which may take long
    resolved = resolve_model(path, models_dir=models_dir, pull=pull)
    if mmproj is None and holds_vision_encoder(resolved.model_path):
        mmproj_path = resolved.model_path  # one file with text and vision (Ollama's layout)
    elif mmproj is None:
        mmproj_path = resolved.projector_path if resolved.from_store else find_projector(resolved.model_path)
    elif mmproj is False:
        mmproj_path = None
    else:
        mmproj_path = Path(mmproj)
    model = Model(
        resolved.model_path,
        mmproj_path,
        n_threads=n_threads,
        n_ctx=n_ctx,
        n_batch=n_batch,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        precision=precision,
    )
    if resolved.chat_template is not None and model.text_file.get("tokenizer.chat_template") is None:
        # The registry's Jinja template layer, ahead of any built-in fallback (Go templates never get here).
        model.tokenizer.chat_template = resolved.chat_template
    return model


class Model:
    """A loaded Qwen2-VL, Qwen2.5-VL or Qwen3-VL model. Not thread-safe: one call at a time."""

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
        _check_precision(precision)
        n_threads = thread_count(n_threads)
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
            source=str(self.text_file.path),
        )
        if self.config.text.context_length < 1:
            raise ModelFormatError(f"{self.text_file.path}: its metadata gives a context length of "
                                   f"{self.config.text.context_length} tokens")
        self.n_threads = n_threads
        self.n_ctx = min(n_ctx, self.config.text.context_length)
        self.precision = precision
        self.prompts = PromptBuilder(self.config, self.tokenizer, n_ctx=self.n_ctx, model_name=self.text_file.path.name,
                                     min_pixels=min_pixels, max_pixels=max_pixels)
        self._pool = _core.ThreadPool(self.n_threads)  # the decoder's and the vision encoder's threads
        self._decoder = _core.TextModel(self.text_file.handle, text_spec(self.config.text), self.n_ctx, n_batch, self._pool)
        self._vision = (
            _core.VisionModel(self.mmproj_file.handle, vision_spec(self.config.vision), self._pool)
            if self.mmproj_file is not None
            else None
        )
        self._cache = PromptCache()
        self._outcome: Outcome | None = None

    @property
    def min_pixels(self) -> int | None:
        return self.prompts.min_pixels

    @property
    def max_pixels(self) -> int:
        return self.prompts.max_pixels

    @property
    def last_finish_reason(self) -> str | None:
        """"stop" or "length", once the last generation has ended."""
        return self._outcome.finish_reason if self._outcome else None

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
        """(pixel_values float32 [patches, 3 * 2 * patch^2], grid_thw int64 [1, 3]) with this model's
        patch size, mean/std and pixel range."""
        return self.prompts.image_arrays(image, min_pixels=min_pixels, max_pixels=max_pixels,
                                         resized_height=resized_height, resized_width=resized_width)

    def preprocess_video(self, video: Any, *, fps: float = DEFAULT_FPS, min_pixels: int | None = None,
                         max_pixels: int | None = None, **sampling: Any) -> tuple[np.ndarray, np.ndarray]:
        """(pixel_values_videos float32 [patches, 3 * 2 * patch^2], video_grid_thw int64 [1, 3]) for a file or frame
        list. `sampling`: load_video's nframes, min_frames, max_frames, total_pixels."""
        pixel_values, grid, *_ = self.prompts.video_arrays(video, fps=fps, min_pixels=min_pixels,
                                                          max_pixels=max_pixels, **sampling)
        return pixel_values, grid

    def encode_image(self, image: Any, *, min_pixels: int | None = None, max_pixels: int | None = None,
                     pre_merge: bool = False, precision: str | None = None) -> np.ndarray:
        """Merged vision tokens float32 [tokens, text_hidden], or with pre_merge the ViT's patch
        features float32 [patches, vision_hidden]."""
        pixel_values, grid = self.preprocess_image(image, min_pixels=min_pixels, max_pixels=max_pixels)
        return self.encode_pixels(pixel_values, grid, pre_merge=pre_merge, precision=precision)

    def encode_pixels(self, pixel_values: np.ndarray, grid_thw: np.ndarray, *, pre_merge: bool = False,
                      precision: str | None = None) -> np.ndarray:
        """The vision encoder on preprocessed pixels (the HF processor's arrays)."""
        self.prompts.require_vision()
        return self._vision.encode(
            np.ascontiguousarray(pixel_values, dtype=np.float32),
            np.ascontiguousarray(grid_thw, dtype=np.int64).reshape(-1, 3),
            pre_merge=pre_merge,
            precision=self._precision(precision),
        )

    def _encode_media(self, media: Media, precision: str) -> np.ndarray:
        return self._vision_features(media.pixel_values, media.grid_thw, precision)

    def _vision_features(self, pixel_values: np.ndarray, grid_thw: np.ndarray, precision: str,
                         trace: dict[str, np.ndarray] | None = None, kind: str = "") -> np.ndarray:
        """The decoder's input for vision tokens: float32 [tokens, 1 + deepstack taps, hidden], each token's
        embedding then its deepstack features. With `trace`, the encoder's named stages go there as `kind.*`."""
        self.prompts.require_vision()
        pixels = np.ascontiguousarray(pixel_values, dtype=np.float32)
        grids = np.ascontiguousarray(grid_thw, dtype=np.int64).reshape(-1, 3)
        if trace is None:
            return self._vision.encode_features(pixels, grids, precision=precision)
        stages = self._vision.trace(pixels, grids, precision=precision)
        trace.update((f"{kind}.{name}", value) for name, value in stages.items())
        taps = [stages[f"deepstack.{k}"] for k in range(self._vision.deepstack_taps)]
        return np.stack([stages["merger"], *taps], axis=1)

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
        (patches in the preprocessor's order), "deepstack.<k>" (Qwen3-VL's extra embeddings), "merger" (the
        embeddings); the decoder's under "text.": "input" (the embedded prompt), "block.<i>" (hidden states
        after layer i, deepstack added), "logits" (= forward's)."""
        return self._run_arrays(input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw,
                                second_per_grid_ts, precision, trace=True)

    def _run_arrays(self, input_ids, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw,
                    second_per_grid_ts, precision: str | None, *, trace: bool):
        precision = self._precision(precision)
        merge = self.prompts.merge
        images = split_media(pixel_values, image_grid_thw, merge)
        videos = self.prompts.vision_blocks(
            self.prompts.timed(split_media(pixel_values_videos, video_grid_thw, merge), second_per_grid_ts))
        prompt = self.prompts.layout(np.asarray(input_ids, dtype=np.int64), images, videos)
        named: dict[str, np.ndarray] = {}
        encoded: dict[str, np.ndarray] = {}
        # One encoder call per kind, as the HF model runs it; each media's share is its tokens.
        for kind, items, pixels, grids in (("image", images, pixel_values, image_grid_thw),
                                           ("video", videos, pixel_values_videos, video_grid_thw)):
            if not items:
                continue
            embeddings = self._vision_features(pixels, grids, precision, named if trace else None, kind)
            bounds = np.cumsum([0] + [media.tokens for media in items])
            encoded.update((media.digest, embeddings[bounds[i]:bounds[i + 1]]) for i, media in enumerate(items))
        embeddings, rows = vision_rows(prompt, 0, lambda media: encoded[media.digest])
        arguments = dict(embeddings=embeddings, embedded_rows=rows, precision=precision)
        self._reset_prefix()
        try:
            if not trace:
                return self._decoder.forward(prompt.ids, prompt.positions, logits="all", **arguments)
            stages = self._decoder.trace(prompt.ids, prompt.positions, **arguments)
            named.update({f"text.{name}": value for name, value in stages.items()})
            return named
        finally:
            self._reset_prefix()

    def _precision(self, precision: str | None) -> str:
        return _check_precision(precision or self.precision)

    # -- generation --------------------------------------------------------------------------------

    def prepare_prompt(self, prompt: str, images: Sequence[Any] = (), videos: Sequence[Any] = (), *,
                       fps: float = DEFAULT_FPS, min_pixels: int | None = None,
                       max_pixels: int | None = None) -> PreparedPrompt:
        """Tokenize the prompt and preprocess its media (no model compute): the step before
        `generate`, for callers that need the exact prompt length first (e.g. a server checking
        the context). Reads only the model's configuration, so it may run beside a generation.
        Text that cannot fit the context is refused before it is tokenized (ContextLengthError)."""
        return self.prompts.prepare(prompt, images, videos, fps=fps, min_pixels=min_pixels, max_pixels=max_pixels)

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
        if len(prepared) + 1 > self.n_ctx:
            raise ContextLengthError(f"the prompt has {len(prepared)} tokens, more than the context of {self.n_ctx} allows")
        outcome = self._outcome = Outcome()
        tokens = generate_tokens(
            self._decoder, self._cache, prepared, config, precision=self._precision(precision),
            encode=self._encode_media, end_ids=self._end_ids(), n_ctx=self.n_ctx, outcome=outcome,
        )
        chunks = stream_text(tokens, self.tokenizer, config.stop, outcome)
        if stream:
            return chunks
        pieces, ids = [], []
        for text, token in chunks:
            pieces.append(text)
            ids.append(token)
        return GenerationResult(text="".join(pieces), token_ids=ids, prompt_tokens=len(prepared),
                                finish_reason=outcome.finish_reason)

    def chat(self, messages: Sequence[Mapping[str, Any]], *, stream: bool = False, **generation: Any) -> str | Iterator[str]:
        """Answer the conversation (HF/OpenAI message shape). Returns the assistant's text, or with
        stream=True an iterator of text pieces. A conversation that continues reuses the cached
        prefix: earlier turns and their images are not computed again."""
        rendered = render_chat(messages, template=self.tokenizer.chat_template)
        result = self.generate(rendered.prompt, images=rendered.images, videos=rendered.videos, stream=stream, **generation)
        if stream:
            return (text for text, _ in result if text)
        return result.text

    def _end_ids(self) -> set[int]:
        tokens = self.config.tokens
        return {tokens.eos, tokens.im_end, tokens.endoftext}

    def _reset_prefix(self) -> None:
        """Forget the cached conversation (the KV cache); image embeddings stay cached."""
        self._decoder.truncate(0)
        self._cache.forget_prefix()

    def reset(self) -> None:
        """Forget the cached conversation and image embeddings: the next call starts from scratch."""
        self._reset_prefix()
        self._cache.clear()

    def __repr__(self) -> str:
        vision = f", mmproj={self.mmproj_file.path.name!r}" if self.mmproj_file else ""
        return f"Model({self.text_file.path.name!r}{vision}, n_ctx={self.n_ctx}, threads={self.n_threads})"


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision
