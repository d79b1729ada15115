"""AC-GAN training: seeded, resumable, optionally differentially private (DP-SGD on D).

One step = one discriminator update on a real batch and a fake batch, then one generator update on the
same fake batch. Losses (non-saturating AC-GAN, as the study)::

    L_D = sum_i [BCE(D(x_i), 1) + a CE(c(x_i), y_i)] / B + sum_j [BCE(D(G(z_j)), 0) + f a CE(c(G(z_j)), y_j)] / B
    L_G = mean_j [BCE(D(G(z_j)), 1) + a CE(c(G(z_j)), y_j)]

with ``f = 1`` in the study (``pgan``) and ``f = 0`` in ``default`` (``aux_fake``: D's class head learns
real VUs only; see :func:`discriminator_loss`).

Randomness outside the DP mechanism comes from two generators seeded from ``config.seed`` (data
order, generator noise and labels). Their states, the data permutation and cursor, the step, both
modules, the generator's moving average, both optimizers and (under DP) the mechanism's generator
state and the accountant are checkpointed (safetensors + JSON, atomically), so a resumed run
reproduces an uninterrupted one exactly on CPU. ``training/log.csv`` gets one row per step
(:data:`LOG_COLUMNS`), rewritten every :data:`LOG_EVERY` steps and at checkpoints; a resume drops the
rows past its checkpoint.

Differential privacy (``config.dp``): patient-level DP-SGD on D, see :mod:`synthvu_core.models.dp`.
Patients are Poisson-sampled, each sampled patient's summed per-VU gradient is clipped, Gaussian noise
from OS entropy is added, and Opacus's accountant counts over the train patients. The generator step
runs through D with D's parameters frozen; G only ever sees D's privatised weights, so G and D are
private by post-processing. The training checkpoint holds the mechanism's random state: never share it
(``--drop-checkpoint`` removes it).

Public pretraining: ``config.init_from`` starts G, its moving average and D from a generator folder
(e.g. one trained without DP on a public phantom cohort), with fresh optimizers.
"""

from __future__ import annotations

import copy
import math
import shlex
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthvu_core import __version__, levels
from synthvu_core.errors import SelectionError
from synthvu_core.models.augment import TRANSLATION_RATIO  # standard library only
from synthvu_core.models.dp import NEIGHBOURING, UNIT, DPConfig, PatientDPOptimizer, check_delta
from synthvu_core.names import CARD_FILE
from synthvu_core.storage import atomic_path, write_json

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.acgan import ACGANConfig
    from synthvu_core.models.distributed import DistContext

TRAINING_DIR = "training"
CHECKPOINT_DIR = "checkpoint"
LOG_FILE = "log.csv"
LOG_EVERY = 25  # steps between rewrites of the log (checkpoints write it too)
#: Decay of the moving averages of D's real and fake logits that ``--lecam`` pulls towards (the paper's 0.99).
LECAM_DECAY = 0.99
#: ``--ada-target``: steps between two updates of the augmentation probability, and steps for it to go from 0 to 1
#: (ADA's 500k images are 26 times a 600-step fine-tune's real VUs; here p can reach 1 within a sixth of it).
ADA_INTERVAL = 4
ADA_RAMP_STEPS = 100
#: Columns of ``training/log.csv``, one row per step. ``loss_d``: D's loss (non-private: on the real and the
#: generated VUs; private: on the generated VUs only); ``aux_d``: D's class loss on real VUs (empty under DP:
#: a loss on private VUs would be released without noise); ``aux_g``: the class loss in G's loss; ``vus_per_s``:
#: real + generated VUs per second (under DP the expected real count); ``epsilon``: spent so far (empty
#: without DP).
LOG_COLUMNS = ("step", "epoch", "loss_d", "loss_g", "aux_d", "aux_g", "vus_per_s", "epsilon")
DEFAULT_EPOCHS = 25.0


@dataclass
class ArchOverrides:
    """Architecture settings that replace the named architecture's (None = the architecture's own).

    Args:
        lr: Adam learning rate of both networks.
        width: the generator's width n.
        d_width: the discriminator's first width.
        g_cond: how G receives the class (``input`` | ``modulate``).
        aux_fake: whether D's class head also learns generated VUs (which VUs a loss counts, so a fine-tune may
            set it).
        aux_weight: weight of the class loss in both networks' losses (a loss weight, so a fine-tune may set it).
        projection: D's real/fake logit also judges the VU against its label (a projection discriminator; a
            zero-initialised addition, so a fine-tune may turn it on). Under DP a real VU's label enters only that
            VU's gradient, inside its patient's clipped contribution.
        smooth: G's fixed output low-pass, also applied to the real VUs D sees (pixels; not learned, so a fine-tune
            may set it; :class:`synthvu_core.models.acgan.ACGANConfig`). Under DP per VU, inside its patient's sum.
        twin: a twin class head of D that learns generated VUs' requested classes, subtracted in G's class loss
            (TAC-GAN; :class:`synthvu_core.models.acgan.ACGANConfig`); a new head, so a fine-tune may add it.
        snapshots: members of the released snapshot ensemble (:func:`snapshot_steps`; what is released, not how it
            is trained, so a fine-tune may set it; under DP post-processing of the same run, no extra privacy cost).
        source_stages: G's last hidden stages that the source modulates (0: every stage); which zero-initialised
            modulations are applied, so a fine-tune may set it.
        split_projection: D's projection as a class embedding plus a source embedding (zero-initialised, so a
            fine-tune may set it).
        ordinal: a shared trend along the classes' order in G's class modulation and D's projection
            (:class:`synthvu_core.models.acgan.ACGANConfig`; zero-initialised, so a fine-tune may turn it on).
    """

    lr: float | None = None
    width: int | None = None
    d_width: int | None = None
    g_cond: str | None = None
    aux_fake: bool | None = None
    aux_weight: float | None = None
    projection: bool | None = None
    smooth: float | None = None
    snapshots: int | None = None
    twin: bool | None = None
    source_stages: int | None = None
    split_projection: bool | None = None
    ordinal: bool | None = None

    def given(self) -> dict[str, Any]:
        """The overrides that were set."""
        return {k: v for k, v in asdict(self).items() if v is not None}


#: The ``train`` flag of each :class:`ArchOverrides` field that a fine-tune cannot change (in messages).
ARCH_FLAGS = {"width": "--width", "d_width": "--d-width", "g_cond": "--conditioning"}


