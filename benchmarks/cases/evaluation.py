"""Evaluation: full report time split by stage, and membership-attack time as the synthetic set grows.

* report: ``synthvu_core.evaluation.report.run_evaluation`` on a dataset of random VUs sized for 2,000
  candidates (1,000 train + 1,000 holdout VUs) against 5,000 synthetic VUs from a randomly initialised
  default generator, with the graded and independent controls. The first run starts from an empty
  classifier cache (the real classifiers and the attack encoder are trained: a dataset's first
  generator), later runs find them cached (TRTR is shared by every generator of a dataset). Stage wall
  and CPU times come from the report's ``meta.timings_s`` / ``cpu_timings_s``, per control from
  ``meta.control_timings_s``. Goal ≤ 120 s (full sizes only). The quick run
  trains its classifiers for 10 steps only, so its report time says nothing about the goal.
* attacks: pixel-space pairwise + distribution scores (``summarise_distances`` + ``pairwise_scores``,
  streamed in blocks) for 2,000 candidates against 5k, 10k and 20k synthetic VUs, against a dense
  reference that holds the whole candidates × synthetic matrix and asks numpy for min, median,
  1 % quantile and counts. The growth row is time(largest) / time(smallest); linear in m = 4.0.
  Goals (issue 14): within 1.2× of the dense reference at the smallest size, growth within 10 % of linear.
* 100k: 100,000 candidates × 100,000 synthetic VUs (memory-mapped files, so memory stays bounded) with
  :func:`~synthvu_core.evaluation.privacy.approximate_summary` (exact distances between PCA projections;
  exact pixel distances would be 7e14 multiply-adds, hours on this CPU), timed once, and its error against
  exact pixel distances (:func:`summarise_distances`) on ``evaluation.check_candidates`` candidates
  against all 100k synthetic: share of identical nearest neighbours, median relative error of d_min and of
  the pairwise ratio, and Spearman correlation of the ratio. The VUs are demo-dataset VUs plus noise
  (σ 8 grey levels), candidates and synthetic drawn independently; random noise VUs would make any
  projection look useless.

Sizes: ``evaluation.shape`` (quick [9, 32, 32], full [9, 64, 64]), ``evaluation.patients`` (quick 50,
full 625; 8 VUs each, split 60/20/20), ``evaluation.synthetic`` (quick 500, full 5000),
``evaluation.candidates`` (quick 200, full 2000), ``evaluation.attack_sizes`` (quick [500, 1000, 2000],
full [5000, 10000, 20000]), ``evaluation.report`` (1; 0 skips the full report), ``evaluation.big`` (quick 0,
full 100000; 0 skips), ``evaluation.big_dims`` (128), ``evaluation.big_residual`` (false),
``evaluation.check_candidates`` (300).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from benchmarks.cases import Context, Goal, Row, Stats, Unavailable, seconds, time_pair
from benchmarks.cases.training import random_dataset

REPORT_GOAL = Goal("≤ 120 s", "<=", 120.0)
STAGES = ("classifiers", "overlay_fit", "attack_spaces", "utility", "fidelity", "embeddings", "privacy", "controls")


def synthetic_vus(n: int, shape: tuple[int, int, int], seed: int) -> tuple[Any, Any]:
    """``n`` VUs (uint8 ``[n, C, H, W]``) and region labels ``[n]`` from a random-init default generator."""
    import numpy as np
    import torch

    from benchmarks.cases.sampling import build_generators
    from synthvu_core.data.dataset import to_uint8

    gen = build_generators(shape, seed=seed)["default"][0].eval()
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    out = np.empty((n, *shape), dtype=np.uint8)
    with torch.inference_mode():
        for s in range(0, n, 256):
            z = torch.randn(min(256, n - s), gen.config.latent_dim, generator=g)
            out[s : s + len(z)] = to_uint8(gen(z, labels[s : s + len(z)]).numpy())
    return out, labels.numpy()


@contextmanager
def cache_at(folder: Any) -> Any:
    """``$SYNTHVU_CACHE`` set to ``folder`` for the block (the real classifiers are cached there)."""
    old = os.environ.get("SYNTHVU_CACHE")
    os.environ["SYNTHVU_CACHE"] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SYNTHVU_CACHE", None)
        else:
            os.environ["SYNTHVU_CACHE"] = old


def _stage_rows(label: str, runs: list[Any]) -> list[Row]:
    """Per-stage wall and CPU seconds (and per-control wall seconds) over ``runs`` (reports)."""
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for r in runs:
        for k, v in (r.meta.get("timings_s") or {}).items():
            wall.setdefault(k, []).append(float(v))
        for k, v in (r.meta.get("cpu_timings_s") or {}).items():
            cpu.setdefault(k, []).append(float(v))
        for k, v in (r.meta.get("control_timings_s") or {}).items():
            wall.setdefault(f"controls: {k}", []).append(float(v))
    rows = []
    for k in [*STAGES, *sorted(set(wall) - set(STAGES))]:
        if k in wall:
            note = f"CPU {Stats.of(cpu[k]).median:.1f} s" if k in cpu else ""
            rows.append(Row(f"  {label} stage: {k}", "s", Stats.of(wall[k]), higher_is_better=False, note=note))
    return rows


def report_rows(ctx: Context) -> list[Row]:
    """Cold run (empty cache: the real classifiers are trained) first, then warm runs (TRTR cached, as for a
    second generator of the same dataset)."""
    try:
        from synthvu_core.evaluation.report import EvaluationConfig, run_evaluation
    except ImportError as e:
        return [
            Row.missing("full report", "s", f"synthvu_core.evaluation.report not importable ({e})", goal=REPORT_GOAL)
        ]
    shape = tuple(ctx.size("evaluation.shape", (9, 32, 32), (9, 64, 64)))
    n_syn = int(ctx.size("evaluation.synthetic", 500, 5000))
    per_group = int(ctx.size("evaluation.candidates", 200, 2000)) // 2
    ds = random_dataset(int(ctx.size("evaluation.patients", 50, 625)), shape, seed=ctx.seed)
    # region classes of the random dataset in the dataset's class order
    classes = ds.classes("region")
    syn, labels = synthetic_vus(n_syn, shape, ctx.seed)
    labels = labels % len(classes)
    config = EvaluationConfig(candidates_per_group=per_group, cache=True)
    if ctx.quick:  # a sanity run: classifiers barely trained (the UMAP fit and the attacks run as usual)
        config = replace(config, encoder=replace(config.encoder, epochs=1, min_steps=10))
    totals: list[float] = []
    reports: list[Any] = []
    repeats = 2 if ctx.quick else max(2, min(ctx.repeats, 3))
    with cache_at(ctx.workdir / "evaluation-cache"):
        for _ in range(repeats):
            box: dict[str, Any] = {}
            totals.append(
                seconds(
                    lambda b=box: b.update(
                        r=run_evaluation(
                            ds, syn, labels, config=config, classes=classes, seed=ctx.seed, progress=False,
                            controls=True,
                        )
                    )
                )
            )
            reports.append(box["r"])
    n_cand = reports[0].meta.get("n_candidates", 2 * min(per_group, len(ds.indices("holdout"))))
    full = not ctx.quick and (shape, n_syn, 2 * per_group, len(ds.patients())) == ((9, 64, 64), 5000, 2000, 625)
    label = "×".join(str(s) for s in shape)
    size_note = "" if full else "; not the goal's size"
    rows = [
        Row(
            f"full report with controls, cold cache, {n_cand} candidates × {n_syn} synthetic, {label}",
            "s",
            Stats.of(totals[:1]),
            higher_is_better=False,
            goal=REPORT_GOAL if full else None,
            note="random VUs; real classifiers trained (first generator of a dataset)" + size_note,
        ),
        *_stage_rows("cold", reports[:1]),
        Row(
            f"full report with controls, TRTR cached, {n_cand} candidates × {n_syn} synthetic, {label}",
            "s",
            Stats.of(totals[1:]),
            higher_is_better=False,
            goal=REPORT_GOAL if full else None,
            note="real classifiers and attack encoder from the cache (every later generator of the dataset)"
            + size_note,
        ),
        *_stage_rows("warm", reports[1:]),
    ]
    return rows


def dense_summary(candidates: Any, synthetic: Any, q: float = 0.01) -> tuple[Any, Any, Any]:
    """Reference: the whole ``[n, m]`` distance matrix in memory; numpy min, median, q-quantile, counts."""
    import numpy as np
    import torch

    def f(x: Any) -> Any:
        return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / np.float32(127.5) - np.float32(1.0))

    c = f(candidates)
    d = np.concatenate(
        [torch.cdist(c, f(synthetic[s : s + 4096])).numpy() for s in range(0, len(synthetic), 4096)], axis=1
    )
    eps = np.quantile(d, q)
    return d.min(1) / np.median(d, axis=1), (d <= eps).sum(1), eps


def attack_rows(ctx: Context) -> list[Row]:
    import numpy as np

    try:
        from synthvu_core.evaluation.privacy import pairwise_scores, summarise_distances
    except ImportError as e:
        return [Row.missing("attack time", "s", f"synthvu_core.evaluation.privacy not importable ({e})")]
    shape = tuple(ctx.size("evaluation.shape", (9, 32, 32), (9, 64, 64)))
    n = int(ctx.size("evaluation.candidates", 200, 2000))
    sizes = [int(m) for m in ctx.size("evaluation.attack_sizes", [500, 1000, 2000], [5000, 10000, 20000])]
    rng = np.random.default_rng(ctx.seed)
    cand = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    syn_all = rng.integers(0, 256, size=(max(sizes), *shape), dtype=np.uint8)
    repeats = max(1, min(ctx.repeats, 3))
    rows: list[Row] = []
    medians: dict[int, tuple[list[float], list[float]]] = {}
    for i, m in enumerate(sizes):
        syn = syn_all[:m]

        def project(s: Any = syn) -> Any:
            return pairwise_scores(summarise_distances(cand, s, quantiles=(0.01,)))

        def reference(s: Any = syn) -> Any:
            return dense_summary(cand, s)

        t_p, t_r = time_pair(project, reference, repeats=repeats, warmup=ctx.warmup if i == 0 else 0)
        assert t_r is not None
        medians[m] = (t_p, t_r)
        goal = Goal("≤ 1.2× dense", "<=", 1.2, on="ratio") if i == 0 and not ctx.quick else None
        rows.append(
            Row(
                f"pixel attack scores, {n} candidates × {m} synthetic",
                "s",
                Stats.of(t_p),
                Stats.of(t_r),
                "dense matrix + numpy",
                higher_is_better=False,
                note="pairwise + distribution (1 % eps)",
                goal=goal,
            )
        )
    lo, hi = min(sizes), max(sizes)
    growth_p = [a / b for a, b in zip(medians[hi][0], medians[lo][0])]
    growth_r = [a / b for a, b in zip(medians[hi][1], medians[lo][1])]
    rows.append(
        Row(
            f"attack time growth {hi // 1000 if hi >= 1000 else hi}{'k' if hi >= 1000 else ''}"
            f" / {lo // 1000 if lo >= 1000 else lo}{'k' if lo >= 1000 else ''} synthetic",
            "×",
            Stats.of(growth_p),
            Stats.of(growth_r),
            "dense matrix + numpy",
            higher_is_better=False,
            note=f"{hi / lo:.1f} = linear in the synthetic count",
            goal=None if ctx.quick else Goal(f"≤ {1.1 * hi / lo:.1f} (linear + 10 %)", "<=", 1.1 * hi / lo),
        )
    )
    return rows


def noisy_vus(path: Any, n: int, base: Any, seed: int, rows: int = 1024) -> Any:
    """``n`` VUs in a memory-mapped uint8 file: random VUs of ``base`` plus Gaussian noise (σ 8)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *base.shape[1:]))
    for s in range(0, n, rows):
        k = min(rows, n - s)
        x = base[np.sort(rng.integers(0, len(base), k))].astype(np.float32)
        x += rng.standard_normal(x.shape, dtype=np.float32) * 8
        out[s : s + k] = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    out.flush()
    return np.load(path, mmap_mode="r")


