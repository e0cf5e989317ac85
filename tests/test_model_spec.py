"""The variant spec each fixture's metadata gives, and the named-activations hook (Model.trace).

The spec is what the C++ forwards branch on (csrc/model/model_spec.h): for every fixture model it must
be the declared variant with the file's sizes and choices. The trace is checked against the reference
files, which hold final results only: its merger entry is the reference's vision embeddings, its
last entries are forward()'s logits, and the last layer's hidden states give those logits through
the final norm and the output projection.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qvl_local
from qvl_local import _core
from qvl_local.config import Qwen2VLConfig, text_spec, vision_spec
from qvl_local.gguf_file import GGUFFile

QWEN2_TEXT_SPEC = {
    "vocab_size": 151936, "hidden_size": 256, "intermediate_size": 512, "num_layers": 2, "num_heads": 4,
    "num_kv_heads": 2, "head_dim": 64, "rope_theta": 1e6, "mrope_sections": [8, 12, 12],
    "mrope_layout": "sectioned", "block": "qwen2", "deepstack_layers": 0,
}
QWEN2_VL_VISION_SPEC = {
    "hidden_size": 256, "intermediate_size": 1024, "num_layers": 4, "num_heads": 4, "patch_size": 14,
    "temporal_patch_size": 2, "spatial_merge_size": 2, "merger_hidden_size": 1024, "out_hidden_size": 256,
    "rope_theta": 10000.0, "block_norm": "layer_norm", "mlp": "quick_gelu", "fused_qkv": False,
    "patch_embed_names": ["v.patch_embd.weight", "v.patch_embd.weight.1"], "patch_bias_name": "",
    "position_embed_name": "", "window_size": 0, "full_attention_layers": [],
    "merger": {"norm": "layer_norm", "norm_after_merge": False, "norm_name": "v.post_ln", "fc1_name": "mm.0",
               "fc2_name": "mm.2"},
    "deepstack_layers": [], "deepstack_mergers": [],
}
QWEN25_VL_VISION_SPEC = {
    **QWEN2_VL_VISION_SPEC, "intermediate_size": 768, "block_norm": "rms_norm", "mlp": "swiglu", "window_size": 112,
    "full_attention_layers": [1, 3],
    "merger": {**QWEN2_VL_VISION_SPEC["merger"], "norm": "rms_norm"},
}
OLLAMA_QWEN25_VL_VISION_SPEC = {
    **QWEN25_VL_VISION_SPEC, "patch_embed_names": ["v.patch_embd_0.weight", "v.patch_embd_1.weight"],
    "merger": {**QWEN25_VL_VISION_SPEC["merger"], "norm_name": "v.merger.ln_q", "fc1_name": "v.merger.mlp.0",
               "fc2_name": "v.merger.mlp.2"},
}
QWEN3_TEXT_SPEC = {
    **QWEN2_TEXT_SPEC, "num_layers": 3, "rope_theta": 5e6, "mrope_sections": [12, 10, 10],
    "mrope_layout": "interleaved", "block": "qwen3", "deepstack_layers": 2,
}


def deepstack_merger(layer: int) -> dict:
    prefix = f"v.deepstack.{layer}"
    return {"norm": "layer_norm", "norm_after_merge": True, "norm_name": f"{prefix}.norm", "fc1_name": f"{prefix}.fc1",
            "fc2_name": f"{prefix}.fc2"}


QWEN3_VL_VISION_SPEC = {
    **QWEN2_VL_VISION_SPEC, "intermediate_size": 512, "patch_size": 16, "mlp": "gelu_tanh", "fused_qkv": True,
    "patch_bias_name": "v.patch_embd.bias", "position_embed_name": "v.position_embd.weight",
    "deepstack_layers": [1, 2], "deepstack_mergers": [deepstack_merger(1), deepstack_merger(2)],
}
# (text file, vision file) -> expected (text spec, vision spec); "ollama" is the Qwen2.5-VL pair as one file.
EXPECTED_SPECS = {
    ("qwen2vl-tiny-Q8_0.gguf", "mmproj-qwen2vl-tiny-F16.gguf"): (QWEN2_TEXT_SPEC, QWEN2_VL_VISION_SPEC),
    ("qwen2vl-tiny-Q4_K_M.gguf", "mmproj-qwen2vl-tiny-F16.gguf"): (QWEN2_TEXT_SPEC, QWEN2_VL_VISION_SPEC),
    ("qwen25vl/qwen25vl-tiny-Q8_0.gguf", "qwen25vl/mmproj-qwen25vl-tiny-F16.gguf"):
        (QWEN2_TEXT_SPEC, QWEN25_VL_VISION_SPEC),
    ("ollama", "ollama"): (QWEN2_TEXT_SPEC, OLLAMA_QWEN25_VL_VISION_SPEC),
    ("qwen3vl/qwen3vl-tiny-Q8_0.gguf", "qwen3vl/mmproj-qwen3vl-tiny-F16.gguf"): (QWEN3_TEXT_SPEC, QWEN3_VL_VISION_SPEC),
}
TRACE_EXACT_ATOL = 1e-4  # the exact path against the reference (tests/test_model_golden.py's limits)


def plain(value):
    """A bound spec as plain Python values: structs as dicts, enums by name, floats rounded to float32."""
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return float(np.float32(value))
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if hasattr(value, "name") and type(value).__module__ == _core.__name__ and hasattr(value, "value"):
        return value.name
    return {name: plain(getattr(value, name)) for name in dir(value)
            if not name.startswith("_") and not callable(getattr(value, name))}


def specs_of(text_file: GGUFFile, vision_file: GGUFFile) -> tuple[dict, dict]:
    config = Qwen2VLConfig.from_gguf(text_file, vision_file)
    return plain(text_spec(config.text)), plain(vision_spec(config.vision))


@pytest.mark.parametrize("files", list(EXPECTED_SPECS), ids=lambda files: files[0])
def test_spec_from_fixture_metadata(fixtures, request, files):
    if files[0] == "ollama":
        text_file = vision_file = GGUFFile(request.getfixturevalue("ollama_file"))
    else:
        text_file, vision_file = (GGUFFile(fixtures / "gguf" / name) for name in files)
    text, vision = specs_of(text_file, vision_file)
    expected_text, expected_vision = EXPECTED_SPECS[files]
    assert {key: text[key] for key in expected_text} == expected_text
    assert {key: vision[key] for key in expected_vision} == expected_vision


@pytest.fixture(scope="module")
def model(fixtures: Path) -> qvl_local.Model:
    return qvl_local.load(fixtures / "gguf/qwen2vl-tiny-Q8_0.gguf", mmproj=fixtures / "gguf/mmproj-qwen2vl-tiny-F16.gguf",
                          n_ctx=256, n_threads=2)


def test_model_parts_share_one_thread_pool(model):
    assert model._pool.size == 2


@pytest.mark.parametrize("case, kind", [("b_image", "image"), ("d_video", "video")])
def test_trace_names_every_stage_and_ends_in_forward(fixtures, model, case, kind):
    ref = np.load(fixtures / f"ref/qwen2vl-tiny/q8_0/{case}.npz")
    prefix = "pixel_values" if kind == "image" else "pixel_values_videos"
    arrays = {prefix: ref[prefix], f"{kind}_grid_thw": ref[f"{kind}_grid_thw"]}
    stages = model.trace(ref["input_ids"], precision="exact", **arrays)
    n_patches, n_tokens = len(ref[prefix]), len(ref["input_ids"])
    vision_layers, text_layers = model.config.vision.num_layers, model.config.text.num_layers
    assert list(stages) == ([f"{kind}.patch_embed"] + [f"{kind}.block.{i}" for i in range(vision_layers)] +
                            [f"{kind}.merger", "text.input"] + [f"text.block.{i}" for i in range(text_layers)] +
                            ["text.logits"])
    for i in range(vision_layers):
        assert stages[f"{kind}.block.{i}"].shape == (n_patches, 256)
    np.testing.assert_allclose(stages[f"{kind}.merger"], ref[f"{kind}_embeds"], rtol=0, atol=TRACE_EXACT_ATOL)
    np.testing.assert_array_equal(stages[f"{kind}.block.{vision_layers - 1}"],
                                  model.encode_pixels(*arrays.values(), pre_merge=True, precision="exact"))
    np.testing.assert_array_equal(stages["text.logits"], model.forward(ref["input_ids"], precision="exact", **arrays))
    # The embedded prompt holds the merger's rows at the pad tokens.
    pad = model.config.tokens.video_pad if kind == "video" else model.config.tokens.image_pad
    np.testing.assert_array_equal(stages["text.input"][ref["input_ids"] == pad], stages[f"{kind}.merger"])
    # The last layer's hidden state, through the final norm and the (tied) output projection, is the logits.
    last = stages[f"text.block.{text_layers - 1}"][-1:].astype(np.float64)
    file = model.text_file
    normed = last / np.sqrt(np.mean(last**2) + model.config.text.rms_norm_eps)
    normed *= np.frombuffer(file.tensor_bytes("output_norm.weight"), np.float32)
    embedding = file.tensor("token_embd.weight")
    logits = _core.matmul(file.tensor_bytes("token_embd.weight"), embedding.type_name, embedding.shape[1],
                          embedding.shape[0], normed.astype(np.float32), "exact", 2)
    np.testing.assert_allclose(logits[0], stages["text.logits"][-1], rtol=0, atol=1e-4)
    assert model._decoder.n_past == 0  # the trace leaves no conversation behind


def test_text_trace_chunks_join_into_one_entry_per_layer(fixtures, model):
    """A prompt longer than n_batch runs in chunks; each layer's entry still holds every position once."""
    ref = np.load(fixtures / "ref/qwen2vl-tiny/q8_0/a_text.npz")
    decoder = _core.TextModel(model.text_file.handle, text_spec(model.config.text), 64, 7, model._pool)
    ids = ref["input_ids"].astype(np.int32)
    stages = decoder.trace(ids, np.ascontiguousarray(ref["position_ids"], dtype=np.int32), precision="exact")
    assert stages["block.1"].shape == (len(ids), 256)
    np.testing.assert_allclose(stages["logits"], ref["logits_all"], rtol=0, atol=2e-4)