@dataclass
class TrainConfig:
    """Training settings. ``steps`` wins over ``epochs``; neither given = 25 epochs (the study).

    Args:
        arch: architecture name (``default`` | ``pgan``); ``overrides`` replace some of its settings.
        epochs, steps: length of the run (``steps`` wins).
        batch_size: real VUs per step (non-private: exact; private: expected), and generated VUs per step.
        dp: patient-level DP-SGD settings; None = not private.
        init_from: a generator folder or registered name (with its discriminator) to start from, e.g. one
            pretrained on public data.
        condition_source: condition G (and D's auxiliary head) on each VU's source as well as its class.
        balance_classes: draw each step's real VUs with equal weight per class (with replacement) and the generated
            VUs' classes uniformly, so rare classes are learnt as often as common ones (not under DP).
        balance_sources: with ``condition_source``, draw each class's real VUs with equal weight per source (with
            replacement) and generate each class's sources uniformly (the sources it holds); classes keep their
            train proportions (or are balanced too with ``balance_classes``). Not under DP.
        augment: DiffAugment policy before D (``color,translation,cutout`` or ``none``), see
            :mod:`synthvu_core.models.augment`.
        translate: the translation's largest shift, a fraction of the VU's size in (0, 0.5] (DiffAugment's 1/8
            unless given; at least half a pixel).
        classes: the class vocabulary (None: under DP the scheme's whole vocabulary, else the classes the train
            split holds); train VUs of other classes are left out.
        source_names: with ``condition_source``, the second condition's vocabulary given in advance (None: the
            sources the train split holds). Needed under DP, where the vocabulary must be public and the
            generated VUs' sources are drawn uniformly (no count of private VUs); a train VU whose source is not
            in it is refused.
        freeze_d: keep D's first N stages (convolution, norm, activation) as the prior gave them and train the rest
            ("FreezeD", Mo et al. 2020, for fine-tuning on little data); 0 = train all of D. Needs a prior.
        freeze_class_modulation: keep G's per-class scale and shift (every stage's class modulation) as the prior
            gave them, each class's rows from the prior's class it starts from: classes the prior shares (the four
            lumbar levels from a region prior's L) then differ through G's class input code and the convolutions
            that read it. The source modulation still trains. Needs a prior and a modulated G.
        lecam: weight of the LeCam regulariser of D (Tseng et al. 2021, GANs on limited data): D's real/fake logits
            are pulled towards moving averages of the other side's, which keeps a small-data D from separating
            the few real VUs it has memorised; 0 = off. Not under DP (its averages read real VUs unclipped).
        mode_seeking: weight of the mode-seeking term of G (Mao et al. 2019, MSGAN): generated VUs come in pairs of
            one label and two noise vectors, and G is penalised by ``1 / (|G(z1) - G(z2)| / |z1 - z2|)``, which keeps
            a conditional G from ignoring its noise (one VU per class); 0 = off. Reads no real VU (allowed under DP).
        mirror: reverse the slice order of each real VU with probability 1/2 before D sees it (a VU seen from the
            other side is a VU of the same level; :func:`synthvu_core.models.augment.mirror_slices`): twice the
            train set, with nothing the samples should not show. Under DP inside each patient's clipped sum.
        rotate, rescale: rotate each real VU in-plane by up to ``rotate`` degrees and scale it by up to ``1 +/-
            rescale`` (uniform, every slice alike) before D sees it, real VUs only as ``mirror``
            (:func:`synthvu_core.models.augment.affine_slices`): anatomy's own spread in lordosis and size; 0 = off.
            Not under DP (the DP audit does not replay it).
        clean_class_head: with ``augment``, only D's real/fake logit sees augmented VUs; D's class loss (on real
            VUs, and with ``aux_fake`` on generated ones) and G's class loss read them un-augmented and without
            instance noise (one more D pass each), so D's class head does not learn levels from shifted,
            recoloured, cut-out VUs. Not under DP.
        ada_target: adaptive augmentation (ADA, Karras et al. 2020): each VU D sees (real and generated, in D's and
            G's steps) passes the ``augment`` policy with probability ``p``, which starts at 0 and moves by
            :data:`ADA_INTERVAL` / :data:`ADA_RAMP_STEPS` every :data:`ADA_INTERVAL` steps: up while ADA's
            overfitting measure ``r = E[sign(D's logit)]`` over the real VUs of those steps is above ``ada_target``
            (0.6 in the paper: 80 % of the real VUs read "real"), down otherwise; 0 = off. The policy is applied to
            a VU whole or not at all (the paper draws each operation on its own). Not under DP (the rule reads D's
            outputs on real VUs outside the clipped, noised gradient).
        instance_noise: standard deviation of Gaussian noise added to every VU D sees, real and generated
            (:func:`synthvu_core.models.augment.instance_noise`; VUs in [-1, 1]); 0 = off. Under DP inside each
            patient's clipped sum (drawn per VU, independent of the data).
        d_lr: Adam learning rate of D alone (a two time-scale update rule, TTUR, Heusel et al. 2017); None = the
            architecture's (or ``--lr``), the same as G's. An optimiser setting: a fine-tune and DP may set it.
        r1: weight ``gamma`` of the R1 penalty of D (Mescheder et al. 2018): ``gamma / 2`` times the squared norm
            of the gradient of D's real/fake logit with respect to each real VU, which keeps D from a steep ridge
            around the few real VUs it has; 0 = off. Not under DP (a second gradient through each real VU).
        checkpoint_every: steps between checkpoints (0 = only at the end); ``montage_every`` None = the same.
        speed: opt-in speed settings (:data:`synthvu_core.models.speed.SPEED_NAMES`: ``bf16``, ``channels-last``,
            ``fused-adam``, ``compile``); () = none, the exact default step. See :mod:`synthvu_core.models.speed`.
    """

    arch: str = "default"
    scheme: str = "region"
    epochs: float | None = None
    steps: int | None = None
    batch_size: int = 32
    overrides: ArchOverrides = field(default_factory=ArchOverrides)
    dp: DPConfig | None = None
    init_from: str | None = None
    classes: list[str] | None = None
    augment: str = "none"
    translate: float = TRANSLATION_RATIO
    condition_source: bool = False
    source_names: tuple[str, ...] | None = None
    balance_classes: bool = False
    balance_sources: bool = False
    freeze_d: int = 0
    freeze_class_modulation: bool = False
    lecam: float = 0.0
    mode_seeking: float = 0.0
    mirror: bool = False
    rotate: float = 0.0
    rescale: float = 0.0
    clean_class_head: bool = False
    r1: float = 0.0
    instance_noise: float = 0.0
    ada_target: float = 0.0
    d_lr: float | None = None
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 500
    montage_every: int | None = None
    resume: bool = False
    keep_discriminator: bool = True
    keep_checkpoint: bool = True
    weights_dtype: str = "float16"
    speed: tuple[str, ...] = ()
    name: str | None = None
    command: str | None = None

    @property
    def private(self) -> bool:
        return self.dp is not None

    def validate(self) -> None:
        """Refuse settings that cannot train, before any work (:class:`SelectionError`, one line each)."""
        if self.epochs is not None and not (math.isfinite(self.epochs) and self.epochs > 0):
            raise SelectionError(f"--epochs must be a positive number, got {self.epochs:g}")
        if self.steps is not None and self.steps < 1:
            raise SelectionError(f"--steps must be at least 1, got {self.steps}")
        if self.batch_size < 1:
            raise SelectionError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.checkpoint_every < 0:
            raise SelectionError(f"--checkpoint-every must be 0 (only at the end) or more, got {self.checkpoint_every}")
        if self.montage_every is not None and self.montage_every < 0:
            raise SelectionError(f"montage interval must be 0 (never) or more, got {self.montage_every}")
        smooth, snapshots = self.overrides.smooth, self.overrides.snapshots
        if smooth is not None and not (math.isfinite(smooth) and 0 <= smooth <= 8):
            raise SelectionError(f"--smooth must be a number of pixels in [0, 8], got {smooth:g}")
        if snapshots is not None and not 1 <= snapshots <= 8:
            raise SelectionError(f"--snapshots must be 1 (the last step only) to 8, got {snapshots}")
        o = self.overrides
        for key in ("width", "d_width"):
            if getattr(o, key) is not None and getattr(o, key) < 1:
                raise SelectionError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(o, key)}")
        if o.lr is not None and not (math.isfinite(o.lr) and o.lr > 0):
            raise SelectionError(f"--lr must be a positive number, got {o.lr:g}")
        if self.d_lr is not None and not (math.isfinite(self.d_lr) and 0 < self.d_lr < 1):
            raise SelectionError(f"--d-lr must be a number in (0, 1), got {self.d_lr:g}")
        if o.aux_weight is not None and not (math.isfinite(o.aux_weight) and 0 <= o.aux_weight <= 1e3):
            raise SelectionError(f"--aux-weight must be a number in [0, 1000], got {o.aux_weight:g}")
        if self.balance_classes and self.dp is not None:
            raise SelectionError("--balance-classes cannot be private: its weights count private VUs per class")
        if o.source_stages is not None and o.source_stages < 0:
            raise SelectionError(f"--source-stages must be 0 (every stage) or more, got {o.source_stages}")
        for flag, value in (("--source-stages", o.source_stages), ("--split-projection", o.split_projection)):
            if value and not self.condition_source:
                raise SelectionError(f"{flag} shapes the source conditioning: it needs --condition-source (a dataset "
                                     "of two or more sources)")
        self._validate_ordinal()
        if self.balance_sources and (self.dp is not None or not self.condition_source):
            raise SelectionError("balancing sources needs --condition-source and no DP (its weights count VUs)")
        if self.condition_source and self.dp is not None and not self.source_names:
            raise SelectionError("--condition-source under DP needs the source vocabulary given in advance (public): "
                                 "the sources the private train split holds cannot be read")
        if self.source_names is not None and len(set(self.source_names)) != len(self.source_names):
            raise SelectionError(f"the source vocabulary repeats a name: {', '.join(self.source_names)}")
        self._validate_regularisers()
        if self.weights_dtype not in ("float16", "float32", "bfloat16"):
            raise SelectionError(f"unknown weights dtype {self.weights_dtype!r}")
        if self.dp is not None:
            self.dp.validate()
        if self.classes is not None:
            unknown = [c for c in self.classes if c not in levels.vocabulary(self.scheme)] if self.scheme in \
                levels.SCHEMES else []
            if not self.classes or unknown or len(set(self.classes)) != len(self.classes):
                raise SelectionError(f"--classes {','.join(self.classes)}: give distinct {self.scheme} classes "
                                     f"among {', '.join(levels.vocabulary(self.scheme))}")
        from synthvu_core.models.speed import check_speed, parse_speed

        check_speed(parse_speed(self.speed), self.private)  # an unknown setting: refused by parse_speed

    def _validate_ordinal(self) -> None:
        """``--ordinal`` places the classes along the spine in the order the run holds them: given ``--classes`` must
        follow the scheme's order."""
        if not self.overrides.ordinal or self.classes is None or self.scheme not in levels.SCHEMES:
            return
        order = levels.vocabulary(self.scheme)
        known = [c for c in self.classes if c in order]
        if len(known) == len(self.classes) and known != sorted(known, key=order.index):
            raise SelectionError(f"--ordinal places the classes along the spine in the order given: give --classes "
                                 f"in the {self.scheme} scheme's order ({', '.join(sorted(known, key=order.index))})")

    def _validate_regularisers(self) -> None:
        """The part of :meth:`validate` for D's and G's regularisers and augmentation options."""
        from synthvu_core.models.augment import parse_policy

        if self.freeze_d < 0:
            raise SelectionError(f"--freeze-d must be 0 (train all of D) or more, got {self.freeze_d}")
        if not (math.isfinite(self.lecam) and 0 <= self.lecam <= 1e3):
            raise SelectionError(f"--lecam must be a number in [0, 1000], got {self.lecam:g}")
        if not (math.isfinite(self.mode_seeking) and 0 <= self.mode_seeking <= 1e3):
            raise SelectionError(f"--mode-seeking must be a number in [0, 1000], got {self.mode_seeking:g}")
        if self.mode_seeking and self.batch_size % 2:
            raise SelectionError(f"--mode-seeking pairs the generated VUs: --batch-size must be even, got "
                                 f"{self.batch_size}")
        if not (math.isfinite(self.instance_noise) and 0 <= self.instance_noise <= 10):
            raise SelectionError(f"--instance-noise must be a number in [0, 10], got {self.instance_noise:g}")
        if not (math.isfinite(self.rotate) and 0 <= self.rotate <= 45):
            raise SelectionError(f"--rotate must be a number of degrees in [0, 45], got {self.rotate:g}")
        if not (math.isfinite(self.rescale) and 0 <= self.rescale <= 0.5):
            raise SelectionError(f"--rescale must be a share in [0, 0.5], got {self.rescale:g}")
        if (self.rotate or self.rescale) and self.dp is not None:
            raise SelectionError("--rotate and --rescale are not offered under DP: the privacy audit does not replay "
                                 "them")
        if not (math.isfinite(self.r1) and 0 <= self.r1 <= 1e4):
            raise SelectionError(f"--r1 must be a number in [0, 10000], got {self.r1:g}")
        if self.r1 and "compile" in self.speed:
            raise SelectionError("--r1 needs a second backward pass through D, which --speed compile cannot give")
        if self.r1 and self.dp is not None:
            raise SelectionError("--r1 cannot be private: its penalty is a gradient through each real VU outside the "
                                 "clipped, noised one")
        if not (math.isfinite(self.ada_target) and 0 <= self.ada_target < 1):
            raise SelectionError(f"--ada-target must be a share in [0, 1), got {self.ada_target:g}")
        if self.ada_target and self.dp is not None:
            raise SelectionError("--ada-target cannot be private: its rule reads D's outputs on real VUs outside the "
                                 "clipped, noised gradient")
        if self.lecam and self.dp is not None:
            raise SelectionError("--lecam cannot be private: its moving averages read D's outputs on real VUs "
                                 "outside the clipped, noised gradient")
        if not parse_policy(self.augment) and self.ada_target:
            raise SelectionError("--ada-target adapts how often --augment's policy is applied: give a policy (e.g. "
                                 "--augment color,translation,cutout, filled in where --augment is left out), not "
                                 "--augment none")
        if not (math.isfinite(self.translate) and 0 < self.translate <= 0.5):
            raise SelectionError(f"--translate must be a fraction of the VU's size in (0, 0.5], got {self.translate:g}")
        if self.translate != TRANSLATION_RATIO and "translation" not in parse_policy(self.augment):
            raise SelectionError(f"--translate {self.translate:g} sets the shift of --augment's translation: give a "
                                 f"policy with translation (e.g. --augment translation), not --augment {self.augment}")
        if not parse_policy(self.augment) and self.clean_class_head:
            raise SelectionError("--clean-class-head keeps the class losses off augmented VUs: it needs --augment "
                                 "with a policy (e.g. --augment translation)")
        if self.clean_class_head and self.dp is not None:
            raise SelectionError("--clean-class-head cannot be private: D would read each real VU twice, once outside "
                                 "its patient's augmented, clipped gradient")

def _check_twin(arch: ACGANConfig, config: TrainConfig) -> None:
    """Refuse a twin class head (``--twin-classifier``, or carried by the prior) where it cannot train as intended."""
    if not arch.twin:
        return
    if config.dp is not None or config.clean_class_head:
        raise SelectionError("--twin-classifier cannot be private or take --clean-class-head: its head learns "
                             "generated VUs as D's other heads see them, outside a patient's clipped gradient (a "
                             "prior trained with it: pass --no-twin-classifier)")


def _check_translate(config: TrainConfig, shape: tuple[int, ...]) -> None:
    """Refuse a translation too small to move a VU of ``shape`` by one pixel (it would silently do nothing)."""
    from synthvu_core.models.augment import parse_policy

    side = min(shape[-2:])
    if "translation" in parse_policy(config.augment) and side * config.translate < 0.5:
        raise SelectionError(f"--translate {config.translate:g} shifts a {shape[-2]} x {shape[-1]} VU by less than "
                             f"half a pixel, so not at all: give at least {0.5 / side:.4g}")


#: ``train`` options that are not TrainConfig fields of the same name.
_NOT_CONFIG = {"func", "quiet", "dataset", "out", "split", "split_seed", "command", "from_scratch"}


