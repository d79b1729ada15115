"""Which CPU kernels a bit-for-bit digest was taken on: torch's kernel level, and the CPU vendor where the same level
rounds differently on another vendor's CPUs (measured: AVX-512 on an AMD EPYC and on an Intel Xeon give other
training steps and other diffusion samples with the same torch)."""
from __future__ import annotations

from typing import Any

import torch


def cpu_vendor() -> str:
    """The CPU vendor (``GenuineIntel``, ``AuthenticAMD``; empty where /proc/cpuinfo does not say)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def digest_keys() -> list[str]:
    """Keys a digest table is read by, most specific first: e.g. ``AVX512 GenuineIntel``, then ``AVX512``."""
    level, vendor = torch.backends.cpu.get_cpu_capability(), cpu_vendor()
    return [f"{level} {vendor}", level] if vendor else [level]


def pick(table: dict[str, Any], default: Any = None) -> Any:
    """The entry of ``table`` for this machine's kernels (:func:`digest_keys`), else ``default``."""
    return next((table[k] for k in digest_keys() if k in table), default)
