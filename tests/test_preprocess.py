"""Image preprocessing against the HF references in fixtures/preprocess and fixtures/ref.

Tolerance for pixel values: 2 uint8 steps in normalized units, 2 / 255 / min(std) ~= 0.03. Against
the PIL backend (Qwen2VLImageProcessorPil, what we implement) our values are measured bit-identical;
the margin only absorbs a different Pillow version's bicubic rounding. Against the torchvision
backend (b_image.npz) the measured max difference is 0.015 (one uint8 step), same tolerance.
"""
from __future__ import annotations

import base64
import http.server
import io
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qvl_local import preprocess
from qvl_local.preprocess import (
    CLIP_STD,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    MediaError,
    load_image,
    preprocess_frames,
    preprocess_image,
    resize_to_budget,
    smart_resize,
)

TWO_UINT8_STEPS = 2 / 255 / min(CLIP_STD)  # ~0.0304 in normalized units


def _reference(fixtures: Path) -> dict:
    return json.loads((fixtures / "preprocess" / "preprocess_reference.json").read_text())


def _settings(reference: dict, name: str) -> tuple[int, int]:
    setting = reference["settings"][name]
    return setting["min_pixels"], setting["max_pixels"]


def _synthetic_image(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(width * 10007 + height)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_default_budget_matches_preprocessor_config(fixtures):
    config = json.loads((fixtures / "hf" / "qwen2vl-tiny" / "preprocessor_config.json").read_text())
    assert (DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS) == (config["min_pixels"], config["max_pixels"])
    assert preprocess.CLIP_MEAN == tuple(config["image_mean"])
    assert preprocess.CLIP_STD == tuple(config["image_std"])


@pytest.mark.parametrize("setting", ["default", "custom"])
def test_smart_resize_matches_reference_for_every_image(fixtures, setting):
    reference = _reference(fixtures)
    min_pixels, max_pixels = _settings(reference, setting)
    for name, entry in reference["images"].items():
        expected = entry["smart_resize"][setting]
        if expected["ok"]:
            got = smart_resize(entry["height"], entry["width"], 28, min_pixels, max_pixels)
            assert list(got) == expected["resized_hw"], name
        else:
            with pytest.raises(ValueError) as caught:
                smart_resize(entry["height"], entry["width"], 28, min_pixels, max_pixels)
            assert str(caught.value) == expected["error"], name


def test_smart_resize_edge_cases():
    assert smart_resize(1, 1, 28, DEFAULT_MIN_PIXELS, DEFAULT_MAX_PIXELS) == (56, 56)
    # round() is half-to-even: 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2
    assert smart_resize(42, 70, 28, 1, 10**9) == (56, 56)
    with pytest.raises(ValueError, match="absolute aspect ratio must be smaller than 200"):
        smart_resize(700, 3)


def _shipped_cases(fixtures: Path):
    reference = _reference(fixtures)
    for name, entry in reference["images"].items():
        png = entry["png"] and fixtures / "preprocess" / entry["png"]
        if png and png.is_file():
            yield name, png, entry


@pytest.mark.parametrize("setting", ["default", "custom"])
def test_shipped_pngs_match_pil_backend(fixtures, setting):
    reference = _reference(fixtures)
    min_pixels, max_pixels = _settings(reference, setting)
    checked = 0
    for name, png, entry in _shipped_cases(fixtures):
        expected = entry["processed"][setting]["pil"]
        if not expected["ok"]:
            with pytest.raises(ValueError, match=expected["error"].split(",")[0]):
                preprocess_image(png, min_pixels=min_pixels, max_pixels=max_pixels)
            continue
        pixel_values, grid = preprocess_image(png, min_pixels=min_pixels, max_pixels=max_pixels)
        assert grid.dtype == np.int64 and grid.tolist() == [expected["grid_thw"]], name
        assert list(pixel_values.shape) == expected["pixel_values_shape"], name
        assert pixel_values.dtype == np.float32
        resized = resize_to_budget(load_image(png), min_pixels=min_pixels, max_pixels=max_pixels)
        assert [resized.height, resized.width] == expected["resized_hw"], name
        np.testing.assert_allclose(pixel_values[0, :64], expected["first64"], atol=TWO_UINT8_STEPS)
        np.testing.assert_allclose(pixel_values[-1, :64], expected["last_row_first64"], atol=TWO_UINT8_STEPS)
        values = pixel_values.astype(np.float64)
        assert values.mean() == pytest.approx(expected["mean"], abs=1e-3), name
        assert values.std() == pytest.approx(expected["std"], abs=1e-3), name
        assert values.sum() == pytest.approx(expected["sum"], abs=1e-3 * values.size), name
        checked += 1
    assert checked == 5  # 1x1, 27x27, 28x28, 97x203, 203x97 (3x700 is the error case)


@pytest.mark.parametrize("image", ["img_97x203", "img_56x56", "img_300x120"])
def test_case_media_full_arrays_match_pil_backend(fixtures, image):
    arrays = np.load(fixtures / "preprocess" / "case_media_pixel_values.npz")
    pixel_values, grid = preprocess_image(fixtures / "media" / f"{image}.png")
    np.testing.assert_array_equal(grid, arrays[f"{image}__pil__image_grid_thw"])
    np.testing.assert_allclose(pixel_values, arrays[f"{image}__pil__pixel_values"], atol=TWO_UINT8_STEPS, rtol=0)


@pytest.mark.parametrize("size", ["1024x683", "683x1024"])
def test_unshipped_sizes_give_reference_grids(fixtures, size):
    entry = _reference(fixtures)["images"][size]
    image = _synthetic_image(entry["width"], entry["height"])
    for setting in ("default", "custom"):
        min_pixels, max_pixels = _settings(_reference(fixtures), setting)
        expected = entry["processed"][setting]["pil"]
        pixel_values, grid = preprocess_image(image, min_pixels=min_pixels, max_pixels=max_pixels)
        assert grid.tolist() == [expected["grid_thw"]]
        assert list(pixel_values.shape) == expected["pixel_values_shape"]


@pytest.mark.parametrize("size", ["4000x3000", "3000x4000"])
def test_large_sizes_resize_to_reference(fixtures, size):
    reference = _reference(fixtures)
    entry = reference["images"][size]
    image = Image.new("RGB", (entry["width"], entry["height"]), (10, 200, 30))
    for setting in ("default", "custom"):
        min_pixels, max_pixels = _settings(reference, setting)
        resized = resize_to_budget(image, min_pixels=min_pixels, max_pixels=max_pixels)
        assert [resized.height, resized.width] == entry["processed"][setting]["pil"]["resized_hw"]


@pytest.mark.slow
@pytest.mark.parametrize("size", ["4000x3000", "3000x4000"])
def test_large_sizes_full_preprocess(fixtures, size):
    entry = _reference(fixtures)["images"][size]
    expected = entry["processed"]["default"]["pil"]
    pixel_values, grid = preprocess_image(_synthetic_image(entry["width"], entry["height"]))
    assert grid.tolist() == [expected["grid_thw"]]
    assert list(pixel_values.shape) == expected["pixel_values_shape"]


def test_two_image_case_reproduces_pil_npz(fixtures):
    reference = np.load(fixtures / "ref" / "qwen2vl-tiny" / "q8_0" / "c_2images_pil.npz")
    results = [preprocess_image(fixtures / "media" / str(name)) for name in reference["image_files"]]
    pixel_values = np.concatenate([values for values, _ in results])
    grids = np.concatenate([grid for _, grid in results])
    np.testing.assert_array_equal(grids, reference["image_grid_thw"])
    np.testing.assert_allclose(pixel_values, reference["pixel_values"], atol=TWO_UINT8_STEPS, rtol=0)


def test_single_image_case_close_to_torchvision_npz(fixtures):
    reference = np.load(fixtures / "ref" / "qwen2vl-tiny" / "q8_0" / "b_image.npz")
    pixel_values, grid = preprocess_image(fixtures / "media" / str(reference["image_files"][0]))
    np.testing.assert_array_equal(grid, reference["image_grid_thw"])
    assert pixel_values.shape == reference["pixel_values"].shape
    # measured: max 0.0150 (one uint8 step) between PIL and torchvision bicubic for this image
    np.testing.assert_allclose(pixel_values, reference["pixel_values"], atol=TWO_UINT8_STEPS, rtol=0)


def test_patch_layout_is_merge_windows_then_channel_time_row_column():
    # Encode each pixel's coordinates in its value, so the layout can be read back exactly.
    height, width = 56, 84
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    frames = np.stack([rows, cols, rows * 0 + 7], axis=-1)[np.newaxis].repeat(2, axis=0).astype(np.float32)
    frames[1, :, :, 2] = 8  # the second temporal slice is told apart by channel 2
    patches, grid = preprocess.patchify(frames)
    assert grid.tolist() == [[1, 4, 6]]
    patch = patches.reshape(-1, 3, 2, 14, 14)
    # row 1: first merge window (rows 0-27, cols 0-27), second patch in it -> patch row 0, col 1
    assert patch[1, 0, 0, 0, 0] == 0 and patch[1, 1, 0, 0, 0] == 14
    # row 2: same window, patch row 1, col 0
    assert patch[2, 0, 0, 0, 0] == 14 and patch[2, 1, 0, 0, 0] == 0
    # row 4: second merge window in raster order starts at col 28
    assert patch[4, 1, 0, 0, 0] == 28 and patch[4, 0, 0, 0, 0] == 0
    # row 12: the second row of windows starts at image row 28
    assert patch[12, 0, 0, 0, 0] == 28
    assert patch[0, 2, 0, 0, 0] == 7 and patch[0, 2, 1, 0, 0] == 8
    assert patch[5, 0, 0, 3, 0] == 3 and patch[5, 1, 0, 0, 5] == 42 + 5


def test_explicit_size_is_rounded_to_factor(fixtures):
    pixel_values, grid = preprocess_image(
        fixtures / "media" / "img_56x56.png", resized_height=100, resized_width=150
    )
    assert grid.tolist() == [[1, 8, 10]]  # 112 x 140
    assert pixel_values.shape == (80, 1176)
    with pytest.raises(ValueError, match="together"):
        preprocess_image(fixtures / "media" / "img_56x56.png", resized_height=100)


# ----------------------------------------------------------------------------------------------
# Sources


def test_every_source_kind_gives_the_same_pixels(fixtures):
    path = fixtures / "media" / "img_97x203.png"
    expected = np.asarray(Image.open(path).convert("RGB"))
    data = path.read_bytes()
    sources = [
        path,
        str(path),
        path.resolve().as_uri(),
        "data:image/png;base64," + base64.b64encode(data).decode(),
        data,
        bytearray(data),
        Image.open(path),
        expected.copy(),
    ]
    for source in sources:
        image = load_image(source)
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), expected)


