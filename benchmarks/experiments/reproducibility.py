"""How far a report moves when the numeric environment changes: the measurement behind ``meta.tolerances``.

    python -m benchmarks.experiments.reproducibility run MODEL OUT_DIR [VARIANT ...]
    python -m benchmarks.experiments.reproducibility compare SAVED_REPORT FRESH_REPORT [...] [--json OUT.json]
    python -m benchmarks.experiments.reproducibility compare --pairs SAVED FRESH [SAVED FRESH ...] [...]
        [--write-tolerances synthvu_core/evaluation/tolerances.json [--across-machines [--widen]]]

``run`` re-evaluates MODEL from empty caches (``synthvu_core.evaluation.verify.verify_report``: a temporary
copy of the folder, caches off, the saved report's synthetic count, seed and controls) once per VARIANT, each
in a fresh process whose environment is the variant's, and saves each fresh report to ``OUT_DIR/VARIANT``
(default variants: all of :data:`VARIANTS`). ``compare`` prints, per tolerance family of
:data:`synthvu_core.evaluation.verify.FAMILIES`, the largest absolute difference between the saved report and
each fresh one (controls included), the scalars that are not bit-identical, and any change of a verdict
level, the counted family or an attack's power status; ``--write-tolerances`` turns the largest difference of
each family into its tolerance (the smallest power of ten at least :data:`MARGIN` times it; :data:`FLOOR` for a
family that did not move); with ``--across-machines`` they become the file's ``across_machines`` rules (read by
``report verify`` where the re-run's numeric environment is not the report's), its same-machine rules kept; with
``--widen`` as well, each across-machine rule becomes the wider of the file's and this measurement's (a second pair
of machines added to the first).

Variants: ``as_is`` nothing changed (run on another machine than the report's, it measures how far a report moves
between machines: other CPU, other kernels, the phantom rebuilt with its rounding); ``threads1`` every library
told to use one thread by its environment variable (since the evaluation
fixes its own thread counts, :mod:`synthvu_core.evaluation.threads`, this must repeat the report bit for bit);
``isa`` older CPU kernels: torch's ATen without AVX2, oneDNN limited to SSE4.1, MKL to SSE4.2 with conditional
numerical reproducibility, OpenBLAS's Sandybridge kernels: a stand-in for another machine's instruction set,
since this one has no second CPU type to run on. Numba still compiles for this CPU (UMAP's fastmath kernels
are not perturbed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

VARIANTS: dict[str, dict[str, str]] = {
    "as_is": {},  # the environment as it is: on another machine than the report's, a measurement across machines
    "threads1": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"},
    "isa": {
        "ATEN_CPU_CAPABILITY": "default",
        "DNNL_MAX_CPU_ISA": "SSE41",
        "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
        "MKL_CBWR": "COMPATIBLE",
        "OPENBLAS_CORETYPE": "Sandybridge",
    },
}


def _one(model: str, out: str | Path) -> None:
    """In the variant's process: re-run ``model`` from empty caches, save the fresh report to ``out``."""
    from synthvu_core.evaluation.report import load_report, save_report
    from synthvu_core.evaluation.verify import verify_report
    from synthvu_core.models.registry import resolve

    folder, out = resolve(model), Path(out)
    t0 = time.perf_counter()
    fresh, diffs = verify_report(folder, load_report(folder, check_weights=False), progress=False)
    save_report(fresh, out)
    (out / "run.json").write_text(json.dumps({"seconds": time.perf_counter() - t0, "differences": diffs}, indent=1))


def run(model: str, out_dir: Path, variants: list[str]) -> None:
    for name in variants or list(VARIANTS):
        env = {**os.environ, **VARIANTS[name]}
        code = "import sys; from benchmarks.experiments.reproducibility import _one; _one(sys.argv[1], sys.argv[2])"
        subprocess.run([sys.executable, "-c", code, model, str(out_dir / name)], env=env, check=True)


def _scalars(folder: Path) -> tuple[dict[str, float | None], dict]:
    doc = json.loads((folder / "report.json").read_text())
    out = dict(doc["scalars"])
    for c in sorted((folder / "controls").iterdir()) if (folder / "controls").is_dir() else []:
        scalars = json.loads((c / "report.json").read_text())["scalars"]
        out.update({f"controls.{c.name}.{k}": v for k, v in scalars.items()})
    return out, doc["meta"]


def compare(saved: Path, fresh: Path) -> dict:
    """Per family: the largest |difference| and the number of scalars that moved; verdict and power changes."""
    from synthvu_core.evaluation.verify import family

    a, ma = _scalars(saved)
    b, mb = _scalars(fresh)
    fams: dict[str, dict] = {}
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        f = fams.setdefault(family(k), {"scalars": 0, "moved": 0, "max_abs_diff": 0.0, "worst": None})
        f["scalars"] += 1
        if x is None or y is None:
            if (x is None) != (y is None):
                f["moved"] += 1
                f["max_abs_diff"], f["worst"] = float("inf"), k
            continue
        d = abs(float(x) - float(y))
        if d > 0:
            f["moved"] += 1
            if d > f["max_abs_diff"]:
                f["max_abs_diff"], f["worst"] = d, f"{k}: {x!r} vs {y!r}"
    changes = []
    for threat in ("released_samples", "released_discriminator"):
        va, vb = (ma.get("verdicts") or {}).get(threat) or {}, (mb.get("verdicts") or {}).get(threat) or {}
        if va.get("level") != vb.get("level") or sorted(va.get("counted") or []) != sorted(vb.get("counted") or []):
            was, now = f"{va.get('level')} {va.get('counted')}", f"{vb.get('level')} {vb.get('counted')}"
            changes.append(f"verdict {threat}: {was} -> {now}")
    pa, pb = ma.get("power") or {}, mb.get("power") or {}
    for k in sorted(set(pa) | set(pb)):
        sa, sb = (pa.get(k) or {}).get("status"), (pb.get(k) or {}).get("status")
        if sa != sb:
            changes.append(f"power {k}: {sa} -> {sb}")
    return {"saved": str(saved), "fresh": str(fresh), "families": fams, "changes": changes}


