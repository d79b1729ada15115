"""Time to quality (``--long`` only): training minutes until a generator is usable on the demo dataset.

Usable = TSTR/TRTR ≥ ``quality.target`` (0.90) **and** every class's TRTS recall ≥ ``quality.recall`` (0.9),
as :func:`~synthvu_core.evaluation.utility.utility_scores` gives them. Checks along the way use one
classifier seed; the first passing check is redone with the evaluation's three seeds (mean and t-interval,
kept in the history) and counts only if the mean still passes. A fresh default generator and, as
reference, a fresh ``pgan`` generator train on the
default phantom dataset (``demo_dataset()``). Every ``quality.check_epochs`` epochs training pauses (the
pause is not counted), the saved sampler (the moving average where there is one) draws as many VUs as
the real train split with its label distribution, and the same real classifier scores them.

Time is counted two ways: wall seconds of the training steps, and the process's CPU seconds of those
steps (``time.process_time``). On a shared machine wall time depends on the neighbours; CPU time with
``quality.threads`` torch threads (default 1) does not, and is the number quoted (CPU minutes on one core
= the wall minutes an otherwise idle core would need).

A run that does not become usable within ``quality.max_minutes`` CPU minutes is reported with its best
check instead of a number. ``quality.variants`` names the configurations (``default``, ``pgan`` and the
tuned ones in :data:`VARIANTS`); each variant's history (steps, minutes, ratio, min TRTS recall) goes into
the JSON so a curve can be drawn.

Sizes: ``quality.check_epochs`` (2), ``quality.max_minutes`` (15), ``quality.target`` (0.90),
``quality.recall`` (0.9), ``quality.threads`` (1), ``quality.variants`` (["default", "pgan"]).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.cases import Context, Row, Stats, Unavailable

#: The problem-size keys this case reads (``--size KEY=JSON``); the runner refuses others.
SIZE_KEYS: tuple[str, ...] = (
    "quality.check_epochs", "quality.max_minutes", "quality.target", "quality.recall", "quality.threads",
    "quality.variants"
)

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {"arch": "default"},
    "pgan": {"arch": "pgan"},
    # config-only cuts of the default (TrainConfig fields)
    "default-b64-lr4e-4": {"arch": "default", "batch_size": 64, "lr": 4e-4},
    "default-lr4e-4": {"arch": "default", "lr": 4e-4},
}


def usable(scalars: dict[str, Any], min_recall: float | None, target: float, recall: float) -> bool:
    """The usability rule: TSTR/TRTR ≥ target and every class's TRTS recall ≥ recall."""
    ratio = scalars.get("utility.tstr_over_trtr")
    return ratio is not None and ratio >= target and min_recall is not None and min_recall >= recall


def _check(tr: Any, ds: Any, clfs: list[Any], gen: Any, seeds: tuple[int, ...]) -> dict[str, Any]:
    """TSTR/TRTR (mean and interval over ``seeds``) and the lowest per-class TRTS recall of the sampler now."""
    import numpy as np
    import torch

    from synthvu_core.evaluation.utility import utility_scores

    train_idx, hold_idx = ds.indices("train"), ds.indices("holdout")
    labels = ds.labels("region", tr.classes)
    n = len(train_idx)
    y = torch.multinomial(tr.prior, n, replacement=True, generator=gen)
    imgs = []
    with torch.inference_mode():
        for s in range(0, n, 256):
            z = torch.randn(min(256, n - s), tr.arch.latent_dim, generator=gen)
            imgs.append(tr.sampler(z, y[s : s + len(z)]).float().numpy())
    util = utility_scores(real_classifiers=clfs[: len(seeds)], train_labels=labels[train_idx],
                          holdout_images=ds.images[hold_idx], holdout_labels=labels[hold_idx],
                          synthetic_images=np.concatenate(imgs), synthetic_labels=y.numpy(),
                          n_classes=len(tr.classes), seeds=seeds)
    rec = np.array([r.recall for r in util.results["trts"]], dtype=float)
    scalars = util.scalars()[0]
    key = "utility.tstr_over_trtr"
    return {"tstr_over_trtr": scalars.get(key), "ci_low": scalars.get(f"{key}_ci_low"),
            "ci_high": scalars.get(f"{key}_ci_high"),
            "min_trts_recall": float(np.nanmin(np.nanmean(rec, 0))) if np.isfinite(rec).any() else None}


