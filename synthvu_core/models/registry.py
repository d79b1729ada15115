"""Find, validate and load generators. A generator is a folder::

    generator.safetensors       generator weights (float16 or float32; loaded as float32)
    discriminator.safetensors   optional; private (a released discriminator is a membership oracle)
    card.json                   architecture, classes, dataset fingerprint, training, DP (keys: CARD_KEYS)
    report/                     optional evaluation report
    training/                   montages (and the resumable checkpoint while training)

Loading never unpickles and never executes anything from a folder: weights are read with safetensors,
the card is JSON checked against a schema, and the modules are built from code in this package.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from synthvu_core import levels
from synthvu_core.errors import CheckpointError, DatasetFolderError
from synthvu_core.locations import shipped_models_dir
from synthvu_core.models.architectures import ARCHITECTURE_NAMES, architecture  # standard library only
from synthvu_core.names import CARD_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE, REPORT_DIR, REPORT_FILE

if TYPE_CHECKING:
    import torch

    from synthvu_core.models.acgan import ACGANConfig, Discriminator, Generator, SnapshotEnsemble
    from synthvu_core.models.diffusion import DiffusionGenerator

Module = TypeVar("Module", bound="torch.nn.Module")

SHIPPED_DIR = shipped_models_dir()  # checkout models/ or the installed package's copy
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")

#: Required card keys and their JSON types (``dp`` may be null).
CARD_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "architecture": dict,
    "scheme": str,
    "classes": list,
    "class_prior": list,
    "shape": list,
    "latent_dim": int,
    "dataset": dict,
    "training": dict,
    "dp": (dict, type(None)),
    "discriminator": dict,
    "code_version": str,
    "created": str,
}


#: A card is a few kilobytes; a larger file is refused before it is parsed.
MAX_CARD_BYTES = 1 << 20
#: Types of the nested card fields that listings and pages format (each optional; ``dp`` where not null).
NESTED_TYPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "architecture": {"name": str},
    "dataset": {"n_train": int, "part": str},
    "training": {"steps": int, "epochs": (int, float), "batch_size": int, "seconds": (int, float),
                 "lr": (int, float), "seed": int},
    "dp": {"epsilon": (int, float, type(None)), "delta": (int, float, type(None)), "unit": str,
           "n_patients": int},
}
#: Bounds of the card's numbers, checked before any network is built (a card is data from a folder:
#: ``latent_dim: 1000000000`` must be one clear error, not an allocation that runs the machine out of memory).
CARD_BOUNDS: dict[str, tuple[int, int]] = {
    "latent_dim": (1, 1 << 16),  # a 3-D latent of a 32 x 128 x 128 sub-volume holds 4 x 8 x 32 x 32 = 32,768
    "channels": (1, 64),  # shape[0]: slices per VU, or a sub-volume's depth
    "pixels": (8, 512),  # shape[1], shape[2]
    "classes": (1, 64),
    "width": (1, 1024),  # architecture.width / d_width, and each diffusion level's channels
    "levels": (1, 6),  # diffusion: entries of ae_channels / unet_channels
    "latent_channels": (1, 64),  # diffusion
    "groups": (1, 64),  # diffusion: ae_norm_groups / unet_norm_groups
    "res_blocks": (1, 8),  # diffusion: unet_res_blocks
}
#: Allowed values of the architecture's choice fields (checked where the card gives them).
ARCH_CHOICES: dict[str, tuple[str, ...]] = {
    "g_norm": ("none", "batch", "pixel"),
    "d_norm": ("none", "batch", "group"),
    "g_cond": ("input", "modulate"),
}


@dataclass
class GeneratorInfo:
    """One generator folder found by :func:`list_generators`."""

    name: str
    path: Path
    card: dict[str, Any] = field(repr=False)
    has_discriminator: bool
    has_report: bool
    source: str  # "shipped" | "user"

    def summary(self) -> dict[str, Any]:
        """Flat JSON-ready description (for ``models list --json``)."""
        dp = self.card.get("dp")
        return {
            "name": self.name,
            "path": str(self.path),
            "source": self.source,
            "architecture": self.card["architecture"].get("name"),
            "scheme": self.card["scheme"],
            "classes": self.card["classes"],
            "shape": self.card["shape"],
            "epsilon": None if not dp else dp.get("epsilon"),
            "dataset": self.card["dataset"].get("fingerprint"),
            "steps": self.card["training"].get("steps"),
            "has_discriminator": self.has_discriminator,
            "has_report": self.has_report,
        }


def model_roots(extra_dirs: list[str | Path] | None = None) -> list[tuple[Path, str]]:
    """Folders holding generator folders: shipped ``models/``, ``$SYNTHVU_MODELS``, ``extra_dirs``."""
    roots: list[tuple[Path, str]] = [(SHIPPED_DIR, "shipped")]
    env = os.environ.get("SYNTHVU_MODELS", "")
    roots += [(Path(p).expanduser(), "user") for p in env.split(os.pathsep) if p.strip()]
    roots += [(Path(p).expanduser(), "user") for p in (extra_dirs or [])]
    return roots


def _candidate_folders(root: Path) -> list[Path]:
    """A root may itself be a generator folder or hold generator folders."""
    if not root.is_dir():
        return []
    if (root / CARD_FILE).is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / CARD_FILE).is_file())


@dataclass(frozen=True)
class BrokenGenerator:
    """A folder with a ``card.json`` that cannot be used, and why (shown as "broken: why", nothing else breaks)."""

    path: Path
    why: str
    source: str


def list_generators(extra_dirs: list[str | Path] | None = None) -> list[GeneratorInfo]:
    """Every generator folder with a valid card (folders with a broken card are left out: :func:`scan_generators`
    names them)."""
    return scan_generators(extra_dirs)[0]


def scan_generators(
    extra_dirs: list[str | Path] | None = None,
) -> tuple[list[GeneratorInfo], list[BrokenGenerator]]:
    """The usable generator folders, and the folders whose card is broken with the reason."""
    out: list[GeneratorInfo] = []
    broken: list[BrokenGenerator] = []
    seen: set[Path] = set()
    for root, source in model_roots(extra_dirs):
        try:
            folders = _candidate_folders(root)
        except OSError as e:
            broken.append(BrokenGenerator(root, f"cannot be listed ({e.strerror or type(e).__name__})", source))
            continue
        for folder in folders:
            real = folder.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                card = load_card(folder)
            except DatasetFolderError as e:
                if folder != root:
                    continue  # a VU dataset kept beside the generators: not one of them, and not broken
                broken.append(BrokenGenerator(folder, _why(str(e), folder), source))
                continue
            except CheckpointError as e:
                broken.append(BrokenGenerator(folder, _why(str(e), folder), source))
                continue
            out.append(
                GeneratorInfo(
                    name=card["name"],
                    path=folder,
                    card=card,
                    has_discriminator=(folder / DISCRIMINATOR_FILE).is_file(),
                    has_report=(folder / REPORT_DIR / REPORT_FILE).is_file(),
                    source=source,
                )
            )
    return out, broken


def _why(message: str, folder: Path) -> str:
    """An error message without the folder's own path in front (the listing names the folder)."""
    for prefix in (f"{folder / CARD_FILE}: ", f"{folder}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def resolve(model: str | Path, extra_dirs: list[str | Path] | None = None) -> Path:
    """A generator folder from a path or a registered name (folder name or card name)."""
    p = Path(model).expanduser()
    if p.is_dir():
        return p
    found = list_generators(extra_dirs)
    for info in found:
        if info.name == str(model) or info.path.name == str(model):
            return info.path
    names = ", ".join(sorted({i.name for i in found})) or "none"
    raise CheckpointError(f"{model}: no generator folder or registered generator of this name (known: {names})")


def _is_dataset(folder: Path) -> bool:
    from synthvu_core.data.dataset import is_dataset_folder

    return is_dataset_folder(folder)


def load_card(path: str | Path) -> dict[str, Any]:
    """Read and schema-check ``card.json`` of a generator folder (a VU dataset folder is named as one)."""
    folder = Path(path)
    card_path = folder / CARD_FILE
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no generator folder here")
    if not card_path.is_file():
        raise CheckpointError(f"{card_path}: card is missing (a generator folder needs card.json)")
    try:
        if card_path.stat().st_size > MAX_CARD_BYTES:
            raise ValueError(f"{card_path.stat().st_size} bytes, more than a card's {MAX_CARD_BYTES}")
        card = json.loads(card_path.read_text())
    except RecursionError:
        raise CheckpointError(f"{card_path}: not a valid JSON card: nested too deeply") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{card_path}: not a valid JSON card: {e}") from None
    if isinstance(card, dict) and "name" not in card and _is_dataset(folder):
        raise DatasetFolderError(f"{folder}: a VU dataset (written by `data build`), not a generator folder")
    check_card(card, card_path)
    return card


def check_card(card: object, where: str | Path = CARD_FILE) -> None:
    """Raise :class:`CheckpointError` unless ``card`` follows the card schema."""
    if not isinstance(card, dict):
        raise CheckpointError(f"{where}: card is not a JSON object")
    for key, kind in CARD_KEYS.items():
        if key not in card:
            raise CheckpointError(f"{where}: card lacks key {key!r}")
        if not isinstance(card[key], kind) or (kind is int and isinstance(card[key], bool)):
            raise CheckpointError(f"{where}: card key {key!r} has the wrong type ({type(card[key]).__name__})")
    problems = _nested_problems(card)
    if card["architecture"].get("name") not in ARCHITECTURE_NAMES:
        problems.append(f"architecture.name must be one of {', '.join(ARCHITECTURE_NAMES)}")
    if card["scheme"] not in levels.SCHEMES:
        problems.append(f"scheme must be one of {', '.join(levels.SCHEMES)}")
    classes, prior = card["classes"], card["class_prior"]
    if not classes or not all(isinstance(c, str) for c in classes):
        problems.append("classes must be a non-empty list of names")
    finite = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in prior)
    if len(prior) != len(classes) or not finite or not all(v >= 0 for v in prior) or sum(prior) <= 0:
        problems.append("class_prior must give one finite non-negative weight per class")
    shape = card["shape"]
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        problems.append("shape must be [C, H, W] positive integers")
    if not isinstance(card["dataset"].get("fingerprint"), str):
        problems.append("dataset.fingerprint is missing")
    recipe = card["dataset"].get("recipe")
    if recipe is not None and not (isinstance(recipe, dict) and _plain_name(recipe.get("name"))):
        problems.append("dataset.recipe.name is not a plain name (letters, digits, '.', '_', '-'; no path)")
    problems += _bound_problems(card)
    if problems:
        raise CheckpointError(f"{where}: invalid card: {'; '.join(problems)}")


