"""CLI subcommands of this area: ``train``, ``sample``, ``share``, ``models list``, ``models show``, ``models card``.

Only argparse is imported at module level; torch and the rest load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthvu_core.models.architectures import ARCHITECTURE_NAMES, OPTION_DEFAULTS
from synthvu_core.names import CARD_FILE, REPORT_DIR, REPORT_FILE
from synthvu_core.records import epochs_text, epsilon_value

if TYPE_CHECKING:
    from synthvu_core.data.dataset import SplitConfig, VUDataset


def register(sub: argparse._SubParsersAction) -> None:
    """The generator commands: train, distill, sample, models, audit, share."""
    _add_train(sub)
    _add_distill(sub)
    _add_sample(sub)
    _add_models(sub)
    _add_audit(sub)
    _add_share(sub)


def _add_train(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a conditional generator (AC-GAN, optionally DP-SGD) on a VU dataset")
    _add_train_data(t)
    _add_train_run(t)
    _add_train_small_data(t)
    _add_train_views(t)
    _add_train_jitter(t)
    _add_train_augment(t)
    _add_train_private(t)
    _add_train_diffusion(t)
    t.add_argument("--no-discriminator", action="store_true", help="do not keep the discriminator (nor the checkpoint)")
    t.add_argument("--drop-checkpoint", action="store_true", help="remove the resumable checkpoint when done")
    t.add_argument("--fp32", action="store_true", help="store final weights as float32 (default float16)")
    t.add_argument("--name", default=None, help="generator name in the card (default: folder name)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)


def _add_train_data(t: argparse.ArgumentParser) -> None:
    """``train``: the data, the classes and the network."""
    t.add_argument(
        "--dataset", required=True, help="VU dataset folder (from `data build`), or `demo` for the phantom demo dataset"
    )
    t.add_argument("--out", required=True, help="generator folder to write")
    t.add_argument(
        "--split",
        default=None,
        metavar="TRAIN,HOLDOUT,REFERENCE",
        help="train on another patient-wise split of the same VUs (e.g. 0.05,0.475,0.475 for few patients)",
    )
    t.add_argument("--split-seed", type=int, default=0, help="seed of --split (default: %(default)s)")
    t.add_argument(
        "--arch",
        choices=ARCHITECTURE_NAMES,
        default="default",
        help="architecture (pgan = the published study's; diffusion = latent diffusion, docs/diffusion.md)",
    )
    t.add_argument("--scheme", choices=["region", "level"], default="region", help="conditioning scheme")
    t.add_argument(
        "--classes",
        default=None,
        metavar="A,B,...",
        help="class vocabulary (default: under DP the scheme's whole vocabulary, never the classes the private "
        "data hold; without DP the classes of the train split)",
    )
    t.add_argument("--epochs", type=float, default=None, help="epochs over the train split (default 25)")
    t.add_argument("--steps", type=int, default=None, help="total steps (wins over --epochs)")
    t.add_argument("--batch-size", type=int, default=32, help="real VUs per training step (default 32)")
    t.add_argument(
        "--lr", type=float, default=None, help="Adam learning rate, both networks (default: the architecture's)"
    )
    t.add_argument(
        "--d-lr", type=float, default=None, metavar="LR",
        help="Adam learning rate of the discriminator alone (two time-scale update rule, TTUR; default: --lr's)",
    )
    t.add_argument("--width", type=int, default=None, help="generator width n (default: the architecture's)")
    t.add_argument("--d-width", type=int, default=None, help="discriminator width (default: the architecture's)")
    t.add_argument(
        "--conditioning",
        choices=["input", "modulate"],
        default=None,
        help="how G receives the class: one-hot at the input only (pgan), or also a class-wise scale and shift at "
        "every stage (default's)",
    )
    t.add_argument(
        "--class-loss",
        choices=["real", "all"],
        default=None,
        help="which VUs train D's class head: real only (default's) or real and generated (pgan)",
    )


def _add_train_run(t: argparse.ArgumentParser) -> None:
    """``train``: seeds, device, speed, checkpoints and the starting point."""
    t.add_argument(
        "--seed", type=int, default=0,
        help="seed of weights, batches and noise: same seed, same generator on the same torch, CPU kernels and "
        "threads (the card's training.numerics; default 0)",
    )
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    t.add_argument(
        "--speed",
        default=None,
        metavar="SETTINGS",
        help="opt-in speed settings of the AC-GAN step, comma-separated: bf16 (autocast of G and D; losses float32), "
        "channels-last, fused-adam, compile (not under DP); default: none (the exact default step)",
    )
    t.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints and montages")
    t.add_argument("--resume", action="store_true", help="continue from the folder's last checkpoint")
    t.add_argument("--force", action="store_true",
                   help="write --out even where it exists and is not a generator folder (default: refuse)")
    t.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL",
        help="start from this generator folder or name (kept discriminator needed), e.g. one pretrained on public "
        "data (default on your own dataset: the shipped public prior acgan-phantom)",
    )
    t.add_argument(
        "--from-scratch",
        action="store_true",
        help="on your own dataset, start from random weights instead of the public prior acgan-phantom",
    )
    t.add_argument(
        "--freeze-class-modulation",
        action="store_true",
        default=None,
        help="keep the generator's per-class scale and shift as the prior gave them (each class's from the prior's "
        "class it starts from), so that classes the prior shares differ through the class input code and the "
        "convolutions; the source modulation still trains (needs a prior; default: off)",
    )


def _add_train_small_data(t: argparse.ArgumentParser) -> None:
    """``train``: conditioning on the source, and the remedies for training on little data."""
    t.add_argument(
        "--condition-source",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="condition the generator on each VU's source (the dataset's site column) as well as its position; "
        "then `sample --source NAME` (default: on for a fine-tune without DP on your own data with two or more "
        "sources, else off)",
    )
    t.add_argument(
        "--source-stages",
        type=int,
        default=None,
        metavar="N",
        help="with --condition-source, the source scales and shifts only the generator's last N hidden stages "
        "(contrast and texture), meant to let each level's coarse anatomy be learnt from every source's VUs "
        "(default: 0, every stage; or the prior's; measured on real lumbar MRI in docs/real-data.md)",
    )
    t.add_argument(
        "--split-projection",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --condition-source and --projection, D's projection embeds the class and the source apart "
        "(summed) instead of each (class, source) pair, so each level is judged from every source's VUs "
        "(default: off, or the prior's)",
    )
    t.add_argument(
        "--ordinal",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="treat the classes as ordered along the spine (evenly spaced in the run's class order): a trend shared "
        "by every level, zero at the start, is added to the generator's class modulation and, with --projection, "
        "the discriminator's projection, meant for levels with few VUs (default: off, or the prior's; measured on "
        "real lumbar MRI in docs/real-data.md)",
    )
    t.add_argument(
        "--balance-classes",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw real VUs with equal weight per class each step, generated classes uniformly (not under DP; "
        "default: on for a fine-tune without DP on your own dataset, else off)",
    )
    t.add_argument(
        "--freeze-d",
        type=int,
        default=None,
        metavar="N",
        help="keep the discriminator's first N stages as the prior gave them (FreezeD, for fine-tuning on little "
        "data; default: 2 for a fine-tune without DP on your own dataset where D has more than 2 stages (VUs of "
        "32 x 32 or more), else 0, train all of it)",
    )
    t.add_argument(
        "--lecam",
        type=float,
        default=None,
        metavar="W",
        help="weight of the LeCam regulariser of the discriminator (Tseng et al. 2021, GANs on little data; not "
        "under DP; default: 0, off)",
    )
    t.add_argument(
        "--mode-seeking",
        type=float,
        default=None,
        metavar="W",
        help="weight of the mode-seeking term of the generator (MSGAN, Mao et al. 2019: keeps a conditional "
        "generator from ignoring its noise; default: 0, off)",
    )
    t.add_argument(
        "--r1",
        type=float,
        default=None,
        metavar="GAMMA",
        help="weight of the R1 gradient penalty of the discriminator on real VUs (Mescheder et al. 2018; not under "
        "DP; default: 0, off)",
    )


def _add_train_jitter(t: argparse.ArgumentParser) -> None:
    """``train``: the real-only in-plane jitter of the real VUs the discriminator sees (as ``--mirror``)."""
    t.add_argument(
        "--rotate",
        type=float,
        default=None,
        metavar="DEG",
        help="rotate each real VU in-plane by up to DEG degrees (uniform, every slice alike) before the "
        "discriminator sees it, real VUs only as --mirror (default: 0, off); not under DP",
    )
    t.add_argument(
        "--rescale",
        type=float,
        default=None,
        metavar="FRAC",
        help="scale each real VU in-plane by 1 + U(-FRAC, FRAC) before the discriminator sees it, real VUs only "
        "(default: 0, off); not under DP",
    )


def _add_train_views(t: argparse.ArgumentParser) -> None:
    """``train``: what the discriminator sees (low-pass, augmentation, mirroring), its losses, and the release."""
    t.add_argument(
        "--smooth",
        type=float,
        default=None,
        metavar="SIGMA",
        help="G's output passes a fixed Gaussian low-pass of SIGMA pixels per slice, and the real VUs the "
        "discriminator sees pass it too (default: 0, none; or the prior's)",
    )
    t.add_argument(
        "--snapshots",
        type=int,
        default=None,
        metavar="K",
        help="release a snapshot ensemble: the moving-average generator of K steps evenly spaced over the second "
        "half of training, each VU drawn from one of them (default: 1, the last only; or the prior's)",
    )
    t.add_argument(
        "--ada-target",
        type=float,
        default=None,
        metavar="R",
        help="adaptive augmentation (ADA): each VU the discriminator sees passes --augment's policy (default "
        "color,translation,cutout) with a probability p, raised while E[sign(D's logit)] over the real VUs is "
        "above R and lowered while below (ADA's r_t; 0.6 in the paper; default: off); not under DP",
    )
    t.add_argument(
        "--instance-noise",
        type=float,
        default=None,
        metavar="SIGMA",
        help="standard deviation of Gaussian noise added to every VU the discriminator sees, real and generated "
        "(VUs in [-1, 1]; instance noise; default: 0, off)",
    )
    t.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reverse the slice order of each real VU with probability 1/2 (the same VU seen from the other side; "
        "default: on for a fine-tune without DP on your own dataset, else off)",
    )
    t.add_argument(
        "--aux-weight",
        type=float,
        default=None,
        help="weight of the class loss (default: 0.75 for a fine-tune without DP on your own dataset, else the "
        "architecture's or the prior's)",
    )
    t.add_argument(
        "--projection",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="D's real/fake logit also judges each VU against its class (and source): a projection "
        "discriminator, zero-initialised so a fine-tune may turn it on (default: on for a fine-tune without DP "
        "on your own dataset, else off or the prior's)",
    )
    t.add_argument(
        "--twin-classifier",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a twin class head of D learns the classes G was asked for from generated VUs, and G's class loss "
        "subtracts it (TAC-GAN), aiming at the real VUs' class posterior rather than each class's most recognisable "
        "VUs; not under DP. On real lumbar MRI it read lower than the default in 12 of 20 paired runs "
        "(docs/real-data.md). Default: off, or the prior's",
    )


def _add_train_augment(t: argparse.ArgumentParser) -> None:
    """``train``: DiffAugment's policy and the translation's size, and which of D's heads sees augmented VUs."""
    t.add_argument(
        "--augment",
        default=None,
        metavar="POLICY",
        help="DiffAugment before D on real and generated VUs: comma-separated color, translation, cutout, or none "
        "(default on your own dataset: color,translation,cutout from scratch or under DP, translation for a "
        "fine-tune without DP; elsewhere none)",
    )
    t.add_argument(
        "--translate",
        type=float,
        default=None,
        metavar="FRACTION",
        help="largest in-plane shift of --augment's translation, as a fraction of the VU's size (default: "
        "DiffAugment's 0.125; on the real lumbar MRI 0.0625 met the utility goal in more runs, 5 of 8 against 2, "
        "but drew the samples more to their training patients: docs/real-data.md)",
    )
    t.add_argument(
        "--clean-class-head",
        action="store_true",
        default=None,
        help="with --augment, only D's real/fake logit sees augmented VUs; the class losses of D and G read them "
        "as they are, without augmentation or instance noise (not under DP; default: off)",
    )


