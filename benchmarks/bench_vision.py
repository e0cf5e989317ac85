"""Time the vision encoder on a Qwen2-VL-2B-shaped mmproj with random F16 weights.

The 2B vision tower: 32 blocks of width 1280 with 16 heads and an MLP of 5120, a merger 5120 -> 5120
-> 1536. The file is written once with gguf-py (about 1.3 GB) and cached under .bench-cache/ in the
repository root. Random pixel rows stand in for two images: 448x448 (grid 1x32x32, 1024 patches) and
1024x683 (resized to 1036x672, grid 1x48x74, 3552 patches); the encoder's cost does not depend on the
pixel values.

    python -m benchmarks.bench_vision [--threads 2] [--layers 32] [--repeat 1] [--precision all]

Each case prints the best wall time and the CPU time of that run (all threads; on a shared machine the
CPU time moves less with the others' load). With `exact` among the precisions, every other precision's
image embeddings are compared with exact's: relative RMS error and max error over max |exact|.
llama.cpp's clip on a 2-core machine of this kind takes 11.8 s and 53.7 s for the two images.
`--window 112` runs the same weights with Qwen2.5-VL's window attention (windows of 112 pixels, full
attention on every `--full-every`-th layer, 8 in Qwen2.5-VL): only the attention's cost changes.
`--attention-only` times one layer's full self-attention alone (16 heads of 80 over each image's
patches, random q, k, v; no weights file), per precision: `int8` runs it on integers on AVX-512 VNNI,
`exact` and `fast` in float.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import gguf
import numpy as np

from qvl_local import _core
from qvl_local.config import _vision_config, vision_spec
from qvl_local.gguf_file import GGUFFile

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / ".bench-cache"
HIDDEN, HEADS, MLP, OUT, PATCH = 1280, 16, 5120, 1536, 14
IMAGES = {"448x448": (1, 32, 32), "1024x683": (1, 48, 74)}  # (t, h, w) in patches


def tensor_shapes(layers: int) -> dict[str, tuple[tuple[int, ...], type]]:
    """name -> (numpy shape, i.e. ggml shape reversed; dtype), as llama.cpp's converter names them."""
    shapes: dict[str, tuple[tuple[int, ...], type]] = {
        "v.patch_embd.weight": ((HIDDEN, 3, PATCH, PATCH), np.float16),
        "v.patch_embd.weight.1": ((HIDDEN, 3, PATCH, PATCH), np.float16),
    }
    for i in range(layers):
        for name in ("attn_q", "attn_k", "attn_v", "attn_out"):
            shapes[f"v.blk.{i}.{name}.weight"] = ((HIDDEN, HIDDEN), np.float16)
            shapes[f"v.blk.{i}.{name}.bias"] = ((HIDDEN,), np.float32)
        shapes[f"v.blk.{i}.ffn_up.weight"] = ((MLP, HIDDEN), np.float16)
        shapes[f"v.blk.{i}.ffn_up.bias"] = ((MLP,), np.float32)
        shapes[f"v.blk.{i}.ffn_down.weight"] = ((HIDDEN, MLP), np.float16)
        shapes[f"v.blk.{i}.ffn_down.bias"] = ((HIDDEN,), np.float32)
        for norm in ("ln1", "ln2"):
            shapes[f"v.blk.{i}.{norm}.weight"] = ((HIDDEN,), np.float32)
            shapes[f"v.blk.{i}.{norm}.bias"] = ((HIDDEN,), np.float32)
    shapes["v.post_ln.weight"] = ((HIDDEN,), np.float32)
    shapes["v.post_ln.bias"] = ((HIDDEN,), np.float32)
    shapes["mm.0.weight"] = ((4 * HIDDEN, 4 * HIDDEN), np.float16)
    shapes["mm.0.bias"] = ((4 * HIDDEN,), np.float32)
    shapes["mm.2.weight"] = ((OUT, 4 * HIDDEN), np.float16)
    shapes["mm.2.bias"] = ((OUT,), np.float32)
    return shapes