def test_grayscale_and_single_channel_arrays():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    for array in (gray, gray[:, :, np.newaxis]):
        np.testing.assert_array_equal(np.asarray(load_image(array)), np.repeat(gray[:, :, None], 3, axis=2))


def test_alpha_is_composited_on_white():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red-ish, bottom half fully transparent
    rgb = np.asarray(load_image(rgba))
    assert (rgb[:2] == [200, 0, 0]).all()
    assert (rgb[2:] == 255).all()


def test_palette_transparency_is_composited_on_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    image.putpixel((0, 0), 1)
    image.info["transparency"] = 0
    rgb = np.asarray(load_image(Image.open(io.BytesIO(_png_bytes(image)))))
    assert rgb[0, 0].tolist() == [10, 20, 30]
    assert (rgb[1:] == 255).all()


def test_cmyk_and_la_are_converted():
    assert load_image(Image.new("CMYK", (3, 3), (0, 0, 0, 0))).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(Image.new("LA", (3, 3), (50, 255))).getpixel((0, 0)) == (50, 50, 50)
    assert load_image(Image.new("LA", (3, 3), (50, 0))).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    assert load_image(buffer.getvalue()).size == (20, 40)


def test_large_jpeg_is_decoded_at_reduced_scale_but_above_target():
    image = _synthetic_image(1600, 1200)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    budget = 200_000
    loaded = load_image(buffer.getvalue(), max_pixels=budget)
    target_h, target_w = smart_resize(1200, 1600, 28, DEFAULT_MIN_PIXELS, budget)
    assert loaded.size[0] < 1600 and loaded.size[0] >= target_w and loaded.size[1] >= target_h
    assert load_image(buffer.getvalue()).size == (1600, 1200)