def _add_train_private(t: argparse.ArgumentParser) -> None:
    """``train``: patient-level differential privacy."""
    dp = t.add_argument_group("differential privacy (patient-level DP-SGD on the discriminator)")
    dp.add_argument(
        "--target-epsilon", type=float, default=None, help="privacy budget epsilon per patient; sets the noise"
    )
    dp.add_argument(
        "--delta", type=float, default=None, help="delta (default and largest allowed: min(1e-5, 1/(10 N_patients)))"
    )
    dp.add_argument(
        "--noise-multiplier", type=float, default=None, help="fixed noise multiplier instead of a target epsilon"
    )
    dp.add_argument(
        "--clip-norm", type=float, default=None,
        help=f"bound on each sampled patient's summed gradient (default {OPTION_DEFAULTS['clip_norm']:g})",
    )
    dp.add_argument(
        "--patients-per-step",
        type=float,
        default=None,
        help="expected patients per step (Poisson; default: as many as give --batch-size real VUs)",
    )
    dp.add_argument(
        "--vus-per-patient", type=int, default=None, help="at most this many VUs of a sampled patient per step"
    )
    dp.add_argument(
        "--accountant", choices=["rdp", "prv"], default=None, help="Opacus privacy accountant for ε (default rdp)"
    )
    dp.add_argument(
        "--private-layers",
        choices=["all", "heads"],
        default=None,
        help="train all of D privately (default), or only its output heads with the body kept as pretrained "
             "(needs --init-from; far less noise per parameter)",
    )
    dp.add_argument(
        "--no-clip-generated",
        dest="clip_generated",
        action="store_const",
        const=False,
        default=None,
        help="leave the gradient on generated VUs unclipped (default: clipped per VU at --clip-norm)",
    )
    dp.add_argument(
        "--tuning",
        choices=["public", "private"],
        default=None,
        help="where the hyper-parameters were chosen (default public): public data only, or the private data (each "
             "tuning run is a run in the dataset's privacy ledger)",
    )