def big_attack_rows(ctx: Context) -> list[Row]:
    import numpy as np
    from scipy.stats import spearmanr

    from synthvu_core.evaluation.privacy import approximate_summary, summarise_distances

    big = int(ctx.size("evaluation.big", 0, 100_000))
    dims = int(ctx.size("evaluation.big_dims", 128, 128))
    n_check = int(ctx.size("evaluation.check_candidates", 50, 300))
    try:
        from synthvu_core.data.build import demo_dataset

        base = np.asarray(demo_dataset().images)
    except Exception as e:  # noqa: BLE001 - the demo dataset is optional here
        return [Row.missing(f"pixel attack, {big} × {big}", "s", f"demo dataset unavailable ({e})")]
    cand = noisy_vus(ctx.workdir / "cand.npy", big, base, ctx.seed + 1)
    syn = noisy_vus(ctx.workdir / "syn.npy", big, base, ctx.seed + 2)
    box: dict[str, Any] = {}
    residual = bool(ctx.size("evaluation.big_residual", False, False))
    t = seconds(lambda: box.update(r=approximate_summary(cand, syn, dims=dims, seed=ctx.seed, residual=residual)))
    approx, explained = box["r"]
    pick = np.sort(np.random.default_rng(ctx.seed).choice(big, size=min(n_check, big), replace=False))
    t_exact = seconds(lambda: box.update(e=summarise_distances(np.asarray(cand[pick]), syn, quantiles=())))
    exact = box["e"]
    ratio_a, ratio_e = approx.d_min[pick] / approx.median[pick], exact.d_min / exact.median
    err = {
        "nearest_agreement": float(np.mean(approx.nearest[pick] == exact.nearest)),
        "d_min_median_rel_error": float(np.median(np.abs(approx.d_min[pick] - exact.d_min) / exact.d_min)),
        "ratio_median_rel_error": float(np.median(np.abs(ratio_a - ratio_e) / ratio_e)),
        "ratio_spearman": float(spearmanr(ratio_a, ratio_e).statistic),
        "explained_variance": explained,
        "exact_seconds_for_check": t_exact,
        "exact_seconds_extrapolated": t_exact * big / len(pick),
    }
    ctx.log(f"{big} x {big}: approximate {t:.0f} s; error on {len(pick)} candidates {err}")
    note = (
        f"PCA {dims} dims ({explained:.0%} variance); on {len(pick)} candidates vs exact: nearest same "
        f"{err['nearest_agreement']:.0%}, ratio rel. error {err['ratio_median_rel_error']:.1%} (median), "
        f"Spearman {err['ratio_spearman']:.3f}; exact would take ≈ {err['exact_seconds_extrapolated'] / 3600:.1f} h"
    )
    return [
        Row(
            f"pairwise pixel attack, {big} candidates × {big} synthetic (approximate)",
            "s",
            Stats.of([t]),
            higher_is_better=False,
            note=note,
            extra={"error": err, "dims": dims, "checked": len(pick)},
        )
    ]


def run(ctx: Context) -> list[Row]:
    try:
        import synthvu_core.evaluation.privacy  # noqa: F401
    except ImportError as e:
        raise Unavailable(f"synthvu_core.evaluation not importable ({e})") from e
    rows = report_rows(ctx) if int(ctx.size("evaluation.report", 1, 1)) else []
    rows += attack_rows(ctx)
    return rows + (big_attack_rows(ctx) if int(ctx.size("evaluation.big", 0, 100_000)) else [])
