"""synthvu: privacy-preserving synthetic spine MRI vertebral units (VUs).

The package is layered so that data flows one way:
``data`` (NIfTI, phantom, VU datasets) -> ``models`` (generators) -> ``evaluation``
(utility, fidelity, privacy, reports) -> CLI and dashboard.
"""

__version__ = "0.1.0"
