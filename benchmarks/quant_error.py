"""Relative RMS error of each GGUF tensor type: random data and the fixture weights.

    PYTHONPATH=python python benchmarks/quant_error.py [--fixtures ../shared/fixtures]

Error = ||decode(encode(x)) - x|| / ||x|| over all values, with our encoders (qvl_local.ops, the
ones `qvl-local quantize` uses). Columns: standard-normal and uniform random matrices (256 x 1024,
seed 0); the text model's matrices (decoded from the Q8_0 fixture: these float32 values are the
reference); the vision projector's matrices (exact F16 values).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from qvl_local import ops
from qvl_local.gguf_file import GGUFFile

TYPES = ("F16", "BF16", "Q8_0", "Q6_K", "Q5_K", "Q5_1", "Q5_0", "Q4_K", "Q4_1", "Q4_0")


def relative_rms_error(matrices: list[np.ndarray], ggml_type: str) -> float:
    error = norm = 0.0
    for values in matrices:
        decoded = ops.dequantize(ops.quantize(values, ggml_type))
        error += float(np.sum(np.square(decoded - values, dtype=np.float64)))
        norm += float(np.sum(np.square(values, dtype=np.float64)))
    return float(np.sqrt(error / norm))


def weight_matrices(path: Path) -> list[np.ndarray]:
    """The file's 2-D weights as float32 (rows, k), those whose rows fit 256-value blocks."""
    gguf = GGUFFile(path)
    matrices = []
    for info in gguf.tensors.values():
        if len(info.shape) == 2 and info.shape[0] % 256 == 0:
            q = ops.QTensor(info.type_name, info.shape[1], info.shape[0], gguf.tensor_bytes(info.name))
            matrices.append(ops.dequantize(q))
    return matrices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=Path(os.environ.get("QVL_FIXTURES", "../shared/fixtures")))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    columns = {
        "normal": [rng.standard_normal((256, 1024)).astype(np.float32)],
        "uniform": [rng.uniform(-1, 1, (256, 1024)).astype(np.float32)],
        "text (Q8_0 values)": weight_matrices(args.fixtures / "gguf/qwen2vl-tiny-Q8_0.gguf"),
        "mmproj (F16)": weight_matrices(args.fixtures / "gguf/mmproj-qwen2vl-tiny-F16.gguf"),
    }
    print(f"{'type':<6}" + "".join(f"{name:>20}" for name in columns))
    for ggml_type in TYPES:
        cells = [f"{100 * relative_rms_error(matrices, ggml_type):>19.3f}%" for matrices in columns.values()]
        print(f"{ggml_type:<6}" + "".join(cells))


if __name__ == "__main__":
    main()
