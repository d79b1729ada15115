"""Time to quality (``--long`` only): minutes of training until TSTR ≥ 0.93 · TRTR on the demo dataset.

A fresh default generator (``Trainer`` with the default config, region scheme) and, as reference, a
fresh ``pgan`` generator train on the default phantom dataset (``demo_dataset()``, built into the cache
on first use). Every ``quality.check_epochs`` epochs training pauses (the pause is not counted), the
saved sampler (the moving average where there is one) draws as many VUs as the real train split with
its label distribution, and ``utility_scores`` gives TRTR and TSTR with the same real classifier. The
value is the training wall time (minutes) at the first check that reaches the target; a run that does
not reach it within ``quality.max_minutes`` is reported with its best ratio instead of a number.

Sizes: ``quality.check_epochs`` (1), ``quality.max_minutes`` (60 per architecture), ``quality.target`` (0.93).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.cases import Context, Row, Stats, Unavailable


def minutes_to_quality(ds: Any, clf: Any, arch: str, ctx: Context) -> tuple[float | None, list[dict[str, float]]]:
    import numpy as np
    import torch

    from synthvu_core.evaluation.utility import utility_scores
    from synthvu_core.models.training import TrainConfig, Trainer

    target = float(ctx.size("quality.target", 0.93, 0.93))
    limit = 60.0 * float(ctx.size("quality.max_minutes", 60, 60))
    tr = Trainer(ds, ctx.workdir / arch, TrainConfig(arch=arch, seed=ctx.seed, device="cpu", steps=10**7,
                                                      checkpoint_every=0, montage_every=0))
    every = max(1, int(float(ctx.size("quality.check_epochs", 1, 1)) * tr.steps_per_epoch))
    train_idx, hold_idx = ds.indices("train"), ds.indices("holdout")
    labels = ds.labels("region", tr.classes)
    trained, history = 0.0, []
    g = torch.Generator().manual_seed(ctx.seed)
    while trained < limit:
        t0 = time.perf_counter()
        for _ in range(every):
            tr.step()
        trained += time.perf_counter() - t0
        n = len(train_idx)
        y = torch.multinomial(tr.prior, n, replacement=True, generator=g)
        imgs = []
        with torch.inference_mode():
            for s in range(0, n, 256):
                z = torch.randn(min(256, n - s), tr.arch.latent_dim, generator=g)
                imgs.append(tr.sampler(z, y[s : s + len(z)]).numpy())
        util = utility_scores(real_classifier=clf, train_images=ds.images[train_idx], train_labels=labels[train_idx],
                              holdout_images=ds.images[hold_idx], holdout_labels=labels[hold_idx],
                              synthetic_images=np.concatenate(imgs), synthetic_labels=y.numpy(),
                              n_classes=len(tr.classes), seed=ctx.seed)
        ratio = util.scalars()[0].get("utility.tstr_over_trtr")
        history.append({"steps": tr.step_count, "train_minutes": trained / 60, "tstr_over_trtr": ratio})
        ctx.log(f"{arch}: step {tr.step_count}, {trained / 60:.1f} min, TSTR/TRTR {ratio}")
        if ratio is not None and ratio >= target:
            return trained / 60, history
    return None, history


def run(ctx: Context) -> list[Row]:
    try:
        from synthvu_core.data.build import demo_dataset
        from synthvu_core.evaluation.encoder import real_classifier
        from synthvu_core.models import training  # noqa: F401
    except ImportError as e:
        raise Unavailable(f"training, evaluation or demo dataset not importable ({e})") from e
    ds = demo_dataset()
    classes = ds.classes("region")
    clf = real_classifier(ds, "region", classes, seed=ctx.seed)
    results = {arch: minutes_to_quality(ds, clf, arch, ctx) for arch in ("default", "pgan")}
    target = float(ctx.size("quality.target", 0.93, 0.93))
    metric = f"training time to TSTR ≥ {target:.2f}·TRTR (demo dataset)"
    (m_def, h_def), (m_pgan, h_pgan) = results["default"], results["pgan"]
    extra = {"history": {"default": h_def, "pgan": h_pgan}}
    if m_def is None:
        best = max((h["tstr_over_trtr"] or 0.0 for h in h_def), default=0.0)
        row = Row.missing(metric, "min", f"not reached in {h_def[-1]['train_minutes']:.0f} min of training "
                          f"(best TSTR/TRTR {best:.3f})" if h_def else "no check ran")
        row.extra = extra
        return [row]
    return [Row(metric, "min", Stats.of([m_def]), Stats.of([m_pgan]) if m_pgan is not None else None,
                "pgan" if m_pgan is not None else None, higher_is_better=False, extra=extra,
                note="timed once" + ("" if m_pgan is not None else "; pgan did not reach it within the limit"))]
