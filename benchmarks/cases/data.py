"""Data pipeline: phantom patients/s, ingestion volumes/s on real MRI, demo dataset build time.

* phantom: ``synthvu_core.data.phantom.write_cohort`` (NIfTI image + label map + patients.csv per
  patient, default workers); goal ≥ 4 patients/s.
* ingestion: ``synthvu_core.data.build.extract_pairs`` (load, validate, reorient, cut every VU) on
  ``../shared/data/spine-mri/myosegmentum`` beside the repository, in one process, against the
  floor of reading the same pairs with nibabel alone (``np.asanyarray(img.dataobj)``); skipped with a
  reason where the folder is absent.
* demo dataset: ``build_phantom_dataset`` with the ``DEMO_PHANTOM`` recipe into a scratch folder, timed
  once (full run; the quick run builds a few patients and has no goal); goal ≤ 60 s.

Sizes: ``data.phantom_patients`` (quick 2, full 8), ``data.volumes`` (quick 4, full all 20),
``data.demo_patients`` (quick 4, full ``DEMO_PHANTOM.n_patients``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from benchmarks.cases import Context, Goal, Row, Stats, rate, seconds, time_pair

#: The problem-size keys this case reads (``--size KEY=JSON``); the runner refuses others.
SIZE_KEYS: tuple[str, ...] = ("data.phantom_patients", "data.volumes", "data.demo_patients")

PHANTOM_GOAL = Goal("≥ 4 patients/s", ">=", 4.0)
DEMO_GOAL = Goal("≤ 60 s", "<=", 60.0)


def spine_folder(root: Path) -> Path:
    """``../shared/data/spine-mri`` beside the repository (``$SYNTHVU_SPINE_DATA`` overrides)."""
    env = os.environ.get("SYNTHVU_SPINE_DATA")
    return Path(env) if env else root.parent / "shared" / "data" / "spine-mri"


def phantom_rate(ctx: Context) -> Row:
    metric = "phantom cohort written"
    try:
        from synthvu_core.data.phantom import write_cohort
    except ImportError as e:
        return Row.missing(metric, "patients/s", f"synthvu_core.data.phantom.write_cohort not importable ({e})",
                           goal=PHANTOM_GOAL)
    n = int(ctx.size("data.phantom_patients", 2, 8))
    times: list[float] = []
    for i in range(ctx.warmup + ctx.repeats):  # only the writing is timed; each cohort is removed untimed
        out = ctx.workdir / f"phantom-{i}"
        t = seconds(lambda o=out: write_cohort(o, n, seed=ctx.seed))
        shutil.rmtree(out, ignore_errors=True)
        if i >= ctx.warmup:
            times.append(t)
    return Row(f"{metric}, {n} patients", "patients/s", Stats.of(rate(n, times)), goal=PHANTOM_GOAL,
               note="NIfTI image + label map per patient, default workers")


def ingestion_rate(ctx: Context) -> Row:
    metric = "real MRI ingestion (MyoSegmenTUM)"
    folder = spine_folder(ctx.root) / "myosegmentum"
    if not folder.is_dir():
        return Row.missing(metric, "volumes/s", "real spine MRI not present beside the repository "
                           "(../shared/data/spine-mri/myosegmentum)")
    import nibabel as nib
    import numpy as np

    from synthvu_core.data.build import extract_pairs, find_pairs

    pairs = find_pairs(folder)
    k = int(ctx.size("data.volumes", 4, len(pairs)))
    pairs = pairs[:k]

    def project() -> None:
        extract_pairs(pairs, workers=1, progress=False)

    def reference() -> None:
        for p in pairs:
            np.asanyarray(nib.load(p.image).dataobj)
            np.asanyarray(nib.load(p.labels).dataobj)

    t_p, t_r = time_pair(project, reference, repeats=ctx.repeats, warmup=ctx.warmup)
    assert t_r is not None
    return Row(f"{metric}, {k} volumes", "volumes/s", Stats.of(rate(k, t_p)), Stats.of(rate(k, t_r)),
               "nibabel read only", note="load + validate + reorient + cut VUs, one process")


def demo_build(ctx: Context) -> Row:
    metric = "demo phantom dataset build"
    try:
        from synthvu_core.data import phantom  # noqa: F401
        from synthvu_core.data.build import DEMO_PHANTOM, build_phantom_dataset
    except ImportError as e:
        return Row.missing(metric, "s", f"phantom dataset builder not importable ({e})", goal=DEMO_GOAL)
    recipe = DEMO_PHANTOM
    n = int(ctx.size("data.demo_patients", 4, recipe.n_patients))
    full = n == recipe.n_patients
    out = ctx.workdir / "demo"

    def build() -> None:
        build_phantom_dataset(replace(recipe, n_patients=n), out, progress=False)

    t = seconds(build)
    shutil.rmtree(out, ignore_errors=True)
    return Row(f"{metric}, {n} patients" + (" (DEMO_PHANTOM)" if full else ""), "s", Stats.of([t]),
               higher_is_better=False, goal=DEMO_GOAL if full else None,
               note="phantom + ingestion + save, timed once" + ("" if full else "; not the demo size, no goal"))


def run(ctx: Context) -> list[Row]:
    return [phantom_rate(ctx), ingestion_rate(ctx), demo_build(ctx)]
