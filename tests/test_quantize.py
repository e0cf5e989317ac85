"""The GGUF quantizer (qvl_local.quantize) against llama-quantize's own output and against float32.

What is checked, and the limits:
- Type choice: the fixture Q8_0 model quantized to Q4_K_M gets exactly the tensor types of
  llama-quantize's Q4_K_M file (made from the F16 original); more than that, the whole header (every
  metadata key/value, tensor names, order, types, shapes and offsets) is byte-identical to it.
- The recipe rules on their own (use_more_bits layers, untied output, row-length fallbacks, Q4_K_S,
  Q4_0/Q8_0/F16, clip files) on synthetic tensor lists, with the expected types written out by hand.
- Logits: our Q4_K_M file against the Q8_0 model, on a_text (float activations). Measured RMS 0.715
  (logits RMS 2.40), llama-quantize's Q4_K_M file 0.720; limit: within 10% of llama-quantize's.
- Q8_0 -> Q8_0 keeps every tensor's bytes, and re-encoding decoded Q8_0 blocks gives the same bytes.
- Metadata: every key with its GGUF type and value, by gguf-py's reader, on a file with every type.
- Relative RMS error (||written - source|| / ||source||) on standard-normal data, measured (256x1024,
  seed 0): F16 0.021%, BF16 0.17%, Q8_0 0.54%, Q6_K 1.74%, Q5_K 3.60%, Q5_1 3.79%, Q5_0 4.28%,
  Q4_K 7.18%, Q4_1 7.83%, Q4_0 8.61%; limits below are those plus about 12%. These are the sizes of
  4/5/6/8-bit rounding of Gaussian data, for llama.cpp's encoders too (the fixture's Q4_K_M file has
  Q4_K 7.2% and Q6_K 1.8% against the float32 original).
- Vision projector: Q8_0 mmproj loads and gives image embeddings within 3% (measured 1.3%) of the
  F16 reference.
"""
from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFValueType

import qvl_local
from qvl_local import cli, ops
from qvl_local.errors import ModelFormatError
from qvl_local.gguf_file import GGUFFile
from qvl_local.quantize import (FILE_TYPES, QuantizeReport, allows_quantization, llama_tensor_order,
                                plan_tensor_types, quantize_gguf, use_more_bits)

TEXT_Q8 = "gguf/qwen2vl-tiny-Q8_0.gguf"
TEXT_Q4KM = "gguf/qwen2vl-tiny-Q4_K_M.gguf"
TEXT_Q4KM_LISTING = "gguf/qwen2vl-tiny-Q4_K_M.txt"
MMPROJ_F16 = "gguf/mmproj-qwen2vl-tiny-F16.gguf"
RANDOM_DATA_LIMITS = {"F16": 0.00025, "BF16": 0.0019, "Q8_0": 0.006, "Q6_K": 0.0195, "Q5_K": 0.0405,
                      "Q5_1": 0.0425, "Q5_0": 0.048, "Q4_K": 0.0805, "Q4_1": 0.0875, "Q4_0": 0.0965}
LOGITS_VS_LLAMA_QUANTIZE = 1.10


def listing_tensors(path: Path) -> list[tuple[str, str, list[int]]]:
    """(name, type, ggml shape) rows of a fixture .txt listing, in file order."""
    lines = path.read_text().split("## tensors", 1)[1].splitlines()[1:]
    rows = []
    for line in lines:
        name, type_name, shape = line.split("\t")
        rows.append((name, type_name, [int(n) for n in shape.strip("[]").split(",")]))
    return rows


def write_gguf(path: Path, arch: str, tensors: dict[str, np.ndarray], *, block_count: int | None = None,
               extra_metadata: bool = False) -> Path:
    """A small float32 GGUF (numpy shapes: rows first)."""
    writer = gguf.GGUFWriter(path, arch)
    if block_count is not None:
        writer.add_uint32(f"{arch}.block_count", block_count)
    writer.add_uint32("general.file_type", 0)
    if extra_metadata:
        for key, value, value_type, element_type in METADATA_OF_EVERY_TYPE:
            writer.add_key_value(key, value, value_type, element_type)
    for name, array in tensors.items():
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


