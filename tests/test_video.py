"""Video loading: frame lists vs the d_video reference, real files written and read with PyAV.

Tolerance against d_video.npz (HF's torchvision video processor): the four 84x112 frames need no
resize (already multiples of 28, inside the budget), so the values match to float32 rounding;
measured max 2.4e-7, asserted at 1e-5. Files are encoded losslessly (FFV1, planar RGB), so decoded
frames must equal the source frames exactly.
"""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from qvl_local.preprocess import MediaError, MediaWarning, preprocess_frames, smart_resize
from qvl_local.video import (
    VIDEO_MAX_PIXELS,
    VIDEO_MIN_PIXELS,
    VIDEO_TOTAL_PIXELS,
    check_fps,
    frame_pixel_budget,
    load_video,
    sample_frame_count,
    sample_indices,
)
from conftest import write_lossless_video


def _reference(fixtures: Path):
    return np.load(fixtures / "ref" / "qwen2vl-tiny" / "q8_0" / "d_video.npz")


def _fixture_frames(fixtures: Path) -> list[Path]:
    return [fixtures / "media" / str(name) for name in _reference(fixtures)["video_files"]]


def _numbered_frames(count: int, size: int = 56) -> list[np.ndarray]:
    """Frames whose color encodes their index, so sampled indices can be read back."""
    return [np.full((size, size, 3), (index * 10, 255 - index * 10, 7), dtype=np.uint8) for index in range(count)]


def test_frame_list_reproduces_d_video(fixtures):
    reference = _reference(fixtures)
    frames, sample_fps, _ = load_video(_fixture_frames(fixtures), fps=float(reference["video_fps"]))
    assert frames.shape == (4, 112, 84, 3) and frames.dtype == np.uint8
    assert sample_fps == 2.0
    pixel_values, grid = preprocess_frames(frames)
    np.testing.assert_array_equal(grid, reference["video_grid_thw"])
    assert grid.tolist() == [[2, 8, 6]]
    np.testing.assert_allclose(pixel_values, reference["pixel_values_videos"], atol=1e-5, rtol=0)


def test_frame_list_odd_count_repeats_last(fixtures):
    paths = _fixture_frames(fixtures)[:3]
    frames, _, _ = load_video(paths)
    assert frames.shape[0] == 4
    np.testing.assert_array_equal(frames[3], frames[2])
    _, grid = preprocess_frames(paths)  # preprocess_frames pads the same way on its own
    assert grid.tolist() == [[2, 8, 6]]


def test_frame_list_with_budget_is_resized(fixtures):
    frames, _, _ = load_video(_fixture_frames(fixtures), min_pixels=VIDEO_MIN_PIXELS)
    expected_hw = smart_resize(112, 84, 28, VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS)
    assert frames.shape == (4, *expected_hw, 3)


def test_lossless_file_round_trip_matches_d_video(fixtures, tmp_path):
    sources = [np.asarray(Image.open(path).convert("RGB")) for path in _fixture_frames(fixtures)]
    video = write_lossless_video(tmp_path / "clip.mkv", sources, fps=2)
    # A budget that keeps 84x112 as is, so the decoded frames must be the PNGs exactly.
    frames, sample_fps, _ = load_video(video, min_pixels=3136, max_pixels=12845056)
    np.testing.assert_array_equal(frames, np.stack(sources))
    assert sample_fps == pytest.approx(2.0)
    pixel_values, grid = preprocess_frames(frames)
    np.testing.assert_array_equal(grid, _reference(fixtures)["video_grid_thw"])
    np.testing.assert_allclose(pixel_values, _reference(fixtures)["pixel_values_videos"], atol=1e-5, rtol=0)
    assert np.array_equal(load_video(video.as_uri(), min_pixels=3136)[0], frames)


