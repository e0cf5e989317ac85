"""M-RoPE position ids for Qwen2-VL: three rows (temporal, height, width) per token.

Text tokens carry the same position in all three rows. A media block's tokens carry their
(t, h, w) index in the merged grid, offset by the position where the block starts. After a block,
text resumes at the block's largest position + 1: the original Qwen rule (transformers 4.x and
Qwen's own code). transformers 5.23 instead advances by max(h, w), which overlaps the temporal
positions of long videos; see fixtures/ref/mrope_positions_check.json.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def expand_media_tokens(
    ids: Sequence[int] | np.ndarray,
    image_grid_thw: np.ndarray | None,
    video_grid_thw: np.ndarray | None,
    image_token_id: int,
    video_token_id: int,
    merge: int = 2,
) -> np.ndarray:
    """Repeat each media pad token to t*h*w/merge^2 copies (one per merged patch), in order."""
    ids = np.asarray(ids, dtype=np.int64)
    counts = {
        image_token_id: _token_counts(image_grid_thw, merge),
        video_token_id: _token_counts(video_grid_thw, merge),
    }
    used = {image_token_id: 0, video_token_id: 0}
    pieces: list[np.ndarray] = []
    start = 0
    for index in np.flatnonzero(np.isin(ids, (image_token_id, video_token_id))):
        token = int(ids[index])
        if used[token] >= len(counts[token]):
            raise ValueError(f"more {_kind(token, image_token_id)} pad tokens than grids")
        pieces.append(ids[start:index])
        pieces.append(np.full(counts[token][used[token]], token, dtype=np.int64))
        used[token] += 1
        start = index + 1
    pieces.append(ids[start:])
    for token, grids in counts.items():
        if used[token] != len(grids):
            raise ValueError(
                f"{len(grids)} {_kind(token, image_token_id)} grids but {used[token]} pad tokens"
            )
    return np.concatenate(pieces)


def mrope_positions(
    input_ids: Sequence[int] | np.ndarray,
    *,
    image_grid_thw: np.ndarray | None = None,
    video_grid_thw: np.ndarray | None = None,
    image_token_id: int,
    video_token_id: int,
    vision_start_token_id: int,
    spatial_merge_size: int = 2,
    video_time_scale: Sequence[float] | None = None,
) -> tuple[np.ndarray, int]:
    """Positions int64 [3, N] for expanded ``input_ids``, and rope_delta = max(pos) + 1 - N.

    Media blocks are the runs of pad tokens, matched in order to the image and video grids (each
    block must follow a vision_start token). ``video_time_scale`` is for Qwen2.5-VL, whose temporal
    index per grid step is second_per_grid_t * tokens_per_second (truncated to int); Qwen2-VL uses 1.
    """
    ids = np.asarray(input_ids, dtype=np.int64)
    images = _grids(image_grid_thw)
    videos = _grids(video_grid_thw)
    scales = [1.0] * len(videos) if video_time_scale is None else list(video_time_scale)
    if len(scales) != len(videos):
        raise ValueError(f"{len(videos)} videos but {len(scales)} video_time_scale values")
    _check_block_count(ids, vision_start_token_id, image_token_id, len(images), "image")
    _check_block_count(ids, vision_start_token_id, video_token_id, len(videos), "video")

    segments: list[np.ndarray] = []
    next_position = 0
    cursor = 0
    image_index = video_index = 0
    while True:
        block_start = _next_media_token(ids, cursor, image_token_id, video_token_id)
        if block_start is None:
            break
        if ids[block_start] == image_token_id:
            grid, scale = images[image_index], 1.0
            image_index += 1
        else:
            grid, scale = videos[video_index], scales[video_index]
            video_index += 1
        text = _text_positions(block_start - cursor, next_position)
        block = _grid_positions(grid, spatial_merge_size, scale) + next_position + (block_start - cursor)
        block_end = block_start + block.shape[1]
        if block_end > len(ids) or not np.all(ids[block_start:block_end] == ids[block_start]):
            raise ValueError(f"media block at {block_start} is shorter than its grid {grid.tolist()}")
        segments += [text, block]
        next_position = int(block.max()) + 1
        cursor = block_end
    segments.append(_text_positions(len(ids) - cursor, next_position))
    positions = np.concatenate(segments, axis=1)
    rope_delta = int(positions.max()) + 1 - len(ids) if len(ids) else 0
    return positions, rope_delta


def positions_for_generated(rope_delta: int, start: int, count: int) -> np.ndarray:
    """Positions int64 [3, count] of tokens at sequence indices start..start+count-1 after a prompt."""
    row = np.arange(start, start + count, dtype=np.int64) + rope_delta
    return np.broadcast_to(row, (3, count)).copy()


def _grids(grid_thw: np.ndarray | None) -> np.ndarray:
    if grid_thw is None:
        return np.zeros((0, 3), dtype=np.int64)
    return np.asarray(grid_thw, dtype=np.int64).reshape(-1, 3)


def _token_counts(grid_thw: np.ndarray | None, merge: int) -> list[int]:
    return [int(t * h * w) // (merge * merge) for t, h, w in _grids(grid_thw)]


def _kind(token: int, image_token_id: int) -> str:
    return "image" if token == image_token_id else "video"


def _check_block_count(ids: np.ndarray, start_id: int, pad_id: int, expected: int, kind: str) -> None:
    """The reference counts media as vision_start tokens followed by a pad; the grids must agree."""
    starts = np.flatnonzero(ids[:-1] == start_id)
    found = int(np.count_nonzero(ids[starts + 1] == pad_id))
    if found != expected:
        raise ValueError(f"input_ids hold {found} {kind} blocks but {expected} {kind} grids were given")


def _next_media_token(ids: np.ndarray, cursor: int, image_id: int, video_id: int) -> int | None:
    hits = np.flatnonzero(np.isin(ids[cursor:], (image_id, video_id)))
    return cursor + int(hits[0]) if hits.size else None


def _text_positions(length: int, first: int) -> np.ndarray:
    return np.broadcast_to(np.arange(first, first + length, dtype=np.int64), (3, length))


def _grid_positions(grid: np.ndarray, merge: int, time_scale: float) -> np.ndarray:
    """[3, t*h*w/merge^2] (t, h, w) indices of the merged grid in raster order, from 0."""
    t, h, w = int(grid[0]), int(grid[1]) // merge, int(grid[2]) // merge
    t_index = (np.arange(t, dtype=np.float64) * time_scale).astype(np.int64)
    tt, hh, ww = np.meshgrid(t_index, np.arange(h), np.arange(w), indexing="ij")
    return np.stack([tt.ravel(), hh.ravel(), ww.ravel()]).astype(np.int64)