METADATA_OF_EVERY_TYPE = [
    ("test.u8", 250, GGUFValueType.UINT8, None), ("test.i8", -7, GGUFValueType.INT8, None),
    ("test.u16", 65000, GGUFValueType.UINT16, None), ("test.i16", -300, GGUFValueType.INT16, None),
    ("test.u32", 4_000_000_000, GGUFValueType.UINT32, None), ("test.i32", -5, GGUFValueType.INT32, None),
    ("test.f32", 0.1, GGUFValueType.FLOAT32, None), ("test.u64", 2**63 + 5, GGUFValueType.UINT64, None),
    ("test.i64", -(2**40), GGUFValueType.INT64, None), ("test.f64", 1 / 3, GGUFValueType.FLOAT64, None),
    ("test.bool", True, GGUFValueType.BOOL, None), ("test.string", "héllo ✓", GGUFValueType.STRING, None),
    ("test.strings", ["a", "", "Ġb c", "漢字"], GGUFValueType.ARRAY, GGUFValueType.STRING),
    ("test.int32s", [1, -2, 3], GGUFValueType.ARRAY, GGUFValueType.INT32),
    ("test.uint8s", [0, 255], GGUFValueType.ARRAY, GGUFValueType.UINT8),
    ("test.int64s", [-(2**50), 7], GGUFValueType.ARRAY, GGUFValueType.INT64),
    ("test.float32s", [0.48145467042922974, -1.5], GGUFValueType.ARRAY, GGUFValueType.FLOAT32),
    ("test.float64s", [1e-300, 2.5], GGUFValueType.ARRAY, GGUFValueType.FLOAT64),
    ("test.bools", [True, False, True], GGUFValueType.ARRAY, GGUFValueType.BOOL),
]


