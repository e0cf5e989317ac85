"""How busy the machine was while we measured, from /proc (Linux), and our own peak memory.

A measurement is trustworthy only if the other processes left the cores alone: the CPU time the
whole machine spent (/proc/stat) minus the CPU time of this process (all its threads) is what
others took, reported as an average number of busy cores over the measurement.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

NOISY_SHARE = 0.10  # others used more than this share of the machine's cores: the figure is flagged
_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds every core has spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICKS_PER_SECOND


@dataclass
class Timing:
    seconds: float
    others_cores: float  # average cores kept busy by other processes during the measurement
    noisy: bool
    attempts: int = 1
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads): moves less than `seconds` on a busy machine

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def timed(action: Callable[[], Any], n_cores: int | None = None) -> tuple[Timing, Any]:
    """Runs `action` once, timing it and what the rest of the machine did meanwhile."""
    n_cores = n_cores or os.cpu_count() or 1
    machine_before, own_before = machine_cpu_seconds(), time.process_time()
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    own = time.process_time() - own_before
    others = (machine_cpu_seconds() - machine_before) - own
    others_cores = max(0.0, others) / max(seconds, 1e-9)
    return Timing(seconds, others_cores, others_cores > NOISY_SHARE * n_cores, cpu_seconds=own), result


def timed_quietly(action: Callable[[], Any], prepare: Callable[[], None] = lambda: None,
                  n_cores: int | None = None) -> tuple[Timing, Any]:
    """`timed`, run once more when the first run was noisy; the quieter run is kept."""
    prepare()
    timing, result = timed(action, n_cores)
    if not timing.noisy:
        return timing, result
    prepare()
    second, second_result = timed(action, n_cores)
    best, best_result = (second, second_result) if second.others_cores < timing.others_cores else (timing, result)
    best.attempts = 2
    return best, best_result


def peak_rss_bytes() -> int:
    """This process's peak resident set (VmHWM): mapped weight pages it touched count too."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("VmHWM missing from /proc/self/status")


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return (one, five, fifteen)


# The /proc/cpuinfo flags that decide which kernels run (ours and llama.cpp's).
ISA_FLAGS = ("avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx512vbmi", "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp",
             "fphp", "i8mm", "bf16", "sve")


def cpu_isa_flags() -> list[str]:
    """Which of ISA_FLAGS this CPU reports (x86 "flags" or ARM "Features"), in ISA_FLAGS's order."""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith(("flags", "Features")):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in ISA_FLAGS if flag in present]
    return []


def cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"
