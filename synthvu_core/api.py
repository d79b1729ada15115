"""The Python front door: ``import synthvu_core as sv`` and build, train, load, sample, evaluate.

Each function is the library call behind a CLI command, with the same names for options (``train``'s keyword
options are its flags: ``target_epsilon=8`` is ``--target-epsilon 8``). Torch and the rest load on first use.
An argument of the wrong kind (``sample(g, 2.5)``, ``build_dataset(phantom="x")``, ``load_generator(m, "gpu")``) is
refused up front with one line naming it (:class:`~synthvu_core.errors.SelectionError` or
:class:`~synthvu_core.errors.DataError`), as the command line refuses it.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from synthvu_core.records import Report

if TYPE_CHECKING:
    from synthvu_core.data.dataset import SplitConfig, VUDataset
    from synthvu_core.evaluation.stages import EvaluationConfig
    from synthvu_core.models.acgan import Generator, SnapshotEnsemble
    from synthvu_core.models.diffusion import DiffusionGenerator
    from synthvu_core.models.sampling import Samples

__all__ = ["Report", "build_dataset", "evaluate", "load_generator", "load_report", "sample", "train"]

#: ``build_dataset(phantom=N)`` options that shape the cohort's recipe, and those that go to the build itself (the
#: split's ``split_seed`` and ``stratify`` are read into ``split``).
_PHANTOM_RECIPE = ("contrast", "config", "split")
_PHANTOM_BUILD = ("workers", "force", "clinical")


def _refuse(message: str) -> NoReturn:
    """One line naming what is wrong (:class:`SelectionError`)."""
    from synthvu_core.errors import SelectionError

    raise SelectionError(message)


def _check_int(where: str, name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int (an integer, never a bool or a float); one line naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum):
        least = "" if minimum is None else f" of at least {minimum}"
        _refuse(f"{where}: {name} must be an integer{least} (got {value!r})")
    return int(value)


def _check_model(where: str, model: Any, name: str = "model") -> None:
    if not isinstance(model, str | Path):
        _refuse(f"{where}: {name} must be a generator folder or a registered name such as 'acgan-phantom' (got "
                f"{type(model).__name__})")


def _split(options: dict[str, Any]) -> SplitConfig | None:
    """The ``split`` of ``build_dataset``'s options (popped with ``split_seed`` and ``stratify``): a
    :class:`SplitConfig`, or ``TRAIN,HOLDOUT,REFERENCE`` as ``data build --split`` reads it; None where none of the
    three is given (the build's default split)."""
    from synthvu_core.data.dataset import SplitConfig

    split = options.pop("split", None)
    given = {k: options.pop(k) for k in ("split_seed", "stratify") if k in options}
    seed = _check_int("build_dataset", "split_seed", given.get("split_seed", 0))
    stratify = given.get("stratify", True)
    if not isinstance(stratify, bool):
        _refuse(f"build_dataset: stratify must be True or False (got {stratify!r})")
    if isinstance(split, SplitConfig):
        if given:
            _refuse(f"build_dataset: {', '.join(given)} go with a split given as text; a SplitConfig holds its own")
        return split
    if split is None:
        return SplitConfig(seed=seed, stratify=stratify) if given else None
    if not isinstance(split, str):
        _refuse(f"build_dataset: split must be TRAIN,HOLDOUT,REFERENCE such as '0.6,0.2,0.2' or a SplitConfig "
                f"(got {split!r})")
    return SplitConfig.parse(split, seed, stratify=stratify)


def _check_options(where: str, options: dict[str, Any], known: Sequence[str]) -> None:
    """Refuse an option of ``build_dataset`` that its build does not read (``split_seed`` and ``stratify`` are read
    into ``split`` before)."""
    for key in options:
        if key not in known:
            _refuse(f"{where}: {key!r} is not an option here (known: "
                    f"{', '.join(sorted({*known, 'split_seed', 'stratify'}))})")


def _image_folders(images: Any) -> str | Path | list[str | Path]:
    """``images`` checked: a folder, or a non-empty list of folders."""
    if isinstance(images, str | Path):
        return images
    if isinstance(images, Sequence) and images and all(isinstance(i, str | Path) for i in images):
        return list(images)
    _refuse(f"build_dataset: images must be a folder of NIfTI pairs or a list of folders (got {images!r})")


def build_dataset(
    images: str | Path | Sequence[str | Path] | None = None,
    out: str | Path | None = None,
    *,
    phantom: int | None = None,
    seed: int | None = None,
    progress: bool = False,
    **options: Any,
) -> VUDataset:
    """A VU dataset from folder(s) of NIfTI pairs (``images``), or from a spine phantom of ``phantom`` patients
    drawn with ``seed`` (default 0; phantom only); saved to ``out`` where given.

    ``options`` go to :func:`synthvu_core.data.build.build_dataset` (``config``, ``mapping``, ``workers``,
    ``force``, ``clinical``, ``harmonisation``, ...) or, for the phantom, ``contrast`` and ``config`` to
    :meth:`~synthvu_core.data.build.PhantomRecipe.for_cohort` and ``workers``, ``force`` and ``clinical`` to
    :func:`~synthvu_core.data.build.build_phantom_dataset`, as ``data build`` routes them. ``split`` is a
    :class:`~synthvu_core.data.dataset.SplitConfig` or ``data build --split``'s text (``"0.6,0.2,0.2"``), with
    ``split_seed`` (``--split-seed``, default 0) and ``stratify`` (False: ``--no-stratify``). An option the
    build does not read, or an argument of the wrong kind, is refused in one line naming it."""
    if (images is None) == (phantom is None):
        _refuse("build_dataset: give images (NIfTI folders) or phantom (a patient count), not both")
    options = dict(options)
    split = _split(options)
    if split is not None:
        options["split"] = split
    if phantom is not None:
        from synthvu_core.data.build import PhantomRecipe, build_phantom_dataset

        n = _check_int("build_dataset", "phantom (the number of phantom patients)", phantom, minimum=1)
        _check_options("build_dataset(phantom=...)", options, (*_PHANTOM_RECIPE, *_PHANTOM_BUILD))
        recipe = PhantomRecipe.for_cohort(n, seed=_check_int("build_dataset", "seed", 0 if seed is None else seed),
                                          **{k: v for k, v in options.items() if k in _PHANTOM_RECIPE})
        return build_phantom_dataset(recipe, out, progress=progress,
                                     **{k: v for k, v in options.items() if k in _PHANTOM_BUILD})
    import inspect

    from synthvu_core.data import build

    if seed is not None:
        _refuse("build_dataset: seed draws a phantom cohort; it does not apply to images")
    folders = _image_folders(images)
    own = ("images_dir", "out", "progress", "extra")  # given here, or the phantom's own
    known = [k for k in inspect.signature(build.build_dataset).parameters if k not in own]
    _check_options("build_dataset(images)", options, known)
    return build.build_dataset(folders, out, progress=progress, **options)


def train(
    dataset: VUDataset | str | Path, out: str | Path, *, arch: str = "default", progress: bool = False,
    force: bool = False, **options: Any
) -> Path:
    """Train a generator of architecture ``arch`` on ``dataset`` (a ``VUDataset`` or its folder); returns the
    generator folder ``out``. ``options`` are ``train``'s flags with underscores (``steps=200``,
    ``target_epsilon=8``, ``guidance=2``); one ``arch`` does not read is refused (:class:`SelectionError`).
    ``split="0.34,0.33,0.33"`` (with ``split_seed``) trains on another patient-wise split of the same VUs, as
    ``--split`` does: the card records it and ``evaluate`` reads its members. An ``out`` that exists and is neither
    empty nor a generator folder is refused (:class:`OutputError`) unless ``force``, and so is one another run is
    writing (the folder's lock, as ``train`` takes it)."""
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.architectures import architecture
    from synthvu_core.models.commands import train_split
    from synthvu_core.models.registry import check_generator_out
    from synthvu_core.models.train_config import build_config, trainer
    from synthvu_core.storage import folder_lock

    split, split_seed = options.get("split"), options.get("split_seed") or 0
    if split is not None and not isinstance(split, str):
        _refuse(f"train: split must be TRAIN,HOLDOUT,REFERENCE such as '0.6,0.2,0.2' (got {split!r})")
    _check_int("train", "split_seed", split_seed)
    check_generator_out(out, force=force)
    data = VUDataset.load(dataset) if isinstance(dataset, str | Path) else dataset
    resplit = train_split(data, split, split_seed)  # validated before any work, as `train --split`
    config, _, _ = build_config({"arch": arch, **options}, data)
    if resplit is not None:
        data = data.with_split(resplit)
    with folder_lock(out, "train"):  # one writer per output folder, as `train` holds it
        return trainer(architecture(arch).family).train(data, out, config, progress=progress)


def load_generator(model: str | Path, device: str = "cpu") -> Generator | SnapshotEnsemble | DiffusionGenerator:
    """The generator of a folder or registered name (``acgan-phantom``), in eval mode, with ``.card``, on
    ``device`` (``cpu``, ``cuda``, ``cuda:N`` or ``auto``: CUDA where available; one that is no device or that this
    machine lacks is refused in one line, :class:`SelectionError`)."""
    from synthvu_core.models import registry
    from synthvu_core.models.training import resolve_device

    _check_model("load_generator", model)
    if not isinstance(device, str):
        _refuse(f"load_generator: device must be a name such as 'cpu', 'cuda' or 'auto' (got {device!r})")
    return registry.load_generator(registry.resolve(model), device=resolve_device(device))


def sample(
    generator: Generator | SnapshotEnsemble | DiffusionGenerator | str | Path, n: int, *, position: str | None = None,
    seed: int = 0,
) -> Samples:
    """``n`` VUs (``.images`` float32 ``[n, C, H, W]`` in [-1, 1], ``.labels``, ``.classes``) for ``position`` (a
    region ``L`` or VU name ``L4/L5``; None: the training prior). ``generator``: one from :func:`load_generator`, a
    folder or a registered name. ``n`` is an integer of at least 1 and ``seed`` an integer (:class:`SelectionError`
    otherwise). Same seed, same VUs."""
    from synthvu_core.models.sampling import sample as draw

    if not isinstance(generator, str | Path) and not hasattr(generator, "card"):
        _refuse("sample: generator must be a generator from load_generator, a generator folder or a registered name "
                f"(got {type(generator).__name__})")
    count = _check_int("sample", "n", n, minimum=1)
    if position is not None and not isinstance(position, str):
        _refuse(f"sample: position must be a region such as 'L', a VU name such as 'L4/L5' or None (got {position!r})")
    return draw(generator, count, position=position, seed=_check_int("sample", "seed", seed))


def evaluate(
    model: str | Path, dataset: VUDataset | str | Path | None = None, *, n_synthetic: int | None = None,
    controls: bool = False, seed: int = 0, progress: bool = False, config: EvaluationConfig | None = None,
) -> Report | dict[str, Any]:
    """Evaluate a generator (a folder or a registered name) against its dataset (utility, fidelity, privacy) and
    write ``model/report/``, as ``evaluate`` does; ``dataset`` None: the dataset its card names. ``n_synthetic``:
    synthetic VUs (default 5000). ``config``: an :class:`~synthvu_core.evaluation.stages.EvaluationConfig` (default:
    the shipped reports' settings).

    A sub-volume generator (:func:`synthvu_core.evaluation.volume.is_volume_card`) is evaluated by
    :func:`~synthvu_core.evaluation.volume.evaluate_volume_generator` (``n_synthetic`` default: as many as its real
    train split; ``dataset`` a folder) and its report returned as the dict it writes to
    ``report/volume_report.json``; ``controls`` and ``config`` are for VU generators and refused there."""
    from synthvu_core.evaluation import volume
    from synthvu_core.evaluation.commands import VU_N_SYNTHETIC
    from synthvu_core.evaluation.report import evaluate_generator
    from synthvu_core.models.registry import load_card, resolve
    from synthvu_core.storage import check_writable

    _check_model("evaluate", model)
    if n_synthetic is not None:
        _check_int("evaluate", "n_synthetic", n_synthetic, minimum=1)
    _check_int("evaluate", "seed", seed)
    folder = resolve(model)
    check_writable(folder / "report", "report")  # before any work
    if volume.is_volume_card(load_card(folder)):
        if controls or config is not None:
            _refuse(f"evaluate: {folder.name} is a sub-volume generator; controls and config are for VU generators "
                    "(a sub-volume evaluation always runs its one attack, pairwise in pixel space, with its controls)")
        where = dataset
        if dataset is not None and not isinstance(dataset, str | Path):
            where = getattr(dataset, "root", None)
            if where is None:
                _refuse("evaluate: a sub-volume generator reads its dataset from a folder; give the dataset's folder "
                        "(or None for the one its card names), not an unsaved VUDataset")
        return volume.evaluate_volume_generator(folder, dataset=where, n_synthetic=n_synthetic, seed=seed)
    return evaluate_generator(
        folder, dataset, n_synthetic=VU_N_SYNTHETIC if n_synthetic is None else n_synthetic, controls=controls,
        seed=seed, progress=progress, config=config,
    )


def load_report(model: str | Path) -> Report | dict[str, Any] | None:
    """A generator's saved report (a folder or a registered name; checked against its weights), or None where it
    has none; never runs a model.

    A sub-volume generator's report is ``report/volume_report.json``, not a VU report: it is returned as that dict
    (read by :func:`synthvu_core.evaluation.volume.load_volume_report`, which checks it belongs to the generator and
    its dataset; ``isinstance(r, sv.Report)`` tells the two apart), as ``report show`` reads it."""
    from synthvu_core.evaluation import volume
    from synthvu_core.evaluation.report import load_report as load
    from synthvu_core.models.registry import load_card, resolve
    from synthvu_core.names import CARD_FILE, REPORT_DIR

    _check_model("load_report", model)
    folder = resolve(model)
    if (folder / REPORT_DIR / volume.VOLUME_REPORT).is_file() and (folder / CARD_FILE).is_file():
        card = load_card(folder)
        if volume.is_volume_card(card):
            return volume.load_volume_report(folder, card)
    return load(folder)