def _nested_problems(card: dict[str, Any]) -> list[str]:
    """Nested fields of :data:`NESTED_TYPES` with another type (a mistyped card is one clear error)."""
    out = []
    for section, fields in NESTED_TYPES.items():
        part = card.get(section) or {}
        for key, kind in fields.items():
            v = part.get(key)
            if v is None and key in part and type(None) not in (kind if isinstance(kind, tuple) else (kind,)):
                continue  # null: not given
            if key in part and (not isinstance(v, kind) or isinstance(v, bool)):
                out.append(f"{section}.{key} has the wrong type ({type(v).__name__})")
            elif isinstance(v, float) and not math.isfinite(v):
                out.append(f"{section}.{key} is not a finite number")
    return out


def _plain_name(value: Any) -> bool:
    from synthvu_core.storage import SAFE_NAME

    return isinstance(value, str) and SAFE_NAME.fullmatch(value) is not None and ".." not in value


def _within(value: Any, bounds: tuple[int, int]) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and bounds[0] <= value <= bounds[1]


def _bound_problems(card: dict[str, Any]) -> list[str]:
    """The card's numbers outside :data:`CARD_BOUNDS` and unknown architecture choices, as texts."""
    b, out = CARD_BOUNDS, []
    if not _within(card["latent_dim"], b["latent_dim"]):
        out.append(f"latent_dim {card['latent_dim']} lies outside {b['latent_dim'][0]}..{b['latent_dim'][1]}")
    shape = card["shape"]
    if len(shape) == 3 and all(isinstance(s, int) for s in shape):
        if not _within(shape[0], b["channels"]):
            out.append(f"shape[0] (slices) {shape[0]} lies outside {b['channels'][0]}..{b['channels'][1]}")
        if not all(_within(s, b["pixels"]) for s in shape[1:]):
            out.append(f"shape[1:] (pixels) {shape[1:]} lies outside {b['pixels'][0]}..{b['pixels'][1]}")
    if len(card["classes"]) > b["classes"][1]:
        out.append(f"{len(card['classes'])} classes exceed {b['classes'][1]}")
    arch = card["architecture"]
    for key in ("width", "d_width"):
        if key in arch and not _within(arch[key], b["width"]):
            out.append(f"architecture.{key} {arch[key]!r} lies outside {b['width'][0]}..{b['width'][1]}")
    for key, allowed in ARCH_CHOICES.items():
        if key in arch and arch[key] not in allowed:
            out.append(f"architecture.{key} must be one of {', '.join(allowed)}")
    out += _diffusion_problems(arch)
    for key, lo, hi in (("lr", 0.0, 1.0), ("ema", 0.0, 1.0), ("aux_weight", 0.0, 1e3)):
        v = arch.get(key, lo if key != "lr" else 1e-4)
        number = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        if not number or not lo <= v <= hi or (key == "lr" and v <= 0):
            out.append(f"architecture.{key} {v!r} lies outside {lo}..{hi}")
    return out