def tiny_text_model(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A two-layer Qwen2-like tensor set (tied embeddings), rows first."""
    tensors = {"token_embd.weight": rng.standard_normal((512, 256)), "output_norm.weight": np.ones(256)}
    for layer in range(2):
        prefix = f"blk.{layer}."
        tensors |= {
            prefix + "attn_norm.weight": np.ones(256), prefix + "attn_q.weight": rng.standard_normal((256, 256)),
            prefix + "attn_q.bias": rng.standard_normal(256), prefix + "attn_v.weight": rng.standard_normal((128, 256)),
            prefix + "ffn_down.weight": rng.standard_normal((256, 512)),
            prefix + "ffn_up.weight": rng.standard_normal((512, 256)),
        }
    return tensors


@pytest.fixture(scope="module")
def text_q4_k_m(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> QuantizeReport:
    destination = tmp_path_factory.mktemp("quantize") / "qwen2vl-tiny-Q4_K_M.gguf"
    return quantize_gguf(fixtures / TEXT_Q8, destination, "Q4_K_M")


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return write_gguf(tmp_path / "tiny-F32.gguf", "qwen2vl", tiny_text_model(np.random.default_rng(1)), block_count=2)


# ---------------------------------------------------------------------------------------------------
# Against llama-quantize's file


def test_q4_k_m_types_equal_llama_quantize(fixtures: Path, text_q4_k_m: QuantizeReport) -> None:
    expected = listing_tensors(fixtures / TEXT_Q4KM_LISTING)
    written = [(t.name, t.type, list(t.shape)) for t in text_q4_k_m.tensors]
    assert written == expected  # names, order, types and shapes
    assert text_q4_k_m.file_type.number == 15
    assert GGUFFile(text_q4_k_m.destination).metadata["general.file_type"] == 15


def test_q4_k_m_header_is_byte_identical_to_llama_quantize(fixtures: Path, text_q4_k_m: QuantizeReport) -> None:
    reference = GGUFFile(fixtures / TEXT_Q4KM)
    data_start = min(t.offset for t in reference.tensors.values())
    with open(fixtures / TEXT_Q4KM, "rb") as theirs, open(text_q4_k_m.destination, "rb") as ours:
        assert ours.read(data_start) == theirs.read(data_start)
    assert text_q4_k_m.destination_bytes == (fixtures / TEXT_Q4KM).stat().st_size


def test_q4_k_m_report_errors_and_warning(text_q4_k_m: QuantizeReport) -> None:
    summaries = {s.type: s for s in text_q4_k_m.by_type()}
    assert {t: s.count for t, s in summaries.items()} == {"F32": 11, "Q4_K": 12, "Q6_K": 3}
    assert summaries["F32"].relative_rms_error == 0.0
    # against the Q8_0 values; llama-quantize's file has 7.2% and 1.8% against the float32 original
    assert 0.05 < summaries["Q4_K"].max_relative_rms_error < 0.08
    assert 0.01 < summaries["Q6_K"].max_relative_rms_error < 0.02
    assert sum(s.nbytes for s in summaries.values()) == sum(t.nbytes for t in text_q4_k_m.tensors)
    assert any("already quantized (Q8_0)" in w for w in text_q4_k_m.warnings)


def test_q4_k_m_logits_as_close_to_q8_0_as_llama_quantize(fixtures: Path, text_q4_k_m: QuantizeReport) -> None:
    ids = np.load(fixtures / "ref/qwen2vl-tiny/q8_0/a_text.npz")["input_ids"].reshape(-1)
    logits = {
        name: qvl_local.load(path, mmproj=False).forward(ids, precision="exact")
        for name, path in (("q8_0", fixtures / TEXT_Q8), ("ours", text_q4_k_m.destination),
                           ("llama", fixtures / TEXT_Q4KM))
    }
    def rms(a: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))

    ours, theirs = rms(logits["ours"] - logits["q8_0"]), rms(logits["llama"] - logits["q8_0"])
    assert ours <= LOGITS_VS_LLAMA_QUANTIZE * theirs, (ours, theirs)
    assert ours < 0.35 * rms(logits["q8_0"])


@pytest.mark.slow
def test_q4_k_m_loads_with_gguf_py_reader(fixtures: Path, text_q4_k_m: QuantizeReport) -> None:
    """llama.cpp's Python reader (about 10-20 s on the 150k-entry vocabulary)."""
    reader = gguf.GGUFReader(text_q4_k_m.destination)
    source = GGUFFile(fixtures / TEXT_Q8)
    assert {t.name: t.tensor_type.name for t in reader.tensors} == text_q4_k_m.types()
    assert reader.fields["tokenizer.ggml.token_type"].types == [GGUFValueType.ARRAY, GGUFValueType.INT32]
    assert reader.fields["tokenizer.ggml.token_type"].contents() == source.metadata["tokenizer.ggml.token_type"].tolist()
    assert reader.fields["tokenizer.ggml.merges"].contents() == source.metadata["tokenizer.ggml.merges"]
    assert reader.fields["tokenizer.ggml.tokens"].contents() == source.metadata["tokenizer.ggml.tokens"]
    for tensor in reader.tensors:
        if tensor.tensor_type in (GGMLQuantizationType.Q4_K, GGMLQuantizationType.Q6_K):
            ours = ops.dequantize(ops.QTensor.from_gguf(tensor))
            theirs = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(ours.shape)
            np.testing.assert_array_equal(ours, theirs)


# ---------------------------------------------------------------------------------------------------
# The recipe rules


def test_plan_of_fixture_model_for_other_file_types(fixtures: Path) -> None:
    source = GGUFFile(fixtures / TEXT_Q8)
    tensors = [(t.name, t.shape, t.type_name) for t in source.tensors.values()]
    matrices = [t.name for t in source.tensors.values() if len(t.shape) == 2]
    more_bits = {"blk.1.attn_v.weight", "blk.1.ffn_down.weight"}
    for file_type, embedding, base, more in (("Q5_K_M", "Q6_K", "Q5_K", "Q6_K"), ("Q4_K_S", "Q6_K", "Q4_K", None),
                                             ("Q4_0", "Q6_K", "Q4_0", None), ("Q8_0", "Q8_0", "Q8_0", None),
                                             ("F16", "F16", "F16", None)):
        plan = plan_tensor_types(tensors, FILE_TYPES[file_type], n_layers=2)
        for name in matrices:
            expected = embedding if name == "token_embd.weight" else (more if more and name in more_bits else base)
            if file_type == "Q4_K_S" and name in ("blk.0.attn_v.weight", "blk.1.attn_v.weight"):
                expected = "Q5_K"  # Q4_K_S: the first four attn_v get Q5_K
            assert plan[name] == expected, (file_type, name)
        assert all(plan[t.name] == "F32" for t in source.tensors.values() if len(t.shape) == 1)


def test_use_more_bits_layers_of_a_32_layer_model() -> None:
    # first 32/8 = 4 layers, last 4 (>= 28), and every third from layer 4 + 2
    assert [i for i in range(32) if use_more_bits(i, 32)] == [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
    assert [i for i in range(2) if use_more_bits(i, 2)] == [1]


def test_plan_32_layers_untied_output_and_row_fallbacks() -> None:
    tensors = [("token_embd.weight", (4096, 32000), "F16"), ("output.weight", (4096, 32000), "F16"),
               ("output_norm.weight", (4096,), "F32")]
    for layer in range(32):
        tensors += [(f"blk.{layer}.attn_v.weight", (4096, 1024), "F16"),
                    (f"blk.{layer}.ffn_down.weight", (11008, 4096), "F16"),  # 11008 = 43 * 256
                    (f"blk.{layer}.ffn_up.weight", (4096, 11008), "F16"),
                    (f"blk.{layer}.attn_norm.weight", (4096,), "F32")]
    plan = plan_tensor_types(tensors, FILE_TYPES["Q4_K_M"], n_layers=32)
    more = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31}
    assert plan["output.weight"] == "Q6_K" and plan["token_embd.weight"] == "Q4_K"  # untied
    assert {i for i in range(32) if plan[f"blk.{i}.attn_v.weight"] == "Q6_K"} == more
    assert {i for i in range(32) if plan[f"blk.{i}.ffn_down.weight"] == "Q6_K"} == more
    assert {plan[f"blk.{i}.ffn_up.weight"] for i in range(32)} == {"Q4_K"}
    assert plan["output_norm.weight"] == "F32"

    odd = [("blk.0.ffn_down.weight", (4928, 256), "F32"),  # 4928 = 154 * 32, not a multiple of 256
           ("blk.0.ffn_up.weight", (4928, 256), "F32"), ("blk.0.attn_q.weight", (100, 64), "F32"),
           ("token_embd.weight", (4928, 1000), "F32")]
    plan = plan_tensor_types(odd, FILE_TYPES["Q4_K_M"], n_layers=1)
    assert plan == {"token_embd.weight": "Q8_0", "blk.0.attn_q.weight": "F16", "blk.0.ffn_down.weight": "Q8_0",
                    "blk.0.ffn_up.weight": "Q5_0"}
    assert plan_tensor_types(odd[1:2], FILE_TYPES["Q5_K_M"], n_layers=1) == {"blk.0.ffn_up.weight": "Q5_1"}


def test_plan_vision_projector_keeps_patch_embedding_and_vectors(fixtures: Path) -> None:
    source = GGUFFile(fixtures / MMPROJ_F16)
    plan = plan_tensor_types([(t.name, t.shape, t.type_name) for t in source.tensors.values()],
                             FILE_TYPES["Q4_K_M"], n_layers=4, vision=True)
    for info in source.tensors.values():
        if len(info.shape) == 2:
            assert plan[info.name] == "Q4_K", info.name  # no mixture for clip files, attn_v included
        else:
            assert plan[info.name] == info.type_name, info.name
    assert plan["v.patch_embd.weight"] == "F16"


def test_allows_quantization_and_order() -> None:
    assert allows_quantization("blk.0.attn_q.weight", (256, 256))
    assert not allows_quantization("blk.0.attn_q.bias", (256, 256))
    assert not allows_quantization("blk.0.attn_norm.weight", (256,))
    assert not allows_quantization("blk.0.ffn_norm.weight", (256, 1))  # trailing ones do not count
    assert not allows_quantization("v.patch_embd.weight", (256, 256))
    assert not allows_quantization("blk.0.ffn_gate_inp.weight", (256, 8))
    assert llama_tensor_order(["blk.10.a", "blk.2.b", "token_embd.weight", "blk.2.a", "output_norm.weight"]) == [
        "output_norm.weight", "token_embd.weight", "blk.2.a", "blk.2.b", "blk.10.a"]


# ---------------------------------------------------------------------------------------------------
# Round trips, metadata, errors


def test_q8_0_to_q8_0_is_lossless(fixtures: Path, tmp_path: Path) -> None:
    report = quantize_gguf(fixtures / TEXT_Q8, tmp_path / "same.gguf", "Q8_0")
    source, written = GGUFFile(fixtures / TEXT_Q8), GGUFFile(report.destination)
    for name, info in source.tensors.items():
        np.testing.assert_array_equal(written.tensor_bytes(name), source.tensor_bytes(name))
        assert written.tensors[name].type_name == info.type_name
    assert all(t.squared_error == 0.0 for t in report.tensors)
    assert not report.warnings  # nothing was requantized
    # and decoding then encoding Q8_0 blocks gives the same blocks, so requantizing would lose nothing
    info = source.tensors["blk.0.ffn_down.weight"]
    q8 = ops.QTensor("Q8_0", info.shape[1], info.shape[0], source.tensor_bytes(info.name))
    np.testing.assert_array_equal(ops.quantize(ops.dequantize(q8), "Q8_0").data, q8.data)


def test_metadata_of_every_type_is_copied(tmp_path: Path) -> None:
    source = write_gguf(tmp_path / "src.gguf", "qwen2vl", tiny_text_model(np.random.default_rng(2)),
                        block_count=2, extra_metadata=True)
    report = quantize_gguf(source, tmp_path / "out.gguf", "Q4_0")
    before, after = gguf.GGUFReader(source).fields, gguf.GGUFReader(report.destination).fields
    changed = {"general.file_type", "general.quantization_version"}
    kept = [key for key in before if key not in changed and not key.startswith("GGUF.")]
    assert [key for key in after if key not in changed and not key.startswith("GGUF.")] == kept
    for key in kept:
        assert after[key].types == before[key].types, key
        assert after[key].contents() == before[key].contents(), key
    assert list(after)[-2:] == ["general.quantization_version", "general.file_type"]  # as llama-quantize
    assert after["general.file_type"].contents() == 2 and after["general.quantization_version"].contents() == 2
    assert after["general.file_type"].types == [GGUFValueType.UINT32]
    types = GGUFFile(source).value_types
    assert types["test.u64"] == (GGUFValueType.UINT64, None)
    assert types["test.strings"] == (GGUFValueType.ARRAY, GGUFValueType.STRING)


@pytest.mark.parametrize("file_type", ["F16", "BF16", "Q8_0", "Q6_K", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_S", "Q4_1", "Q4_0"])
def test_error_on_random_data(tmp_path: Path, file_type: str) -> None:
    values = np.random.default_rng(0).standard_normal((256, 1024)).astype(np.float32)
    source = write_gguf(tmp_path / "random.gguf", "llama", {"blk.0.ffn_up.weight": values}, block_count=1)
    report = quantize_gguf(source, tmp_path / "out.gguf", file_type)
    (result,) = report.tensors
    assert result.type == FILE_TYPES[file_type].base_type
    assert 0 < result.relative_rms_error < RANDOM_DATA_LIMITS[result.type], result.relative_rms_error
    written = GGUFFile(report.destination)
    decoded = ops.dequantize(ops.QTensor(result.type, 256, 1024, written.tensor_bytes(result.name)))
    direct = np.linalg.norm(decoded - values) / np.linalg.norm(values)
    assert direct == pytest.approx(result.relative_rms_error, rel=1e-4)  # the report measures the file's values


def test_vision_projector_q8_0_runs(fixtures: Path, tmp_path: Path) -> None:
    report = quantize_gguf(fixtures / MMPROJ_F16, tmp_path / "mmproj-Q8_0.gguf", "Q8_0")
    assert {s.type: s.count for s in report.by_type()} == {"Q8_0": 26, "F16": 2, "F32": 44}
    assert any("vision projector" in w for w in report.warnings)
    reference = np.load(fixtures / "ref/qwen2vl-tiny/q8_0/b_image.npz")
    model = qvl_local.load(fixtures / TEXT_Q8, mmproj=report.destination)
    embeds = model.encode_pixels(reference["pixel_values"], reference["image_grid_thw"], precision="exact")
    expected = reference["image_embeds"]
    assert np.linalg.norm(embeds - expected) / np.linalg.norm(expected) < 0.03


def test_failed_write_leaves_destination_untouched(tiny_model: Path, tmp_path: Path) -> None:
    destination = tmp_path / "out.gguf"
    destination.write_bytes(b"previous")

    def fail_midway(done: int, total: int, name: str) -> None:
        if done == 3:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        quantize_gguf(tiny_model, destination, "Q4_K_M", overwrite=True, progress=fail_midway)
    assert destination.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.gguf", "tiny-F32.gguf"]  # no temporary left


def test_errors(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown quantization type 'Q3_K'"):
        quantize_gguf(tiny_model, tmp_path / "out.gguf", "Q3_K")
    with pytest.raises(ValueError, match="destination is the source"):
        quantize_gguf(tiny_model, tiny_model, "Q8_0", overwrite=True)
    with pytest.raises(FileNotFoundError):
        quantize_gguf(tmp_path / "missing.gguf", tmp_path / "out.gguf", "Q8_0")
    (tmp_path / "garbage.gguf").write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(ModelFormatError):
        quantize_gguf(tmp_path / "garbage.gguf", tmp_path / "out.gguf", "Q8_0")
    quantize_gguf(tiny_model, tmp_path / "out.gguf", "q8_0")  # names are case-insensitive
    with pytest.raises(FileExistsError):
        quantize_gguf(tiny_model, tmp_path / "out.gguf", "Q8_0")
    assert quantize_gguf(tiny_model, tmp_path / "out.gguf", "Q4_0", overwrite=True).file_type.number == 2


# ---------------------------------------------------------------------------------------------------
# Command line


def test_cli_quantize(tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    destination = tmp_path / "tiny-Q4_K_M.gguf"
    assert cli.main(["quantize", str(tiny_model), str(destination), "--type", "Q4_K_M", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {destination} (Q4_K_M" in out
    table = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:]}
    assert table == {"Q6_K": "3", "Q4_K": "6", "F32": "5"}  # Q6_K: token_embd, blk.1 attn_v and ffn_down
    assert GGUFFile(destination).tensors["blk.1.ffn_down.weight"].type_name == "Q6_K"

    assert cli.main(["quantize", str(tiny_model), str(destination), "Q8_0", "--quiet"]) == 1
    assert "output file exists" in capsys.readouterr().err
    assert cli.main(["quantize", str(tiny_model), str(destination), "Q8_0", "--quiet", "--force"]) == 0
    assert GGUFFile(destination).metadata["general.file_type"] == 7
    assert cli.main(["quantize", str(tiny_model), str(destination), "Q2_K", "--force"]) == 1
    assert "unknown quantization type" in capsys.readouterr().err
    assert cli.main(["quantize", str(tiny_model), str(destination), "Q8_0", "--type", "Q4_0", "--force"]) == 1
    assert cli.main(["quantize", str(tiny_model), str(destination), "--force"]) == 1
    assert "no quantization type" in capsys.readouterr().err
