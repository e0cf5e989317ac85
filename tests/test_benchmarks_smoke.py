"""The end-to-end benchmark on a tiny model, so its code keeps working: files, workers, table, JSON, PNG."""
import json

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
    vision = results["vision"]["ours"]
    assert {label: r["image_tokens"] for label, r in vision["encode"].items()} == {"112x112": 16, "256x171": 54}
    assert vision["time_to_first_token"]["prompt_tokens"] > 54  # the image's tokens and the question's
    assert set(results["vision"]["ours int8"]["encode"]) == {"112x112", "256x171"}
    assert record.with_suffix(".png").stat().st_size > 10_000
    table = capsys.readouterr().out
    assert "Q4_K_M" in table and "first token (256x171)" in table and "encode 256x171, int8" in table


def test_documented_runner_shows_its_options(capsys):
    # README: `python -m benchmarks.run` from a checkout (the installed `qvl-local` has no bench command).
    assert run.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--compare-llama-cpp" in out and "--quick" in out