@pytest.mark.parametrize(
    "source, message",
    [
        (b"\x89PNG\r\n\x1a\n not really a png", "cannot decode image"),
        (b"", "cannot decode image"),
        (42, "unsupported image source type int"),
        ({"image": "x"}, "unsupported image source type dict"),
        ("/nonexistent/dir/picture.png", "image file not found"),
        ("file:///nonexistent/dir/picture.png", "image file not found"),
        ("data:image/png;base64,!!!not base64!!!", "invalid base64"),
        ("data:image/png;base64," + base64.b64encode(b"garbage bytes").decode(), "cannot decode image"),
        ("data:text/plain,hello", "expected a data:image"),
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "uint8"),
    ],
)
def test_bad_sources_raise_media_error(source, message):
    with pytest.raises(MediaError, match=message):
        load_image(source)


def test_truncated_file_names_the_source(tmp_path, fixtures):
    data = (fixtures / "media" / "img_300x120.png").read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated.png"):
        preprocess_image(truncated)


def test_media_error_is_a_value_error_and_qvl_error():
    from qvl_local.errors import QvlError

    assert issubclass(MediaError, ValueError) and issubclass(MediaError, QvlError)


def test_aspect_ratio_error_through_preprocess(fixtures):
    with pytest.raises(ValueError, match="absolute aspect ratio must be smaller than 200"):
        preprocess_image(fixtures / "preprocess" / "img_3x700.png")


