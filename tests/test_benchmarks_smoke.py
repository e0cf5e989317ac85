"""The end-to-end benchmark on tiny models, so its code keeps working: files, workers, table, JSON, PNG;
the full-size files' layout, checked against the converter's files without writing their weights; and
the read-bandwidth yardstick reading every byte."""
import json
import re

import numpy as np
import pytest

import qvl_local
from qvl_local import _core
from qvl_local.gguf_file import GGUFFile
from benchmarks import model_factory, run

# The images' token counts: 28-pixel tokens for Qwen2-VL and Qwen2.5-VL; 32-pixel ones for Qwen3-VL,
# whose smallest image is 65536 pixels (112x112 grows to 256x256, 256x171 to 320x224).
QUICK_CASES = [
    ("qwen2vl-2b", "quick", ["Q8_0", "Q4_K_M"], {"112x112": 16, "256x171": 54}),
    ("qwen25vl-3b", "qwen25vl-quick", ["Q4_K_M"], {"112x112": 16, "256x171": 54}),
    ("qwen3vl-2b", "qwen3vl-quick", ["Q4_K_M"], {"112x112": 64, "256x171": 70}),
]


@pytest.mark.parametrize(("model", "shape", "quants", "image_tokens"), QUICK_CASES)
def test_quick_benchmark_end_to_end(model, shape, quants, image_tokens, fixtures, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QVL_FIXTURES", str(fixtures))  # the family's tokenizer comes from its fixture model
    status = run.main(["--quick", "--model", model, "--quants", *quants, "--threads", "2",
                       "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "results")])
    assert status == 0
    [record] = (tmp_path / "results").glob(f"*-{shape}.json")
    results = json.loads(record.read_text())
    assert results["meta"]["model"] == model
    assert set(results["text"]) == set(quants)
    for quant, engines in results["text"].items():
        ours = engines["ours"]
        assert ours["prefill"]["tokens_per_s"] > 0 and ours["decode"]["tokens_per_s"] > 0
        assert ours["peak_rss_bytes"] > 10_000_000  # at least the 19 MB embedding was touched
        assert len(results["read_bandwidth"][quant]) == 2 and min(results["read_bandwidth"][quant]) > 0
        # tied embeddings: a decoded token reads the whole file's tensors, the embedding table as the output layer
        text_file = GGUFFile(next((tmp_path / "cache").glob(f"*-{quant}.gguf")))
        assert results["meta"]["decode_bytes_per_token"][quant] == sum(t.nbytes for t in text_file.tensors.values())
    vision = results["vision"]["ours"]
    assert {label: r["image_tokens"] for label, r in vision["encode"].items()} == image_tokens
    assert vision["time_to_first_token"]["prompt_tokens"] > image_tokens["256x171"]  # the image's tokens and the question's
    assert set(results["vision"]["ours int8"]["encode"]) == {"112x112", "256x171"}
    assert record.with_suffix(".png").stat().st_size > 10_000
    table = capsys.readouterr().out
    assert quants[-1] in table and "first token (256x171)" in table and "encode 256x171, int8" in table
    assert re.search(r" \d+\.\d \(\d+%\) ", table) and "read bandwidth (our read loop" in table


def test_documented_runner_shows_its_options(capsys):
    # README: `python -m benchmarks.run` from a checkout (the installed `qvl-local` has no bench command).
    assert run.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--compare-llama-cpp" in out and "--quick" in out and "qwen25vl-3b" in out and "qwen3vl-2b" in out


def layout(path) -> tuple[dict[str, tuple], dict[str, set[tuple[str, int]]]]:
    """A GGUF file's keys (with their value types) and tensors (storage type, number of dimensions),
    block and deepstack numbers left out; without what names or sizes the file alone. (Read by our
    parser: gguf-py's takes seconds for the 150k-token vocabulary.)"""
    f = GGUFFile(path)
    keys = {name: types for name, types in f.value_types.items()
            if name not in ("general.name", "general.size_label", "general.file_type")}
    tensors: dict[str, set[tuple[str, int]]] = {}
    for t in f.tensors.values():
        name = re.sub(r"(blk|deepstack)\.\d+\.", r"\1.N.", t.name)
        tensors.setdefault(name, set()).add((t.type_name, len(t.shape)))
    return keys, tensors


def _float_types(tensors: dict[str, set[tuple[str, int]]]) -> dict[str, set[tuple[str, int]]]:
    """The fixtures' text models are Q8_0, ours F16: compare which tensors stay in F32."""
    return {name: {("F32" if kind == "F32" else "quantized", dims) for kind, dims in types} for name, types in tensors.items()}


@pytest.mark.parametrize("model", list(model_factory.MODELS))
def test_full_size_files_have_the_converters_layout_and_load(model, fixtures, tmp_path):
    """Each full-size shape's files, weights left as holes of a sparse file (a moment, no disk space):
    the keys and tensors llama.cpp's converter wrote for the family's fixture model, and our loader
    reads the real model's sizes back."""
    shape = model_factory.MODELS[model]
    fixture_text = fixtures / shape.tokenizer_fixture
    fixture_mmproj = fixture_text.with_name("mmproj-" + fixture_text.name.replace("-Q8_0", "-F16"))
    text, mmproj = tmp_path / "text-F16.gguf", tmp_path / "mmproj-F16.gguf"
    model_factory.write_text_f16(text, shape.text, fixture_text, random_weights=False)
    model_factory.write_mmproj_f16(mmproj, shape.vision, out_width=shape.text.hidden, random_weights=False)
    ours_keys, ours_tensors = layout(text)
    theirs_keys, theirs_tensors = layout(fixture_text)
    assert ours_keys == theirs_keys
    assert _float_types(ours_tensors) == _float_types(theirs_tensors)
    assert layout(mmproj) == layout(fixture_mmproj)
    assert text.stat().st_size > 3e9 and text.stat().st_blocks * 512 < 50e6  # full length, mostly holes

    config = qvl_local.load(text, mmproj=mmproj, n_threads=1).config
    t, v = shape.text, shape.vision
    assert (config.text.hidden_size, config.text.num_layers, config.text.intermediate_size) == (t.hidden, t.layers, t.intermediate)
    assert (config.text.num_heads, config.text.num_kv_heads, config.text.deepstack_layers) == (t.heads, t.kv_heads, t.deepstack_layers)
    assert config.text.tied_embeddings
    assert (config.vision.hidden_size, config.vision.num_layers, config.vision.intermediate_size) == (v.width, v.layers, v.mlp)
    assert (config.vision.num_heads, config.vision.patch_size, config.vision.out_hidden_size) == (v.heads, v.patch, t.hidden)
    full_attention = tuple(range(v.full_attention_every - 1, v.layers, v.full_attention_every)) if v.full_attention_every else ()
    assert (config.vision.full_attention_layers, config.vision.deepstack_layers) == (full_attention, v.deepstack)
    assert config.vision.projector_type == v.family.projector


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("size", [0, 1, 63, 64 * 3 + 5, 100_003])
def test_read_yardstick_reads_every_byte(n_threads, size):
    """bench_kernels' read bandwidth is only a yardstick if every byte is read: a byte changed anywhere
    (first, last, inside and between the threads' regions) changes the checksum."""
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    checksum = _core.stream_read(data, n_threads)
    for position in sorted({0, size // 3, size // 2, size - 1}) if size else []:
        changed = data.copy()
        changed[position] ^= 0x5A
        assert _core.stream_read(changed, n_threads) != checksum, position
