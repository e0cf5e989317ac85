"""Opening GGUF files: the fixture models give the right config, broken or hostile files a clear error.

Every bad file here is a real mutated copy of a fixture file (or a small file written with gguf-py),
opened through the public API; a crash of the process would fail the whole run.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
import qvl_local
from qvl_local.config import Qwen2VLConfig
from qvl_local.gguf_file import GGUFFile
from conftest import subprocess_env
from gguf_mutations import Loader, fuzz, write_small_text_model

TEXT_Q8 = "gguf/qwen2vl-tiny-Q8_0.gguf"
TEXT_Q4KM = "gguf/qwen2vl-tiny-Q4_K_M.gguf"
MMPROJ = "gguf/mmproj-qwen2vl-tiny-F16.gguf"
FUZZ_CASES = 300  # mutations per file in the default run


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


def test_corrupt_vocabulary_is_a_format_error_naming_the_file(tmp_path: Path, fixtures: Path) -> None:
    """issue 16 item 3: a token the merges build ("Ġthe" from "Ġth e") changed in place."""
    data = bytearray((fixtures / TEXT_Q8).read_bytes())
    token = "Ġthe".encode()
    at = data.find(struct.pack("<Q", len(token)) + token) + 8
    data[at:at + len(token)] = "Ġq@z".encode()
    path = _write(tmp_path, data)
    with pytest.raises(qvl_local.ModelFormatError, match=f"{path}: BPE merge .* needs the token 'Ġthe'"):
        qvl_local.load(path, mmproj=False)


def test_truncated_files_say_so_with_the_sizes(tmp_path: Path, fixtures: Path, mmproj_bytes: bytes) -> None:
    """issue 16 item 3: a cut inside the vocabulary was "absurd array length"; a cut in the tensor data
    names the size the file should have."""
    text = (fixtures / TEXT_Q8).read_bytes()
    in_vocabulary = text.find(b"tokenizer.ggml.tokens") + 100_000
    for data in (text[:in_vocabulary], mmproj_bytes[:len(mmproj_bytes) // 2], mmproj_bytes[:-1]):
        expected = len(mmproj_bytes) if data.startswith(mmproj_bytes[:100]) else None
        size = f"file is truncated: {len(data)} bytes, at least {expected or ''}"
        _expect_format_error(_write(tmp_path, data), size, "expected")


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


FUZZ_MEMORY_LIMIT = 3 * 2**30  # address space of the loading child: far above a seed's load, far below a runaway
FUZZ_TIMEOUT_S = 20.0  # one load; a seed loads in well under a second


@pytest.fixture(scope="module")
def fuzz_seeds(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small complete text model and its projector, that load as they are."""
    from benchmarks.model_factory import QUICK, write_mmproj_f16

    folder = tmp_path_factory.mktemp("fuzz-seeds")
    text = write_small_text_model(folder / "text.gguf", fixtures / TEXT_Q8, hidden=QUICK.text.hidden)
    mmproj = folder / "mmproj.gguf"
    write_mmproj_f16(mmproj, QUICK.vision, out_width=QUICK.text.hidden)
    return text, mmproj


def _run_fuzz(fuzz_seeds: tuple[Path, Path], tmp_path: Path, which: str, seeds: range) -> None:
    text, mmproj = fuzz_seeds
    loader = Loader(subprocess_env(), FUZZ_MEMORY_LIMIT, FUZZ_TIMEOUT_S)
    try:
        assert loader.load(text, mmproj) == "loaded", "the unmutated seeds must load"
        if which == "text":
            failures = fuzz(loader, text, tmp_path, seeds, lambda mutated: (mutated, None))
        else:
            failures = fuzz(loader, mmproj, tmp_path, seeds, lambda mutated: (text, mutated))
    finally:
        loader.close()
    assert not failures, "\n".join(f"{kind}: {case}" for kind, cases in failures.items() for case in cases)


@pytest.mark.parametrize("which", ["text", "mmproj"])
def test_header_fuzz_never_crashes(fuzz_seeds: tuple[Path, Path], tmp_path: Path, which: str) -> None:
    """Seeded mutations of a text model and of a projector (header bytes, truncation, counts, string and
    array lengths, value and tensor types, dimensions, offsets, the version), each loaded in a child
    process under RLIMIT_AS with a timeout: the file loads or raises ModelFormatError; no crash, no
    hang, no other exception."""
    _run_fuzz(fuzz_seeds, tmp_path, which, range(FUZZ_CASES))


@pytest.mark.fuzz
@pytest.mark.skipif(not os.environ.get("QVL_FUZZ"), reason="thousands of loads: opt in with QVL_FUZZ=1 pytest -m fuzz")
@pytest.mark.parametrize("which", ["text", "mmproj"])
def test_header_fuzz_never_crashes_long(fuzz_seeds: tuple[Path, Path], tmp_path: Path, which: str) -> None:
    _run_fuzz(fuzz_seeds, tmp_path, which, range(FUZZ_CASES, FUZZ_CASES + int(os.environ.get("QVL_FUZZ_CASES", "3000"))))
