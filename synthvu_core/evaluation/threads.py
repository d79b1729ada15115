"""Fixed thread counts for the evaluation, so that no report depends on how many cores its machine has.

Every parallel library the evaluation calls runs with :data:`EVALUATION_THREADS` threads while a report is
computed: torch's intra-op pool (the classifiers, the streamed distances), BLAS and OpenMP pools through
threadpoolctl (numpy's and scipy's OpenBLAS in PCA, KDE, Fréchet distance and scikit-learn's distances) and
numba's pool for UMAP in the calling thread; the generator's sampling of the VUs a report evaluates too. A BLAS
or OpenMP reduction split over a different number of threads adds in another order, so a fixed count is what lets
a 2-core and a 64-core machine give the same bits; the evaluation's own concurrency (two workers,
:mod:`synthvu_core.evaluation.schedule`) keeps two cores busy.

The CPU kernels the evaluation uses (convolutions, batch norm, Adam, matrix products, ``cdist``) are
deterministic on CPU at a fixed thread count, so ``torch.use_deterministic_algorithms`` is not switched on:
it would change a process-wide setting of the caller (a dashboard server) and nothing in these numbers.
What a fixed thread count cannot fix is the instruction set: BLAS and torch choose kernels by CPU
(AVX-512, AVX2, SSE), which round differently. :func:`numeric_environment` records what this machine used
and ``meta.tolerances`` (measured, :mod:`synthvu_core.evaluation.verify`) says how far a report may move.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from synthvu_core.machine import cpu_model

#: Threads of every numeric library while an evaluation runs.
EVALUATION_THREADS = 1


@contextmanager
def _numba_threads(n: int) -> Iterator[None]:
    """Numba's thread count for the calling thread (numba keeps one per thread), where numba is loaded."""
    numba = sys.modules.get("numba")
    if numba is None:
        try:
            import numba
        except ImportError:
            yield
            return
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _load_pools() -> None:
    """Load every BLAS and OpenMP library the evaluation calls, so that threadpoolctl limits them all.

    threadpoolctl limits only the libraries already loaded when the limit is set: scipy's own OpenBLAS loads on the
    first import of ``scipy.linalg`` (by scikit-learn's PCA, inside the evaluation), so without this the first
    PCA of a fresh process ran on every core and later ones on one: the attack UMAP of a fresh ``report verify``
    differed from that of a process that had imported scipy before."""
    import scipy.linalg  # noqa: F401  scipy's OpenBLAS
    import sklearn.metrics  # noqa: F401  scikit-learn's OpenMP runtime (pairwise reductions)


@contextmanager
def fixed_threads(n: int = EVALUATION_THREADS) -> Iterator[None]:
    """Run the block with ``n`` threads in torch, BLAS/OpenMP (threadpoolctl) and numba; restored after."""
    import torch
    from threadpoolctl import threadpool_limits

    _load_pools()
    before = torch.get_num_threads()
    with ExitStack() as stack:
        # numba first: the first use of numba's OpenMP pool launches it and sets the calling thread's OpenMP count
        # to the pool's size (every core), which torch's and the BLAS counts set below must come after. Set
        # the other way round, torch's elementwise kernels ran on every core in the thread that launched the pool
        # (the same numbers, and an OpenMP thread spinning beside the two workers).
        stack.enter_context(_numba_threads(n))
        torch.set_num_threads(n)
        stack.callback(torch.set_num_threads, before)
        stack.enter_context(threadpool_limits(limits=n))
        yield


def numeric_environment() -> dict[str, Any]:
    """What decides rounding on this machine: the evaluation's thread count, the CPU model, torch's CPU kernel
    level and each BLAS/OpenMP library's version and kernel architecture (recorded in a report's meta; ``report
    verify`` names what differs, :func:`environment_changes`)."""
    import torch
    from threadpoolctl import threadpool_info

    pools = [
        {k: p.get(k) for k in ("internal_api", "version", "architecture") if p.get(k) is not None}
        for p in threadpool_info()
    ]
    return {
        "threads": EVALUATION_THREADS,
        "cpu": cpu_model(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "pools": sorted(pools, key=lambda p: sorted(p.items())),
    }


def environment_changes(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """What differs between the numeric environment a report recorded and ``current``, in words (empty where
    nothing recorded differs; an item for what the report did not record)."""
    if not saved:
        return ["the report records no numeric environment"]
    out = []
    for key, what in (("cpu", "CPU"), ("torch_cpu_capability", "torch kernel level"), ("pools", "BLAS/OpenMP"),
                      ("threads", "evaluation threads")):
        if key not in saved:
            out.append(f"the report does not record its {what}")
        elif saved[key] != current.get(key):
            out.append(f"{what}: report {saved[key]}, here {current.get(key)}")
    return out