def _add_train_diffusion(t: argparse.ArgumentParser) -> None:
    """``train --arch diffusion``: the autoencoder and sampling defaults."""
    df = t.add_argument_group("latent diffusion (--arch diffusion)")
    df.add_argument(
        "--autoencoder-epochs",
        type=float,
        default=None,
        help="epochs of the VU autoencoder before the diffusion model (default 10)",
    )
    df.add_argument(
        "--autoencoder-steps", type=int, default=None, help="autoencoder steps (wins over --autoencoder-epochs)"
    )
    df.add_argument(
        "--sampling-steps", type=int, default=None, help="default number of flow steps when sampling (default 8)"
    )
    df.add_argument("--guidance", type=float, default=None, help="default classifier-free guidance scale (default 1.5)")


def _add_distill(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser(
        "distill",
        help="train a few-step student of a diffusion generator from the teacher's own samples (reads no data; "
        "the teacher's privacy guarantee carries over)",
    )
    d.add_argument("teacher", help="diffusion generator folder or registered name")
    d.add_argument("--out", required=True, help="the student's generator folder")
    d.add_argument("--student-steps", type=int, default=2, help="flow steps the student samples with (default 2)")
    d.add_argument("--pairs", type=int, default=8192, help="teacher samples to learn from (default 8192)")
    d.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    d.add_argument("--batch-size", type=int, default=64, help="pairs per step (default 64)")
    d.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
    d.add_argument("--seed", type=int, default=0, help="seed of the pairs and the batches (default 0)")
    d.add_argument("--held-out", type=int, default=1024, help="fresh noises for the held-out error (default 1024)")
    d.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints (default 250)")
    d.add_argument("--resume", action="store_true", help="continue from the checkpoint in OUT/training/")
    d.add_argument("--force", action="store_true",
                   help="write --out even where it exists and is not a generator folder (default: refuse)")
    d.add_argument("--name", default=None, help="generator name in the card (default: folder name)")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_distill)


