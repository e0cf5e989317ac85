"""How far the fast path's text logits are from float math, next to llama.cpp's, over many prompts.

    python -m benchmarks.text_fidelity [--prompts 30] [--files q8_0 q4_k_m wide-q4_0 wide-q5_k_m]
                                       [--decode-step] [--json OUT]

One prompt cannot rank two engines: the max-abs error of a single prompt's last-position logits moves
by ±8% under harmless perturbations (an F16-rounded activation scale, an F16 KV cache), so this runs
held-out prompts (random ordinary token ids of varied length, plus the fixtures' a_text ids) through
every engine with the same ids and compares the last position's logits with our `exact` precision
(float activations on the dequantized weights: the HF float32 reference to ~1e-5 on the fixtures).
Engines: ours `fast`, and llama.cpp through llama-cpp-python when it is installed (its defaults: F16
KV cache, repacked weights). Files: the fixtures' qwen2vl-tiny Q8_0 / Q4_K_M, and a wider shape
(hidden 512, head_dim 128, 1 KV head, fixture-like weights) written to .bench-cache/ and quantized by
our quantizer to Q4_0 / Q5_K_M / Q8_0. Per engine and file: mean and median over the prompts of the
max-abs and RMS errors, and on how many prompts ours is below llama.cpp (paired). With --decode-step
every engine (and the reference) prefills all but the last token and then runs that token alone, so the
last logits come from the decode kernels (one activation row) rather than the prompt's matrix-matrix
products.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks import model_factory
from benchmarks.llama_cpp_runner import LLAMA_CPP_LOAD_ERRORS, last_logits
from benchmarks.spec import FIRST_ORDINARY_SPECIAL_ID, text_positions

WIDE = model_factory.TextShape(hidden=512, layers=2, intermediate=1024, heads=4, kv_heads=1,
                               mrope_sections=(16, 24, 24))
FIXTURE_FILES = {"q8_0": "qwen2vl-tiny-Q8_0.gguf", "q4_k_m": "qwen2vl-tiny-Q4_K_M.gguf"}
WIDE_QUANTS = {"wide-q4_0": "Q4_0", "wide-q5_k_m": "Q5_K_M", "wide-q8_0": "Q8_0"}
N_CTX = 512


def held_out_prompts(count: int, seed: int, fixtures: Path) -> dict[str, np.ndarray]:
    """`count` random ordinary-token prompts of 4..256 tokens, and the fixtures' a_text prompts."""
    rng = np.random.default_rng(seed)
    prompts = {f"random{i}": rng.integers(0, FIRST_ORDINARY_SPECIAL_ID, int(rng.integers(4, 257))).astype(np.int32)
               for i in range(count)}
    for quant in FIXTURE_FILES:
        prompts[f"a_text.{quant}"] = np.load(fixtures / f"ref/qwen2vl-tiny/{quant}/a_text.npz")["input_ids"].astype(np.int32)
    return prompts


def model_files(names: list[str], fixtures: Path, cache_dir: Path) -> dict[str, Path]:
    files = {}
    for name in names:
        if name in FIXTURE_FILES:
            files[name] = fixtures / "gguf" / FIXTURE_FILES[name]
        else:
            files[name] = wide_file(WIDE_QUANTS[name], fixtures, cache_dir)
    return files


def wide_file(quant: str, fixtures: Path, cache_dir: Path) -> Path:
    """The wide shape in `quant`, made by our quantizer from its F16 file (both cached)."""
    from qvl_local.quantize import quantize_gguf

    cache_dir.mkdir(parents=True, exist_ok=True)
    f16 = cache_dir / "fidelity-wide-F16.gguf"
    target = cache_dir / f"fidelity-wide-{quant}.gguf"
    tokenizer = fixtures / model_factory.MODELS[model_factory.DEFAULT_MODEL].tokenizer_fixture
    model_factory._write_once(f16, lambda p: model_factory.write_text_f16(
        p, WIDE, tokenizer, tensor=model_factory.fixture_like_tensor), print)
    model_factory._write_once(target, lambda p: quantize_gguf(f16, p, quant, overwrite=True, n_threads=1), print)
    return target


def steps(ids: np.ndarray, decode_step: bool) -> list[np.ndarray]:
    """The pieces the prompt is run in: whole, or (with decode_step) all but the last token, then it."""
    return [ids[:-1], ids[-1:]] if decode_step and len(ids) > 1 else [ids]


def decoder_last_logits(decoder, ids: np.ndarray, precision: str, decode_step: bool) -> np.ndarray:
    """The last position's logits of `ids` run on our C++ decoder from an empty cache, in steps()."""
    decoder.truncate(0)
    start = 0
    for piece in steps(ids, decode_step):
        last = decoder.forward(piece, text_positions(start, len(piece)), logits="last", precision=precision)
        start += len(piece)
    return np.array(last)


def ours_last_logits(path: Path, prompts: dict[str, np.ndarray], precision: str, n_threads: int,
                     decode_step: bool = False) -> dict[str, np.ndarray]:
    import qvl_local

    model = qvl_local.load(path, mmproj=False, n_threads=n_threads, n_ctx=N_CTX)
    decoder = model._decoder  # the C++ decoder: the same ids in, the last position's logits out
    return {name: decoder_last_logits(decoder, ids, precision, decode_step) for name, ids in prompts.items()}