def _diffusion_problems(arch: dict[str, Any]) -> list[str]:
    """A diffusion architecture's sizes outside :data:`CARD_BOUNDS` (every size a network is built from)."""
    b, out = CARD_BOUNDS, []
    for key in ("ae_channels", "unet_channels"):
        if key not in arch:
            continue
        v = arch[key]
        if not isinstance(v, list) or not _within(len(v), b["levels"]) or not all(_within(c, b["width"]) for c in v):
            out.append(f"architecture.{key} must list {b['levels'][0]}..{b['levels'][1]} channel counts of "
                       f"{b['width'][0]}..{b['width'][1]}")
    for key, bound in (("latent_channels", "latent_channels"), ("ae_norm_groups", "groups"),
                       ("unet_norm_groups", "groups"), ("unet_res_blocks", "res_blocks")):
        if key in arch and not _within(arch[key], b[bound]):
            out.append(f"architecture.{key} {arch[key]!r} lies outside {b[bound][0]}..{b[bound][1]}")
    if arch.get("spatial_dims", 2) not in (2, 3):
        out.append(f"architecture.spatial_dims {arch['spatial_dims']!r} must be 2 or 3")
    for key in ("latent_scale", "guidance", "cond_drop", "ae_lr", "kl_weight"):
        v = arch.get(key, 1.0)
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            out.append(f"architecture.{key} {v!r} must be a finite number >= 0")
    return out