def _add_sample(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("sample", help="sample synthetic VUs from a generator and export them")
    s.add_argument("model", help="generator folder or registered name")
    s.add_argument("--position", default=None, help="region (L) or VU name (L4/L5); default: the training prior")
    s.add_argument(
        "--source",
        default=None,
        help="source of every sample (generators trained with --condition-source; default: drawn as in the data)",
    )
    s.add_argument("--n", type=int, default=100, help="how many VUs to sample (default 100)")
    s.add_argument("--seed", type=int, default=0, help="seed of positions and noise: same seed, same VUs (default 0)")
    s.add_argument(
        "--batch-size", type=int, default=256, help="VUs per forward pass; memory grows with it (default 256)"
    )
    s.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    s.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="diffusion generators: classifier-free guidance scale (default: the card's)",
    )
    s.add_argument(
        "--sampling-steps", type=int, default=None, help="diffusion generators: flow steps (default: the card's)"
    )
    s.add_argument("--out", required=True, help="output file: .npz (written as it is sampled), .nii.gz or .png")
    s.add_argument("--compress", action="store_true", help="deflate the .npz members (smaller, slower)")
    s.set_defaults(func=_sample)


def _add_models(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="list or show generators")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = msub.add_parser("list", help="shipped generators and those in $SYNTHVU_MODELS")
    ml.add_argument("--json", action="store_true", help="print the list as JSON")
    ml.add_argument("--dir", action="append", default=None, help="another folder of generators (repeatable)")
    ml.set_defaults(func=_models_list)
    ms = msub.add_parser("show", help="a generator's card")
    ms.add_argument("model", help="generator folder or registered name")
    ms.add_argument("--json", action="store_true", help="print the card as JSON")
    ms.set_defaults(func=_models_show)
    mc = msub.add_parser(
        "card", help="write a generator's human-readable model card (README.md) from card.json and its report"
    )
    mc.add_argument("model", nargs="?", default=None, help="generator folder or registered name")
    mc.add_argument("--all", action="store_true", help="every shipped generator (models/)")
    mc.add_argument("--out", default=None, help="file to write (default: MODEL/README.md; not with --all)")
    mc.set_defaults(func=_models_card)


