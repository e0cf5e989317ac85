"""Image embedding error of every precision of ours, and of llama.cpp, against our `exact` path.

    python -m benchmarks.vision_error                      # the fixtures' images, tiny Qwen2-VL
    python -m benchmarks.vision_error --model M.gguf --mmproj MM.gguf --size 1036x672 [--threads 2]

`exact` reproduces HF's float32 reference to ~1e-6 (tests/test_vision.py), so it stands in for it on
images the fixtures hold no reference for. Each image is first resized to a size HF would keep as is
(multiples of 28, within the pixel budget), so that neither engine resizes it again and both see the
same uint8 pixels; llama.cpp runs through llama-cpp-python's libmtmd (when installed), with its
minimum of image tokens lowered to 4 so small images are not enlarged. Errors are relative RMS and the
largest error over the largest |exact| value.
"""
from __future__ import annotations

import argparse
import ctypes
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.llama_cpp_runner import LLAMA_CPP_LOAD_ERRORS
from benchmarks.model_factory import default_fixtures_dir
from benchmarks.worker import random_image
from qvl_local import _core, preprocess_image
from qvl_local.config import _vision_config, vision_spec
from qvl_local.gguf_file import GGUFFile

FIXTURE_IMAGES = {"img_97x203.png": (84, 196), "img_300x120.png": (308, 112), "img_56x56.png": (56, 56)}


class LlamaCppVision:
    """libmtmd on a loaded text model: the merged image embeddings of one image."""

    def __init__(self, model: Path, mmproj: Path, n_threads: int):
        import llama_cpp
        import llama_cpp.mtmd_cpp as mtmd

        self.mtmd = mtmd
        self.llm = llama_cpp.Llama(model_path=str(model), n_ctx=4096, n_threads=n_threads, verbose=False)
        params = mtmd.mtmd_context_params_default()
        params.use_gpu, params.print_timings, params.n_threads, params.image_min_tokens = False, False, n_threads, 4
        self.ctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), self.llm.model, params)
        if self.ctx is None:
            raise RuntimeError(f"libmtmd could not load {mmproj}")
        self.marker = mtmd.mtmd_default_marker()  # bytes

    def embeddings(self, image: Image.Image, width: int) -> np.ndarray:
        mtmd = self.mtmd
        rgb = np.array(image, dtype=np.uint8)
        bitmap = mtmd.mtmd_bitmap_init(image.width, image.height, (ctypes.c_uint8 * rgb.size).from_buffer(rgb))
        text = mtmd.mtmd_input_text()
        text.text, text.text_len, text.add_special, text.parse_special = self.marker, len(self.marker), False, True
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            if mtmd.mtmd_tokenize(self.ctx, chunks, ctypes.byref(text), (mtmd.mtmd_bitmap_p_ctypes * 1)(bitmap), 1) != 0:
                raise RuntimeError("mtmd_tokenize failed")
            for i in range(mtmd.mtmd_input_chunks_size(chunks)):
                chunk = mtmd.mtmd_input_chunks_get(chunks, i)
                if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_IMAGE:
                    n_tokens = mtmd.mtmd_input_chunk_get_n_tokens(chunk)
                    if mtmd.mtmd_encode_chunk(self.ctx, chunk) != 0:
                        raise RuntimeError("mtmd_encode_chunk failed")
                    out = mtmd.mtmd_get_output_embd(self.ctx)
                    return np.ctypeslib.as_array(out, shape=(n_tokens * width,)).reshape(n_tokens, width).copy()
            raise RuntimeError("the prompt has no image chunk")
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            mtmd.mtmd_bitmap_free(bitmap)


def errors(actual: np.ndarray, exact: np.ndarray) -> str:
    rms = float(np.sqrt(np.mean((actual - exact) ** 2) / np.mean(exact**2)))
    worst = float(np.abs(actual - exact).max() / np.abs(exact).max())
    return f"RMS {rms:.2e}, max {worst:.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="text GGUF (llama.cpp needs one; default: the fixture's)")
    parser.add_argument("--mmproj", type=Path, default=None, help="F16 mmproj (default: the fixture's)")
    parser.add_argument("--size", default=None, help="WxH, multiples of 28: one random image of this size "
                                                      "(default: the fixtures' images)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    fixtures = default_fixtures_dir()
    mmproj = args.mmproj or fixtures / "gguf" / "mmproj-qwen2vl-tiny-F16.gguf"
    model = args.model or fixtures / "gguf" / "qwen2vl-tiny-Q8_0.gguf"
    if args.size:
        width, height = (int(v) for v in args.size.split("x"))
        images = {f"random {args.size}": random_image(width, height, seed=100)}
    else:
        images = {name: Image.open(fixtures / "media" / name).convert("RGB").resize(size, Image.BICUBIC)
                  for name, size in FIXTURE_IMAGES.items()}
    file = GGUFFile(mmproj)
    config = _vision_config(file)
    ours = _core.VisionModel(file.handle, vision_spec(config), _core.ThreadPool(args.threads))
    try:
        llama = LlamaCppVision(model, mmproj, args.threads)
    except LLAMA_CPP_LOAD_ERRORS as error:
        llama = None
        print(f"llama-cpp-python is not usable ({error}): ours only")
    print(f"ISA {_core.active_isa()}; error against our exact path")
    for name, image in images.items():
        pixels, grid = preprocess_image(image, mean=config.image_mean, std=config.image_std, max_pixels=image.width * image.height)
        if (int(grid[0][1]) * config.patch_size, int(grid[0][2]) * config.patch_size) != (image.height, image.width):
            raise SystemExit(f"{name}: {image.width}x{image.height} would be resized; pick multiples of 28")
        exact = ours.encode(pixels, grid, precision="exact")
        line = [f"{name} ({exact.shape[0]} tokens):"]
        line += [f"ours {p} {errors(ours.encode(pixels, grid, precision=p), exact)}" for p in ("fast", "int8")]
        if llama is not None:
            line.append(f"llama.cpp {errors(llama.embeddings(image, exact.shape[1]), exact)}")
        print("  ".join(line), flush=True)


if __name__ == "__main__":
    main()
