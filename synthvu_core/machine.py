"""The machine a number was made on, at the bottom of the package (standard library only): every layer may import it.

Two CPUs of the same instruction-set level may still round differently (another vendor's kernels), and a 600-step
GAN run amplifies that rounding into other weights, so a card and a report record the CPU model beside torch's
kernel level (docs/interfaces.md).
"""

from __future__ import annotations

import platform


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`); None where unknown."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None