def llama_last_logits(path: Path, prompts: dict[str, np.ndarray], n_threads: int,
                      decode_step: bool = False) -> dict[str, np.ndarray]:
    from llama_cpp import Llama

    with _quiet_stderr():
        llm = Llama(model_path=str(path), n_ctx=N_CTX, n_batch=N_CTX, n_threads=n_threads,
                    n_threads_batch=n_threads, logits_all=False, verbose=False)
    logits = {}
    for name, ids in prompts.items():
        llm.reset()
        for piece in steps(ids, decode_step):
            llm.eval([int(t) for t in piece])
        logits[name] = last_logits(llm)
    return logits


@contextlib.contextmanager
def _quiet_stderr():
    """llama.cpp's loader logs to fd 2 even with verbose=False."""
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def errors(logits: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Per prompt: (max abs, RMS) of logits - reference."""
    out = {}
    for name, ref in reference.items():
        diff = logits[name].astype(np.float64) - ref
        out[name] = (float(np.abs(diff).max()), float(np.sqrt(np.mean(diff ** 2))))
    return out


def summary(per_prompt: dict[str, tuple[float, float]], names: list[str]) -> dict[str, float]:
    values = np.array([per_prompt[n] for n in names])
    return {"max_mean": float(values[:, 0].mean()), "max_median": float(np.median(values[:, 0])),
            "rms_mean": float(values[:, 1].mean()), "rms_median": float(np.median(values[:, 1]))}


def measure_file(path: Path, prompts: dict[str, np.ndarray], n_threads: int, engines: dict[str, Callable],
                 decode_step: bool = False) -> dict:
    exact = ours_last_logits(path, prompts, "exact", n_threads, decode_step)
    reference = {name: v.astype(np.float64) for name, v in exact.items()}
    random_names = [n for n in prompts if n.startswith("random")]
    result: dict = {"file": str(path), "engines": {}}
    for engine, run in engines.items():
        per_prompt = errors(run(path, prompts, n_threads, decode_step), reference)
        result["engines"][engine] = {"random": summary(per_prompt, random_names),
                                     "per_prompt": {n: list(v) for n, v in per_prompt.items()}}
    if "llama.cpp" in engines:
        ours, theirs = (result["engines"][e]["per_prompt"] for e in ("ours fast", "llama.cpp"))
        result["ours_below_llama"] = {kind: sum(ours[n][i] < theirs[n][i] for n in random_names)
                                      for i, kind in enumerate(("max", "rms"))}
    return result


def print_file(label: str, result: dict, n_random: int) -> None:
    print(f"\n{label}  ({result['file']})")
    print(f"  {'engine':<12} {'max mean':>9} {'max med':>9} {'rms mean':>9} {'rms med':>9}   a_text q8_0 / q4_k_m ids (max, rms)")
    for engine, data in result["engines"].items():
        s = data["random"]
        fixtures = "  ".join(f"{data['per_prompt'][n][0]:.4f} {data['per_prompt'][n][1]:.4f}"
                             for n in data["per_prompt"] if n.startswith("a_text"))
        print(f"  {engine:<12} {s['max_mean']:9.4f} {s['max_median']:9.4f} {s['rms_mean']:9.4f} {s['rms_median']:9.4f}   {fixtures}")
    if "ours_below_llama" in result:
        below = result["ours_below_llama"]
        print(f"  ours below llama.cpp on {below['max']}/{n_random} prompts (max abs), {below['rms']}/{n_random} (RMS)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=model_factory.default_fixtures_dir())
    parser.add_argument("--cache-dir", type=Path, default=model_factory.CACHE_DIR)
    parser.add_argument("--files", nargs="+", default=["q8_0", "q4_k_m", "wide-q4_0", "wide-q5_k_m"],
                        choices=[*FIXTURE_FILES, *WIDE_QUANTS])
    parser.add_argument("--prompts", type=int, default=30, help="random prompts (the a_text ones come on top)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-llama-cpp", action="store_true")
    parser.add_argument("--decode-step", action="store_true", help="the last token alone, after the rest")
    parser.add_argument("--json", type=Path, help="also write every per-prompt figure here")
    args = parser.parse_args(argv)

    prompts = held_out_prompts(args.prompts, args.seed, args.fixtures)
    engines: dict[str, Callable] = {"ours fast": lambda p, pr, t, step: ours_last_logits(p, pr, "fast", t, step)}
    if not args.no_llama_cpp:
        try:
            import llama_cpp  # noqa: F401
            engines["llama.cpp"] = llama_last_logits
        except LLAMA_CPP_LOAD_ERRORS as error:
            print(f"llama-cpp-python is not usable ({error}): ours only", file=sys.stderr)
    print(f"{args.prompts} random prompts (seed {args.seed}, lengths 4-256) + the fixtures' a_text ids; "
          f"errors of the last position's logits against ours `exact`"
          + ("; the last token run alone (decode step)" if args.decode_step else ""))
    results = {}
    for label, path in model_files(args.files, args.fixtures, args.cache_dir).items():
        results[label] = measure_file(path, prompts, args.threads, engines, args.decode_step)
        print_file(label, results[label], args.prompts)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
