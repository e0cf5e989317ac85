"""End-to-end benchmark: a model shaped like Qwen2-VL-2B (the default), Qwen2.5-VL-3B or Qwen3-VL-2B, with
random weights, per quantization level.

    python -m benchmarks.run [--model {qwen2vl-2b,qwen25vl-3b,qwen3vl-2b}] [--quick] [--compare-llama-cpp]
                             [--quants Q4_K_M Q4_0] [--threads N] [--llama-quantize PATH]
                             [--llama-cpp-build "CMAKE FLAGS"]

(from the root of a checkout: the benchmarks are not part of the installed package)

For F16, Q8_0, Q4_K_M and Q4_0 (and Q5_K_M when asked) it measures load time, peak RSS, prefill tokens/s (512-token prompt,
fresh cache, logits of the last position) and decode tokens/s (128 tokens, end of text ignored); with
the F16 vision projector, the encode time of a 448x448 and a 1024x683 image and the time to the first
token of a question about the larger one, at the default precision ("fast") and at "int8" (the
projector's F16 weights as 8-bit blocks too; --vision-precisions exact int8 adds the float path).
Each measurement runs in a process of its own; with
--compare-llama-cpp, llama.cpp (llama-cpp-python, libmtmd for vision) runs the same files right after
ours, quant by quant.
While each figure is taken, the CPU time other processes used is recorded; a noisy figure is taken
once more and flagged if still noisy. The record also holds the CPU's instruction-set flags, our ISA
path, llama.cpp's (its system info) and how it was built (--llama-cpp-build, or $QVL_LLAMA_CPP_BUILD:
llama-cpp-python cannot tell its CMake flags). With --llama-quantize, the quantized text files are made
by llama.cpp's own quantizer (both engines then run llama.cpp's files).

Outputs: a table on stdout, benchmarks/results/<time>-<shape>.json (shape: qwen2vl-2b-shape,
qwen25vl-3b-shape, qwen3vl-2b-shape) and a .png chart beside it. --quick runs the same code on a tiny
model of the same family (2-4 layers, width 64) in seconds: a smoke test, not a figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import machine, report
from benchmarks.bench_kernels import read_bandwidth
from benchmarks.llama_cpp_runner import llama_cpp_version
from benchmarks.model_factory import CACHE_DIR, DEFAULT_MODEL, DEFAULT_QUANT_TYPES, MODELS, QUANT_TYPES, QUICK_MODELS, \
    BenchShape, default_fixtures_dir, ensure_models
from benchmarks.spec import IMAGE_PLACEHOLDER
from benchmarks.worker import Spec

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WORKER_TIMEOUT_S = 3600
QUESTION = "Describe this image in detail."


@dataclass(frozen=True)
class Workload:
    prefill_tokens: int
    decode_tokens: int
    images: dict[str, list[int]]  # label -> [width, height]
    ttft_image: str


FULL_WORKLOAD = Workload(512, 128, {"448x448": [448, 448], "1024x683": [1024, 683]}, "1024x683")
QUICK_WORKLOAD = Workload(64, 16, {"112x112": [112, 112], "256x171": [256, 171]}, "256x171")
READ_BANDWIDTH_BYTES = {"full": 1 << 30, "quick": 64 << 20}  # the quick run only checks the code path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(MODELS), default=DEFAULT_MODEL,
                        help=f"the real model whose shape is benchmarked (default: {DEFAULT_MODEL})")
    parser.add_argument("--quick", action="store_true", help="tiny model, short prompts: a smoke test in seconds")
    parser.add_argument("--compare-llama-cpp", action="store_true", help="also run llama.cpp (llama-cpp-python) on the same files")
    parser.add_argument("--quants", nargs="+", choices=QUANT_TYPES, default=list(DEFAULT_QUANT_TYPES), metavar="TYPE",
                        help=f"quantization levels: {' '.join(QUANT_TYPES)} (default: {' '.join(DEFAULT_QUANT_TYPES)})")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="threads (default: all cores)")
    parser.add_argument("--skip-vision", action="store_true", help="text measurements only")
    parser.add_argument("--vision-precisions", nargs="*", choices=("exact", "int8"), default=["int8"], metavar="PRECISION",
                        help="vision: our precisions measured besides the default fast (default: int8)")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help="where the generated models are kept")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON and the PNG go")
    parser.add_argument("--tokenizer-gguf", type=Path, default=None,
                        help="a GGUF of the model's family whose tokenizer is copied (default: the fixtures' tiny model)")
    parser.add_argument("--llama-quantize", type=Path, default=None,
                        help="llama.cpp's llama-quantize binary: it makes the quantized files (default: our quantizer)")
    parser.add_argument("--llama-cpp-build", default=os.environ.get("QVL_LLAMA_CPP_BUILD"),
                        help="how the llama.cpp compared was built (its CMake flags), recorded with the results "
                             "(default: $QVL_LLAMA_CPP_BUILD)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.llama_quantize is not None and not args.llama_quantize.is_file():
        parser.error(f"--llama-quantize: no file at {args.llama_quantize}")
    return args


def run_worker(spec: Spec) -> dict[str, Any]:
    """Runs one measurement in a fresh interpreter; its last stdout line is the result."""
    import qvl_local

    search_path = [str(Path(qvl_local.__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(search_path + [os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    completed = subprocess.run([sys.executable, "-m", "benchmarks.worker", json.dumps(asdict(spec))],
                               stdout=subprocess.PIPE, text=True, env=env, timeout=WORKER_TIMEOUT_S)
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        return {"error": f"{spec.kind} on {Path(spec.model).name} exited with status {completed.returncode}",
                "signal": -completed.returncode if completed.returncode < 0 else None}
    return json.loads(lines[-1])


def run_llama_worker(spec: Spec, log) -> dict[str, Any]:
    """llama.cpp with its defaults; if it dies by a signal (its AMX kernels crash on some virtual
    machines), once more without its extra weight buffers (no AMX, no repacking), saying so."""
    result = run_worker(spec)
    if not result.get("signal"):
        return result
    log(f"  llama.cpp died by signal {result['signal']}; again without its extra weight buffers ...")
    retry = run_worker(replace(spec, llama_extra_buffers=False))
    retry["note"] = f"default run died by signal {result['signal']}; measured with use_extra_bufts=false (no AMX / repacked weights)"
    return retry


def question_prompt(text_gguf: Path) -> str:
    """The chat prompt of a question about one image, rendered by the model's own chat template: the
    same text for both engines (each puts its image where IMAGE_PLACEHOLDER is)."""
    from qvl_local.chat import render_chat
    from qvl_local.gguf_file import GGUFFile

    messages = [{"role": "user", "content": [{"type": "image", "image": "the image"}, {"type": "text", "text": QUESTION}]}]
    prompt = render_chat(messages, template=GGUFFile(text_gguf).require("tokenizer.chat_template")).prompt
    if prompt.count(IMAGE_PLACEHOLDER) != 1:
        raise RuntimeError(f"{text_gguf}: the chat template did not render one {IMAGE_PLACEHOLDER}: {prompt!r}")
    return prompt


def decode_bytes_per_token(text_gguf: Path) -> int:
    """The weight bytes one decoded token reads: every tensor once, but of the embedding table only a row
    when the model has its own output matrix (tied models multiply by the whole table)."""
    from qvl_local.gguf_file import GGUFFile

    tensors = GGUFFile(text_gguf).tensors
    embedding = tensors["token_embd.weight"].nbytes if "output.weight" in tensors else 0
    return sum(info.nbytes for info in tensors.values()) - embedding


def measure(args: argparse.Namespace, shape: BenchShape, workload: Workload, files, log) -> dict[str, Any]:
    text: dict[str, dict[str, Any]] = {}
    bandwidth: dict[str, list[float]] = {}  # quant -> read bandwidth (bytes/s) before and after its runs
    bandwidth_bytes = READ_BANDWIDTH_BYTES["quick" if args.quick else "full"]
    for quant in args.quants:
        common = dict(model=str(files.text[quant]), n_threads=args.threads,
                      prefill_tokens=workload.prefill_tokens, decode_tokens=workload.decode_tokens)
        text[quant] = {}
        bandwidth[quant] = [read_bandwidth(args.threads, bandwidth_bytes)[0]]
        log(f"{quant}: ours ...")
        text[quant]["ours"] = run_worker(Spec(kind="ours-text", **common))
        if args.compare_llama_cpp and llama_cpp_version():
            log(f"{quant}: llama.cpp ...")
            text[quant]["llama.cpp"] = run_llama_worker(Spec(kind="llama-text", **common), log)
        bandwidth[quant].append(read_bandwidth(args.threads, bandwidth_bytes)[0])
    results: dict[str, Any] = {"text": text, "read_bandwidth": bandwidth}
    if not args.skip_vision:
        vision_quant = "Q4_K_M" if "Q4_K_M" in args.quants else args.quants[0]
        common = dict(model=str(files.text[vision_quant]), mmproj=str(files.mmproj), n_threads=args.threads,
                      images=workload.images, ttft_image=workload.ttft_image, prompt=question_prompt(files.text[vision_quant]))
        log(f"vision ({vision_quant} + F16 mmproj): ours ...")
        results["vision"] = {"ours": run_worker(Spec(kind="ours-vision", **common))}
        for precision in args.vision_precisions:
            log(f"vision ({vision_quant} + F16 mmproj): ours, precision {precision} ...")
            results["vision"][f"ours {precision}"] = run_worker(Spec(kind="ours-vision", precision=precision, **common))
        if args.compare_llama_cpp and llama_cpp_version():
            log(f"vision ({vision_quant} + F16 mmproj): llama.cpp ...")
            results["vision"]["llama.cpp"] = run_llama_worker(Spec(kind="llama-vision", **common), log)
        results["vision_quant"] = vision_quant
    return results


def metadata(args: argparse.Namespace, shape: BenchShape, workload: Workload, argv: list[str]) -> dict[str, Any]:
    from qvl_local import _core

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python -m benchmarks.run " + " ".join(argv),
        "git_commit": _git_commit(),
        "model": args.model,
        "shape": shape.name,
        "model_shape": asdict(shape),
        "workload": asdict(workload),
        "n_threads": args.threads,
        "n_cores": os.cpu_count(),
        "cpu": machine.cpu_model(),
        "cpu_flags": machine.cpu_isa_flags(),
        "isa": _core.active_isa(),
        "compare_llama_cpp": args.compare_llama_cpp,
        "llama_cpp_build": args.llama_cpp_build,
        "quantizer": f"llama-quantize ({args.llama_quantize})" if args.llama_quantize else "qvl_local.quantize",
        "load_average_before": machine.load_average(),
    }


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return done.stdout.strip() or None


def failures(results: dict[str, Any]) -> list[str]:
    groups = [*results["text"].values(), results.get("vision", {})]
    return [r["error"] for engines in groups for r in engines.values() if "error" in r]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except SystemExit as exit_request:  # --help, or a usage error argparse already explained
        return exit_request.code if isinstance(exit_request.code, int) else 2
    shape, workload = (QUICK_MODELS[args.model], QUICK_WORKLOAD) if args.quick else (MODELS[args.model], FULL_WORKLOAD)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    tokenizer = args.tokenizer_gguf or default_fixtures_dir() / shape.tokenizer_fixture
    if not tokenizer.is_file():
        log(f"no tokenizer source at {tokenizer}: pass --tokenizer-gguf (a GGUF of the model's family) or set QVL_FIXTURES")
        return 2
    meta = metadata(args, shape, workload, argv)
    files = ensure_models(shape, tuple(args.quants), tokenizer, cache_dir=args.cache_dir, n_threads=args.threads, log=log,
                          llama_quantize=args.llama_quantize)
    measured = measure(args, shape, workload, files, log)
    meta["load_average_after"] = machine.load_average()
    meta["vision_quant"] = measured.pop("vision_quant", None)
    meta["file_sizes"] = {quant: path.stat().st_size for quant, path in files.text.items()} | {"mmproj": files.mmproj.stat().st_size}
    meta["decode_bytes_per_token"] = {quant: decode_bytes_per_token(path) for quant, path in files.text.items()}
    results = {"meta": meta, "llama_cpp_version": llama_cpp_version() if args.compare_llama_cpp else None,
               "reference_llama_cpp": report.REFERENCE_LLAMA_CPP, **measured}
    errors = failures(results)
    stem = args.output_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{shape.name}"
    report.write_json(results, stem.with_suffix(".json"))
    if errors:
        log("failed: " + "; ".join(errors))
        return 1
    print(report.render_text(results))
    report.draw_chart(results, stem.with_suffix(".png"))
    print(f"\nwrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