def _add_audit(sub: argparse._SubParsersAction) -> None:
    au = sub.add_parser(
        "audit",
        help="empirical lower bound on a DP generator's epsilon: replay its recipe with canary patients "
        "(one training run, Steinke, Nasr & Jagielski 2023); writes MODEL/audit.json",
    )
    au.add_argument("model", help="DP generator folder or registered name (its recipe is replayed)")
    au.add_argument("--dataset", required=True, help="base cohort (public data; its train patients join the canaries)")
    au.add_argument("--canaries", type=int, default=200, help="canary patients, each included with probability 1/2")
    au.add_argument("--guesses", type=int, default=None, help="guesses on the extreme scores (default: canaries / 2)")
    au.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    au.add_argument("--confidence", type=float, default=0.95, help="confidence of the bound (default 0.95)")
    au.add_argument("--seed", type=int, default=0, help="seed of the canaries and of who is included")
    au.add_argument("--out", default=None, help="file to write (default: MODEL/audit.json)")
    au.add_argument("--quiet", action="store_true", help="no progress output")
    au.set_defaults(func=_audit)


def _add_share(sub: argparse._SubParsersAction) -> None:
    sh = sub.add_parser(
        "share", help="write what may leave: generator weights, cards and a public report with aggregates only"
    )
    sh.add_argument("model", help="generator folder or registered name")
    sh.add_argument("--out", required=True, help="folder to write (must not exist or be empty)")
    sh.add_argument(
        "--with-discriminator",
        action="store_true",
        help="include the discriminator (refused unless it was trained with DP)",
    )
    sh.set_defaults(func=_share)


