"""The dashboard server's memory after a burst of visits returns towards its idle figure: every cache is
bounded and the data caches expire, the samples' cache fits a small server, and freed heap is handed back to
the system after each page run (docs/deploy.md states the measured numbers, benchmarks/server_memory.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VU_BYTES = 9 * 64 * 64  # one uint8 VU


def _cached_functions() -> dict[str, object]:
    pytest.importorskip("streamlit")
    from streamlit.runtime.caching.cache_utils import CachedFunc

    from dashboard import loaders

    return {name: f for name, f in vars(loaders).items() if isinstance(f, CachedFunc)}


def test_every_cache_is_bounded_and_every_data_cache_expires() -> None:
    cached = _cached_functions()
    assert len(cached) >= 8 and {f._info.cache_type.name for f in cached.values()} == {"DATA", "RESOURCE"}
    for name, f in cached.items():
        info = f._info
        assert info.max_entries is not None, f"{name}: unbounded cache"
        if info.cache_type.name == "DATA":
            assert info.ttl is not None, f"{name}: cached data never expires"


def test_sample_cache_fits_a_small_server() -> None:
    """The Generate page's cache of samples (up to MAX_SAMPLES uint8 VUs per entry) holds at most 160 MB."""
    from dashboard import loaders

    entries = _cached_functions()["samples"]._info.max_entries
    assert entries * loaders.MAX_SAMPLES * VU_BYTES <= 160e6, entries


def test_freed_memory_goes_back_to_the_system() -> None:
    """200 MB of freed heap (below a live block, so the heap cannot shrink by itself) is returned."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("reads /proc")
    probe = textwrap.dedent(
        """
        import numpy as np
        from dashboard.loaders import release_freed_memory

        def rss():
            line = [x for x in open("/proc/self/status") if x.startswith("VmRSS")][0]
            return int(line.split()[1]) // 1024

        a = np.ones(4_000_000 // 8); del a  # the allocator's mmap threshold moves past 1 MB
        blocks = [np.ones(1_000_000 // 8) for _ in range(200)]
        last = blocks[-1]
        del blocks
        before = rss()
        release_freed_memory()
        print(before, rss())
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = map(int, done.stdout.split()[-2:])
    assert before - after > 100, (before, after)


def test_every_page_run_releases_freed_memory() -> None:
    """The page runner hands freed memory back whatever the page did (a ``finally``)."""
    import ast

    tree = ast.parse((ROOT / "dashboard" / "frame.py").read_text())
    run_page = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "run_page")
    tries = [n for n in ast.walk(run_page) if isinstance(n, ast.Try)]
    assert any("release_freed_memory" in ast.unparse(stmt) for t in tries for stmt in t.finalbody)
