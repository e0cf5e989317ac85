"""How many compute threads to run: one check for the API and the command line.

The work is compute-bound, so threads beyond the cores only add switching and memory (each thread has
its stack and scratch buffers: 1000 threads took 1 GB, 10000 hung for minutes). A count above a few
times the cores is certainly a mistake, so it is lowered with a warning rather than obeyed.
"""
from __future__ import annotations

import operator
import os
import warnings

# Up to this many threads per available core are accepted as asked (room for experiments with
# oversubscription, and for affinity masks that under-report); more are capped.
MAX_THREADS_PER_CORE = 4


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without affinity masks (macOS)
        return os.cpu_count() or 1


def thread_count(n_threads: int | None) -> int:
    """The thread count to use for `n_threads`: None means all available cores; fewer than 1 is a
    ValueError; more than MAX_THREADS_PER_CORE x the cores is capped with a warning."""
    cores = available_cores()
    if n_threads is None:
        return cores
    try:
        n_threads = operator.index(n_threads)  # ints and numpy integers, not floats or strings
    except TypeError:
        raise ValueError(f"n_threads must be a whole number of threads, got {n_threads!r}") from None
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    limit = MAX_THREADS_PER_CORE * cores
    if n_threads > limit:
        warnings.warn(f"{n_threads} threads asked on {cores} cores: using {limit} "
                      f"({MAX_THREADS_PER_CORE} per core at most; more only slow the work down)", stacklevel=3)
        return limit
    return n_threads