def _train(args: argparse.Namespace) -> int:
    from synthvu_core.models.architectures import given_options, refuse_foreign
    from synthvu_core.models.registry import check_generator_out
    from synthvu_core.storage import check_writable, folder_lock

    refuse_foreign(args.arch, given_options(_options(args)))  # an option this architecture ignores: refused first

    check_writable(Path(args.out) / CARD_FILE, "generator folder")  # before any work
    check_generator_out(args.out, force=args.force)  # never over someone's folder
    with folder_lock(args.out, "train"):  # one writer per output folder
        return _train_locked(args)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """``train``'s options as a plain dict: the parser's own entries and ``--force`` (not a training option) left
    out."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "command", "force")}


def _train_locked(args: argparse.Namespace) -> int:
    from synthvu_core.data.dataset import VUDataset, design_warnings
    from synthvu_core.models.architectures import architecture
    from synthvu_core.models.train_config import build_config, trainer

    options = _options(args)  # no Namespace past here
    demo = args.dataset == "demo" and not Path(args.dataset).exists()
    dataset = None if demo else VUDataset.load(args.dataset)
    split = train_split(dataset, args.split, args.split_seed)
    config, filled, options = build_config(options, dataset, command=_command_line)  # validated before any work
    if getattr(config, "init_from", None) is not None:
        print(f"starting from {options['init_from']}" + (" (the public prior; --from-scratch to opt out)"
                                                          if "--init-from" in " ".join(filled) else ""))
    for note in filled:
        if note.startswith("from scratch"):
            print(f"training {note}")
    if demo:
        from synthvu_core.data.build import demo_dataset

        dataset = demo_dataset(progress=not args.quiet)  # the phantom demo, built into the cache on first use
    built = dataset.units  # `evaluate` reads the holdout of the dataset as built, whatever --split does here
    if split is not None:
        dataset = dataset.with_split(split)
    classes = getattr(config, "classes", None)  # the diffusion trainer takes every class
    if config.scheme == "level":
        for line in design_warnings(dataset.units, classes, holdout=built):
            print(line)
    out = trainer(architecture(args.arch).family).train(dataset, args.out, config, progress=not args.quiet)
    card = json.loads((out / CARD_FILE).read_text())
    print(f"wrote {out} ({_trained_text(card)})")
    return 0


def train_split(dataset: VUDataset | None, split: str | None, split_seed: int = 0) -> SplitConfig | None:
    """The patient-wise split ``train --split TRAIN,HOLDOUT,REFERENCE --split-seed N`` trains on, stratified as
    ``dataset`` was split (None, the demo: stratified); None where no ``split`` is given. :class:`DataError` (one
    line) where it is not three ratios. Shared by ``train`` and :func:`synthvu_core.train`."""
    from synthvu_core.data.dataset import SplitConfig

    if not split:
        return None
    stratify = dataset.split_config().stratify if dataset is not None else True  # as the dataset was split
    return SplitConfig.parse(split, split_seed, stratify=stratify)


def _distill(args: argparse.Namespace) -> int:
    from synthvu_core.models.distill import DistillConfig, distill
    from synthvu_core.models.registry import check_generator_out, resolve
    from synthvu_core.storage import check_writable, folder_lock

    teacher = resolve(args.teacher)
    config = DistillConfig(
        student_steps=args.student_steps, pairs=args.pairs, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, held_out=args.held_out, checkpoint_every=args.checkpoint_every, resume=args.resume,
        name=args.name,
        command=" ".join(shlex.quote(str(p)) for p in [
            "python", "-m", "synthvu_core", "distill", args.teacher, "--out", args.out, "--student-steps",
            args.student_steps, "--pairs", args.pairs, "--steps", args.steps, "--batch-size", args.batch_size,
            "--lr", args.lr, "--seed", args.seed, *(["--name", args.name] if args.name else [])]),
    )
    config.check()  # before any work
    check_writable(Path(args.out) / CARD_FILE, "generator folder")
    check_generator_out(args.out, force=args.force)
    with folder_lock(args.out, "distill"):
        out = distill(teacher, args.out, config, progress=not args.quiet)
    tr = json.loads((out / CARD_FILE).read_text())["training"]
    err = tr["held_out_latent_mse"]
    print(f"wrote {out} ({tr['steps']} steps, {tr['seconds']:.0f} s; held-out latent error {err['student']:.4f} "
          f"vs {err['teacher_at_k_steps']:.4f} for the teacher run with {args.student_steps} step(s))")
    return 0


def _trained_text(card: dict) -> str:
    """How long a finished run trained, and (AC-GAN) its privacy line."""
    tr = card["training"]
    if "diffusion_steps" in tr:
        return f"{tr['autoencoder_steps']} autoencoder + {tr['diffusion_steps']} diffusion steps, {tr['seconds']:.0f} s"
    return f"{tr['steps']} steps, {tr['seconds']:.0f} s; {privacy_text(card.get('dp'), card)}"


def _audit(args: argparse.Namespace) -> int:
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.audit import AUDIT_FILE, AuditConfig, run_audit, write_audit
    from synthvu_core.models.registry import load_card, resolve
    from synthvu_core.storage import check_writable

    folder = resolve(args.model)
    out = Path(args.out) if args.out else folder / AUDIT_FILE
    check_writable(out, "audit file")
    config = AuditConfig(canaries=args.canaries, guesses=args.guesses, confidence=args.confidence, seed=args.seed,
                         steps=args.steps)
    config.validate()
    result = run_audit(load_card(folder), VUDataset.load(args.dataset), config, progress=not args.quiet)
    write_audit(result, out)
    print(f"wrote {out}: empirical epsilon >= {result['epsilon_lower_bound']:.2f} at {result['confidence']:.0%} "
          f"confidence ({result['correct']} of {result['guesses']} guesses right on {result['canaries']} canaries), "
          f"claimed epsilon {result['claimed_epsilon']:.2f}")
    return 0


def _command_line(options: dict) -> str:
    """The ``train`` command line that reproduces this run (every option spelled out)."""
    parts = ["python", "-m", "synthvu_core", "train"]
    private = options.get("target_epsilon") is not None or options.get("noise_multiplier") is not None
    dp_only = ("clip_norm", "accountant", "tuning")
    for key, value in options.items():
        negatable = ("clip_generated", "condition_source", "projection", "mirror", "balance_classes", "twin_classifier",
                     "split_projection", "ordinal")
        if key in negatable and value is False:
            parts.append("--no-" + key.replace("_", "-"))
            continue
        if (
            key in ("func", "command", "quiet")
            or value is None
            or value is False
            or (key == "split_seed" and not options.get("split"))
        ):
            continue
        if key in dp_only and not private:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def privacy_text(dp: dict | None, card: dict | None = None) -> str:
    """One line naming the privacy unit, epsilon, delta, and (from ``card``) the dataset's composed epsilon."""
    from synthvu_core.models.ledger import composed_text

    composed = composed_text(card or {})
    if not dp:
        return "no differential privacy (ε = ∞)" + (f"; {composed}" if composed else "")
    unit = dp.get("unit", "vu")
    if unit != "patient":
        return (
            f"DP-SGD epsilon {epsilon_value(dp['epsilon'])} at delta {dp['delta']:.2g} per VU (not per patient: "
            "a patient with many VUs has a much weaker guarantee)"
        )
    return (
        f"patient-level DP: epsilon {epsilon_value(dp['epsilon'])} at delta {dp['delta']:.2g} over "
        f"{dp['n_patients']} patients, "
        f"{dp['steps']} steps at sample rate {dp['sample_rate']:.3g}, noise {dp['noise_multiplier']:.3f}, "
        f"clip {dp['clip_norm']:g}"
        + ("; D's heads only, body pretrained on public data" if dp.get("private_layers") == "heads" else "")
        + f"; tuning on {dp.get('tuning', 'public')} data (as declared with --tuning)"
        + (f"; {composed}" if composed else f"; {dp['private_runs']} private run(s) declared" if dp.get("private_runs")
           else "")
    )