def test_file_default_budget_upscales_to_video_min_pixels(fixtures, tmp_path):
    sources = [np.asarray(Image.open(path).convert("RGB")) for path in _fixture_frames(fixtures)]
    video = write_lossless_video(tmp_path / "clip.mkv", sources, fps=2)
    frames, _, _ = load_video(video)
    height, width = smart_resize(112, 84, 28, VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS)
    assert frames.shape == (4, height, width, 3) == (4, 392, 280, 3)
    expected = Image.fromarray(sources[1]).resize((width, height), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(frames[1], np.asarray(expected))


def test_file_sampling_picks_evenly_spaced_frames(tmp_path):
    video = write_lossless_video(tmp_path / "count.mkv", _numbered_frames(20), fps=10)
    budget = dict(min_pixels=3136, max_pixels=3136)
    frames, sample_fps, _ = load_video(video, fps=2.0, **budget)  # 2 s at 2 fps -> 4 frames
    assert [int(frame[0, 0, 0]) // 10 for frame in frames] == [0, 6, 13, 19]
    assert sample_fps == pytest.approx(2.0)
    frames, sample_fps, _ = load_video(video, nframes=6, **budget)
    assert [int(frame[0, 0, 0]) // 10 for frame in frames] == [0, 4, 8, 11, 15, 19]
    assert sample_fps == pytest.approx(3.0)
    frames, _, _ = load_video(video, fps=2.0, max_frames=2, **budget)
    assert [int(frame[0, 0, 0]) // 10 for frame in frames] == [0, 19]


def test_sample_frame_count_rules():
    assert sample_frame_count(300, 30.0) == 20  # 10 s at 2 fps
    assert sample_frame_count(10, 30.0) == 4  # raised to min_frames
    assert sample_frame_count(3, 30.0) == 2  # limited by the video, floored to even
    assert sample_frame_count(100000, 30.0) == 768  # max_frames
    assert sample_frame_count(300, 30.0, nframes=7) == 8  # round half to even: 3.5 -> 4 pairs
    assert sample_frame_count(300, 30.0, nframes=5) == 4  # 2.5 -> 2 pairs
    with pytest.raises(MediaError, match="cannot sample"):
        sample_frame_count(1, 30.0)
    with pytest.raises(MediaError, match="cannot sample"):
        sample_frame_count(10, 30.0, nframes=12)


def test_sample_indices_round_half_to_even():
    assert sample_indices(20, 4).tolist() == [0, 6, 13, 19]
    assert sample_indices(4, 4).tolist() == [0, 1, 2, 3]
    assert sample_indices(6, 5).tolist() == [0, 1, 2, 4, 5]  # 1.25, 2.5 -> 2, 3.75


def test_frame_pixel_budget():
    assert frame_pixel_budget(4) == (VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS)
    low, high = frame_pixel_budget(768, total_pixels=768 * 100000)
    assert (low, high) == (VIDEO_MIN_PIXELS, 200000)
    assert frame_pixel_budget(768, total_pixels=1000)[1] == int(VIDEO_MIN_PIXELS * 1.05)
    assert frame_pixel_budget(4, max_pixels=10**9)[1] == VIDEO_MAX_PIXELS  # capped at the share
    assert frame_pixel_budget(4, max_pixels=50000, min_pixels=3136) == (3136, 50000)
    assert VIDEO_TOTAL_PIXELS == 90316800


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(MediaError, match="video file not found"):
        load_video(tmp_path / "absent.mp4")
    with pytest.raises(MediaError, match="video file not found"):
        load_video("file:///nonexistent/clip.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(MediaError, match="garbage.mp4"):
        load_video(garbage)
    image_only = tmp_path / "still.png"
    Image.new("RGB", (8, 8)).save(image_only)
    with pytest.raises(MediaError):
        load_video(image_only)  # a single frame cannot fill a temporal patch


def test_bad_frame_lists():
    with pytest.raises(MediaError, match="at least one frame"):
        load_video([])
    with pytest.raises(MediaError, match="same size"):
        load_video([np.zeros((28, 28, 3), np.uint8), np.zeros((56, 28, 3), np.uint8)])
    with pytest.raises(MediaError, match="unsupported video source"):
        load_video(42)


@pytest.mark.skipif("libx264" not in av.codecs_available, reason="PyAV built without libx264")
def test_mp4_h264_file_with_frame_count_in_header(tmp_path):
    path = tmp_path / "count.mp4"
    frames_in = _numbered_frames(20)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10, options={"qp": "0"})
        stream.height = stream.width = 56
        stream.pix_fmt = "yuv444p"
        for pixels in frames_in:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 20  # the header path, no packet counting
    frames, sample_fps, _ = load_video(path, min_pixels=3136, max_pixels=3136)
    # qp 0 is lossless in YUV; the RGB<->YUV conversion costs a few steps
    np.testing.assert_allclose(frames.astype(int), np.stack([frames_in[i] for i in (0, 6, 13, 19)]), atol=3)
    assert sample_fps == pytest.approx(2.0)


def _noise_frames(count: int, size: int = 56) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def _mp4_with_index_first(path: Path, frames: list[np.ndarray], fps: int) -> bytes:
    """An MPEG-4 file whose index (moov) comes before the frames, as a web-ready mp4 has it: cut
    short, it still announces every frame."""
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    return path.read_bytes()


def _decodable_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        count = 0
        try:
            for _ in container.decode(container.streams.video[0]):
                count += 1
        except av.error.FFmpegError:
            pass
        return count


@pytest.mark.skipif("mpeg4" not in av.codecs_available, reason="PyAV built without the mpeg4 encoder")
def test_truncated_file_is_sampled_from_the_frames_it_has(tmp_path):
    """issue 16 item 6: a cut mp4 still announces all its frames; the missing ones were filled with
    copies of the last decoded frame."""
    data = _mp4_with_index_first(tmp_path / "whole.mp4", _noise_frames(40), fps=10)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    available = _decodable_frames(cut)
    assert 4 <= available < 40
    with pytest.warns(MediaWarning, match=f"{available} decodable frames, not the 40"):
        frames, sample_fps, _ = load_video(cut, min_pixels=3136, max_pixels=3136)
    count = sample_frame_count(available, 10.0)
    assert frames.shape[0] == count
    assert sample_fps == pytest.approx(count / available * 10.0)
    assert len({frame.tobytes() for frame in frames}) == count  # each a frame of its own, none repeated
    nothing = tmp_path / "nothing.mp4"
    nothing.write_bytes(data[: data.find(b"mdat") + 8])  # the index alone
    with pytest.raises(MediaError, match="nothing.mp4"):
        load_video(nothing)


@pytest.mark.parametrize("fps", [0, -1, float("nan"), float("inf"), "2", True])
def test_fps_must_be_a_positive_number(fps):
    """issue 16 item 6: one check for the API and the CLI."""
    with pytest.raises(MediaError, match="fps must be a positive number"):
        load_video(_numbered_frames(4), fps=fps)
    with pytest.raises(MediaError, match="fps must be a positive number"):
        check_fps(fps)


def test_fps_check_is_the_same_in_api_and_cli(fixtures, capsys):
    import qvl_local
    from qvl_local.cli import main

    model = qvl_local.load(fixtures / "gguf/qwen2vl-tiny-Q8_0.gguf", mmproj=fixtures / "gguf/mmproj-qwen2vl-tiny-F16.gguf",
                           n_ctx=256)
    video = {"type": "video", "video": _numbered_frames(4), "fps": 0}
    with pytest.raises(MediaError, match="fps must be a positive number"):
        model.chat([{"role": "user", "content": [video, {"type": "text", "text": "What happens?"}]}])
    assert main(["run", str(fixtures / "gguf/qwen2vl-tiny-Q8_0.gguf"), "--video", "clip.mp4", "--fps", "0", "hi"]) == 2
    assert "fps must be a positive number" in capsys.readouterr().err