#: A family's tolerance: the smallest power of ten at least this many times its largest measured difference.
MARGIN = 3.0
#: The tolerance of a family that did not move (bit-identical under every variant).
FLOOR = 1e-9


def _ceil_step(x: float, steps: tuple[int, ...]) -> float:
    """The smallest ``s * 10**k`` (``s`` in ``steps``) at least ``x``."""
    import math

    k = math.floor(math.log10(x))
    return min(v for e in (k - 1, k, k + 1) for s in steps if (v := float(f"{s}e{e}")) >= x)  # exact decimals


def rules_from(results: list[dict], steps: tuple[int, ...] = (1,)) -> list[list]:
    """Tolerance rules (in :data:`FAMILIES` order, ``"*"`` last) from the comparisons' largest differences: each
    the smallest power of ten (``steps=(1, 2, 5)``: 1-2-5 step) at least :data:`MARGIN` times its spread."""
    import math

    from synthvu_core.evaluation.verify import FAMILIES

    rules = []
    for glob in FAMILIES:
        spread = max((r["families"].get(glob, {}).get("max_abs_diff", 0.0) for r in results), default=0.0)
        if not math.isfinite(spread):
            raise SystemExit(f"{glob}: a scalar is None in one report and a number in another; no tolerance fits")
        tol = FLOOR if spread == 0 else max(FLOOR, _ceil_step(MARGIN * spread, steps))
        rules.append([glob, min(tol, 1.0) if glob.endswith("p_value") else tol])  # a p-value moves by 1 at most
    return rules


def widened(old: dict | None, new: dict) -> dict:
    """Across-machine rules of two measurements (``--widen``): each family's the wider of the two, a family the old
    rules lacked taking the tolerance their first match gave it; the ``measured`` texts joined."""
    from synthvu_core.records import tolerance

    if not old:
        raise SystemExit("--widen needs across-machine rules in the file to widen")
    before = tuple((str(g), float(t)) for g, t in old["rules"])
    rules = [[g, max(float(t), dict(before).get(g, tolerance(g, before)))] for g, t in new["rules"]]
    return {**old, "measured": f"{old['measured']}; widened by {new['measured']}", "rules": rules}


def _label(folder: str) -> str:
    """A report folder's name in the measurement's text: its generator's where the folder is ``MODEL/report``."""
    from synthvu_core.names import REPORT_DIR

    p = Path(folder)
    return f"{p.parent.name}/{p.name}" if p.name == REPORT_DIR else p.name


def main(argv: list[str]) -> None:
    if argv[:1] == ["run"]:
        run(argv[1], Path(argv[2]), argv[3:])
        return
    args, out = argv[1:], None
    rules_out = None
    if "--json" in args:
        i = args.index("--json")
        out, args = Path(args[i + 1]), args[:i] + args[i + 2 :]
    across = "--across-machines" in args  # the rules go to the file's across_machines block, its others kept
    widen = "--widen" in args  # with --across-machines: each family the wider of the file's rule and this measurement
    args = [a for a in args if a not in ("--across-machines", "--widen")]
    if widen and not across:
        raise SystemExit("--widen adds a measurement to the across-machine rules: give --across-machines")
    if "--write-tolerances" in args:
        i = args.index("--write-tolerances")
        rules_out, args = Path(args[i + 1]), args[:i] + args[i + 2 :]
    if "--pairs" in args:  # SAVED FRESH SAVED FRESH ...: several generators' reports, each against its own re-run
        args = [a for a in args if a != "--pairs"]
        results = [compare(Path(a), Path(b)) for a, b in zip(args[::2], args[1::2], strict=True)]
    else:
        results = [compare(Path(args[0]), Path(f)) for f in args[1:]]
    for r in results:
        print(f"{r['saved']} vs {r['fresh']}")
        for name, f in r["families"].items():
            moved = f"{f['moved']:4d}/{f['scalars']:<4d} moved"
            print(f"  {name:28s} {moved}, max |diff| {f['max_abs_diff']:.3g}  {f['worst'] or ''}")
        print("\n".join(f"  {c}" for c in r["changes"]) or "  verdicts, counted family and power statuses unchanged")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    if rules_out is not None:
        measured = "; ".join(f"{_label(r['saved'])} vs {_label(r['fresh'])}" for r in results)
        steps = (1, 2, 5) if across else (1,)  # across machines: 1-2-5 steps, so that no family is widened tenfold
        doc = {"measured": measured, "margin": MARGIN, "floor": FLOOR, "steps": list(steps),
               "rules": rules_from(results, steps)}
        if across and not rules_out.is_file():
            raise SystemExit(f"{rules_out}: --across-machines adds to an existing tolerances file; write its "
                             "same-machine rules first")
        old = json.loads(rules_out.read_text()) if rules_out.is_file() else {}
        if widen:
            doc = widened(old.get("across_machines"), doc)
        doc = {**old, "across_machines": doc} if across else {**doc, **{k: v for k, v in old.items()
                                                                         if k == "across_machines"}}
        rules_out.write_text(json.dumps(doc, indent=1) + "\n")
    elif across:
        raise SystemExit("--across-machines needs --write-tolerances FILE")


if __name__ == "__main__":
    main(sys.argv[1:])