def architecture_config(card: dict[str, Any]) -> ACGANConfig:
    """The :class:`~synthvu_core.models.acgan.ACGANConfig` a card describes."""
    from synthvu_core.models.acgan import ACGANConfig

    arch = dict(card["architecture"])
    arch.update(shape=tuple(card["shape"]), n_classes=len(card["classes"]), latent_dim=card["latent_dim"])
    try:
        return ACGANConfig.from_dict(arch)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{CARD_FILE}: architecture cannot be built: {e}") from None


# ---- reports belong to weights ----------------------------------------------------------------
def weights_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a generator folder's ``generator.safetensors`` (or of a weight file itself)."""
    import hashlib

    p = Path(path)
    p = p / GENERATOR_FILE if p.is_dir() else p
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise CheckpointError(f"{p}: cannot read the generator weights ({e.strerror or type(e).__name__})") from None
    return h.hexdigest()


def report_staleness(model_dir: str | Path, meta: dict[str, Any]) -> str | None:
    """Why a report's numbers are not those of the folder's current weights, or None where they are.

    A report records ``generator_sha256``, the hash of the weights it evaluated; one without it, or
    with another hash, is stale and must never be shown as the model's numbers. So is one written by
    an older evaluation (``report_version`` below the current one: other intervals and power).
    """
    from synthvu_core.records import REPORT_VERSION

    folder = Path(model_dir)
    version = meta.get("report_version")
    if isinstance(version, int) and version < REPORT_VERSION:
        return (f"{folder / REPORT_DIR}: stale report: written by evaluation version {version}, the current one is "
                f"{REPORT_VERSION} (other intervals, power and verdicts); "
                f"re-run `python -m synthvu_core evaluate {folder} --controls`")
    recorded = meta.get("generator_sha256")
    if not isinstance(recorded, str):
        return (f"{folder / REPORT_DIR}: stale report: it does not record which generator weights it evaluated; "
                f"re-run `python -m synthvu_core evaluate {folder}`")
    if not (folder / GENERATOR_FILE).is_file():
        return f"{folder / GENERATOR_FILE}: generator weights are missing, so the report cannot be tied to them"
    current = weights_sha256(folder)
    if current != recorded:
        return (f"{folder / REPORT_DIR}: stale report: computed for other weights (sha256 {recorded[:12]}, "
                f"the folder's generator.safetensors is {current[:12]}); "
                f"re-run `python -m synthvu_core evaluate {folder}`")
    return None


