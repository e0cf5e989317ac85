"""Opening GGUF files: the fixture models give the right config, broken or hostile files a clear error.

Every bad file here is a real mutated copy of a fixture file (or a small file written with gguf-py),
opened through the public API; a crash of the process would fail the whole run.
"""
from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qvl_local
from qvl_local.config import Qwen2VLConfig
from qvl_local.gguf_file import GGUFFile

TEXT_Q8 = "gguf/qwen2vl-tiny-Q8_0.gguf"
TEXT_Q4KM = "gguf/qwen2vl-tiny-Q4_K_M.gguf"
MMPROJ = "gguf/mmproj-qwen2vl-tiny-F16.gguf"


@pytest.fixture(scope="module")
def mmproj_bytes(fixtures: Path) -> bytes:
    return (fixtures / MMPROJ).read_bytes()


def _tensor_record(data: bytes, name: str) -> int:
    """Byte offset of the tensor-info record of `name` (just after the name)."""
    encoded = name.encode()
    where = data.find(struct.pack("<Q", len(encoded)) + encoded)
    assert where > 0, f"tensor {name} not found in the header"
    return where + 8 + len(encoded)


def _write(tmp_path: Path, data: bytes | bytearray, name: str = "model.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


# -- the fixtures open and report the right config ------------------------------------------------------


@pytest.mark.parametrize("text_file", [TEXT_Q8, TEXT_Q4KM])
def test_fixture_config(fixtures: Path, text_file: str) -> None:
    config = Qwen2VLConfig.from_gguf(GGUFFile(fixtures / text_file), GGUFFile(fixtures / MMPROJ))
    hf = __import__("json").loads((fixtures / "hf/qwen2vl-tiny/config.json").read_text())
    text = config.text
    assert config.architecture == "qwen2vl"
    assert (text.vocab_size, text.hidden_size, text.intermediate_size) == (hf["vocab_size"], hf["hidden_size"], hf["intermediate_size"])
    assert (text.num_layers, text.num_heads, text.num_kv_heads, text.head_dim) == (
        hf["num_hidden_layers"], hf["num_attention_heads"], hf["num_key_value_heads"], 64)
    assert text.mrope_sections == tuple(hf["rope_scaling"]["mrope_section"])
    assert text.rope_theta == hf["rope_theta"]
    assert text.rms_norm_eps == pytest.approx(hf["rms_norm_eps"])
    assert text.tied_embeddings
    vision, hv = config.vision, hf["vision_config"]
    # The converter writes feed_forward_length = 256 (the merger output); the tensors say 1024.
    assert (vision.hidden_size, vision.intermediate_size, vision.num_layers, vision.num_heads) == (
        hv["embed_dim"], hv["embed_dim"] * hv["mlp_ratio"], hv["depth"], hv["num_heads"])
    assert (vision.patch_size, vision.temporal_patch_size, vision.spatial_merge_size) == (14, 2, 2)
    assert (vision.merger_hidden_size, vision.out_hidden_size) == (1024, 256)
    preprocessor = __import__("json").loads((fixtures / "hf/qwen2vl-tiny/preprocessor_config.json").read_text())
    np.testing.assert_allclose(vision.image_mean, preprocessor["image_mean"], rtol=1e-6)
    np.testing.assert_allclose(vision.image_std, preprocessor["image_std"], rtol=1e-6)
    tokens = config.tokens
    assert (tokens.image_pad, tokens.video_pad, tokens.vision_start, tokens.vision_end) == (151655, 151656, 151652, 151653)
    assert (tokens.im_start, tokens.im_end, tokens.endoftext, tokens.eos) == (151644, 151645, 151643, 151645)


def test_metadata_and_tensors_match_gguf_py(fixtures: Path) -> None:
    ours = GGUFFile(fixtures / MMPROJ)
    reference = gguf.GGUFReader(fixtures / MMPROJ)
    assert set(ours.tensors) == {t.name for t in reference.tensors}
    for tensor in reference.tensors:
        info = ours.tensors[tensor.name]
        assert info.shape == tuple(int(d) for d in tensor.shape)
        assert info.offset == tensor.data_offset and info.nbytes == tensor.n_bytes
        assert bytes(ours.tensor_bytes(tensor.name)) == tensor.data.tobytes()
    assert ours.metadata["clip.projector_type"] == "qwen2vl_merger"
    assert ours.metadata["clip.vision.block_count"] == 4


def test_load_finds_mmproj_beside_model(fixtures: Path, tmp_path: Path) -> None:
    for name in (TEXT_Q8, MMPROJ):
        (tmp_path / Path(name).name).symlink_to(fixtures / name)
    model = qvl_local.load(tmp_path / Path(TEXT_Q8).name, n_ctx=256)
    assert model.has_vision and model.mmproj_file.path.name == Path(MMPROJ).name
    # A second projector beside it: the one named like the model is its own (tests/test_projector.py
    # has the shared-folder cases, and the error when several fit and none is named alike).
    (tmp_path / "mmproj-other.gguf").symlink_to(fixtures / MMPROJ)
    model = qvl_local.load(tmp_path / Path(TEXT_Q8).name, n_ctx=256)
    assert model.mmproj_file.path.name == Path(MMPROJ).name


def test_text_only_load_rejects_images(fixtures: Path) -> None:
    model = qvl_local.load(fixtures / TEXT_Q8, mmproj=False, n_ctx=256)
    assert not model.has_vision
    with pytest.raises(qvl_local.VisionUnavailableError, match="without a vision projector"):
        model.encode_image(fixtures / "media/img_56x56.png")


def test_mmproj_as_model_is_explained(fixtures: Path) -> None:
    with pytest.raises(qvl_local.ModelFormatError, match="vision projector"):
        qvl_local.load(fixtures / MMPROJ)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(qvl_local.QvlError):
        qvl_local.load(tmp_path / "nope.gguf")


# -- broken and hostile files ----------------------------------------------------------------------------


def _expect_format_error(path: Path, *patterns: str) -> None:
    with pytest.raises(qvl_local.ModelFormatError) as caught:
        GGUFFile(path)
    message = str(caught.value)
    assert str(path) in message
    for pattern in patterns:
        assert pattern in message, message


def test_wrong_magic(tmp_path: Path, mmproj_bytes: bytes) -> None:
    _expect_format_error(_write(tmp_path, b"GGML" + mmproj_bytes[4:]), "not a GGUF file")


@pytest.mark.parametrize("version", [1, 4, 0xFFFFFFFF])
def test_unsupported_version(tmp_path: Path, mmproj_bytes: bytes, version: int) -> None:
    data = mmproj_bytes[:4] + struct.pack("<I", version) + mmproj_bytes[8:]
    _expect_format_error(_write(tmp_path, data), f"unsupported GGUF version {version}")


@pytest.mark.parametrize("keep", [0, 10, 23, 100, 2000, 5000, 9_000_000])
def test_truncated(tmp_path: Path, mmproj_bytes: bytes, keep: int) -> None:
    with pytest.raises(qvl_local.ModelFormatError, match="truncated|too small|outside the file|absurd"):
        GGUFFile(_write(tmp_path, mmproj_bytes[:keep]))


@pytest.mark.parametrize("field_offset, what", [(8, "absurd tensor count"), (16, "absurd metadata count")])
def test_absurd_counts(tmp_path: Path, mmproj_bytes: bytes, field_offset: int, what: str) -> None:
    data = bytearray(mmproj_bytes)
    data[field_offset:field_offset + 8] = struct.pack("<Q", 1 << 60)
    _expect_format_error(_write(tmp_path, data), what)


def test_absurd_string_length(tmp_path: Path, mmproj_bytes: bytes) -> None:
    data = bytearray(mmproj_bytes)
    data[24:32] = struct.pack("<Q", 1 << 62)  # the first key's length
    _expect_format_error(_write(tmp_path, data), "absurd string length")


def test_tensor_out_of_range(tmp_path: Path, mmproj_bytes: bytes) -> None:
    data = bytearray(mmproj_bytes)
    record = _tensor_record(mmproj_bytes, "mm.2.weight")
    offset_at = record + 4 + 2 * 8 + 4  # n_dims, two dims, type
    data[offset_at:offset_at + 8] = struct.pack("<Q", 1 << 40)
    _expect_format_error(_write(tmp_path, data), "'mm.2.weight'", "outside the file")


def test_tensors_overlap(tmp_path: Path, mmproj_bytes: bytes) -> None:
    data = bytearray(mmproj_bytes)
    first = _tensor_record(mmproj_bytes, "v.blk.0.attn_out.bias") + 4 + 8 + 4
    second = _tensor_record(mmproj_bytes, "v.blk.0.attn_q.bias") + 4 + 8 + 4
    data[second:second + 8] = data[first:first + 8]
    _expect_format_error(_write(tmp_path, data), "overlap")


def test_unsupported_tensor_type_is_named(tmp_path: Path, mmproj_bytes: bytes) -> None:
    data = bytearray(mmproj_bytes)
    type_at = _tensor_record(mmproj_bytes, "mm.0.weight") + 4 + 2 * 8
    data[type_at:type_at + 4] = struct.pack("<I", 16)  # IQ2_XXS
    _expect_format_error(_write(tmp_path, data), "'mm.0.weight'", "IQ2_XXS")


def test_unknown_architecture(tmp_path: Path, fixtures: Path) -> None:
    data = bytearray((fixtures / TEXT_Q8).read_bytes())
    key = b"general.architecture"
    at = data.find(struct.pack("<Q", len(key)) + key) + 8 + len(key) + 4 + 8
    assert data[at:at + 7] == b"qwen2vl"
    data[at:at + 7] = b"mistral"
    with pytest.raises(qvl_local.ModelFormatError, match="unknown architecture 'mistral'"):
        qvl_local.load(_write(tmp_path, data), mmproj=False)


def test_missing_tensor_is_named(tmp_path: Path, fixtures: Path) -> None:
    data = bytearray((fixtures / TEXT_Q8).read_bytes())
    at = data.find(b"blk.1.ffn_up.weight")
    data[at:at + len(b"blk.1.ffn_up.weight")] = b"blk.1.ffn_xx.weight"
    with pytest.raises(qvl_local.ModelFormatError, match="missing tensor 'blk.1.ffn_up.weight'"):
        qvl_local.load(_write(tmp_path, data), mmproj=False)


def _tiny_projector(path: Path, out_width: int) -> Path:
    """A small but complete qwen2vl_merger projector whose output width is `out_width`."""
    writer = gguf.GGUFWriter(str(path), "clip")
    writer.add_string("clip.projector_type", "qwen2vl_merger")
    writer.add_uint32("clip.vision.attention.head_count", 2)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])
    hidden = 32
    shapes = {
        "v.patch_embd.weight": (hidden, 3, 14, 14), "v.patch_embd.weight.1": (hidden, 3, 14, 14),
        "v.blk.0.ln1.weight": (hidden,), "v.blk.0.ffn_up.weight": (4 * hidden, hidden),
        "mm.0.weight": (4 * hidden, 4 * hidden), "mm.2.weight": (out_width, 4 * hidden),
    }
    for name, shape in shapes.items():
        writer.add_tensor(name, np.zeros(shape, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_projector_of_another_model(tmp_path: Path, fixtures: Path) -> None:
    projector = _tiny_projector(tmp_path / "mmproj-wrong.gguf", out_width=128)
    with pytest.raises(qvl_local.ModelFormatError, match="outputs 128-wide embeddings.*hidden size 256"):
        qvl_local.load(fixtures / TEXT_Q8, mmproj=projector)


def test_header_fuzz_never_crashes(tmp_path: Path) -> None:
    """Random byte changes in a small file's header: the file opens or raises ModelFormatError."""
    seed_file = _tiny_projector(tmp_path / "seed.gguf", out_width=64)
    original = seed_file.read_bytes()
    header_end = original.find(b"v.patch_embd.weight") + 200

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(st.integers(0, header_end - 1), st.integers(0, 255)), min_size=1, max_size=8),
           st.integers(min_value=0, max_value=len(original)))
    def check(changes, cut):
        data = bytearray(original[:max(cut, 0)] if cut < 64 else original)
        for where, value in changes:
            if where < len(data):
                data[where] = value
        path = tmp_path / "fuzzed.gguf"
        path.write_bytes(bytes(data))
        try:
            GGUFFile(path)
        except qvl_local.ModelFormatError:
            pass

    check()
