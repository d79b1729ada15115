"""CLI subcommands of this area: ``train``, ``sample``, ``models list``, ``models show``.

Only argparse is imported at module level; torch and the rest load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a conditional generator (AC-GAN, optionally DP-SGD) on a VU dataset")
    t.add_argument("--dataset", required=True, help="VU dataset folder (from `data build`), or `demo` for the phantom demo dataset")
    t.add_argument("--out", required=True, help="generator folder to write")
    t.add_argument("--split", default=None, metavar="TRAIN,HOLDOUT,REFERENCE",
                   help="train on another patient-wise split of the same VUs (e.g. 0.05,0.475,0.475 for few patients)")
    t.add_argument("--split-seed", type=int, default=0, help="seed of --split (default: %(default)s)")
    t.add_argument("--arch", choices=["default", "pgan", "diffusion"], default="default",
                   help="architecture (pgan = the published study's; diffusion = latent diffusion, docs/diffusion.md)")
    t.add_argument("--scheme", choices=["region", "level"], default="region", help="conditioning scheme")
    t.add_argument("--epochs", type=float, default=None, help="epochs over the train split (default 25)")
    t.add_argument("--steps", type=int, default=None, help="total steps (wins over --epochs)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate, both networks (default: the architecture's)")
    t.add_argument("--width", type=int, default=None, help="generator width n (default: the architecture's)")
    t.add_argument("--d-width", type=int, default=None, help="discriminator width (default: the architecture's)")
    t.add_argument("--conditioning", choices=["input", "modulate"], default=None,
                   help="how G receives the class: one-hot at the input only (pgan), or also a class-wise scale and shift at "
                        "every stage (default's)")
    t.add_argument("--class-loss", choices=["real", "all"], default=None,
                   help="which VUs train D's class head: real only (default's) or real and generated (pgan)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    t.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints and montages")
    t.add_argument("--resume", action="store_true", help="continue from the folder's last checkpoint")
    dp = t.add_argument_group("differential privacy (DP-SGD on the discriminator)")
    dp.add_argument("--target-epsilon", type=float, default=None, help="privacy budget epsilon; sets the noise")
    dp.add_argument("--delta", type=float, default=None, help="delta (default 1/N_train)")
    dp.add_argument("--noise-multiplier", type=float, default=None, help="fixed noise multiplier instead of a target epsilon")
    dp.add_argument("--max-grad-norm", type=float, default=1.0, help="per-sample gradient clipping norm")
    dp.add_argument("--accountant", choices=["rdp", "prv"], default="rdp")
    df = t.add_argument_group("latent diffusion (--arch diffusion)")
    df.add_argument("--autoencoder-epochs", type=float, default=None, help="epochs of the VU autoencoder before the diffusion model (default 10)")
    df.add_argument("--autoencoder-steps", type=int, default=None, help="autoencoder steps (wins over --autoencoder-epochs)")
    df.add_argument("--sampling-steps", type=int, default=None, help="default number of flow steps when sampling (default 8)")
    df.add_argument("--guidance", type=float, default=None, help="default classifier-free guidance scale (default 1.5)")
    t.add_argument("--no-discriminator", action="store_true", help="do not keep the discriminator (nor the checkpoint)")
    t.add_argument("--drop-checkpoint", action="store_true", help="remove the resumable checkpoint when done")
    t.add_argument("--fp32", action="store_true", help="store final weights as float32 (default float16)")
    t.add_argument("--name", default=None, help="generator name in the card (default: folder name)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    s = sub.add_parser("sample", help="sample synthetic VUs from a generator and export them")
    s.add_argument("model", help="generator folder or registered name")
    s.add_argument("--position", default=None, help="region (L) or VU name (L4/L5); default: the training prior")
    s.add_argument("--n", type=int, default=100)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--device", default="cpu")
    s.add_argument("--guidance", type=float, default=None, help="diffusion generators: classifier-free guidance scale (default: the card's)")
    s.add_argument("--sampling-steps", type=int, default=None, help="diffusion generators: flow steps (default: the card's)")
    s.add_argument("--out", required=True, help="output file: .npz, .nii.gz or .png")
    s.set_defaults(func=_sample)

    m = sub.add_parser("models", help="list or show generators")
    msub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = msub.add_parser("list", help="shipped generators and those in $SYNTHVU_MODELS")
    ml.add_argument("--json", action="store_true")
    ml.add_argument("--dir", action="append", default=None, help="another folder of generators (repeatable)")
    ml.set_defaults(func=_models_list)
    ms = msub.add_parser("show", help="a generator's card")
    ms.add_argument("model", help="generator folder or registered name")
    ms.add_argument("--json", action="store_true")
    ms.set_defaults(func=_models_show)


def _train(args: argparse.Namespace) -> int:
    from synthvu_core.data.dataset import VUDataset
    from synthvu_core.models.training import TrainConfig, train

    if args.arch == "diffusion":
        from synthvu_core.models.diffusion_training import train_command

        return train_command(args, _command_line(args))

    config = TrainConfig(
        arch=args.arch,
        scheme=args.scheme,
        epochs=args.epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        width=args.width,
        d_width=args.d_width,
        g_cond=args.conditioning,
        aux_fake=None if args.class_loss is None else args.class_loss == "all",
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        target_epsilon=args.target_epsilon,
        delta=args.delta,
        noise_multiplier=args.noise_multiplier,
        max_grad_norm=args.max_grad_norm,
        accountant=args.accountant,
        keep_discriminator=not args.no_discriminator,
        keep_checkpoint=not args.drop_checkpoint,
        weights_dtype="float32" if args.fp32 else "float16",
        name=args.name,
        command=_command_line(args),
    )
    if args.dataset == "demo" and not Path(args.dataset).exists():
        from synthvu_core.data.build import demo_dataset

        dataset = demo_dataset(progress=not args.quiet)  # the phantom demo, built into the cache on first use
    else:
        dataset = VUDataset.load(args.dataset)
    if args.split:
        from synthvu_core.data.dataset import SplitConfig
        from synthvu_core.errors import SelectionError

        try:
            ratios = [float(v) for v in args.split.split(",")]
            if len(ratios) != 3:
                raise ValueError
        except ValueError:
            raise SelectionError(f"--split {args.split!r}: give three ratios TRAIN,HOLDOUT,REFERENCE") from None
        dataset = dataset.with_split(SplitConfig(*ratios, seed=args.split_seed))
    out = train(dataset, args.out, config, progress=not args.quiet)
    card = json.loads((out / "card.json").read_text())
    eps = (card.get("dp") or {}).get("epsilon")
    extra = f", epsilon {eps:.2f} at delta {card['dp']['delta']:.2g}" if eps is not None else ""
    print(f"wrote {out} ({card['training']['steps']} steps, {card['training']['seconds']:.0f} s{extra})")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The ``train`` command line that reproduces this run (every option spelled out)."""
    parts = ["python", "-m", "synthvu_core", "train"]
    for key, value in vars(args).items():
        if key in ("func", "command", "quiet") or value is None or value is False or (key == "split_seed" and not args.split):
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _sample(args: argparse.Namespace) -> int:
    from synthvu_core.models.registry import load_generator, resolve
    from synthvu_core.models.sampling import export, sample

    gen = load_generator(resolve(args.model), device=args.device)
    if args.guidance is not None or args.sampling_steps is not None:
        from synthvu_core.models.diffusion import set_sampling

        set_sampling(gen, steps=args.sampling_steps, guidance=args.guidance)
    samples = sample(gen, args.n, position=args.position, seed=args.seed, batch_size=args.batch_size)
    path = export(samples, args.out, gen.card)
    print(f"wrote {len(samples)} VUs to {path}")
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from synthvu_core.models.registry import list_generators

    infos = list_generators(args.dir)
    if args.json:
        print(json.dumps([i.summary() for i in infos], indent=2))
        return 0
    if not infos:
        print("no generators found (shipped models/ folder, $SYNTHVU_MODELS)")
        return 0
    print(f"{'name':<24} {'source':<8} {'arch':<8} {'scheme':<7} {'shape':<10} {'epsilon':<8} {'D':<2} report")
    for i in infos:
        s = i.summary()
        eps = "-" if s["epsilon"] is None else f"{s['epsilon']:.2f}"
        shape = "x".join(map(str, s["shape"]))
        print(f"{s['name']:<24} {s['source']:<8} {s['architecture']:<8} {s['scheme']:<7} {shape:<10} {eps:<8} {'y' if s['has_discriminator'] else 'n':<2} {'y' if s['has_report'] else 'n'}")
    return 0


