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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthvu_core import levels
from synthvu_core.errors import CheckpointError
from synthvu_core.names import REPORT_DIR, REPORT_FILE

CARD_FILE = "card.json"
GENERATOR_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "models"
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
#: Architecture names a card may give: ``acgan.ARCHITECTURES``, repeated here so that listing and
#: reading cards never imports torch (the dashboard's first paint lists generators).
ARCHITECTURE_NAMES: tuple[str, ...] = ("default", "pgan")

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


def list_generators(extra_dirs: list[str | Path] | None = None) -> list[GeneratorInfo]:
    """Every generator folder with a valid card (folders with a broken card are left out)."""
    out: list[GeneratorInfo] = []
    seen: set[Path] = set()
    for root, source in model_roots(extra_dirs):
        for folder in _candidate_folders(root):
            real = folder.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                card = load_card(folder)
            except CheckpointError:
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
    return out


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


def load_card(path: str | Path) -> dict[str, Any]:
    """Read and schema-check ``card.json`` of a generator folder."""
    folder = Path(path)
    card_path = folder / CARD_FILE
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no generator folder here")
    if not card_path.is_file():
        raise CheckpointError(f"{card_path}: card is missing (a generator folder needs card.json)")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{card_path}: not a valid JSON card: {e}") from None
    check_card(card, card_path)
    return card


def check_card(card: Any, where: str | Path = CARD_FILE) -> None:
    """Raise :class:`CheckpointError` unless ``card`` follows the card schema."""
    if not isinstance(card, dict):
        raise CheckpointError(f"{where}: card is not a JSON object")
    for key, kind in CARD_KEYS.items():
        if key not in card:
            raise CheckpointError(f"{where}: card lacks key {key!r}")
        if not isinstance(card[key], kind) or (kind is int and isinstance(card[key], bool)):
            raise CheckpointError(f"{where}: card key {key!r} has the wrong type ({type(card[key]).__name__})")
    problems = []
    if card["architecture"].get("name") not in ARCHITECTURE_NAMES:
        problems.append(f"architecture.name must be one of {', '.join(ARCHITECTURE_NAMES)}")
    if card["scheme"] not in levels.SCHEMES:
        problems.append(f"scheme must be one of {', '.join(levels.SCHEMES)}")
    classes, prior = card["classes"], card["class_prior"]
    if not classes or not all(isinstance(c, str) for c in classes):
        problems.append("classes must be a non-empty list of names")
    if len(prior) != len(classes) or not all(isinstance(v, int | float) and v >= 0 for v in prior) or sum(prior) <= 0:
        problems.append("class_prior must give one non-negative weight per class")
    shape = card["shape"]
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        problems.append("shape must be [C, H, W] positive integers")
    if not isinstance(card["dataset"].get("fingerprint"), str):
        problems.append("dataset.fingerprint is missing")
    if problems:
        raise CheckpointError(f"{where}: invalid card: {'; '.join(problems)}")


def architecture_config(card: dict[str, Any]):
    """The :class:`~synthvu_core.models.acgan.ACGANConfig` a card describes."""
    from synthvu_core.models.acgan import ACGANConfig

    arch = dict(card["architecture"])
    arch.update(shape=tuple(card["shape"]), n_classes=len(card["classes"]), latent_dim=card["latent_dim"])
    try:
        return ACGANConfig.from_dict(arch)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{CARD_FILE}: architecture cannot be built: {e}") from None


def _refuse_pickles(folder: Path, wanted: str) -> None:
    stem = wanted.split(".")[0]
    pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and p.name.startswith(stem)]
    if pickles:
        raise CheckpointError(
            f"{folder / pickles[0]}: pickled weights are never loaded (code could run); {wanted} is required"
        )


def read_weights(path: Path) -> dict[str, Any]:
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
    return {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in tensors.items()}


def _load_module(module, path: Path):
    expected = module.state_dict()
    tensors = read_weights(path)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        what = (f"missing {', '.join(missing[:5])}" if missing else "") + (f" unexpected {', '.join(extra[:5])}" if extra else "")
        raise CheckpointError(f"{path}: tensors do not match the card's architecture ({what.strip()})")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{path}: tensor {k!r} has shape {list(tensors[k].shape)}, the card's architecture needs {list(v.shape)}")
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


def load_generator(path: str | Path, device: str = "cpu", expected_fingerprint: str | None = None):
    """The folder's generator in eval mode, float32, with its card as ``.card``."""
    from synthvu_core.models.acgan import Generator

    folder = Path(path)
    card = load_card(folder)
    _check_fingerprint(folder, card, expected_fingerprint)
    weights = folder / GENERATOR_FILE
    if not weights.is_file():
        _refuse_pickles(folder, GENERATOR_FILE)
        raise CheckpointError(f"{weights}: generator weights are missing")
    gen = _load_module(Generator(architecture_config(card)), weights)
    gen.card = card
    gen.source_dir = folder
    return gen.to(device).eval()


def load_discriminator(path: str | Path, device: str = "cpu"):
    """The folder's discriminator (eval mode), or None where it was not kept."""
    from synthvu_core.models.acgan import Discriminator

    folder = Path(path)
    card = load_card(folder)
    weights = folder / DISCRIMINATOR_FILE
    if not weights.is_file():
        _refuse_pickles(folder, DISCRIMINATOR_FILE)
        return None
    disc = _load_module(Discriminator(architecture_config(card)), weights)
    disc.card = card
    return disc.to(device).eval()


def save_weights(state: dict[str, Any], path: Path, dtype: str = "float16") -> None:
    """Write a state dict as safetensors (floating tensors cast to ``dtype``), atomically."""
    import torch
    from safetensors.torch import save_file

    from synthvu_core.storage import atomic_path

    cast = {"float16": torch.float16, "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    tensors = {k: (v.detach().to("cpu", cast) if v.is_floating_point() else v.detach().cpu()).contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