def is_generator_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a generator or a run training one: a card with an architecture, or, before its
    card is written, the run's ``training/`` folder (a checkpoint or a log to resume or start over)."""
    card = folder / CARD_FILE
    if card.is_file():
        try:
            doc = json.loads(card.read_text())
        except (OSError, ValueError):
            return False
        return isinstance(doc, dict) and isinstance(doc.get("architecture"), dict)
    return (folder / "training").is_dir()


def check_generator_out(out: str | Path, *, force: bool = False) -> Path:
    """Refuse (:class:`~synthvu_core.errors.OutputError`, one line naming the folder) a training output that exists
    and is neither empty nor a generator folder (:func:`is_generator_folder`: a dataset, someone's work), unless
    ``force``; called before any work, so nothing is changed."""
    from synthvu_core.storage import check_replaceable

    return check_replaceable(out, is_generator_folder, "generator", force=force)


def set_aside_outputs(folder: str | Path) -> Path | None:
    """Before a fresh training run into ``folder``: move its old report and montages into
    ``folder/superseded-<UTC time>/`` (never deleted, never shown as the new weights' numbers).

    Returns the new folder, or None where there was nothing to move.
    """
    from datetime import UTC, datetime

    folder = Path(folder)
    report = folder / REPORT_DIR
    montages = sorted((folder / "training").glob("montage_step*.png")) if (folder / "training").is_dir() else []
    if not report.exists() and not montages:
        return None
    aside = folder / f"superseded-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
    aside.mkdir(parents=True)
    if report.exists():
        os.replace(report, aside / REPORT_DIR)
    if montages:
        (aside / "training").mkdir()
        for m in montages:
            os.replace(m, aside / "training" / m.name)
    return aside


def _generator_module(card: dict[str, Any]):
    """The (untrained) generator module a card describes: an AC-GAN generator, or the latent diffusion
    generator of :mod:`synthvu_core.models.diffusion` where ``architecture.name`` is ``diffusion``."""
    if architecture(str(card["architecture"].get("name"))).family != "diffusion":
        from synthvu_core.models.acgan import build_generator

        return build_generator(architecture_config(card))
    from synthvu_core.models.diffusion import DiffusionConfig, DiffusionGenerator

    arch = dict(card["architecture"])
    arch.update(shape=tuple(card["shape"]), n_classes=len(card["classes"]))
    try:
        config = DiffusionConfig.from_dict(arch)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{CARD_FILE}: architecture cannot be built: {e}") from None
    if config.latent_dim != card["latent_dim"]:
        raise CheckpointError(f"{CARD_FILE}: latent_dim {card['latent_dim']} differs from the architecture's "
                              f"{config.latent_dim}")
    return DiffusionGenerator(config)