def _models_show(args: argparse.Namespace) -> int:
    from synthvu_core.models.registry import load_card, resolve

    path = resolve(args.model)
    card = load_card(path)
    if args.json:
        print(json.dumps({"path": str(path), **card}, indent=2))
        return 0
    dp = card["dp"]
    tr = card["training"]
    lines = [
        f"{card['name']}  ({path})",
        f"  architecture  {card['architecture']['name']}  shape {'x'.join(map(str, card['shape']))}  latent {card['latent_dim']}",
        f"  scheme        {card['scheme']}: {', '.join(card['classes'])}",
        f"  dataset       {card['dataset']['fingerprint']}  ({card['dataset'].get('n_train', '?')} training VUs)",
        f"  training      {tr.get('steps')} steps, {tr.get('epochs', 0):.1f} epochs, batch {tr.get('batch_size')}, lr {tr.get('lr')}, seed {tr.get('seed')}, {tr.get('seconds', 0):.0f} s",
        "  privacy       " + ("no DP" if not dp else f"DP-SGD epsilon {dp['epsilon']:.2f} at delta {dp['delta']:.2g} (noise {dp['noise_multiplier']:.3f}, clip {dp['max_grad_norm']})"),
        *([f"  sampler       {tr['sampler']}, {tr.get('sampling_steps')} steps, guidance {tr.get('guidance')} (defaults; "
            "sample --sampling-steps/--guidance)"] if tr.get("sampler") else []),
        f"  discriminator {'kept (private: a released discriminator leaks membership)' if card['discriminator'].get('kept') else 'not kept'}",
        f"  command       {tr.get('command', '')}",
        f"  created       {card['created']}  (code {card['code_version']})",
    ]
    print("\n".join(lines))
    return 0
