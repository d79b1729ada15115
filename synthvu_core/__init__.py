"""synthvu: privacy-preserving synthetic spine MRI vertebral units (VUs).

The package is layered so that data flows one way:
``data`` (NIfTI, phantom, VU datasets) -> ``models`` (generators) -> ``evaluation``
(utility, fidelity, privacy, reports) -> CLI and dashboard (docs/architecture.md).

The front door (:mod:`synthvu_core.api`, loaded on first use so that ``import synthvu_core`` stays light)::

    import synthvu_core as sv
    dataset = sv.build_dataset(phantom=8, out="phantom-8")
    model = sv.train(dataset, "my-generator", steps=20)
    vus = sv.sample(sv.load_generator(model), 16, position="L")
    report = sv.evaluate(model, dataset)
"""

__version__ = "0.1.0"

#: Names of the front door, each loaded from :mod:`synthvu_core.api` when first used.
API = ("Report", "build_dataset", "evaluate", "load_generator", "load_report", "sample", "train")
__all__ = [*API, "__version__"]


def __getattr__(name: str) -> object:
    if name in API:
        from synthvu_core import api

        return getattr(api, name)
    raise AttributeError(f"module 'synthvu_core' has no attribute {name!r}")
