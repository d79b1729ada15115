"""Evaluation: full report time split by stage, and membership-attack time as the synthetic set grows.

* report: ``synthvu_core.evaluation.report.run_evaluation`` on a dataset of random VUs sized for 2,000
  candidates (1,000 train + 1,000 holdout VUs) against 5,000 synthetic VUs from a randomly initialised
  default generator, with the graded and independent controls. The first run starts from an empty
  classifier cache (the real classifiers and the attack encoder are trained: a dataset's first
  generator), later runs find them cached (TRTR and the independent control's scores are shared by every
  generator of a dataset). Stage wall and CPU times come from the report's ``meta.timings_s`` /
  ``cpu_timings_s``, per control from ``meta.control_timings_s``. Two workers share the tasks of every stage
  (classifiers, overlay_fit, attack_spaces, utility, fidelity, embeddings, privacy, controls; see
  ``synthvu_core.evaluation.schedule``), so stage wall times overlap and add up to more than ``total``; a stage's
  CPU seconds are its tasks' threads', the ``total`` row's the whole process's. Goal ≤ 90 s (full sizes only).
  The quick run trains its classifiers for 10 steps only, so its report time says nothing about the goal.
* attacks: pixel-space pairwise + distribution scores (``summarise_distances`` + ``pairwise_scores``,
  streamed in blocks) for 2,000 candidates against 5k, 10k and 20k synthetic VUs, against a dense
  reference that holds the whole candidates × synthetic matrix and asks numpy for min, median,
  1 % quantile and counts. The growth row is time(largest) / time(smallest); linear in m = 4.0 (no growth row
  with fewer than two sizes). Goals, attached only at their own sizes (2,000 candidates of 9×64×64): within 1.2×
  of the dense reference at 5k synthetic, growth from 5k to 20k within 10 % of linear.
* 100k: 100,000 candidates × 100,000 synthetic VUs (rows of an uncompressed ``.npz`` sampled from
  ``acgan-phantom``, memory-mapped) through :func:`~synthvu_core.evaluation.pruned.pruned_summary` (exact
  nearest synthetic by certified pruning; median, eps and counts estimated), timed once with its peak memory
  (anonymous and memory-mapped), and checked against brute force on ``evaluation.check_candidates`` random
  candidates against all synthetic VUs (nearest, d_min, median, counts within eps, eps). Then the embedding
  space at the same size (64-dim low-rank + noise vectors, exact ``summarise_distances``).

* cohort: the whole-cohort test's pass (each sample's nearest real VU) on the demo phantom cohort of ``acgan-phantom``
  (its card's recipe, 2,760 real VUs of 120 patients) against ``evaluation.cohort`` samples of ``acgan-phantom``:
  :func:`~synthvu_core.evaluation.cohort.nearest_real` as ``evaluate`` calls it (the exact pruned search above its
  work threshold) against the brute force (``squared_distance_blocks``, argmin), the same nearest VUs checked.
  Below the threshold (``cohort.PRUNED_WORK`` multiply-adds, e.g. the quick run's 500 samples) ``nearest_real`` is
  that brute force, so the row says unavailable instead of timing the same code twice.
  The report above scores uniform random VUs, on which the bounds prune nothing and the search hands the pass to
  the brute force after a pilot; this row shows the search on VUs with an anatomy.

Sizes: ``evaluation.shape`` (quick [9, 32, 32], full [9, 64, 64]), ``evaluation.patients`` (quick 50,
full 625; 8 VUs each, split 60/20/20), ``evaluation.synthetic`` (quick 500, full 5000),
``evaluation.candidates`` (quick 200, full 2000), ``evaluation.attack_sizes`` (quick [500, 1000, 2000],
full [5000, 10000, 20000]), ``evaluation.report`` (1; 0 skips the full report), ``evaluation.big`` (quick 0,
full 100000; 0 skips), ``evaluation.cohort`` (quick 500, full 5000; 0 skips), ``evaluation.big_source`` (an
uncompressed ``.npz`` with at least twice ``big`` VUs;
default: sampled into the scratch folder), ``evaluation.check_candidates`` (quick 50, full 500).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from benchmarks.cases import Context, Goal, Row, Stats, Unavailable, seconds, time_pair
from benchmarks.cases.training import random_dataset

#: The problem-size keys this case reads (``--size KEY=JSON``); the runner refuses others.
SIZE_KEYS: tuple[str, ...] = (
    "evaluation.shape", "evaluation.patients", "evaluation.synthetic", "evaluation.candidates",
    "evaluation.attack_sizes", "evaluation.report", "evaluation.big", "evaluation.cohort", "evaluation.big_source",
    "evaluation.check_candidates"
)

REPORT_GOAL = Goal("≤ 90 s", "<=", 90.0)
#: The attack goals' own sizes: candidates, VU shape, the size of the ratio goal, and the growth goal's (low, high).
ATTACK_GOAL_CANDIDATES, ATTACK_GOAL_SHAPE = 2000, (9, 64, 64)
ATTACK_GOAL_RATIO_AT, ATTACK_GOAL_GROWTH = 5000, (5000, 20000)
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
    config = EvaluationConfig(candidates_per_group=per_group, nonmembers_per_group=per_group, cache=True)
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


def attack_goals(n: int, shape: tuple[int, ...], sizes: list[int]) -> tuple[Goal | None, Goal | None]:
    """(goal of the ``ATTACK_GOAL_RATIO_AT`` row, goal of the growth row), each None away from its own sizes."""
    at_size = n == ATTACK_GOAL_CANDIDATES and tuple(shape) == ATTACK_GOAL_SHAPE
    ratio = Goal("≤ 1.2× dense", "<=", 1.2, on="ratio") if at_size and ATTACK_GOAL_RATIO_AT in sizes else None
    lo, hi = ATTACK_GOAL_GROWTH
    growth = (Goal(f"≤ {1.1 * hi / lo:.1f} (linear + 10 %)", "<=", 1.1 * hi / lo)
              if at_size and (min(sizes), max(sizes)) == (lo, hi) else None)
    return ratio, growth


def attack_rows(ctx: Context) -> list[Row]:
    import numpy as np

    try:
        from synthvu_core.evaluation.privacy import pairwise_scores, summarise_distances
    except ImportError as e:
        return [Row.missing("attack time", "s", f"synthvu_core.evaluation.privacy not importable ({e})")]
    shape = tuple(ctx.size("evaluation.shape", (9, 32, 32), (9, 64, 64)))
    n = int(ctx.size("evaluation.candidates", 200, 2000))
    sizes = [int(m) for m in ctx.size("evaluation.attack_sizes", [500, 1000, 2000], [5000, 10000, 20000])]
    ratio_goal, growth_goal = attack_goals(n, shape, sizes)
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
        goal = ratio_goal if m == ATTACK_GOAL_RATIO_AT else None
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
    if lo == hi:  # one size: no growth to measure
        return rows
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
            goal=growth_goal,
        )
    )
    return rows


def cohort_row(ctx: Context) -> Row:
    """The whole-cohort pass on the demo phantom cohort: ``nearest_real`` against the brute force, same process."""
    import numpy as np

    from synthvu_core.evaluation.cohort import PRUNED_MIN_DIM, PRUNED_WORK, nearest_real
    from synthvu_core.evaluation.privacy import squared_distance_blocks
    from synthvu_core.evaluation.report import evaluation_datasets
    from synthvu_core.models.registry import load_card, load_generator
    from synthvu_core.models.sampling import sample_uint8

    model = ctx.root / "models" / "acgan-phantom"
    images = evaluation_datasets(model, load_card(model), None)[0].images
    n = int(ctx.size("evaluation.cohort", 500, 5000))
    metric = f"whole-cohort pass, {n} samples × {len(images)} real VUs (demo phantom)"
    dim = int(np.prod(images.shape[1:]))
    work = n * len(images) * dim
    if dim < PRUNED_MIN_DIM or work <= PRUNED_WORK:  # nearest_real's own test: below it, it is the brute force
        return Row.missing(metric, "s", f"{work:.2g} multiply-adds, not above the pruned search's threshold "
                           f"({PRUNED_WORK:.0e}): nearest_real is the brute force itself, nothing to compare")
    samples = sample_uint8(load_generator(model), n, seed=ctx.seed).images
    box: dict[str, Any] = {}

    def project() -> None:
        box["p"] = nearest_real(samples, images)

    def reference() -> None:
        box["r"] = np.concatenate([d2.argmin(1) for _, d2 in squared_distance_blocks(samples, images, chunk=512)])

    t_p, t_r = time_pair(project, reference, repeats=max(1, min(ctx.repeats, 3)), warmup=0)
    same = float(np.mean(box["p"] == box["r"]))
    return Row(
        metric,
        "s",
        Stats.of(t_p),
        Stats.of(t_r),
        "brute force (argmin of squared_distance_blocks)",
        higher_is_better=False,
        note=f"nearest real VU the same for {same:.1%} of the samples",
        extra={"same_nearest": same},
    )


def big_vus(ctx: Context, n: int) -> tuple[Any, Any]:
    """``n`` candidate and ``n`` synthetic VUs, memory-mapped: rows ``0:n`` and ``n:2n`` of an uncompressed
    ``.npz`` sampled from ``acgan-phantom`` (``evaluation.big_source``, or sampled into the scratch folder)."""
    from synthvu_core.models.sampling import open_images, sample_to_file

    source = ctx.size("evaluation.big_source", None, None)
    if source is None:
        source = ctx.workdir / "big.npz"
        sample_to_file("acgan-phantom", 2 * n, source, seed=ctx.seed + 1)
    images = open_images(source)
    return images[:n], images[n : 2 * n]


class MemoryPeak:
    """Peak resident memory of this process while running, split into anonymous and file-backed (memory-mapped
    inputs, which the kernel can drop) from ``/proc/self/status``, sampled every ``every`` seconds."""

    def __init__(self, every: float = 0.2):
        self.every = every
        self.peak: dict[str, int] = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}

    def sample(self) -> None:
        from pathlib import Path

        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in self.peak:
                self.peak[key] = max(self.peak[key], int(value.split()[0]) * 1024)

    def __enter__(self) -> MemoryPeak:
        import threading

        self._stop = threading.Event()

        def loop() -> None:
            while not self._stop.wait(self.every):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def exact_check(candidates: Any, synthetic: Any, eps: float) -> dict[str, Any]:
    """Brute force for a few candidates against every synthetic VU: nearest, d_min, median, count within ``eps``
    and the 1 % quantile of their distances."""
    import numpy as np

    from synthvu_core.evaluation.privacy import squared_distance_blocks

    n, m = len(candidates), len(synthetic)
    out = {"d_min": np.empty(n), "nearest": np.empty(n, np.int64), "median": np.empty(n), "count": np.empty(n)}
    low: list[Any] = []
    for s, d2 in squared_distance_blocks(candidates, synthetic):
        d = np.sqrt(d2, out=d2)
        e = s + len(d)
        out["nearest"][s:e] = d.argmin(1)
        out["d_min"][s:e] = d.min(1)
        out["count"][s:e] = (d <= eps).sum(1)
        low.append(d.copy())  # a few hundred rows: the whole check matrix fits
        d.partition(((m - 1) // 2, m // 2), axis=1)
        out["median"][s:e] = 0.5 * (d[:, (m - 1) // 2].astype(np.float64) + d[:, m // 2])
    out["eps_sample"] = float(np.quantile(np.concatenate(low, axis=None), 0.01))
    return out


def pruned_errors(summary: Any, exact: dict[str, Any], pick: Any, q: float = 0.01) -> dict[str, float]:
    """The pruned summary on candidates ``pick`` against brute force (:func:`exact_check`)."""
    import numpy as np
    from scipy.stats import spearmanr

    ratio_p, ratio_e = summary.d_min[pick] / summary.median[pick], exact["d_min"] / exact["median"]
    counts, want = summary.counts[q][pick], exact["count"]
    return {
        "nearest_agreement": float(np.mean(summary.nearest[pick] == exact["nearest"])),
        "d_min_max_rel_error": float(np.max(np.abs(summary.d_min[pick] - exact["d_min"]) / exact["d_min"])),
        "median_rel_error_median": float(np.median(np.abs(summary.median[pick] / exact["median"] - 1))),
        "median_rel_error_max": float(np.max(np.abs(summary.median[pick] / exact["median"] - 1))),
        "ratio_spearman": float(spearmanr(ratio_p, ratio_e).statistic),
        "count_mean_exact": float(want.mean()),
        "count_mean_abs_error": float(np.mean(np.abs(counts - want))),
        "count_total_rel_error": float(counts.sum() / max(want.sum(), 1) - 1),
        "count_spearman": float(spearmanr(counts, want).statistic),
        "eps_rel_error_vs_check": float(summary.eps[q] / exact["eps_sample"] - 1),
    }


def big_attack_rows(ctx: Context) -> list[Row]:
    from synthvu_core.evaluation.pruned import pruned_summary

    big = int(ctx.size("evaluation.big", 0, 100_000))
    n_check = int(ctx.size("evaluation.check_candidates", 50, 500))
    cand, syn = big_vus(ctx, big)
    return [pruned_row(cand, syn, n_check, ctx.seed, ctx.log, pruned_summary), embedding_row(big, ctx.seed)]


def pruned_row(cand: Any, syn: Any, n_check: int, seed: int, log: Any, search: Any) -> Row:
    """Pixel attacks on ``cand`` x ``syn`` through ``search`` (:func:`~synthvu_core.evaluation.pruned.pruned_summary`),
    timed once with its memory peak, checked against brute force on ``n_check`` random candidates."""
    import numpy as np

    box: dict[str, Any] = {}
    with MemoryPeak() as mem:
        t = seconds(lambda: box.update(r=search(cand, syn, quantile=0.01, seed=seed)))
    summary, stats = box["r"]
    pick = np.sort(np.random.default_rng(seed).choice(len(cand), size=min(n_check, len(cand)), replace=False))
    t_exact = seconds(lambda: box.update(e=exact_check(np.asarray(cand[pick]), syn, summary.eps[0.01])))
    err = pruned_errors(summary, box["e"], pick)
    err.update(exact_seconds_for_check=t_exact, exact_seconds_extrapolated=t_exact * len(cand) / len(pick))
    gib = {k: v / 2**30 for k, v in mem.peak.items()}
    log(f"{len(cand)} x {len(syn)}: pruned {t:.0f} s, memory {gib}, stats {stats}; check on {len(pick)}: {err}")
    note = (
        f"acgan-phantom VUs; {stats.dims} axes ({stats.explained:.0%}); {stats.certified_first / len(cand):.0%} "
        f"certified by 8 exact distances; peak RSS {gib['VmRSS']:.1f} GiB ({gib['RssAnon']:.1f} anonymous); on "
        f"{len(pick)} candidates vs brute force: nearest same {err['nearest_agreement']:.1%}, median rel. error "
        f"{err['median_rel_error_median']:.2%} (max {err['median_rel_error_max']:.2%}), count error "
        f"{err['count_mean_abs_error']:.1f} of {err['count_mean_exact']:.0f} (mean abs.); eps ± {stats.eps_se:.3f}; "
        f"brute force ≈ {err['exact_seconds_extrapolated'] / 3600:.1f} h"
    )
    extra = {"error": err, "memory_gib": gib, "stats": {**vars(stats)}, "checked": len(pick)}
    return Row(
        f"pixel attacks, {len(cand)} candidates × {len(syn)} synthetic (pruned: exact nearest)",
        "s",
        Stats.of([t]),
        higher_is_better=False,
        note=note,
        extra=extra,
    )


def embedding_row(n: int, seed: int, dim: int = 64) -> Row:
    """Embedding-space attacks (exact, ``summarise_distances``) on ``n`` x ``n`` low-rank + noise float32 vectors."""
    import numpy as np

    from synthvu_core.evaluation.privacy import summarise_distances

    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(8, dim)).astype(np.float32)

    def vectors() -> Any:
        return rng.normal(size=(n, 8)).astype(np.float32) @ basis + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)

    cand, syn = vectors(), vectors()
    with MemoryPeak() as mem:
        t = seconds(lambda: summarise_distances(cand, syn, quantiles=(0.01,)))
    gib = mem.peak["VmRSS"] / 2**30
    return Row(
        f"embedding attacks, {n} candidates × {n} synthetic, {dim} dims (exact)",
        "s",
        Stats.of([t]),
        higher_is_better=False,
        note=f"low-rank + noise vectors; peak RSS {gib:.1f} GiB",
        extra={"memory_gib": {k: v / 2**30 for k, v in mem.peak.items()}},
    )


def run(ctx: Context) -> list[Row]:
    try:
        import synthvu_core.evaluation.privacy  # noqa: F401
    except ImportError as e:
        raise Unavailable(f"synthvu_core.evaluation not importable ({e})") from e
    rows = report_rows(ctx) if int(ctx.size("evaluation.report", 1, 1)) else []
    rows += attack_rows(ctx)
    rows += [cohort_row(ctx)] if int(ctx.size("evaluation.cohort", 500, 5000)) else []
    return rows + (big_attack_rows(ctx) if int(ctx.size("evaluation.big", 0, 100_000)) else [])
