"""What a cached result depends on: the source of the modules that compute it and the libraries' versions.

Every cache key of the evaluation holds :func:`code_digest` of the modules it depends on, so a change to
that code or an upgrade of numpy, scikit-learn, UMAP or torch starts a new entry instead of reusing one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Libraries whose versions decide cached numbers (arithmetic, neighbour search, UMAP, the encoder).
LIBRARIES: tuple[str, ...] = ("numpy", "scipy", "scikit-learn", "umap-learn", "pynndescent", "numba", "torch")


def library_versions() -> dict[str, str]:
    """``{library: version}`` of :data:`LIBRARIES` (``"-"`` where one is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "-"
    return out


def code_digest(modules: tuple[str, ...]) -> str:
    """SHA-256 of the named ``synthvu_core.evaluation`` modules' source and :func:`library_versions` (the
    package's version stands in for a source that cannot be read)."""
    import synthvu_core.evaluation as ev
    from synthvu_core import __version__

    h = hashlib.sha256()
    for name, v in library_versions().items():
        h.update(f"{name}={v};".encode())
    for name in modules:
        try:
            h.update((Path(ev.__file__).parent / f"{name}.py").read_bytes())
        except OSError:
            h.update(f"synthvu_core {__version__}".encode())
    return h.hexdigest()
