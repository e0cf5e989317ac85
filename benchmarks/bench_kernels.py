"""Kernel throughput: matrix-vector GB/s (weight bytes / time) next to the machine's read bandwidth,
and matrix-matrix GOP/s, per type and precision.

    python -m benchmarks.bench_kernels [--types Q4_K Q8_0] [--threads 2] [--quick]

Matrices are larger than the caches, so matvec is bounded by memory: the target is >= 80% of the read
bandwidth measured in the same run. Weights are random (kernel speed does not depend on the values);
big ones repeat a quantized slab of rows so the setup stays fast. "others" is the average number of
cores other processes kept busy during the measurement (benchmarks.machine): figures taken while it
is high are not trustworthy.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmarks.machine import cpu_model, timed
from qvl_local import _core, ops

MATVEC_SHAPES = ((8960, 1536), (1536, 8960), (151936, 1536))  # Qwen2-VL-2B MLP up/down, output layer
MATMUL_SHAPES = ((1536, 1536), (8960, 1536), (1536, 8960))  # attention projection, MLP up, MLP down
MATMUL_ROWS = 512  # activation rows: a prefill / ViT batch
DEFAULT_TYPES = ("Q4_K", "Q6_K", "Q8_0", "Q4_0", "Q5_K", "Q4_1", "Q5_0", "Q5_1", "F16", "BF16", "F32")
BANDWIDTH_BYTES = 1 << 30
OUT_OF_CACHE_BYTES = 512 << 20  # matvec cycles through copies of a weight this large in all, past any L3


@dataclass
class Measurement:
    seconds: float
    others_cores: float


def best_of(action: Callable[[], object], repeats: int) -> Measurement:
    """The fastest of `repeats` timed runs (after one warm-up), with the noise seen over all of them:
    /proc/stat counts in 10 ms ticks, too coarse to tell what others did during one run of a few ms."""
    action()
    all_runs, runs = timed(lambda: [timed(action)[0] for _ in range(repeats)])
    return Measurement(min(run.seconds for run in runs), all_runs.others_cores)


def read_bandwidth(n_threads: int, nbytes: int = BANDWIDTH_BYTES) -> tuple[float, Measurement]:
    """Bytes per second reading an nbytes array (1 GiB: far past any cache): our threaded read loop or
    numpy's sum, whichever is faster."""
    data = np.ones(nbytes, dtype=np.uint8)
    ours = best_of(lambda: _core.stream_read(data, n_threads), 5)
    numpy = best_of(lambda: data.view(np.uint64).sum(), 3)
    best = min(ours, numpy, key=lambda m: m.seconds)
    return data.nbytes / best.seconds, best


def random_weight(ggml_type: str, rows: int, k: int, rng: np.random.Generator) -> ops.QTensor:
    slab_rows = min(rows, 1024)
    slab = ops.quantize((0.05 * rng.standard_normal((slab_rows, k))).astype(np.float32), ggml_type)
    repeats = -(-rows // slab_rows)
    data = np.tile(slab.data.reshape(slab_rows, -1), (repeats, 1))[:rows]
    return ops.QTensor(ggml_type, rows, k, np.ascontiguousarray(data).reshape(-1))


def matvec_over_copies(w: ops.QTensor, x: np.ndarray, precision: str, n_threads: int,
                       repeats: int) -> tuple[int, Measurement]:
    """Times one matvec on each of several copies of w (together larger than the caches)."""
    copies = [w] + [ops.QTensor(w.ggml_type, w.rows, w.k, w.data.copy())
                    for _ in range(max(0, OUT_OF_CACHE_BYTES // w.data.nbytes))]

    def run_all() -> None:
        for weight in copies:
            ops.matmul(weight, x, precision=precision, n_threads=n_threads)

    m = best_of(run_all, repeats)
    return w.data.nbytes * len(copies), m


def gbps(nbytes: int, m: Measurement) -> float:
    return nbytes / m.seconds / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", nargs="+", default=list(DEFAULT_TYPES), choices=ops.TYPES)
    parser.add_argument("--threads", type=int, default=_core.default_threads())
    parser.add_argument("--isa", choices=ops.available_isas(), default=ops.active_isa())
    parser.add_argument("--quick", action="store_true",
                        help="skip the 151936-row output layer and the larger matmuls, fewer repeats")
    parser.add_argument("--matmul-rows", type=int, default=MATMUL_ROWS, help="activation rows of the matmuls")
    args = parser.parse_args(argv)
    ops.set_isa(args.isa)
    repeats = 3 if args.quick else 10
    rng = np.random.default_rng(0)

    bandwidth, bw_run = read_bandwidth(args.threads)
    print(f"CPU: {cpu_model()}  ISA: {args.isa}  threads: {args.threads}")
    print(f"read bandwidth: {bandwidth / 1e9:.1f} GB/s (others {bw_run.others_cores:.1f} cores)\n")
    print(f"{'type':6} {'matrix':>12} {'MB':>7} {'fast GB/s':>10} {'% read':>7} {'exact GB/s':>11} {'others':>7}")
    shapes = MATVEC_SHAPES[:2] if args.quick else MATVEC_SHAPES
    for ggml_type in args.types:
        for rows, k in shapes:
            w = random_weight(ggml_type, rows, k, rng)
            x = rng.standard_normal((1, k)).astype(np.float32)
            nbytes, fast = matvec_over_copies(w, x, "fast", args.threads, repeats)
            _, exact = matvec_over_copies(w, x, "exact", args.threads, max(1, repeats // 3))
            print(f"{ggml_type:6} {rows:>6}x{k:<5} {w.data.nbytes / 1e6:7.1f} {gbps(nbytes, fast):10.1f} "
                  f"{100 * nbytes / fast.seconds / bandwidth:6.0f}% {gbps(nbytes, exact):11.1f} "
                  f"{max(fast.others_cores, exact.others_cores):7.1f}")
    n = args.matmul_rows
    print(f"\nmatmul: {n} activation rows @ weights (2*n*rows*k ops)")
    print(f"{'type':6} {'matrix':>12} {'fast GOP/s':>11} {'exact GFLOP/s':>14} {'others':>7}")
    for rows, k in MATMUL_SHAPES[:1] if args.quick else MATMUL_SHAPES:
        ops_count = 2 * n * rows * k
        for ggml_type in args.types:
            w = random_weight(ggml_type, rows, k, rng)
            x = rng.standard_normal((n, k)).astype(np.float32)
            fast = best_of(lambda: ops.matmul(w, x, precision="fast", n_threads=args.threads), max(2, repeats // 3))
            exact = best_of(lambda: ops.matmul(w, x, precision="exact", n_threads=args.threads), max(2, repeats // 3))
            print(f"{ggml_type:6} {rows:>6}x{k:<5} {ops_count / fast.seconds / 1e9:11.1f} "
                  f"{ops_count / exact.seconds / 1e9:14.1f} {max(fast.others_cores, exact.others_cores):7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
