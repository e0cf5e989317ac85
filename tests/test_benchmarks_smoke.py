"""The end-to-end benchmark on a tiny model, so its code keeps working: files, workers, table, JSON, PNG."""
import json

import pytest

from benchmarks import model_factory, run


def test_quick_benchmark_end_to_end(fixtures, tmp_path, capsys):
    status = run.main(["--quick", "--quants", "Q8_0", "Q4_K_M", "--threads", "2",
                       "--tokenizer-gguf", str(fixtures / model_factory.TOKENIZER_FIXTURE),
                       "--cache-dir", str(tmp_path / "cache"), "--output-dir", str(tmp_path / "results")])
    assert status == 0
    [record] = (tmp_path / "results").glob("*-quick.json")
    results = json.loads(record.read_text())
    assert set(results["text"]) == {"Q8_0", "Q4_K_M"}
    for engines in results["text"].values():
        ours = engines["ours"]
        assert ours["prefill"]["tokens_per_s"] > 0 and ours["decode"]["tokens_per_s"] > 0
        assert ours["peak_rss_bytes"] > 10_000_000  # at least the 19 MB embedding was touched
    vision = results["vision"]
    assert {label: r["image_tokens"] for label, r in vision["encode"].items()} == {"112x112": 16, "256x171": 54}
    assert vision["time_to_first_token"]["prompt_tokens"] > 54  # the image's tokens and the question's
    assert record.with_suffix(".png").stat().st_size > 10_000
    table = capsys.readouterr().out
    assert "Q4_K_M" in table and "first token (256x171)" in table


@pytest.mark.parametrize(
    ("name", "cols", "quant", "expected"),
    [
        ("token_embd.weight", 1536, "Q4_K_M", "Q6_K"),  # tied embeddings are the output matrix too
        ("token_embd.weight", 1536, "Q4_0", "Q6_K"),
        ("token_embd.weight", 1536, "Q8_0", "Q8_0"),
        ("token_embd.weight", 64, "Q4_0", "Q8_0"),  # rows too narrow for K-quant blocks
        ("blk.0.attn_v.weight", 1536, "Q4_K_M", "Q6_K"),  # first eighth of 28 layers: 0..2
        ("blk.3.attn_v.weight", 1536, "Q4_K_M", "Q4_K"),
        ("blk.5.ffn_down.weight", 8960, "Q4_K_M", "Q6_K"),  # (5 - 3) % 3 == 2
        ("blk.24.ffn_down.weight", 8960, "Q4_K_M", "Q6_K"),  # last eighth: 24..27
        ("blk.4.attn_q.weight", 1536, "Q4_K_M", "Q4_K"),
        ("blk.1.attn_v.weight", 64, "Q4_K_M", "Q8_0"),  # Q6_K's fallback for narrow rows
        ("blk.4.attn_q.weight", 64, "Q4_K_M", "Q5_0"),  # Q4_K's fallback
        ("blk.4.ffn_up.weight", 1536, "Q4_0", "Q4_0"),
    ],
)
def test_llama_quantize_recipe(name, cols, quant, expected):
    assert model_factory.tensor_type(name, cols, quant, n_layers=28) == expected