def test_pixel_cap_refuses_before_decoding(fixtures, monkeypatch):
    monkeypatch.setattr(preprocess, "MAX_DECODE_PIXELS", 1000)
    with pytest.raises(MediaError, match="decode limit"):
        load_image(fixtures / "media" / "img_56x56.png")


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path == "/image.png":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload)
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(fixtures):
    _Handler.payload = (fixtures / "media" / "img_56x56.png").read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_download(http_server, fixtures):
    image = load_image(f"{http_server}/image.png")
    expected = np.asarray(Image.open(fixtures / "media" / "img_56x56.png").convert("RGB"))
    np.testing.assert_array_equal(np.asarray(image), expected)
    with pytest.raises(MediaError, match="404"):
        load_image(f"{http_server}/missing.png")
    with pytest.raises(MediaError, match="exceeds 100 bytes"):
        preprocess.download(f"{http_server}/image.png", max_bytes=100)


def test_unreachable_url_raises_media_error():
    with pytest.raises(MediaError, match="cannot download"):
        load_image("http://127.0.0.1:9/none.png")


@pytest.mark.parametrize("shape", [(0, 10, 3), (10, 0, 3), (0, 0)])
def test_an_empty_image_is_a_media_error_naming_it(shape):
    """issue 16 item 7: a 0-height array ended in a ZeroDivisionError."""
    label = f"<array uint8 {shape}>"
    with pytest.raises(MediaError, match=f"image {re.escape(label)} is empty"):
        preprocess_image(np.zeros(shape, dtype=np.uint8))
    with pytest.raises(MediaError, match="is empty"):
        preprocess_image(Image.new("RGB", (shape[1], shape[0])))


@pytest.mark.parametrize("settings, message", [
    ({"resized_height": -5, "resized_width": 56}, "resized_height must be a positive integer, got -5"),
    ({"resized_height": 56, "resized_width": 0}, "resized_width must be a positive integer, got 0"),
    ({"max_pixels": -1}, "max_pixels must be a positive integer, got -1"),
    ({"min_pixels": 2.5}, "min_pixels must be a positive integer, got 2.5"),
])
def test_size_settings_out_of_range_are_media_errors(settings, message):
    """issue 16 item 7: resized_height=-5 ended in "math domain error"."""
    with pytest.raises(MediaError, match=re.escape(f"image <array uint8 (28, 28, 3)>: {message}")):
        preprocess_image(np.zeros((28, 28, 3), dtype=np.uint8), **settings)


def test_an_extreme_aspect_ratio_names_the_image():
    """issue 16 item 7: a 1x10000 image got a ValueError that did not say which image."""
    with pytest.raises(MediaError, match=r"image <array uint8 \(1, 10000, 3\)>: absolute aspect ratio"):
        preprocess_image(np.zeros((1, 10000, 3), dtype=np.uint8))
    with pytest.raises(MediaError, match="video frames: max_pixels must be a positive integer"):
        preprocess_frames([np.zeros((28, 28, 3), dtype=np.uint8)] * 2, max_pixels=0)
