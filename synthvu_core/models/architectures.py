"""The generator architectures ``train`` knows and the options each one reads; an option given to an architecture
that does not read it is refused with one line, never silently ignored.

Standard library only (it imports nothing of the package but errors), so the argument parser and the registry read
it without torch. The config is built from options in :mod:`synthvu_core.models.train_config`.

Adding an architecture: one :class:`Architecture` entry in :data:`ARCHITECTURES` (its family and the options it
reads), and, for a new family, one branch in :func:`synthvu_core.models.train_config.trainer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from synthvu_core.errors import SelectionError

#: Options every architecture reads (names as ``train`` arguments are stored: ``--batch-size`` -> ``batch_size``).
COMMON_OPTIONS: frozenset[str] = frozenset({
    "dataset", "out", "split", "split_seed", "arch", "scheme", "epochs", "steps", "batch_size", "lr", "width", "seed",
    "device", "checkpoint_every", "resume", "drop_checkpoint", "fp32", "name", "quiet", "force",
})
#: Patient-level DP-SGD options (on the AC-GAN's discriminator).
DP_OPTIONS: frozenset[str] = frozenset({
    "target_epsilon", "delta", "noise_multiplier", "clip_norm", "patients_per_step", "vus_per_patient", "accountant",
    "private_layers", "clip_generated", "tuning",
})
ACGAN_OPTIONS: frozenset[str] = DP_OPTIONS | {
    "classes", "d_width", "conditioning", "class_loss", "init_from", "from_scratch", "condition_source", "augment",
    "no_discriminator", "balance_classes", "aux_weight", "projection", "speed", "freeze_d", "lecam", "mode_seeking",
    "mirror", "rotate", "rescale", "r1", "instance_noise", "smooth", "snapshots", "clean_class_head", "ada_target",
    "translate", "d_lr", "twin_classifier", "source_stages", "split_projection", "ordinal", "freeze_class_modulation",
}
DIFFUSION_OPTIONS: frozenset[str] = frozenset({"autoencoder_epochs", "autoencoder_steps", "sampling_steps", "guidance"})

#: On/off options whose "left out" is False (``--no-clip-generated`` is given as False, left out as None).
SWITCHES: frozenset[str] = frozenset({
    "resume", "drop_checkpoint", "fp32", "quiet", "from_scratch", "condition_source", "no_discriminator",
    "balance_classes", "force",
})
#: Defaults of options whose parser default is None so that "given" can be told from "left out".
OPTION_DEFAULTS: dict[str, Any] = {"clip_norm": 1.0, "accountant": "rdp", "tuning": "public"}


@dataclass(frozen=True)
class Architecture:
    """A generator architecture ``train --arch NAME`` builds.

    Args:
        name: the ``--arch`` value, also the card's ``architecture.name``.
        family: ``acgan`` or ``diffusion``: the functions that train it (``train_config.trainer``).
        options: the options it reads beyond :data:`COMMON_OPTIONS`.
        family_text: how a refusal names the family (``the AC-GAN``).
        why_not: why this architecture refuses the differential-privacy options (said with the refusal), or "".
    """

    name: str
    family: str
    options: frozenset[str]
    family_text: str
    why_not: str = ""

    def reads(self, option: str) -> bool:
        return option in COMMON_OPTIONS or option in self.options


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("default", "acgan", ACGAN_OPTIONS, "the AC-GAN"),
        Architecture("pgan", "acgan", ACGAN_OPTIONS, "the AC-GAN"),
        Architecture(
            "diffusion", "diffusion", DIFFUSION_OPTIONS, "latent diffusion",
            why_not="differential privacy is not implemented for the diffusion generator",
        ),
        Architecture(
            "diffusion3d", "diffusion", DIFFUSION_OPTIONS, "latent diffusion",
            why_not="differential privacy is not implemented for the diffusion generator",
        ),
    )
}
ARCHITECTURE_NAMES: tuple[str, ...] = tuple(ARCHITECTURES)


def architecture(name: str) -> Architecture:
    """The architecture called ``name``; :class:`SelectionError` naming the known ones otherwise."""
    if name not in ARCHITECTURES:
        raise SelectionError(f"--arch {name!r} is not an architecture (choose from {', '.join(ARCHITECTURE_NAMES)})")
    return ARCHITECTURES[name]


def flag(option: str) -> str:
    """The command-line spelling of an option name (``clip_generated`` is given as ``--no-clip-generated``)."""
    return "--no-clip-generated" if option == "clip_generated" else "--" + option.replace("_", "-")


def refuse_foreign(arch: str, given: Iterable[str]) -> None:
    """Refuse, in one line, the first option in ``given`` that architecture ``arch`` does not read."""
    a = architecture(arch)
    for option in given:
        if a.reads(option):
            continue
        readers = [b for b in ARCHITECTURES.values() if option in b.options]
        if not readers:
            raise SelectionError(f"{flag(option)} is not a train option")
        family = readers[0].family_text if len({b.family for b in readers}) == 1 else "other architectures"
        why = a.why_not if option in DP_OPTIONS else ""
        raise SelectionError(
            f"{flag(option)} applies to {family} only (--arch {', '.join(b.name for b in readers)}), not to --arch "
            f"{a.name}" + (f": {why}" if why else "")
        )


def given_options(options: Mapping[str, Any]) -> list[str]:
    """The options in ``options`` that were given: not None, and not False for a :data:`SWITCHES` entry (a switch
    left off); the parser's own entries (``command``, ``func``) are not options."""
    return [
        k for k, v in options.items()
        if v is not None and not (v is False and k in SWITCHES) and k not in ("command", "func")
    ]


def with_defaults(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with :data:`OPTION_DEFAULTS` filled in where left at None."""
    return {**options, **{k: v for k, v in OPTION_DEFAULTS.items() if options.get(k) is None}}
