"""CLI subcommands of this area (argparse only at import time; heavy imports inside handlers).

``evaluate MODEL [--dataset DIR] [--n-synthetic N] [--controls] [--seed S]`` and
``report show MODEL [--json]``. MODEL is a generator folder or a registered generator name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="evaluate a generator: utility, fidelity, UMAP, privacy attacks; writes MODEL/report/")
    ev.add_argument("model", metavar="MODEL", help="generator folder or registered generator name")
    ev.add_argument("--dataset", metavar="DIR", help="VU dataset folder (default: the demo dataset named by the card)")
    ev.add_argument("--n-synthetic", type=int, default=5000, metavar="N", help="synthetic VUs to sample (default 5000)")
    ev.add_argument("--controls", action="store_true", help="also evaluate the copy (leaky) and independent controls")
    ev.add_argument("--seed", type=int, default=0, help="seed of sampling, classifier, UMAP and bootstrap (default 0)")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=_evaluate)

    rep = sub.add_parser("report", help="show saved evaluation reports")
    rsub = rep.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    show = rsub.add_parser("show", help="print a generator's saved report (never runs a model)")
    show.add_argument("model", metavar="MODEL", help="generator folder or registered generator name")
    show.add_argument("--json", action="store_true", help="print every scalar (controls included) as JSON")
    show.set_defaults(func=_show)


def _resolve(model: str) -> Path:
    p = Path(model).expanduser()
    if p.is_dir():
        return p
    try:
        from synthvu_core.models.registry import resolve
    except ImportError:
        from synthvu_core.errors import CheckpointError

        raise CheckpointError(f"{model}: no such generator folder") from None
    return resolve(model)


def _evaluate(args: argparse.Namespace) -> int:
    from synthvu_core.errors import SelectionError
    from synthvu_core.evaluation.report import evaluate_generator
    from synthvu_core.storage import check_writable

    if args.n_synthetic < 1:
        raise SelectionError(f"--n-synthetic must be at least 1 (got {args.n_synthetic})")
    folder = _resolve(args.model)
    check_writable(folder / "report", "report")  # before any work
    report = evaluate_generator(
        folder, dataset=args.dataset, n_synthetic=args.n_synthetic, controls=args.controls, seed=args.seed, progress=not args.quiet
    )
    print(summary_table(report))
    print(f"report written to {folder / 'report'}")
    return 0


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def summary_table(report) -> str:  # noqa: ANN001 - Report, imported lazily
    """A plain-text summary: utility, fidelity, the privacy attacks (AUC [CI], TPR@1%FPR, top-k), controls."""
    s = report.scalars
    lines = [f"model {report.meta.get('model', '?')} · dataset {report.meta.get('dataset_fingerprint')} · "
             f"{report.meta.get('n_synthetic')} synthetic VUs (seed {report.meta.get('synthetic_seed')})"]
    lines.append("utility     TRTR {}  TSTR {}  TRTS {}  TSTR/TRTR {}".format(
        *(_fmt(s.get(f"utility.{k}.balanced_accuracy")) for k in ("trtr", "tstr", "trts")), _fmt(s.get("utility.tstr_over_trtr"))))
    lines.append("fidelity    FD {}  precision {}  recall {}  density {}  coverage {}".format(
        *(_fmt(s.get(f"fidelity.{k}")) for k in ("frechet_distance", "precision", "recall", "density", "coverage"))))
    lines.append(f"{'privacy':<26}{'AUC':>7} {'95% CI':>15} {'TPR@1%':>8} {'TPR@0.1%':>9} {'top-k':>7} {'pat.AUC':>8}")
    names = sorted({".".join(k.split(".")[1:3]) for k in s if k.startswith("privacy.") and not k.startswith("privacy.worst")})
    for n in names:
        g = lambda m, n=n: s.get(f"privacy.{n}.{m}")  # noqa: E731
        if g("auc") is None:
            why = report.meta.get("missing", {}).get(f"privacy.{n}.auc", "")
            lines.append(f"  {n:<24}{'—':>7}  ({why})")
            continue
        ci = f"[{_fmt(g('auc_ci_low'))}, {_fmt(g('auc_ci_high'))}]"
        lines.append(f"  {n:<24}{_fmt(g('auc')):>7} {ci:>15} {_fmt(g('tpr_at_1pct_fpr')):>8} {_fmt(g('tpr_at_0.1pct_fpr')):>9} "
                     f"{_fmt(g('topk_share')):>7} {_fmt(g('patient_auc')):>8}")
    lines.append(f"  worst AUC {_fmt(s.get('privacy.worst.auc'))}  worst TPR@1%FPR {_fmt(s.get('privacy.worst.tpr_at_1pct_fpr'))}"
                 f"  DP epsilon {_fmt(s.get('dp.epsilon'))}")
    for name, ctl in report.controls.items():
        c = ctl.scalars
        lines.append(f"control {name:<12} pairwise pixel AUC {_fmt(c.get('privacy.pairwise.pixel.auc'))} "
                     f"[{_fmt(c.get('privacy.pairwise.pixel.auc_ci_low'))}, {_fmt(c.get('privacy.pairwise.pixel.auc_ci_high'))}]"
                     f"  worst AUC {_fmt(c.get('privacy.worst.auc'))}")
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.report import load_report

    folder = _resolve(args.model)
    report = load_report(folder)
    if report is None:
        raise ReportError(f"{folder / 'report'}: no report yet; run `python -m synthvu_core evaluate {args.model}`")
    if args.json:
        doc = {"scalars": report.scalars, "controls": {n: c.scalars for n, c in report.controls.items()}, "meta": {
            k: report.meta.get(k) for k in ("model", "dataset_fingerprint", "n_synthetic", "synthetic_seed", "created")}}
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(summary_table(report))
    return 0