def _refuse_pickles(folder: Path, wanted: str) -> None:
    stem = wanted.split(".")[0]
    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.name.startswith(stem)]
    if pickles:
        raise CheckpointError(
            f"{folder / pickles[0]}: pickled weights are never loaded (code could run); {wanted} is required"
        )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file as float32 (never unpickles)."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    with open(path, "rb") as f:
        head = f.read(8)
    if head[:1] == b"\x80" or head[:2] == b"PK":
        raise CheckpointError(f"{path}: not a safetensors file (looks like a pickle or a torch zip archive); refused")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file: {e}") from None
    for k, v in tensors.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{path}: tensor {k!r} holds non-finite values (NaN or infinity); refused "
                                  "(it would give black or noise VUs)")
    return {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in tensors.items()}


def _load_module(module: Module, path: Path) -> Module:
    expected = module.state_dict()
    tensors = read_weights(path)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        what = (f"missing {', '.join(missing[:5])}" if missing else "") + (
            f" unexpected {', '.join(extra[:5])}" if extra else ""
        )
        raise CheckpointError(f"{path}: tensors do not match the card's architecture ({what.strip()})")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{path}: tensor {k!r} has shape {list(tensors[k].shape)}, the card's architecture needs "
                f"{list(v.shape)}"
            )
        if v.dtype != tensors[k].dtype:
            tensors[k] = tensors[k].to(v.dtype)
    module.load_state_dict(tensors, strict=True)
    return module


def _check_fingerprint(folder: Path, card: dict[str, Any], expected: str | None) -> None:
    if expected is not None and card["dataset"]["fingerprint"] != expected:
        raise CheckpointError(
            f"{folder / CARD_FILE}: generator was trained on dataset {card['dataset']['fingerprint']}, "
            f"not on the expected dataset {expected}"
        )


def validate(path: str | Path, expected_fingerprint: str | None = None) -> dict[str, Any]:
    """Check a generator folder fully (card, weight files, shapes); return its card."""
    folder = Path(path)
    card = load_card(folder)
    _check_fingerprint(folder, card, expected_fingerprint)
    load_generator(folder)
    if (folder / DISCRIMINATOR_FILE).exists():
        load_discriminator(folder)
    return card


def load_generator(
    path: str | Path, device: str = "cpu", expected_fingerprint: str | None = None
) -> Generator | SnapshotEnsemble | DiffusionGenerator:
    """The folder's generator (AC-GAN, snapshot ensemble or latent diffusion) in eval mode, float32, with its card
    as ``.card``."""
    folder = Path(path)
    card = load_card(folder)
    _check_fingerprint(folder, card, expected_fingerprint)
    weights = folder / GENERATOR_FILE
    if not weights.is_file():
        _refuse_pickles(folder, GENERATOR_FILE)
        raise CheckpointError(f"{weights}: generator weights are missing")
    gen = _load_module(_generator_module(card), weights)
    gen.card = card
    gen.source_dir = folder
    return gen.to(device).eval()


def load_discriminator(path: str | Path, device: str = "cpu") -> Discriminator | None:
    """The folder's discriminator (eval mode), or None where it was not kept."""
    from synthvu_core.models.acgan import Discriminator

    folder = Path(path)
    card = load_card(folder)
    weights = folder / DISCRIMINATOR_FILE
    if not weights.is_file():
        _refuse_pickles(folder, DISCRIMINATOR_FILE)
        return None
    disc = _load_module(Discriminator(architecture_config(card)), weights)
    disc.input_smooth = disc.config.smooth  # released: scores each VU as the real VUs reached it in training
    disc.card = card
    return disc.to(device).eval()


def save_weights(state: Mapping[str, torch.Tensor], path: Path, dtype: str = "float16") -> None:
    """Write a state dict as safetensors (floating tensors cast to ``dtype``), atomically."""
    import torch
    from safetensors.torch import save_file

    from synthvu_core.storage import atomic_path

    cast = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    tensors = {
        k: (v.detach().to("cpu", cast) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in state.items()
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