def random_values(shape: tuple[int, ...], dtype: type, pool: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A slice of a random pool (cheap for 700M values); norm weights 1, so activations stay O(1)."""
    count = int(np.prod(shape))
    if len(shape) == 1 and dtype is np.float32:
        return (1.0 + pool[:count].astype(np.float32)).reshape(shape)
    start = int(rng.integers(0, pool.size - count)) if pool.size > count else 0
    values = np.resize(pool[start:], count) if pool.size - start < count else pool[start : start + count]
    return values.astype(dtype).reshape(shape)


def write_mmproj(path: Path, layers: int) -> None:
    rng = np.random.default_rng(0)
    pool = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.02).astype(np.float16)
    writer = gguf.GGUFWriter(path, "clip")
    writer.add_string("general.type", "mmproj")
    writer.add_string("clip.projector_type", "qwen2vl_merger")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_uint32("clip.vision.patch_size", PATCH)
    writer.add_uint32("clip.vision.embedding_length", HIDDEN)
    writer.add_uint32("clip.vision.feed_forward_length", OUT)  # the converter's quirk: the merger's output
    writer.add_uint32("clip.vision.block_count", layers)
    writer.add_uint32("clip.vision.attention.head_count", HEADS)
    writer.add_uint32("clip.vision.projection_dim", OUT)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-6)
    writer.add_array("clip.vision.image_mean", [0.48145466, 0.4578275, 0.40821073])
    writer.add_array("clip.vision.image_std", [0.26862954, 0.26130258, 0.27577711])
    shapes = tensor_shapes(layers)
    for name, (shape, dtype) in shapes.items():
        writer.add_tensor_info(name, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for shape, dtype in shapes.values():
        writer.write_tensor_data(random_values(shape, dtype, pool, rng))
    writer.close()


def cached_mmproj(layers: int) -> Path:
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"mmproj-qwen2vl-2b-shape-{layers}layers-F16.gguf"
    if not path.is_file():
        print(f"writing {path} ...", flush=True)
        partial = path.with_suffix(".partial")
        write_mmproj(partial, layers)
        partial.rename(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=32, help="vision blocks (32 = the real 2B model)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the best is reported")
    parser.add_argument("--precision", choices=("exact", "fast", "int8", "all"), default="all")
    parser.add_argument("--images", nargs="+", choices=sorted(IMAGES), default=list(IMAGES))
    parser.add_argument("--window", type=int, default=0, help="window attention in pixels (0: full attention)")
    parser.add_argument("--full-every", type=int, default=8, help="with --window: every n-th layer attends fully")
    parser.add_argument("--mmproj", type=Path, default=None,
                        help="a 2B-shaped F16 mmproj to run instead (e.g. the one benchmarks.run writes); --layers is then ignored")
    parser.add_argument("--attention-only", action="store_true", help="time one layer's attention alone")
    args = parser.parse_args()
    if args.attention_only:
        time_attention(args)
        return

    mmproj = GGUFFile(args.mmproj or cached_mmproj(args.layers))
    config = _vision_config(mmproj)
    started = time.perf_counter()
    spec = vision_spec(config)
    spec.window_size = args.window
    spec.full_attention_layers = [i for i in range(config.num_layers) if (i + 1) % args.full_every == 0] if args.window else []
    model = _core.VisionModel(mmproj.handle, spec, _core.ThreadPool(args.threads))
    attention = f"windows of {args.window} px, full on {spec.full_attention_layers}" if args.window else "full attention"
    print(f"model load {time.perf_counter() - started:.2f} s, {config.num_layers} layers, {args.threads} threads, "
          f"ISA {_core.active_isa()}, {attention}")
    precisions = ("exact", "fast", "int8") if args.precision == "all" else (args.precision,)
    rng = np.random.default_rng(1)
    for image in args.images:
        grid = np.array([IMAGES[image]], dtype=np.int64)
        pixels = rng.standard_normal((int(np.prod(grid)), 3 * 2 * PATCH * PATCH), dtype=np.float32)
        embeddings = {}
        for precision in precisions:
            best, best_cpu = float("inf"), float("inf")
            for _ in range(args.repeat):
                started, started_cpu = time.perf_counter(), time.process_time()
                embeddings[precision] = model.encode(pixels, grid, precision=precision)
                if time.perf_counter() - started < best:
                    best, best_cpu = time.perf_counter() - started, time.process_time() - started_cpu
            tokens = embeddings[precision].shape[0]
            print(f"{image:>9} {precision:>5}: {best:7.2f} s (CPU {best_cpu:7.2f} s)  ({pixels.shape[0]} patches -> {tokens} tokens)",
                  flush=True)
        print_errors_against_exact(image, embeddings)


def time_attention(args: argparse.Namespace) -> None:
    print(f"one layer's attention: {HEADS} heads of {HIDDEN // HEADS}, {args.threads} threads, ISA {_core.active_isa()}")
    precisions = ("exact", "fast", "int8") if args.precision == "all" else (args.precision,)
    rng = np.random.default_rng(1)
    for image in args.images:
        rows = int(np.prod(IMAGES[image]))
        q, k, v = (rng.standard_normal((rows, HIDDEN), dtype=np.float32) for _ in range(3))
        for precision in precisions:
            best = float("inf")
            for _ in range(args.repeat):
                started = time.perf_counter()
                _core.vision_attention(q, k, v, [0, rows], HEADS, precision, args.threads)
                best = min(best, time.perf_counter() - started)
            print(f"{image:>9} {precision:>5}: {best * 1000:8.1f} ms  ({rows} patches)", flush=True)


def print_errors_against_exact(image: str, embeddings: dict[str, np.ndarray]) -> None:
    exact = embeddings.get("exact")
    if exact is None:
        return
    for precision, embeds in embeddings.items():
        if precision != "exact":
            rms = float(np.sqrt(np.mean((embeds - exact) ** 2) / np.mean(exact**2)))
            worst = float(np.abs(embeds - exact).max() / np.abs(exact).max())
            print(f"{image:>9} {precision:>5} vs exact: relative RMS {rms:.2e}, max {worst:.2e} of max |exact|", flush=True)


if __name__ == "__main__":
    main()