def config_from_options(options: Mapping[str, Any], command: str | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of ``train`` options (argument names; built through
    :func:`synthvu_core.models.architectures.build_config`), validated."""
    a = dict(options)
    over = ArchOverrides(lr=a.pop("lr", None), width=a.pop("width", None), d_width=a.pop("d_width", None),
                         g_cond=a.pop("conditioning", None), aux_fake=None, aux_weight=a.pop("aux_weight", None),
                         projection=a.pop("projection", None), smooth=a.pop("smooth", None),
                         snapshots=a.pop("snapshots", None), twin=a.pop("twin_classifier", None),
                         source_stages=a.pop("source_stages", None), split_projection=a.pop("split_projection", None),
                         ordinal=a.pop("ordinal", None))
    class_loss = a.pop("class_loss", None)
    over.aux_fake = None if class_loss is None else class_loss == "all"
    dp_keys = [f.name for f in fields(DPConfig)]
    dp_args = {k: a.pop(k) for k in dp_keys if k in a}
    private = dp_args.get("target_epsilon") is not None or dp_args.get("noise_multiplier") is not None
    dp = DPConfig(**{k: v for k, v in dp_args.items() if v is not None}) if private else None
    if not private and any(dp_args.get(k) is not None for k in ("delta", "patients_per_step", "vus_per_patient")):
        raise SelectionError("--delta, --patients-per-step and --vus-per-patient need --target-epsilon or "
                             "--noise-multiplier")
    keep_d, keep_ckpt, fp32 = (
        not a.pop("no_discriminator", False),
        not a.pop("drop_checkpoint", False),
        a.pop("fp32", False),
    )
    known = {f.name for f in fields(TrainConfig)}
    rest = {k: v for k, v in a.items() if k in known and k not in _NOT_CONFIG}
    if rest.get("init_from"):  # a folder, or a registered name such as the shipped prior `acgan-phantom`
        from synthvu_core.models.registry import resolve

        rest["init_from"] = str(resolve(rest["init_from"]))
    # left out (None, False) = off
    for flag in ("condition_source", "balance_classes", "balance_sources", "mirror", "clean_class_head",
                 "freeze_class_modulation"):
        rest[flag] = bool(rest.get(flag))
    rest["freeze_d"] = int(rest.get("freeze_d") or 0)
    rest["lecam"] = float(rest.get("lecam") or 0.0)
    rest["mode_seeking"] = float(rest.get("mode_seeking") or 0.0)
    rest["r1"] = float(rest.get("r1") or 0.0)
    rest["rotate"] = float(rest.get("rotate") or 0.0)
    rest["rescale"] = float(rest.get("rescale") or 0.0)
    rest["instance_noise"] = float(rest.get("instance_noise") or 0.0)
    rest["ada_target"] = float(rest.get("ada_target") or 0.0)
    rest["translate"] = TRANSLATION_RATIO if rest.get("translate") is None else float(rest["translate"])
    if isinstance(rest.get("classes"), str):
        rest["classes"] = [c.strip() for c in rest["classes"].split(",") if c.strip()]
    if "speed" in rest:
        from synthvu_core.models.speed import parse_speed

        rest["speed"] = parse_speed(rest["speed"])
    config = TrainConfig(
        **rest,
        overrides=over,
        dp=dp,
        keep_discriminator=keep_d,
        keep_checkpoint=keep_ckpt,
        weights_dtype="float32" if fp32 else "float16",
        command=command,
    )
    config.validate()
    return config


def check_private_ingest(dataset: VUDataset) -> None:
    """Refuse (:class:`SelectionError`) a DP run on a dataset whose ingest already mixed its patients: intensities
    harmonised between sources map each VU through percentiles pooled over every patient of its source and the
    mean over sources, without noise, so one patient's scan moves every other VU; no DP bound of the run covers
    that. A dataset of one source, or built with ``--harmonise none``, keeps each patient's VUs their own."""
    method = (dataset.card.get("harmonisation") or {}).get("method")
    if method not in (None, "none"):
        where = getattr(dataset, "root", None) or "this dataset"
        raise SelectionError(
            f"{where}: its intensities were harmonised between sources at ingest ({method}: percentiles pooled over "
            "every patient, without differential privacy), which no DP bound covers; for a DP run rebuild it with "
            "`data build --harmonise none`")


def resolve_device(device: str) -> str:
    """``device`` checked (:class:`SelectionError`, one line, where torch does not know it or this machine lacks
    it); ``auto``: CUDA where available, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device)
    except (RuntimeError, TypeError):
        raise SelectionError(f"device {device!r} is not a device name; use auto, cpu, cuda or cuda:N") from None
    if kind.type == "cuda" and not torch.cuda.is_available():
        raise SelectionError(f"device {device!r} requested but no CUDA device is available")
    if kind.type == "cuda" and kind.index is not None and kind.index >= torch.cuda.device_count():
        raise SelectionError(f"device {device!r} requested but this machine has {torch.cuda.device_count()} CUDA "
                             "device(s)")
    if kind.type not in ("cpu", "cuda"):
        raise SelectionError(f"device {device!r}: synthvu runs on cpu or cuda")
    return device


def aux_loss(
    cls: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None, reduction: str = "none"
) -> torch.Tensor:
    """D's class loss: cross-entropy of the class logits. A source-conditioned D's logits are ``[N, K + S]`` and its
    labels joint (``class + K * source``): then the class and the source cross-entropies, summed."""
    import torch.nn.functional as F

    k = cls.shape[1] if n_classes is None else n_classes
    if cls.shape[1] == k:
        return F.cross_entropy(cls, labels, reduction=reduction)
    return F.cross_entropy(cls[:, :k], labels % k, reduction=reduction) + F.cross_entropy(
        cls[:, k:], labels // k, reduction=reduction
    )


def mode_seeking_term(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """MSGAN's term (Mao et al. 2019) over pairs ``(2i, 2i+1)`` of one label: ``1 / (ratio + 1e-5)`` where ratio is the
    mean absolute difference of the two VUs over that of their noise vectors; small where G varies with z."""
    ratio = (fake[0::2] - fake[1::2]).abs().mean() / (z[0::2] - z[1::2]).abs().mean()
    return 1.0 / (ratio + 1e-5)


def r1_penalty(adv_real: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per real VU, the squared norm of the gradient of its logit ``adv_real`` by its input (the first
    ``len(adv_real)`` rows of ``x``, which requires grad); differentiable (Mescheder et al. 2018)."""
    import torch

    (grad,) = torch.autograd.grad(adv_real.sum(), x, create_graph=True)
    return grad[: len(adv_real)].pow(2).flatten(1).sum(1)


def discriminator_loss(
    adv: torch.Tensor, cls: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, aux_weight: float, aux_fake: bool,
    n_classes: int | None = None,
) -> torch.Tensor:
    """Per-sample AC-GAN discriminator loss ``[N]``: BCE on the real/fake logit plus ``aux_weight`` x CE.

    ``target`` is 1 for real and 0 for generated VUs. With ``aux_fake`` False the class term counts for
    real VUs only, so D's class head is a classifier of real VUs and G is rewarded only for VUs that
    such a classifier recognises; with it True (the study) D also learns the classes G was asked for,
    which lets D and G agree on cues real VUs do not have.
    """
    import torch.nn.functional as F

    aux = aux_loss(cls, labels, n_classes)
    if not aux_fake:
        aux = aux * target
    return F.binary_cross_entropy_with_logits(adv, target, reduction="none") + aux_weight * aux



def class_transfer(card: dict[str, Any], classes: list[str], folder: Path) -> list[int]:
    """For each class of the new run, the index of the starting generator's class it starts from.

    A class the starting generator has starts from itself; otherwise from its class under the starting
    generator's scheme (``L4/L5`` starts from ``L`` when a region generator is fine-tuned on levels).

    Args:
        card: the starting generator's card.
        classes: the classes of the run's dataset under the run's scheme.
        folder: the starting generator's folder (named in the error).
    """
    from synthvu_core.levels import position_class

    old = [str(c) for c in card["classes"]]
    source = []
    for c in classes:
        mapped = c if c in old else position_class(str(card.get("scheme", "region")), c)
        if mapped not in old:
            raise SelectionError(
                f"{folder}: class {c!r} of this dataset has no counterpart among its classes {old}"
            )
        source.append(old.index(mapped))
    return source


#: Checkpoint tensors of the ensemble's earlier members: ``snapshot.<step>.<name>``.
SNAPSHOT_PREFIX = "snapshot."


def snapshot_steps(total: int, k: int) -> list[int]:
    """The steps whose moving-average G a ``k``-member ensemble keeps: evenly spaced over the second half of
    ``total`` steps, the last one included (600 steps, 4 members: 300, 400, 500, 600)."""
    if k <= 1:
        return [total]
    return [total - (k - 1 - i) * total // (2 * (k - 1)) for i in range(k)]


def unpack_snapshots(tensors: dict[str, Any], device: torch.device) -> dict[int, dict[str, Any]]:
    """The earlier members a checkpoint holds (:data:`SNAPSHOT_PREFIX`), by step."""
    out: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith(SNAPSHOT_PREFIX):
            step, name = key[len(SNAPSHOT_PREFIX):].split(".", 1)
            out.setdefault(int(step), {})[name] = v.to(device)
    return out


def last_member(state: dict[str, Any], k: int) -> dict[str, Any]:
    """A generator's weights to start from: a snapshot ensemble's last (newest) member, else all of them."""
    if k <= 1:
        return state
    prefix = f"members.{k - 1}."
    return {key[len(prefix):]: v for key, v in state.items() if key.startswith(prefix)}


def transfer_weights(
    state: dict[str, Any], target: dict[str, Any], probe: dict[str, Any], source: list[int], joint_prior: bool = False
) -> dict:
    """``state`` with its per-class rows re-indexed by ``source`` (new class -> old class).

    A tensor is per class where its shape changes with the class count: ``probe`` is the state of the same
    network built with one class more than ``target``. Per-class rows are the leading ones of class
    embeddings and D's class head, and the trailing (one-hot) input rows of G's first layer. Where a row is a
    joint label (class + K x source: the projection of a source-conditioned run) and the prior had no sources,
    each source's block of rows starts from the prior's rows of the classes.

    Args:
        state: the starting generator's (or discriminator's) weights.
        target: the state dict of the freshly built network they go into.
        probe: the state dict of the same network with one more class.
        source: :func:`class_transfer`'s mapping; ``max(source)`` < the old class count.
        joint_prior: the prior was source-conditioned (then it has the run's classes and sources, checked before:
            its joint rows are kept as they are).
    """
    import torch

    index = torch.as_tensor(source, dtype=torch.long)
    out = {}
    for k, v in state.items():
        want = target.get(k)
        if want is None or probe[k].shape == want.shape:
            out[k] = v
            continue
        per = probe[k].shape[0] - want.shape[0]  # rows per class: 1, or S (rows are joint labels class + K * source)
        if per > 1 and joint_prior:  # the same classes and sources: its joint rows as they are
            out[k] = v
            continue
        if per > 1:  # a prior without sources: every source's block of joint rows starts from the class's row
            if want.shape[0] != len(source) * per or v.shape[0] <= max(source):  # block starts from the class's row
                raise SelectionError(f"the starting point's {k} {tuple(v.shape)} does not fit {tuple(want.shape)}")
            out[k] = v[index.repeat(per)]
            continue
        n_old = v.shape[0] - (want.shape[0] - len(source))  # rows of v that are per class (all, or the one-hot)
        out[k] = torch.cat([v[: v.shape[0] - n_old], v[v.shape[0] - n_old :][index]])
    return out


#: The public prior that ``train`` on a user's own dataset starts from (``--from-scratch`` opts out). It was
#: trained without DP on the public phantom and ships with its discriminator.
DEFAULT_PRIOR = "acgan-phantom"
#: The own-data recipe when it fine-tunes a prior without DP (minutes on a laptop CPU): length, learning rate and
#: class-loss weight. On the real lumbar MRI, on top of FreezeD, class-loss weight 0.75 met the utility goal in 17 of
#: 20 paired runs against weight 0.5's 15, and in 14 of 20 against 12 in a fresh confirmation on new training seeds,
#: with the whole-cohort membership test significant in as many runs over all 40 (11 against 11; docs/real-data.md,
#: "The class-loss weight"). These counts were read through the evaluation's old classifier (a batch of 2 VUs at 66
#: train VUs); with it corrected the default meets the goal in none of 35 runs (docs/real-data.md, "The classifier's
#: batch of 2"), and the choices here have been re-read only for the class-loss weight and three ablations.
FINE_TUNE_STEPS = 600
FINE_TUNE_LR = 2e-4
FINE_TUNE_AUX_WEIGHT = 0.75
#: G's output low-pass of a fine-tune without DP (pixels; ``--smooth``): on the real lumbar MRI the default's
#: samples held three times the real VUs' pixel-scale detail (noise), which a classifier trained on them learnt.
FINE_TUNE_SMOOTH = 1.0
#: DiffAugment policy of a fine-tune without DP (``--augment``): translation alone. On the real lumbar MRI it drew the
#: samples less to their training patients than no augmentation (whole-cohort share lower in 20 of 20 paired runs,
#: significant in 7 against 16) at about the same utility (TSTR/TRTR mean 0.89 against 0.85); the full policy (colour
#: and cutout too) cost utility there (docs/real-data.md).
FINE_TUNE_AUGMENT = "translation"
#: D's first stages kept as the prior gave them in a fine-tune without DP (``--freeze-d``; FreezeD, Mo et al. 2020).
#: On the real lumbar MRI, over 20 paired runs with the translation, it met the goal more often without drawing the
#: samples more to their training patients (docs/real-data.md, "A discriminator held back on little data").
FINE_TUNE_FREEZE_D = 2
#: The same under DP (noise is calibrated to the steps; the non-DP settings were not measured under DP).
PRIVATE_FINE_TUNE_STEPS = 300
PRIVATE_FINE_TUNE_LR = 5e-5


def _private(options: dict[str, Any]) -> bool:
    return options.get("target_epsilon") is not None or options.get("noise_multiplier") is not None


def _site_count(dataset: VUDataset) -> int:
    """How many sources (the site column) the dataset's train split holds (0 where it records none)."""
    from synthvu_core.names import SOURCE_COLUMN

    units = getattr(dataset, "units", None)
    if units is None or SOURCE_COLUMN not in units.columns:
        return 0
    return int(units.loc[units["split"].astype(str) == "train", SOURCE_COLUMN].astype(str).nunique())


def own_data_defaults(options: dict[str, Any], dataset: VUDataset | None) -> list[str]:
    """Fill the own-data recipe into ``train`` options left at None (in place); returns what was filled.

    On a user's own dataset (no phantom recipe) with the default architecture: start from
    :data:`DEFAULT_PRIOR` unless ``--init-from`` or ``--from-scratch`` is given. A fine-tune without DP runs
    :data:`FINE_TUNE_STEPS` steps at :data:`FINE_TUNE_LR` with a projection discriminator, class-loss weight
    :data:`FINE_TUNE_AUX_WEIGHT`, mirrored real VUs (``--mirror``; ``--no-mirror`` opts out) and G's output
    low-pass :data:`FINE_TUNE_SMOOTH` (``--smooth``; ``--smooth 0`` opts out), D's first :data:`FINE_TUNE_FREEZE_D`
    stages kept as the prior's (``--freeze-d``; ``--freeze-d 0`` opts out), real VUs drawn with equal weight per
    class (``--balance-classes``; ``--no-balance-classes`` opts out), conditioned on
    the source where the train split holds two or more (``--no-condition-source`` opts out);
    under DP it keeps :data:`PRIVATE_FINE_TUNE_STEPS` at :data:`PRIVATE_FINE_TUNE_LR`. DiffAugment's full policy is
    on for a private fine-tune, for training from scratch and wherever ``--ada-target`` asks for it; a fine-tune
    without DP applies :data:`FINE_TUNE_AUGMENT` (translation alone; docs/real-data.md). Anywhere else augmentation
    stays off. What is filled goes into the card's
    command, so the run can be repeated.
    """
    from synthvu_core.models.augment import DEFAULT_POLICY, NONE

    if options.get("from_scratch") and options.get("init_from") is not None:
        raise SelectionError("--from-scratch and --init-from contradict each other: give one")
    own = options.get("arch", "default") == "default" and (dataset is None or dataset.card.get("recipe") is None)
    filled: list[str] = []
    if own and not options.get("from_scratch"):
        _fill_fine_tune(options, dataset, filled)
    if options.get("augment") is None:
        fine_tune = options.get("init_from") is not None and not _private(options)
        if (own and not fine_tune) or options.get("ada_target"):
            options["augment"] = DEFAULT_POLICY
        else:
            options["augment"] = FINE_TUNE_AUGMENT if own else NONE
        filled.append(f"--augment {options['augment']}")
    return filled


def _fill_fine_tune(options: dict[str, Any], dataset: VUDataset | None, filled: list[str]) -> None:
    """The fine-tune part of :func:`own_data_defaults`: the prior, steps, rate, class-loss weight, sources."""
    from synthvu_core.locations import shipped_models_dir

    if options.get("init_from") is None:
        prior = shipped_models_dir() / DEFAULT_PRIOR
        if not prior.is_dir():
            raise SelectionError(
                f"{prior}: the default public prior {DEFAULT_PRIOR} is not installed; pass --init-from MODEL or "
                "--from-scratch"
            )
        shape = _card_shape(prior)
        if dataset is not None and shape != list(dataset.shape):
            filled.append(f"from scratch: the prior {DEFAULT_PRIOR} makes {shape} VUs, this dataset holds "
                          f"{list(dataset.shape)}")
            return
        options["init_from"] = DEFAULT_PRIOR
        filled.append(f"--init-from {DEFAULT_PRIOR}")
    private = _private(options)
    steps, lr = (PRIVATE_FINE_TUNE_STEPS, PRIVATE_FINE_TUNE_LR) if private else (FINE_TUNE_STEPS, FINE_TUNE_LR)
    if options.get("steps") is None and options.get("epochs") is None:
        options["steps"] = steps
        filled.append(f"--steps {steps}")
    if options.get("lr") is None:
        options["lr"] = lr
        filled.append(f"--lr {lr:g}")
    if not private and options.get("aux_weight") is None:
        options["aux_weight"] = FINE_TUNE_AUX_WEIGHT
        filled.append(f"--aux-weight {FINE_TUNE_AUX_WEIGHT:g}")
    if not private and options.get("projection") is None:
        options["projection"] = True
        filled.append("--projection")
    if not private and options.get("mirror") is None:
        options["mirror"] = True
        filled.append("--mirror")
    if not private and options.get("smooth") is None:
        options["smooth"] = FINE_TUNE_SMOOTH
        filled.append(f"--smooth {FINE_TUNE_SMOOTH:g}")
    if not private and options.get("freeze_d") is None and _d_stages(dataset) > FINE_TUNE_FREEZE_D:
        options["freeze_d"] = FINE_TUNE_FREEZE_D
        filled.append(f"--freeze-d {FINE_TUNE_FREEZE_D}")
    if not private and options.get("balance_classes") is None:  # rare levels seen as often as common ones
        options["balance_classes"] = True
        filled.append("--balance-classes")
    if not private and options.get("condition_source") is None and dataset is not None and _site_count(dataset) >= 2:
        options["condition_source"] = True
        filled.append("--condition-source")


def _d_stages(dataset: VUDataset | None) -> int:
    """How many stages the discriminator of ``dataset``'s VUs has (0 where the shape has none)."""
    from synthvu_core.models.acgan import stages

    try:
        return stages(tuple(dataset.shape)) if dataset is not None else 0
    except ValueError:
        return 0


def _card_shape(folder: Path) -> list[int] | None:
    """The VU shape a generator folder's card records (None where it cannot be read)."""
    import json

    try:
        return [int(v) for v in json.loads((folder / CARD_FILE).read_text())["shape"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def init_folder(init_from: str | Path) -> Path:
    """The generator folder ``--init-from`` names: a folder, else a registered name (e.g. ``acgan-phantom``, found
    in the shipped models through :func:`synthvu_core.locations.shipped_models_dir`)."""
    from synthvu_core.models.registry import resolve

    return resolve(init_from)


class Trainer:
    """The training state and one :meth:`step`. Use :func:`train` for the whole run."""

    def __init__(self, dataset: VUDataset, out_dir: str | Path, config: TrainConfig):
        import torch

        config.validate()
        self.dataset, self.config = dataset, config
        self.out_dir = Path(out_dir)
        self.device = torch.device(resolve_device(config.device))
        if config.scheme not in levels.SCHEMES:
            raise SelectionError(
                f"unknown conditioning scheme {config.scheme!r}; choose one of {', '.join(levels.SCHEMES)}"
            )
        _check_translate(config, tuple(dataset.shape))
        self._load_data(dataset)
        self.arch = self._architecture()
        _check_twin(self.arch, config)
        self.batch_size = int(config.batch_size)
        from synthvu_core.models.speed import Speed, parse_speed

        self.speed = Speed(parse_speed(config.speed), self.device.type)
        self.speed.check_fused()
        self._build_modules()
        from synthvu_core.models.augment import parse_policy

        self.augment_policy = parse_policy(config.augment)
        self.gen_augment = torch.Generator().manual_seed(config.seed * 1000 + 3)
        #: --ada-target: (probability p, sum of sign(D's real logits) and their count since p last moved, sum of p
        #: over the steps made)
        self.ada = torch.zeros(4, dtype=torch.float64)
        self.gen_data = torch.Generator().manual_seed(config.seed * 1000 + 1)
        self.gen_noise = torch.Generator().manual_seed(config.seed * 1000 + 2)
        self.perm = torch.randperm(self.n_train, generator=self.gen_data)
        self.cursor = 0
        self.step_count = 0
        self.seconds = 0.0
        self.last: dict[str, float] = {}
        self.log_rows: list[dict[str, Any]] = []
        self.dist: DistContext | None = None  # torchrun: set by models/distributed.py attach()

        self.opt_G = self.speed.adam(self.G.parameters(), lr=self.arch.lr, betas=self.arch.betas)
        d_lr = self.arch.lr if config.d_lr is None else config.d_lr  # --d-lr: TTUR
        self.opt_D = self.speed.adam(self.D.parameters(), lr=d_lr, betas=self.arch.betas)
        self.speed.compile(self.G, self.D)  # in place: the same parameters and weight names
        self.private: PatientDPOptimizer | None = None
        self.delta: float | None = None
        self.noise_multiplier: float | None = None
        self.sample_rate = min(1.0, self.batch_size / self.n_train)
        self.steps_per_epoch = max(1, self.n_train // self.batch_size)
        if config.private:
            self._plan_private()
        self.total_steps = self._total_steps()
        self.snapshot_steps = snapshot_steps(self.total_steps, self.arch.snapshots)
        self.snapshots: dict[int, dict[str, Any]] = {}
        if config.private:
            self._make_private()

    # ---- set-up ------------------------------------------------------------------------------
    def _load_data(self, dataset: VUDataset) -> None:
        import torch

        train_idx = dataset.indices("train")
        if len(train_idx) == 0:
            raise SelectionError("the dataset's train split is empty: nothing to train on")
        self.classes = self._class_vocabulary(dataset.units.iloc[train_idx])
        labels = dataset.labels(self.config.scheme, self.classes)[train_idx]
        train_idx, labels = train_idx[labels >= 0], labels[labels >= 0]  # VUs of classes outside the vocabulary
        if len(train_idx) == 0:
            raise SelectionError(f"no train VU belongs to the classes {', '.join(self.classes)}")
        units = dataset.units.iloc[train_idx]
        counts = np.bincount(labels, minlength=len(self.classes)).astype(np.float64)
        if self.config.private:  # the prior is released: under DP it must not count private VUs
            counts = np.ones(len(self.classes))
        self.class_prior = (counts / counts.sum()).tolist()
        self.n_train = len(train_idx)
        patients, self.patient_of_vu = np.unique(units["patient_id"].astype(str).to_numpy(), return_inverse=True)
        self.n_patients = len(patients)
        self.images = torch.from_numpy(np.ascontiguousarray(dataset.images[train_idx])).to(self.device)  # uint8
        self.sources: list[str] = []
        self.prior_counts = counts
        if self.config.condition_source:
            labels = self._joint_labels(units, labels, counts)
        self.labels = torch.from_numpy(labels).to(self.device)
        self.vu_weights = None
        if self.config.balance_sources:  # P(VU) = P(its class-source cell) / (the cell's count)
            cell = self.training_prior() / np.maximum(self.prior_counts, 1)
            self.vu_weights = torch.from_numpy(cell[labels])
        elif self.config.balance_classes:  # each class drawn equally often: 1 / (its count) per VU
            k = len(self.classes)
            self.vu_weights = torch.from_numpy(1.0 / counts[labels % k])

    def _class_vocabulary(self, units: pd.DataFrame) -> list[str]:
        """The classes: given, or under DP the scheme's vocabulary (never which classes private data hold)."""
        if self.config.classes is not None:
            return list(self.config.classes)
        if self.config.private:
            return levels.vocabulary(self.config.scheme)
        return levels.classes(self.config.scheme, units["level"].astype(str).unique())

    def _joint_labels(self, units: pd.DataFrame, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """``class + K * source`` per train VU; sets the source names, P(source | class) and the joint counts."""
        from synthvu_core.names import SOURCE_COLUMN

        if SOURCE_COLUMN not in units.columns:
            raise SelectionError("--condition-source: this dataset records no sources; rebuild it with `data build`")
        given = self.config.source_names
        held = units[SOURCE_COLUMN].astype(str).to_numpy()
        names = list(given) if given is not None else sorted(set(held.tolist()))
        if len(names) < 2:
            raise SelectionError(f"--condition-source: the train split holds a single source ({names[0]})")
        index = {name: i for i, name in enumerate(names)}
        if given is not None and not all(h in index for h in held):  # under DP: says no more than "one is not"
            raise SelectionError(f"--condition-source: a train VU's source is not one of {', '.join(names)}")
        k = len(self.classes)
        joint = labels + k * np.array([index[h] for h in held], dtype=labels.dtype)
        if self.config.private:  # released with the generator: uniform, never a count of private VUs
            self.prior_counts = np.ones(k * len(names))
            self.source_prior = np.full((k, len(names)), 1.0 / len(names)).tolist()
        else:
            self.prior_counts = np.bincount(joint, minlength=k * len(names)).astype(np.float64)
            self.source_prior = (self.prior_counts.reshape(len(names), k).T / np.maximum(counts, 1)[:, None]).tolist()
        self.sources = names
        return joint

    def _init_card(self) -> dict[str, Any] | None:
        if self.config.init_from is None:
            return None
        from synthvu_core.models.registry import DISCRIMINATOR_FILE, load_card

        folder = self.init_folder = init_folder(self.config.init_from)
        card = load_card(folder)
        if not (folder / DISCRIMINATOR_FILE).is_file():
            raise SelectionError(f"{folder}: --init-from needs a generator folder that kept its discriminator")
        if self.config.private:
            from synthvu_core.models.priors import check_public_prior

            check_public_prior(card, folder, self.dataset)
        if list(card["shape"]) != list(self.dataset.shape):
            raise SelectionError(
                f"{folder}: its VU shape {card['shape']} differs from this dataset's {list(self.dataset.shape)}"
            )
        self.class_source = class_transfer(card, self.classes, folder)
        return card

    def _architecture(self) -> ACGANConfig:
        from synthvu_core.models import acgan

        c = self.config
        self.init_card = self._init_card()
        from dataclasses import replace

        source = {"n_sources": len(self.sources), "source_prior": self.source_prior if self.sources else None}
        if self.init_card is None:
            try:
                arch = acgan.architecture(c.arch, self.dataset.shape, len(self.classes), **c.overrides.given())
            except ValueError as e:  # settings that contradict each other (e.g. the twin head with --class-loss all)
                raise SelectionError(f"--arch {c.arch}: {e}") from None
            return replace(arch, **source)
        if self.init_card["architecture"].get("n_sources"):
            self._check_same_conditions(self.init_card)
            self._check_same_projection(self.init_card)

        from synthvu_core.models.registry import architecture_config

        arch = architecture_config(self.init_card)
        # losses, their weights and steps, the zero-initialised projection (joint or split) and which stages the
        # zero-initialised source modulations reach: not the architecture, a fine-tune may set them (aux_fake says
        # which VUs D's class loss counts, not what D is)
        weights = ("lr", "aux_weight", "aux_fake", "projection", "smooth", "snapshots", "twin", "source_stages",
                   "split_projection", "ordinal")
        clash = [k for k, v in c.overrides.given().items() if k not in weights and getattr(arch, k) != v]
        if clash:
            drop = ", ".join(f"{ARCH_FLAGS[k]} (the prior's: {getattr(arch, k)})" for k in clash)
            raise SelectionError(f"{c.init_from}: --init-from fixes the architecture; drop {drop}")
        given = {k: v for k, v in c.overrides.given().items() if k in weights}
        self._check_ordinal_prior(arch.ordinal, given.get("ordinal"))
        try:
            return replace(arch, **given, n_classes=len(self.classes), **source)
        except ValueError as e:
            raise SelectionError(f"{c.init_from}: {e}") from None

    def _check_ordinal_prior(self, prior_ordinal: bool, asked: bool | None) -> None:
        """A prior trained with ``--ordinal``: its trend places its classes along the spine by their index, so it
        starts only a run that keeps it and has the same classes in the same order (anything else moves the places)."""
        if not prior_ordinal:
            return
        if asked is False:
            raise SelectionError(f"{self.config.init_from}: its generator and discriminator were trained with "
                                 "--ordinal (a trend along the classes' order); drop --no-ordinal")
        have = list(self.init_card["classes"])
        if have != list(self.classes):
            raise SelectionError(f"{self.config.init_from}: its --ordinal trend places {', '.join(have)} along the "
                                 f"spine; it starts only a run of the same classes (this run: "
                                 f"{', '.join(self.classes)})")

    def _check_same_conditions(self, card: dict[str, Any]) -> None:
        """A source-conditioned starting point: only for a run with the same classes and sources, in order
        (its per-condition rows are then taken as they are)."""
        if list(card.get("sources") or []) != self.sources or list(card["classes"]) != list(self.classes):
            raise SelectionError(
                f"{self.config.init_from}: a source-conditioned generator is a starting point only for the same "
                f"classes and sources (it has {', '.join(card['classes'])} x {', '.join(card.get('sources') or [])}; "
                f"this run {', '.join(self.classes)} x {', '.join(self.sources) or 'no sources'})"
            )

    def _check_same_projection(self, card: dict[str, Any]) -> None:
        """A source-conditioned starting point with a projection: only for a run whose projection is laid out alike
        (one embedding per (class, source) pair, or split into class and source), its rows then taken as they are."""
        arch = card["architecture"]
        split = self.config.overrides.split_projection
        if not arch.get("projection") or split is None or bool(split) == bool(arch.get("split_projection")):
            return
        have = "split into class and source" if arch.get("split_projection") else "one per (class, source) pair"
        want = "--no-split-projection" if arch.get("split_projection") else "--split-projection"
        raise SelectionError(f"{self.config.init_from}: its projection embeds labels {have}; it cannot start a run "
                             f"with {'--split-projection' if split else '--no-split-projection'} (drop {want})")

    def _build_modules(self) -> None:
        from synthvu_core.models import acgan

        self.G, self.D = acgan.build(self.arch, seed=self.config.seed)
        if self.init_card is not None:
            from dataclasses import replace

            from synthvu_core.models.registry import DISCRIMINATOR_FILE, GENERATOR_FILE, read_weights

            folder = self.init_folder
            probes = acgan.build(replace(self.arch, n_classes=self.arch.n_classes + 1), seed=0)
            for module, probe, file in zip((self.G, self.D), probes, (GENERATOR_FILE, DISCRIMINATOR_FILE)):
                state = read_weights(folder / file)
                if file == GENERATOR_FILE:
                    state = last_member(state, int(self.init_card["architecture"].get("snapshots", 1)))
                state = transfer_weights(state, module.state_dict(), probe.state_dict(),
                                         self.class_source, bool(self.init_card["architecture"].get("n_sources")))
                if not self.arch.twin:  # --no-twin-classifier on a prior trained with it
                    state = {k: v for k, v in state.items() if not k.startswith("twin_head.")}
                missing, unexpected = module.load_state_dict(state, strict=False)
                new = ("source_modulation.", "source_head.", "projection.", "source_projection.", "twin_head.",
                       "ordinal_trend.", "ordinal_projection")
                if unexpected or any(not k.startswith(new) for k in missing):
                    odd = (missing + unexpected)[0]
                    raise SelectionError(f"{folder}: its weights do not fit this architecture ({odd})")
        self.G_ema = copy.deepcopy(self.G).eval() if self.arch.ema > 0 else None
        self.D_module = self.D
        for m in (self.G, self.G_ema, self.D):
            if m is not None:
                m.to(self.device)
        self.speed.prepare(self.G, self.G_ema, self.D)
        self._freeze_d_stages()
        self._freeze_class_modulation()
        import torch

        self.lecam_avg = torch.zeros(2, device=self.device)  # moving averages of D's real and fake logits (--lecam)

        self.prior = torch.tensor(self.training_prior(), dtype=torch.float64)

    def _freeze_class_modulation(self) -> None:
        """``freeze_class_modulation``: G's class modulation keeps the rows the prior gave each class (no gradient),
        and so does the ordinal trend added to them (``ordinal``: zero, or the prior's)."""
        if not self.config.freeze_class_modulation:
            return
        if self.init_card is None:
            raise SelectionError("--freeze-class-modulation keeps G's per-class scale and shift as the prior gave "
                                 "them: it needs a prior (--init-from, or the default one; not --from-scratch)")
        if self.arch.g_cond != "modulate":
            raise SelectionError("--freeze-class-modulation: the prior's generator is conditioned at its "
                                 f"{self.arch.g_cond}, with no class modulation to keep; start from a prior trained "
                                 "with --conditioning modulate, or drop --freeze-class-modulation")
        frozen = [self.G.modulation] + ([self.G.ordinal_trend] if self.arch.ordinal else [])
        for p in (q for m in frozen for q in m.parameters()):
            p.requires_grad_(False)

    def _freeze_d_stages(self) -> None:
        """``freeze_d``: D's first stages keep the prior's weights (no gradient, so Adam leaves them)."""
        from synthvu_core.models.acgan import stages

        n = self.config.freeze_d
        if not n:
            return
        if self.init_card is None:
            raise SelectionError("--freeze-d keeps D's first stages as the prior gave them: it needs a prior "
                                 "(--init-from, or the default one; not --from-scratch)")
        if n >= stages(self.arch.shape):
            raise SelectionError(f"--freeze-d {n}: this discriminator has {stages(self.arch.shape)} stages; "
                                 "freeze fewer to leave some of D to train")
        import torch

        for m in self.D.body[: 3 * n].modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 0.0  # its running statistics stay the prior's too
        for p in self.D.body[: 3 * n].parameters():
            p.requires_grad_(False)

    def training_prior(self) -> np.ndarray:
        """The distribution of generated VUs' (joint) labels during training: the train split's, or with balanced
        classes uniform over classes (each class's sources in their train proportions)."""
        p = self.prior_counts / self.prior_counts.sum()
        k = len(self.classes)
        per_class = p.reshape(-1, k)  # [sources or 1, K]
        if self.config.balance_sources:  # each class's sources present: equal shares of the class
            present = per_class > 0
            per_class = present * per_class.sum(0, keepdims=True) / np.maximum(present.sum(0, keepdims=True), 1)
        if not self.config.balance_classes:
            return per_class.reshape(-1)
        return (per_class / np.maximum(per_class.sum(0, keepdims=True), 1e-12) / k).reshape(-1)

    def _total_steps(self) -> int:
        c = self.config
        if c.steps is not None:
            return int(c.steps)
        return max(1, int(math.ceil((c.epochs or DEFAULT_EPOCHS) * self.steps_per_epoch)))

    # ---- differential privacy ----------------------------------------------------------
    def _plan_private(self) -> None:
        """Sample rate over patients, expected VUs per step, delta (checked), steps per epoch."""
        check_private_ingest(self.dataset)
        dp = self.config.dp
        per_patient = np.bincount(self.patient_of_vu, minlength=self.n_patients)
        if dp.vus_per_patient is not None:
            per_patient = np.minimum(per_patient, dp.vus_per_patient)
        mean_vus = float(per_patient.mean())
        self.delta = check_delta(dp.delta, self.n_patients)
        expected_patients = dp.patients_per_step if dp.patients_per_step is not None else self.batch_size / mean_vus
        if expected_patients > self.n_patients:
            asked = (
                f"--patients-per-step {expected_patients:g}"
                if dp.patients_per_step is not None
                else f"--batch-size {self.batch_size} ({expected_patients:.1f} patients per step)"
            )
            raise SelectionError(
                f"{asked} exceeds the {self.n_patients} train patients; pass a smaller --patients-per-step"
            )
        self.sample_rate = float(expected_patients) / self.n_patients
        self.expected_vus = self.sample_rate * float(per_patient.sum())
        self.steps_per_epoch = max(1, round(1 / self.sample_rate))

    def _make_private(self) -> None:
        import torch
        from opacus.validators import ModuleValidator

        from synthvu_core.models.dp import entropy_generator, noise_for

        dp = self.config.dp
        errors = ModuleValidator.validate(self.D, strict=False)
        if errors:
            raise SelectionError(f"the {self.arch.name} discriminator cannot be trained with DP-SGD: {errors[0]}")
        self._freeze_private_body()
        if dp.noise_multiplier is not None:
            self.noise_multiplier = float(dp.noise_multiplier)
        else:
            self.noise_multiplier = noise_for(
                float(dp.target_epsilon), self.delta, self.sample_rate, self.total_steps, dp.accountant
            )
        self.private = PatientDPOptimizer(
            self.D,
            self.opt_D,
            torch.from_numpy(self.patient_of_vu),
            dp,
            self.expected_vus,
            self.sample_rate,
            self.noise_multiplier,
            entropy_generator(),
        )
        self.private.autocast = self.speed.autocast  # bf16 (where asked) inside the per-VU functional call

    def _freeze_private_body(self) -> None:
        """With ``private_layers="heads"``, fix D's body as pretrained: only its heads are trained privately."""
        from synthvu_core.models.acgan import D_HEADS

        if self.config.dp.private_layers != "heads":
            return
        if self.init_card is None:
            raise SelectionError("--private-layers heads keeps D's pretrained body: it needs --init-from")
        for name, p in self.D.named_parameters():
            p.requires_grad_(name.split(".")[0] in D_HEADS)

    @property
    def accountant(self) -> Any:
        return None if self.private is None else self.private.accountant

    def epsilon(self) -> float | None:
        return None if self.private is None else self.private.epsilon(self.delta)

    # ---- one step --------------------------------------------------------------------------
    def _real_batch(self) -> tuple[Any, Any]:
        """Indices of the real VUs of this step, and (under DP) their sampled patient's position."""
        import torch

        if self.private is not None:
            return self.private.sample_patients()
        b = min(self.batch_size, self.n_train)
        if self.vu_weights is not None:
            return torch.multinomial(self.vu_weights, self.batch_size, replacement=True, generator=self.gen_data), None
        if self.cursor + b > self.n_train:
            self.perm = torch.randperm(self.n_train, generator=self.gen_data)
            self.cursor = 0
        idx = self.perm[self.cursor : self.cursor + b]
        self.cursor += b
        return idx, None

    def _fake_batch(self) -> tuple[Any, Any]:
        import torch

        z = torch.randn(self.batch_size, self.arch.latent_dim, generator=self.gen_noise).to(self.device)
        if self.config.mode_seeking:  # pairs (2i, 2i+1) share a label (--mode-seeking); a shard takes whole pairs
            half = torch.multinomial(self.prior, self.batch_size // 2, replacement=True, generator=self.gen_noise)
            y = half.repeat_interleave(2).to(self.device)
        else:
            y = torch.multinomial(self.prior, self.batch_size, replacement=True, generator=self.gen_noise).to(
                self.device)
        if self.dist is not None:  # torchrun: this process's share of the global batch (models/distributed.py)
            group = 2 if self.config.mode_seeking else 1
            z, y, self.fake_rows = self.dist.shard(z, y, torch.arange(len(y)), group=group)
        self.last_z = z  # --mode-seeking compares each pair's VUs with their noise
        k = len(self.classes)
        with self.speed.autocast():
            fake = self.G(z, y % k, y // k) if self.sources else self.G(z, y)  # joint labels: class + K * source
        return self.speed.outputs(fake), y

    def _forward_d(self, x: torch.Tensor, y: torch.Tensor, twin: bool = False) -> tuple[torch.Tensor, ...]:
        """D's ``(adv, cls)`` (and the twin head's logits with ``twin``) under the run's speed settings (float32)."""
        x = self.speed.layout(x)
        with self.speed.autocast():
            out = self.D(x, y, twin=True) if twin else self.D(x, y)
        return self.speed.outputs(out)

    def _twin_loss(self, twin: torch.Tensor, y_fake: torch.Tensor) -> torch.Tensor:
        """The twin head's mean cross-entropy on generated VUs for the class G was asked for (joint labels: class)."""
        import torch.nn.functional as F

        return F.cross_entropy(twin, y_fake % self.arch.n_classes)

    def _d_loss(self, x: torch.Tensor, target: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        adv, cls = self._forward_d(x, y)
        return discriminator_loss(adv, cls, target, y, self.arch.aux_weight, self.arch.aux_fake, self.arch.n_classes)

    def _discriminator_step(
        self, real: torch.Tensor, y_real: torch.Tensor, fake: torch.Tensor, y_fake: torch.Tensor
    ) -> dict[str, float]:
        """Non-private D update: per-sample losses of real and generated VUs, summed, divided by B."""
        import torch

        self.opt_D.zero_grad(set_to_none=True)
        x = self._augment(torch.cat([real, fake.detach()]), real=True)
        if self.config.r1:  # the real VUs as D sees them, as a leaf to differentiate D's logit by
            x = torch.cat([x[: len(real)].detach().requires_grad_(True), x[len(real):]])
        target = torch.cat([torch.ones(len(real), device=self.device), torch.zeros(len(fake), device=self.device)])
        labels = torch.cat([y_real, y_fake])
        adv, cls, *twin = self._forward_d(x, labels, twin=self.arch.twin)
        if self.config.clean_class_head:  # the class head reads the VUs as they are; only adv saw them augmented
            cls = self._clean_class_logits(real, y_real, fake.detach(), y_fake, cls)
        per_sample = discriminator_loss(
            adv, cls, target, labels, self.arch.aux_weight, self.arch.aux_fake, self.arch.n_classes
        )
        loss_d = per_sample.sum() / len(fake)  # this process's share under torchrun (DDP averages)
        if self.config.r1 and len(real):
            loss_d = loss_d + self.config.r1 / 2 * r1_penalty(adv[: len(real)], x).sum() / len(fake)
        if self.config.lecam:
            loss_d = loss_d + self.config.lecam * self._lecam(adv[: len(real)], adv[len(real):])
        if twin:  # the twin head learns generated VUs only
            loss_d = loss_d + self.arch.aux_weight * self._twin_loss(twin[0][len(real):], y_fake)
        if self.config.ada_target:
            self._ada_update(adv[: len(real)].detach())
        loss_d.backward()
        self.opt_D.step()
        k = self.arch.n_classes
        aux = aux_loss(cls[: len(real)].detach(), y_real, k, "mean").item() if len(real) else float("nan")
        return {"loss_d": loss_d.item(), "aux_d": aux}

    def _ada_update(self, adv_real: torch.Tensor) -> None:
        """ADA's rule: add this step's real logits' signs; every :data:`ADA_INTERVAL` steps move ``p`` towards
        more augmentation where ``E[sign]`` is above the target (D sure of the real VUs), less where below."""
        import torch

        a = self.ada
        a[1] += float(torch.sign(adv_real).sum())
        a[2] += len(adv_real)
        a[3] += a[0]
        if (self.step_count + 1) % ADA_INTERVAL == 0 and a[2] > 0:
            r = a[1] / a[2]
            a[0] = float(torch.clamp(a[0] + torch.sign(r - self.config.ada_target) * ADA_INTERVAL / ADA_RAMP_STEPS,
                                     0.0, 1.0))
            a[1:3] = 0

    def _lecam(self, adv_real: torch.Tensor, adv_fake: torch.Tensor) -> torch.Tensor:
        """The LeCam term (Tseng et al. 2021): real logits above the fake logits' moving average and fake ones
        below the real logits' average are penalised, squared; then both averages take this step's means."""
        import torch
        import torch.nn.functional as F

        avg = self.lecam_avg
        term = F.relu(avg[0] - adv_fake).pow(2).mean()
        if len(adv_real):  # a torchrun shard may hold no real VU
            term = term + F.relu(adv_real - avg[1]).pow(2).mean()
        with torch.no_grad():
            sums = torch.stack([adv_real.sum(), adv_fake.sum(), adv_real.new_tensor(len(adv_real)),
                                adv_fake.new_tensor(len(adv_fake))]).to(avg)
            if self.dist is not None:  # every process keeps the same averages (of the global batch)
                sums = self.dist.all_mean(sums)
            means = torch.where(sums[2:] > 0, sums[:2] / sums[2:].clamp(min=1e-12), avg)
            avg.mul_(LECAM_DECAY).add_(means, alpha=1.0 - LECAM_DECAY)
        return term

    def _private_discriminator_step(
        self, real: torch.Tensor, y_real: torch.Tensor, position: torch.Tensor, fake: torch.Tensor, y_fake: torch.Tensor
    ) -> dict[str, float]:
        """Patient-level DP-SGD update of D; only the loss on generated VUs is reported (real ones stay private)."""
        import torch

        a, aux_fake, k = self.arch.aux_weight, self.arch.aux_fake, self.arch.n_classes

        def loss_of_one(adv: torch.Tensor, cls: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return discriminator_loss(adv, cls, torch.ones_like(adv), y, a, aux_fake, k).sum()

        # each real VU is augmented on its own before its gradient: inside its patient's clipped sum
        private_grad = self.private.private_gradient(loss_of_one, self._augment(real, gen=self._real_draws()), y_real,
                                                     position)
        self.opt_D.zero_grad(set_to_none=True)
        target = torch.zeros(len(fake), device=self.device)
        fake = self._augment(fake.detach())
        if self.config.dp.clip_generated:

            def fake_loss_of_one(adv: torch.Tensor, cls: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                return discriminator_loss(adv, cls, torch.zeros_like(adv), y, a, aux_fake, k).sum()

            public_grad = self.private.public_gradient(fake_loss_of_one, fake.detach(), y_fake, self.batch_size)
            with torch.no_grad():
                loss_fake = self._d_loss(fake.detach(), target, y_fake).sum() / self.batch_size
        else:
            loss_fake = self._d_loss(fake.detach(), target, y_fake).sum() / self.batch_size
            loss_fake.backward()
            public_grad = {k: p.grad for k, p in self.private.trainable()}
        self.private.step(private_grad, public_grad)
        return {"loss_d": loss_fake.item(), "aux_d": float("nan")}

    def _generator_step(self, fake: torch.Tensor, y_fake: torch.Tensor) -> dict[str, float]:
        """G update through D's current weights (D frozen)."""
        import torch
        import torch.nn.functional as F

        trainable = [p for p in self.D.parameters() if p.requires_grad]
        for p in trainable:
            p.requires_grad_(False)
        try:
            self.opt_G.zero_grad(set_to_none=True)
            adv_f, cls_f, *twin = self._forward_d(self._augment(fake, real=False), y_fake, twin=self.arch.twin)
            if self.config.clean_class_head:
                cls_f = self._forward_d(fake, y_fake)[1]
            aux = aux_loss(cls_f, y_fake, self.arch.n_classes, "mean")
            # TAC-GAN: the real VUs' class posterior matched, not maximised
            term = aux - self._twin_loss(twin[0], y_fake) if twin else aux
            loss_g = F.binary_cross_entropy_with_logits(adv_f, torch.ones_like(adv_f)) + self.arch.aux_weight * term
            if self.config.mode_seeking:
                loss_g = loss_g + self.config.mode_seeking * mode_seeking_term(fake, self.last_z)
            loss_g.backward()
            self.opt_G.step()
        finally:
            for p in trainable:
                p.requires_grad_(True)
        return {"loss_g": loss_g.item(), "aux_g": aux.item()}

    def _clean_class_logits(
        self, real: torch.Tensor, y_real: torch.Tensor, fake: torch.Tensor, y_fake: torch.Tensor, cls: torch.Tensor
    ) -> torch.Tensor:
        """D's class logits of the un-augmented VUs (``--clean-class-head``), in ``cls``'s row order; the generated
        rows only where D's class loss counts them (``aux_fake``), else ``cls``'s, which the loss ignores."""
        import torch

        if self.arch.aux_fake:
            return self._forward_d(torch.cat([real, fake]), torch.cat([y_real, y_fake]))[1]
        return torch.cat([self._forward_d(real, y_real)[1], cls[len(real):]]) if len(real) else cls

    def _augment(self, x: torch.Tensor, real: bool | None = None, gen: torch.Generator | None = None) -> torch.Tensor:
        """``x`` through the run's DiffAugment policy (unchanged without one); the same for real and generated.

        Under torchrun ``real`` says what ``x`` holds of the global batch (True: this process's real rows, then
        its generated rows; False: its generated rows), so that the transforms of the whole global batch are
        drawn and each process keeps its rows': N processes augment as one would. ``gen``: the random source of
        the transforms (default the run's augmentation stream; under DP, real VUs draw from the mechanism's,
        :meth:`_real_draws`)."""
        from synthvu_core.models.augment import Rows, augment, instance_noise

        if not self.augment_policy and not self.config.instance_noise:
            return x
        rows = None
        if self.dist is not None and real is not None:
            import torch

            b = self.batch_size
            rows = (Rows(self.real_total + b, torch.cat([self.real_rows, self.real_total + self.fake_rows])) if real
                    else Rows(b, self.fake_rows))
        if self.config.ada_target:  # each VU passes the whole policy with probability p (rows: one process)
            import torch

            keep = torch.rand(len(x), generator=gen or self.gen_augment).to(x.device) < float(self.ada[0])
            augmented = augment(x, self.augment_policy, gen or self.gen_augment, rows, self.config.translate)
            x = torch.where(keep[:, None, None, None], augmented, x)
        else:
            x = augment(x, self.augment_policy, gen or self.gen_augment, rows, self.config.translate)
        sigma = self.config.instance_noise
        return instance_noise(x, sigma, gen or self.gen_augment, rows) if sigma else x

    def _real_draws(self) -> torch.Generator:
        """The random source of the real VUs' mirroring, jitter and augmentation: the run's augmentation stream, or
        under DP the mechanism's (OS entropy). Their number depends on the private batch size, so under DP they must
        not move the stream the generated VUs' transforms are drawn from: those transforms shape the un-noised part
        of D's gradient, which is post-processing only while nothing private chooses them."""
        return self.private.generator if self.private is not None else self.gen_augment

    def _update_ema(self) -> None:
        import torch

        if self.G_ema is None:
            return
        decay = min(self.arch.ema, (1 + self.step_count) / (10 + self.step_count))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1.0 - decay)
            for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
                be.copy_(b)

    def step(self) -> dict[str, float]:
        """One D update and one G update; returns the losses (under DP, none computed on real VUs)."""
        import torch

        from synthvu_core.models.augment import affine_draw, affine_slices, mirror_draw, mirror_slices

        c = self.config
        idx, position = self._real_batch()
        flip = mirror_draw(len(idx), self._real_draws()) if c.mirror else None  # of the global batch
        theta = affine_draw(len(idx), self._real_draws(), c.rotate, c.rescale) if c.rotate or c.rescale else None
        if self.dist is not None:  # torchrun: every process draws the global batch and keeps its share
            self.real_total = len(idx)
            drawn = [d for d in (flip, theta) if d is not None]
            idx, self.real_rows, *rest = self.dist.shard(idx, torch.arange(len(idx)), *drawn)
            flip = rest.pop(0) if flip is not None else None
            theta = rest.pop(0) if theta is not None else None
        idx = idx.to(self.device)
        real = self.images[idx].float() / 127.5 - 1.0
        if flip is not None:  # before D's step, private or not: under DP inside the patient's clipped sum
            real = mirror_slices(real, flip)
        if theta is not None:
            real = affine_slices(real, theta)
        if self.arch.smooth:  # D sees real VUs through G's output filter (per VU: inside the clipped sum under DP)
            from synthvu_core.models.acgan import gaussian_blur

            real = gaussian_blur(real, self.arch.smooth)
        y_real = self.labels[idx]
        fake, y_fake = self._fake_batch()
        if self.private is not None:
            d = self._private_discriminator_step(real, y_real, position, fake, y_fake)
        else:
            d = self._discriminator_step(real, y_real, fake, y_fake)
        g = self._generator_step(fake, y_fake)
        self.step_count += 1
        self._update_ema()
        if self.step_count in self.snapshot_steps[:-1]:  # the ensemble's earlier members, as released
            self._stash()
        self.last = {**d, **g, "real": len(idx)}
        return self.last

    def log_row(self, seconds: float) -> dict[str, Any]:
        """The training log's row for the step just made (see :data:`LOG_COLUMNS`)."""
        last = self.last
        real = self.expected_vus if self.private is not None else last.get("real", 0)  # the sampled count stays private
        eps = self.epsilon()
        return {
            "step": self.step_count,
            "epoch": round(self.step_count / self.steps_per_epoch, 4),
            "loss_d": last.get("loss_d"),
            "loss_g": last.get("loss_g"),
            "aux_d": last.get("aux_d"),
            "aux_g": last.get("aux_g"),
            "vus_per_s": round((real + self.batch_size) / seconds, 1) if seconds > 0 else None,
            "epsilon": None if eps is None else round(eps, 4),
        }

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator that is saved and sampled (the moving average where there is one)."""
        return self.G_ema if self.G_ema is not None else self.G

    # ---- checkpoints -----------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / TRAINING_DIR / CHECKPOINT_DIR

    def _identity(self) -> dict[str, Any]:
        c = self.config
        return {
            "dataset": self.dataset.fingerprint,
            "arch": self.arch.to_dict(),
            "scheme": c.scheme,
            "classes": self.classes,
            "batch_size": self.batch_size,
            "seed": c.seed,
            "init_from": None if self.init_card is None else self.init_card.get("name"),
            "noise_multiplier": self.noise_multiplier,
            "dp": None
            if c.dp is None
            else {k: v for k, v in c.dp.to_dict().items() if k != "tuning"},
            "delta": self.delta,
            **({"augment": list(self.augment_policy)} if self.augment_policy else {}),  # older checkpoints: none
            **({"translate": c.translate} if c.translate != TRANSLATION_RATIO else {}),
            **({"sources": self.sources} if self.sources else {}),
            **({"balance_classes": True} if self.config.balance_classes else {}),
            **({"balance_sources": True} if self.config.balance_sources else {}),
            **({"freeze_d": self.config.freeze_d} if self.config.freeze_d else {}),
            **({"freeze_class_modulation": True} if self.config.freeze_class_modulation else {}),
            **({"lecam": self.config.lecam} if self.config.lecam else {}),
            **({"mode_seeking": self.config.mode_seeking} if self.config.mode_seeking else {}),
            **({"mirror": True} if self.config.mirror else {}),
            **({"rotate": self.config.rotate} if self.config.rotate else {}),
            **({"rescale": self.config.rescale} if self.config.rescale else {}),
            **({"clean_class_head": True} if self.config.clean_class_head else {}),
            **({"r1": self.config.r1} if self.config.r1 else {}),
            **({"instance_noise": self.config.instance_noise} if self.config.instance_noise else {}),
            **({"ada_target": self.config.ada_target} if self.config.ada_target else {}),
            **({"d_lr": self.config.d_lr} if self.config.d_lr is not None else {}),
            **({"speed": sorted(self.speed.asked)} if self.speed.asked else {}),  # a resume keeps the same step
        }

    def _checkpointed(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The modules (by prefix) and optimizers (by name) a checkpoint holds."""
        return {"G.": self.G, "D.": self.D_module, "G_ema.": self.G_ema}, {"opt_G": self.opt_G, "opt_D": self.opt_D}

    def save_checkpoint(self) -> Path:
        from synthvu_core.models import checkpoint

        tensors = {"rng.data": self.gen_data.get_state(), "rng.noise": self.gen_noise.get_state(),
                   "rng.augment": self.gen_augment.get_state()}
        if self.private is not None:  # the mechanism's state: this checkpoint must stay as private as the data
            tensors["rng.private"] = self.private.generator.get_state()
        tensors.update({"perm": self.perm, "lecam.avg": self.lecam_avg.cpu(), "ada": self.ada.clone()})
        for step, state in self.snapshots.items():
            tensors.update({f"{SNAPSHOT_PREFIX}{step}.{k}": v for k, v in state.items()})
        history = [list(h) for h in self.accountant.history] if self.accountant is not None else None
        self.write_log()
        return checkpoint.save(self, tensors, cursor=self.cursor, accountant=history)

    def load_checkpoint(self) -> bool:
        """Restore the last checkpoint; False where there is none."""
        import torch

        from synthvu_core.models import checkpoint

        found = checkpoint.restore(self)
        if found is None:
            return False
        meta, tensors = found
        self.speed.match_layout(self.opt_G, self.opt_D)
        self.gen_data.set_state(tensors["rng.data"])
        self.gen_noise.set_state(tensors["rng.noise"])
        if "rng.augment" in tensors:
            self.gen_augment.set_state(tensors["rng.augment"])
        if self.private is not None:
            self.private.generator.set_state(tensors["rng.private"])
        self.perm = tensors["perm"].to(torch.int64)
        if "ada" in tensors:  # checkpoints from before --ada-target: zeros (their runs did not use it)
            self.ada = tensors["ada"].to(torch.float64).clone()
        if "lecam.avg" in tensors:  # checkpoints from before --lecam: zeros (their runs did not use it)
            self.lecam_avg = tensors["lecam.avg"].to(self.device, torch.float32)
        self.cursor = int(meta["cursor"])
        if self.accountant is not None:
            self.accountant.history = [tuple(h) for h in meta["accountant"] or []]
        self.log_rows = [r for r in read_log(self.log_path) if int(r["step"]) <= self.step_count]
        self.snapshots = {k: v for k, v in unpack_snapshots(tensors, self.device).items() if k in self.snapshot_steps}
        self._check_snapshots()
        return True

    # ---- training log -------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.out_dir / TRAINING_DIR / LOG_FILE

    def write_log(self) -> Path:
        """Write every row so far to ``training/log.csv`` (atomically; rows past a resumed checkpoint are gone)."""
        import csv
        import io

        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.log_rows:
            writer.writerow({k: "" if row.get(k) is None or row.get(k) != row.get(k) else row[k] for k in LOG_COLUMNS})
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.log_path) as tmp:
            tmp.write_text(buf.getvalue())
        return self.log_path

    # ---- montages ---------------------------------------------------------------------------
    def save_montage(self) -> Path:
        """PNG: one row per class (at most 12, labelled with the class), 8 samples each, middle slice; fixed noise."""
        import torch

        from synthvu_core.models.sampling import montage_image

        k = min(len(self.classes), 12)
        g = torch.Generator().manual_seed(self.config.seed + 12345)
        z = torch.randn(k * 8, self.arch.latent_dim, generator=g).to(self.device)
        y = torch.arange(k).repeat_interleave(8).to(self.device)
        gen = self.sampler
        was_training = gen.training
        gen.eval()
        with torch.no_grad():
            imgs = gen(z, y).float().cpu().numpy()
        gen.train(was_training)
        c = imgs.shape[1]
        mid = imgs[:, c // 2]  # [k*8, H, W]
        grid = mid.reshape(k, 8, *mid.shape[1:])
        path = self.out_dir / TRAINING_DIR / f"montage_step{self.step_count:07d}.png"
        with atomic_path(path) as tmp:
            montage_image(grid, self.classes[:k]).save(tmp, format="PNG")
        return path

    # ---- outputs -----------------------------------------------------------------------------
    def card(self) -> dict[str, Any]:
        from synthvu_core.data.build import card_dataset

        c, ds = self.config, self.dataset
        dataset = card_dataset(ds, self.n_train)  # with the folder as given to `train`: `evaluate` reads it
        dp = self.dp_card() if c.private else None
        from synthvu_core.models import priors

        prior = getattr(self, "init_folder", None)
        public = {"public_data": priors.card_block()} if priors.is_public(ds, self.init_card, prior) else {}
        return {
            "name": c.name or self.out_dir.name,
            "architecture": self.arch.to_dict(),
            "scheme": c.scheme,
            "classes": self.classes,
            "class_prior": self.class_prior,
            **({"sources": self.sources} if self.sources else {}),
            "shape": list(ds.shape),
            "latent_dim": self.arch.latent_dim,
            "dataset": dataset,
            "training": {
                "epochs": self.step_count / self.steps_per_epoch,
                "steps": self.step_count,
                "batch_size": self.batch_size,
                "lr": self.arch.lr,
                **({"d_lr": c.d_lr} if c.d_lr is not None else {}),
                "seed": c.seed,
                "command": c.command or " ".join(shlex.quote(a) for a in sys.argv),
                "seconds": round(self.seconds, 2),
                "device": str(self.device),
                "numerics": self._numerics(),
                "weights_dtype": c.weights_dtype,
                "final_losses": {k: v for k, v in self.last.items() if k.startswith("loss")},
                "generator_weights": self._weights_text(),
                **({"snapshot_steps": self.snapshot_steps} if len(self.snapshot_steps) > 1 else {}),
                "init_from": self._init_summary(),
                "augment": ",".join(self.augment_policy) or "none",
                **({"translate": c.translate} if "translation" in self.augment_policy else {}),
                "balance_classes": bool(c.balance_classes),
                **({"balance_sources": True} if c.balance_sources else {}),
                **({"freeze_d": c.freeze_d} if c.freeze_d else {}),
                **({"freeze_class_modulation": True} if c.freeze_class_modulation else {}),
                **({"lecam": c.lecam} if c.lecam else {}),
                **({"mode_seeking": c.mode_seeking} if c.mode_seeking else {}),
                "mirror": bool(c.mirror),
                **({"rotate": c.rotate} if c.rotate else {}),
                **({"rescale": c.rescale} if c.rescale else {}),
                **({"clean_class_head": True} if c.clean_class_head else {}),
                **({"r1": c.r1} if c.r1 else {}),
                **({"instance_noise": c.instance_noise} if c.instance_noise else {}),
                **({"ada": self._ada_card()} if c.ada_target else {}),
                **({"speed": self.speed.card()} if self.speed.asked else {}),
                "log": f"{TRAINING_DIR}/{LOG_FILE}",
            },
            "dp": dp,
            "discriminator": {"kept": bool(c.keep_discriminator), "private": True},
            **public,
            "code_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def dp_card(self) -> dict[str, Any]:
        """The card's ``dp`` block: the privacy unit, what was spent, and how."""
        dp = self.config.dp
        return {
            "unit": UNIT,
            "epsilon": self.epsilon(),
            "delta": self.delta,
            "n_patients": self.n_patients,
            "steps": self.step_count,
            "sample_rate": self.sample_rate,
            "expected_patients_per_step": self.sample_rate * self.n_patients,
            "vus_per_patient": dp.vus_per_patient,
            "noise_multiplier": self.noise_multiplier,
            "clip_norm": float(dp.clip_norm),
            "accountant": dp.accountant,
            "target_epsilon": dp.target_epsilon,
            "sampling": "poisson over patients",
            "noise_source": "os entropy",
            "private_module": "discriminator",
            "neighbouring": NEIGHBOURING,
            "tuning": dp.tuning,
            "classes": "given (--classes)" if self.config.classes is not None else "the scheme's whole vocabulary",
            "class_prior": "uniform (no count of private VUs)",
            **({"sources": "given in advance (public vocabulary); drawn uniformly (no count of private VUs)"}
               if self.sources else {}),
            "checkpoint": (
                "private material: it holds the mechanism's random state and D's optimizer; `share` never includes it"
                if self.config.keep_checkpoint and self.config.keep_discriminator
                else "removed"
            ),
            "private_layers": dp.private_layers,
            "generated_gradients": "clipped per VU at the clip norm" if dp.clip_generated else "not clipped",
        }

    def _ada_card(self) -> dict[str, float]:
        """--ada-target in the card: the target, the augmentation probability at the end and its mean over the run."""
        p, mean = float(self.ada[0]), float(self.ada[3]) / max(self.step_count, 1)
        return {"target": self.config.ada_target, "p_final": round(p, 4), "p_mean": round(mean, 4)}

    def _init_summary(self) -> dict[str, Any] | None:
        """Where the weights started (a generator pretrained on other, e.g. public, data)."""
        if self.init_card is None:
            return None
        ds = self.init_card.get("dataset", {})
        return {
            "name": self.init_card.get("name"),
            "dataset": ds.get("fingerprint"),
            "recipe": (ds.get("recipe") or {}).get("name"),
            "dp": self.init_card.get("dp") is not None,
            "classes": {c: self.init_card["classes"][i] for c, i in zip(self.classes, self.class_source)},
        }

    def _numerics(self) -> dict[str, Any]:
        """What a bit-for-bit rerun of this card's command also needs: the same torch, CPU kernels and threads (a
        600-step GAN run amplifies another machine's rounding into other weights; docs/real-data.md)."""
        import torch

        from synthvu_core.machine import cpu_model

        out: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        if self.device.type == "cpu":  # two CPUs of one kernel level may still round otherwise (docs/real-data.md)
            out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
            out["cpu"] = cpu_model()
        return out

    def _weights_text(self) -> str:
        """What ``generator.safetensors`` holds, in the card's words."""
        one = "moving average" if self.G_ema is not None else "last"
        if len(self.snapshot_steps) == 1:
            return one
        steps = ", ".join(map(str, self.snapshot_steps))
        return f"snapshot ensemble: the {one} G of steps {steps}, each VU drawn from one"

    def _stash(self) -> None:
        """Keep the released G of this step as a member of the snapshot ensemble."""
        self.snapshots[self.step_count] = {k: v.detach().clone() for k, v in self.sampler.state_dict().items()}

    def _check_snapshots(self) -> None:
        """After a resume: take the current G as the snapshot of this step where the ensemble wants it, and refuse
        a run whose earlier snapshots the checkpoint does not hold (it was made for another ``--steps``)."""
        if self.step_count in self.snapshot_steps[:-1] and self.step_count not in self.snapshots:
            self._stash()
        if len(self.snapshot_steps) > 1 and self.step_count > self.total_steps:
            raise SelectionError(
                f"{self.checkpoint_dir}: the checkpoint is at step {self.step_count}, past this run's "
                f"{self.total_steps} steps, so its snapshot ensemble cannot be made; rerun without --resume, or with "
                "--snapshots 1"
            )
        missing = [s for s in self.snapshot_steps[:-1] if s < self.step_count and s not in self.snapshots]
        if missing:
            raise SelectionError(
                f"{self.checkpoint_dir}: this run's snapshot ensemble needs G at steps {', '.join(map(str, missing))}, "
                f"which the checkpoint (step {self.step_count}) does not hold (it was made for another --steps); "
                "rerun without --resume, or with --snapshots 1"
            )

    def released_state(self) -> dict[str, Any]:
        """The tensors of ``generator.safetensors``: the moving-average G, or the snapshot ensemble's members."""
        final = self.sampler.state_dict()
        if len(self.snapshot_steps) == 1:
            return final
        state = {}
        for i, step in enumerate(self.snapshot_steps):
            member = final if step == self.step_count else self.snapshots.get(step)
            if member is None:
                raise RuntimeError(f"snapshot of step {step} missing ({self.snapshot_steps}, now {self.step_count})")
            # cloned: a run too short for k distinct steps repeats a member, and saved tensors may not share memory
            state.update({f"members.{i}.{k}": v.clone() for k, v in member.items()})
        return state

    def finish(self) -> Path:
        import shutil

        from synthvu_core.models.registry import CARD_FILE, DISCRIMINATOR_FILE, GENERATOR_FILE, check_card, save_weights

        c = self.config
        save_weights(self.released_state(), self.out_dir / GENERATOR_FILE, c.weights_dtype)
        if c.keep_discriminator:
            save_weights(self.D_module.state_dict(), self.out_dir / DISCRIMINATOR_FILE, c.weights_dtype)
        else:
            (self.out_dir / DISCRIMINATOR_FILE).unlink(missing_ok=True)
        self.write_log()
        card = self.card()
        card["privacy_ledger"] = record_run(self.dataset, card)
        check_card(card)
        if "public_data" in card:
            from synthvu_core.models.priors import MANIFEST_FILE, manifest

            write_json(self.out_dir / MANIFEST_FILE, manifest(self.dataset, getattr(self, "init_folder", None)))
        write_json(self.out_dir / CARD_FILE, card)
        if not c.keep_checkpoint or not c.keep_discriminator:  # the checkpoint holds D and its optimizer
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
        return self.out_dir


def record_run(dataset: VUDataset, card: dict[str, Any]) -> dict[str, Any]:
    """Append this run to the dataset's privacy ledger; the card's ``privacy_ledger`` block (composed epsilon)."""
    from synthvu_core.models import ledger
    from synthvu_core.models.dp import default_delta

    entry = ledger.run_entry(card)
    path = ledger.ledger_path(dataset)
    entries = ledger.record(dataset, entry) or [entry]
    dp = card.get("dp") or {}
    delta = dp.get("delta") or default_delta(max(1, len(dataset.patients("train"))))
    return ledger.card_block(entries, delta, path)


def train(dataset: VUDataset, out_dir: str | Path, config: TrainConfig | None = None, progress: bool = True) -> Path:
    """Train a generator on ``dataset``'s train split; write the generator folder ``out_dir``.

    Ctrl-C saves a checkpoint and re-raises ``KeyboardInterrupt``; ``config.resume`` continues from it.
    """
    from synthvu_core.models import ledger
    from synthvu_core.models.loop import run_steps
    from synthvu_core.models.registry import CARD_FILE, set_aside_outputs

    config = config or TrainConfig()
    out_dir = Path(out_dir)
    from synthvu_core.models import distributed

    dist_ctx = distributed.setup(config.device)  # torchrun: join the group first (None for one process)
    ledger.check_readable(dataset)  # before any work: the run is recorded there at its end
    trainer = Trainer(dataset, out_dir, config)
    distributed.attach(trainer, dist_ctx)
    progress = progress and (dist_ctx is None or dist_ctx.is_main)
    resumed = config.resume and trainer.load_checkpoint()
    if not resumed:
        (out_dir / CARD_FILE).unlink(missing_ok=True)  # a folder being trained afresh is not a generator yet
        set_aside_outputs(out_dir)  # the old report and montages describe other weights
    montage_every = config.checkpoint_every if config.montage_every is None else config.montage_every

    def on_step(dt: float, losses: dict[str, float]) -> dict[str, str]:
        trainer.log_rows.append(trainer.log_row(dt))
        if trainer.step_count % LOG_EVERY == 0:
            trainer.write_log()
        return {"VU/s": f"{trainer.log_rows[-1]['vus_per_s']:.0f}", "D": f"{losses['loss_d']:.3f}",
                "G": f"{losses['loss_g']:.3f}"}

    def show_epsilon(bar: Any, post: dict[str, str]) -> None:
        if trainer.accountant is not None:
            bar.set_postfix({**post, "eps": f"{trainer.epsilon():.2f}"}, refresh=False)

    return run_steps(trainer, progress=progress, checkpoint_every=config.checkpoint_every,
                     montage_every=montage_every, on_step=on_step, after_checkpoint=show_epsilon)


def read_log(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``training/log.csv`` ([] where there is none)."""
    import csv

    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
