"""The Python front door: ``import synthvu_core as sv`` and build, train, load, sample, evaluate.

Each function is the library call behind a CLI command, with the same names for options (``train``'s keyword
options are its flags: ``target_epsilon=8`` is ``--target-epsilon 8``). Torch and the rest load on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthvu_core.records import Report

if TYPE_CHECKING:
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.evaluation.stages import EvaluationConfig
    from synthvu_core.models.acgan import Generator, SnapshotEnsemble
    from synthvu_core.models.diffusion import DiffusionGenerator
    from synthvu_core.models.sampling import Samples

__all__ = ["Report", "build_dataset", "evaluate", "load_generator", "load_report", "sample", "train"]


def build_dataset(
    images: str | Path | Sequence[str | Path] | None = None,
    out: str | Path | None = None,
    *,
    phantom: int | None = None,
    seed: int = 0,
    progress: bool = False,
    **options: Any,
) -> VUDataset:
    """A VU dataset from folder(s) of NIfTI pairs (``images``), or from a spine phantom of ``phantom`` patients
    drawn with ``seed``; saved to ``out`` where given. ``options`` go to
    :func:`synthvu_core.data.build.build_dataset` (``split``, ``config``, ``mapping``, ...) or, for the phantom, to
    :meth:`~synthvu_core.data.build.PhantomRecipe.for_cohort` (``contrast``, ``config``, ``split``)."""
    from synthvu_core.errors import SelectionError

    if (images is None) == (phantom is None):
        raise SelectionError("build_dataset: give images (NIfTI folders) or phantom (a patient count), not both")
    if phantom is not None:
        from synthvu_core.data.build import PhantomRecipe, build_phantom_dataset

        recipe = PhantomRecipe.for_cohort(int(phantom), seed=seed, **options)
        return build_phantom_dataset(recipe, out, progress=progress)
    from synthvu_core.data import build

    return build.build_dataset(images, out, progress=progress, **options)


def train(
    dataset: VUDataset | str | Path, out: str | Path, *, arch: str = "default", progress: bool = False,
    force: bool = False, **options: Any
) -> Path:
    """Train a generator of architecture ``arch`` on ``dataset`` (a ``VUDataset`` or its folder); returns the
    generator folder ``out``. ``options`` are ``train``'s flags with underscores (``steps=200``,
    ``target_epsilon=8``, ``guidance=2``); one ``arch`` does not read is refused (:class:`SelectionError`). An
    ``out`` that exists and is neither empty nor a generator folder is refused (:class:`OutputError`) unless
    ``force``."""
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.architectures import architecture
    from synthvu_core.models.registry import check_generator_out
    from synthvu_core.models.train_config import build_config, trainer

    check_generator_out(out, force=force)
    data = VUDataset.load(dataset) if isinstance(dataset, str | Path) else dataset
    config, _, _ = build_config({"arch": arch, **options}, data)
    return trainer(architecture(arch).family).train(data, out, config, progress=progress)


def load_generator(model: str | Path, device: str = "cpu") -> Generator | SnapshotEnsemble | DiffusionGenerator:
    """The generator of a folder or registered name (``acgan-phantom``), in eval mode, with ``.card``."""
    from synthvu_core.models import registry

    return registry.load_generator(registry.resolve(model), device=device)


def sample(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator | str | Path, n: int, *, position: str | None = None,
    seed: int = 0,
) -> Samples:
    """``n`` VUs (``.images`` float32 ``[n, C, H, W]`` in [-1, 1], ``.labels``, ``.classes``) for ``position`` (a
    region ``L`` or VU name ``L4/L5``; None: the training prior). Same seed, same VUs."""
    from synthvu_core.models.sampling import sample as draw

    return draw(generator, n, position=position, seed=seed)


def evaluate(
    model: str | Path, dataset: VUDataset | str | Path | None = None, *, n_synthetic: int = 5000,
    controls: bool = False, seed: int = 0, progress: bool = False, config: EvaluationConfig | None = None,
) -> Report:
    """Evaluate a generator folder against its dataset (utility, fidelity, privacy) and write ``model/report/``;
    ``dataset`` None: the demo dataset its card names. ``config``: an
    :class:`~synthvu_core.evaluation.stages.EvaluationConfig` (default: the shipped reports' settings)."""
    from synthvu_core.evaluation.report import evaluate_generator

    return evaluate_generator(
        model, dataset, n_synthetic=n_synthetic, controls=controls, seed=seed, progress=progress, config=config
    )


def load_report(model: str | Path) -> Report | None:
    """A generator's saved report (checked against its weights), or None where it has none."""
    from synthvu_core.evaluation.report import load_report as load
    from synthvu_core.models.registry import resolve

    return load(resolve(model))