def minutes_to_quality(
    ds: Any, clfs: list[Any], variant: str, ctx: Context
) -> tuple[float | None, list[dict[str, Any]]]:
    """CPU minutes of training until usable (None if not within the limit) and the history of checks.

    Each check uses one classifier seed (cheap); the first check that passes is repeated with every seed
    of ``clfs`` and counts only if the mean still passes (its interval is kept in the history).
    """
    import torch

    from synthvu_core.models.training import ArchOverrides, TrainConfig, Trainer

    target = float(ctx.size("quality.target", 0.90, 0.90))
    recall = float(ctx.size("quality.recall", 0.9, 0.9))
    limit = 60.0 * float(ctx.size("quality.max_minutes", 15, 15))
    opts = dict(VARIANTS[variant])
    arch, lr = opts.pop("arch"), opts.pop("lr", None)
    tr = Trainer(ds, ctx.workdir / variant, TrainConfig(arch=arch, overrides=ArchOverrides(lr=lr), seed=ctx.seed,
                                                        device="cpu", steps=10**7, checkpoint_every=0,
                                                        montage_every=0, **opts))
    every = max(1, int(float(ctx.size("quality.check_epochs", 2, 2)) * tr.steps_per_epoch))
    cpu, wall, history = 0.0, 0.0, []
    g = torch.Generator().manual_seed(ctx.seed)
    seeds = tuple(range(len(clfs)))
    while cpu < limit:
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(every):
            tr.step()
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
        check = _check(tr, ds, clfs, g, seeds[:1])
        if usable({"utility.tstr_over_trtr": check["tstr_over_trtr"]}, check["min_trts_recall"], target, recall):
            check = _check(tr, ds, clfs, g, seeds)
        ok = usable({"utility.tstr_over_trtr": check["tstr_over_trtr"]}, check["min_trts_recall"], target, recall)
        history.append({"steps": tr.step_count, "cpu_minutes": cpu / 60, "wall_minutes": wall / 60, **check,
                        "seeds": len(seeds) if ok else 1, "usable": ok})
        ctx.log(f"{variant}: step {tr.step_count}, {cpu / 60:.1f} CPU min ({wall / 60:.1f} wall), "
                f"TSTR/TRTR {check['tstr_over_trtr']}, min TRTS recall {check['min_trts_recall']}")
        if ok:
            return cpu / 60, history
    return None, history


def run(ctx: Context) -> list[Row]:
    import torch

    try:
        from synthvu_core.data.build import demo_dataset
        from synthvu_core.evaluation.encoder import real_classifier
        from synthvu_core.models import training  # noqa: F401
    except ImportError as e:
        raise Unavailable(f"training, evaluation or demo dataset not importable ({e})") from e
    threads = int(ctx.size("quality.threads", 1, 1))
    torch.set_num_threads(threads)
    ds = demo_dataset()
    clfs = [real_classifier(ds, "region", ds.classes("region"), seed=s) for s in range(3)]
    variants = list(ctx.size("quality.variants", ["default", "pgan"], ["default", "pgan"]))
    results = {v: minutes_to_quality(ds, clfs, v, ctx) for v in variants}
    target = float(ctx.size("quality.target", 0.90, 0.90))
    recall = float(ctx.size("quality.recall", 0.9, 0.9))
    ref = results.get("pgan")
    rows = []
    for v, (minutes, hist) in results.items():
        metric = (f"{v}: CPU minutes ({threads} thread) to TSTR/TRTR ≥ {target:.2f} and every TRTS recall ≥ {recall}"
                  " (demo dataset)")
        extra = {"history": hist, "config": VARIANTS[v]}
        if minutes is None:
            best = max((h["tstr_over_trtr"] or 0.0 for h in hist), default=0.0)
            row = Row.missing(metric, "min", f"not reached in {hist[-1]['cpu_minutes']:.1f} CPU min "
                              f"(best TSTR/TRTR {best:.3f})" if hist else "no check ran")
            row.extra = extra
        else:
            refm = ref[0] if ref is not None and v != "pgan" else None
            row = Row(metric, "min", Stats.of([minutes]), Stats.of([refm]) if refm is not None else None,
                      "pgan" if refm is not None else None, higher_is_better=False, extra=extra, note="timed once")
        rows.append(row)
    return rows