def _sample(args: argparse.Namespace) -> int:
    from synthvu_core.models.registry import load_card, load_generator, resolve
    from synthvu_core.models.sampling import (
        collector_paused_then_frozen,
        keep_freed_memory,
        plan_export,
        position_weights,
        sample_to_file,
    )

    keep_freed_memory()
    folder = resolve(args.model)
    card = load_card(folder)
    # every check before the generator loads: count, batch size, suffix, folder, disk and memory, position
    plan_export(args.out, args.n, tuple(card["shape"]), list(card["classes"]), args.batch_size)
    position_weights(card, args.position)
    source = source_index(card, args.source, folder)
    with collector_paused_then_frozen():  # torch's import and the weights: walked by no collection
        from synthvu_core.models.training import resolve_device

        gen = load_generator(folder, device=resolve_device(args.device))
    gen.fixed_source = source
    if args.guidance is not None or args.sampling_steps is not None:
        from synthvu_core.models.diffusion import set_sampling

        set_sampling(gen, steps=args.sampling_steps, guidance=args.guidance)
    plan = sample_to_file(
        gen,
        args.n,
        args.out,
        position=args.position,
        seed=args.seed,
        batch_size=args.batch_size,
        compress=args.compress,
    )
    print(f"wrote {plan.n} VUs to {plan.path}")
    return 0


def source_index(card: dict, source: str | None, folder: Path) -> int | None:
    """Index of ``sample --source`` among the card's sources (None: not asked); refused where unknown."""
    from synthvu_core.errors import SelectionError

    if source is None:
        return None
    names = card.get("sources") or []
    if not names:
        raise SelectionError(f"{folder}: this generator is not conditioned on source (train with --condition-source)")
    if source not in names:
        raise SelectionError(f"--source {source!r} is not a source of this generator (sources: {', '.join(names)})")
    return names.index(source)


def _models_list(args: argparse.Namespace) -> int:
    from synthvu_core.models.registry import scan_generators

    infos, broken = scan_generators(args.dir)
    if args.json:
        rows = [i.summary() for i in infos]
        rows += [{"name": b.path.name, "path": str(b.path), "source": b.source, "broken": b.why} for b in broken]
        print(json.dumps(rows, indent=2))
        return 0
    if not infos:
        print("no generators found (shipped models/ folder, $SYNTHVU_MODELS)")
    else:
        from synthvu_core.models.ledger import also_cards_under

        with also_cards_under(args.dir or ()):  # the composed bound counts the listed folders' runs too
            _print_table(infos)
    for b in broken:  # one line each, after the usable generators
        print(f"{b.path.name:<24} {b.source:<8} broken: {b.why}")
    return 0


