"""Resident memory added by loading a model: the weights stay in the file's memory map, untouched
until a forward pass reads them, so loading should add only the tokenizer and the buffers.

    python -m benchmarks.load_memory MODEL.gguf [--n-ctx 4096]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--n-ctx", type=int, default=4096)
    args = parser.parse_args(argv)

    import qvl_local
    import qvl_local.model  # the imports' own memory is not the model's

    before = resident_mib()
    started = time.perf_counter()
    model = qvl_local.load(args.model, mmproj=False, n_ctx=args.n_ctx)
    load_s = time.perf_counter() - started
    after_load = resident_mib()
    model.generate("Hello", max_new_tokens=1)
    after_forward = resident_mib()
    size_mib = args.model.stat().st_size / 2**20
    print(f"model file            {size_mib:9.1f} MiB  ({args.model.name})")
    print(f"load time             {load_s:9.2f} s")
    print(f"resident before load  {before:9.1f} MiB")
    print(f"added by load         {after_load - before:9.1f} MiB  (weights mapped, not read)")
    print(f"added by 1st forward  {after_forward - after_load:9.1f} MiB  (the weights it read, KV pages used)")
    print(f"KV cache reserved     {model._decoder.kv_cache_bytes / 2**20:9.1f} MiB  (n_ctx {model.n_ctx}, pages taken as used)")


if __name__ == "__main__":
    main()