def _print_table(infos: list) -> None:
    import math

    from synthvu_core.models.ledger import composed_of

    print(f"{'name':<24} {'source':<8} {'arch':<8} {'scheme':<7} {'shape':<10} {'epsilon':<8} {'composed':<9} "
          f"{'D':<2} report")
    for i in infos:
        s = i.summary()
        eps = epsilon_value(s["epsilon"], none="-")
        found = composed_of(i.card) if i.card.get("dp") else None
        composed = "-" if found is None else epsilon_value(None if math.isinf(found[0]) else found[0])
        shape = "x".join(map(str, s["shape"]))
        report = _report_state(i.path) if s["has_report"] else "n"
        print(
            f"{s['name']:<24} {s['source']:<8} {s['architecture']:<8} {s['scheme']:<7} {shape:<10} {eps:<8} "
            f"{composed:<9} {'y' if s['has_discriminator'] else 'n':<2} {report}"
        )


def _models_card(args: argparse.Namespace) -> int:
    from synthvu_core import modelcard
    from synthvu_core.errors import SelectionError
    from synthvu_core.models.registry import SHIPPED_DIR, list_generators, resolve

    if args.all == (args.model is not None):
        raise SelectionError("models card: give MODEL or --all (not both)")
    if args.all and args.out:
        raise SelectionError("models card: --out writes one file; leave it out with --all")
    folders = [g.path for g in list_generators() if g.source == "shipped"] if args.all else [resolve(args.model)]
    if not folders:
        raise SelectionError(f"{SHIPPED_DIR}: no shipped generator to write a card for")
    for folder in folders:
        print(f"wrote {modelcard.write(folder, args.out)}")
    return 0


def _share(args: argparse.Namespace) -> int:
    from synthvu_core.models.registry import resolve
    from synthvu_core.share import share

    out = share(resolve(args.model), args.out, with_discriminator=args.with_discriminator)
    manifest = json.loads((out / "share.json").read_text())
    print(f"wrote {out}: {', '.join(manifest['included'])}")
    for part, why in manifest["absent"].items():
        print(f"  left out {part}: {why}")
    return 0


def _report_state(folder: Path) -> str:
    """``y``, or ``stale`` where the report does not record the sha256 of the folder's current weights."""
    from synthvu_core.errors import SynthVUError
    from synthvu_core.models.registry import report_staleness

    try:
        meta = json.loads((Path(folder) / REPORT_DIR / REPORT_FILE).read_text()).get("meta") or {}
        return "stale" if report_staleness(folder, meta) else "y"
    except (OSError, ValueError, AttributeError, SynthVUError):
        return "unreadable"


def _models_show(args: argparse.Namespace) -> int:
    from synthvu_core.models.registry import load_card, resolve
    from synthvu_core.records import Card

    path = resolve(args.model)
    raw = load_card(path)
    if args.json:
        print(json.dumps({"path": str(path), **raw}, indent=2))
        return 0
    card, tr = Card(raw), Card(raw).training
    sampler = (f"  sampler       {tr.get('sampler')}, {tr.get('sampling_steps')} steps, guidance {tr.get('guidance')} "
               "(defaults; sample --sampling-steps/--guidance)")
    kept = "kept (private: a released discriminator leaks membership)" if card.keeps_discriminator else "not kept"
    lines = [
        f"{card.name}  ({path})",
        f"  architecture  {card.architecture}  shape {card.shape_text}  latent {card.latent_dim}",
        f"  scheme        {card.scheme}: {', '.join(card.classes)}",
        f"  dataset       {card.fingerprint}  ({card.dataset.get('n_train', '?')} training VUs)",
        f"  training      {tr.get('steps')} steps, {epochs_text(tr.get('epochs'))} epochs, "
        f"batch {tr.get('batch_size')}, lr {tr.get('lr')}, seed {tr.get('seed')}, {tr.get('seconds', 0):.0f} s",
        "  privacy       " + privacy_text(card.dp, raw),
        *([sampler] if tr.get("sampler") else []),
        "  discriminator " + kept,
        f"  command       {tr.get('command', '')}",
        f"  created       {card.created}  (code {card.code_version})",
    ]
    print("\n".join(lines))
    return 0
