"""CLI subcommands of this area (argparse only at import time; heavy imports inside handlers).

``evaluate MODEL [--dataset DIR] [--n-synthetic N] [--controls] [--seed S]`` and
``report show MODEL [--json]``, ``report table [MODEL…]``, ``report slides MODEL [MODEL…] --out deck.html`` and
``report seeds MODEL MODEL [MODEL…]``. MODEL is a generator folder or a registered generator name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MODEL_HELP = "generator folder or registered generator name"
#: Synthetic VUs ``evaluate`` samples of a VU generator unless ``--n-synthetic`` says otherwise.
VU_N_SYNTHETIC = 5000


def _model_argument(parser: argparse.ArgumentParser, *, dataset: bool = False) -> None:
    """The MODEL argument of a subcommand; ``dataset``: with ``--dataset DIR`` (default: the card's dataset)."""
    parser.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    if dataset:
        parser.add_argument(
            "--dataset", metavar="DIR", help="VU dataset folder (default: the dataset named by the card)"
        )


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "evaluate", help="evaluate a generator: utility, fidelity, UMAP, privacy attacks; writes MODEL/report/"
    )
    ev.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    ev.add_argument(
        "--dataset",
        metavar="DIR",
        help="VU dataset folder (default: the dataset the card remembers: its folder, or its phantom recipe "
        "rebuilt; a generator trained on your own data whose folder moved needs this)",
    )
    ev.add_argument("--n-synthetic", type=int, default=None, metavar="N",
                    help=f"synthetic VUs to sample (default {VU_N_SYNTHETIC}); a sub-volume generator: synthetic "
                    "sub-volumes (default: as many as its real train split)")
    ev.add_argument(
        "--controls",
        action="store_true",
        help="also score the graded positive controls (1/5/20%% member copies) and the independent control",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of sampling, classifier, UMAP and bootstrap (default 0)")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=_evaluate)

    rep = sub.add_parser("report", help="show saved evaluation reports")
    rsub = rep.add_subparsers(dest="report_command", metavar="ACTION", required=True)
    show = rsub.add_parser("show", help="print a generator's saved report (never runs a model)")
    _model_argument(show)
    show.add_argument("--json", action="store_true", help="print every scalar (controls included) as JSON")
    show.set_defaults(func=_show)
    verify = rsub.add_parser(
        "verify",
        help="re-run the evaluation from scratch (no caches, in a temporary folder; the saved report is untouched) "
        "and print every scalar that differs beyond its tolerance; exit code 1 on a difference",
    )
    _model_argument(verify, dataset=True)
    verify.add_argument("--quiet", action="store_true", help="no progress bars")
    verify.set_defaults(func=_verify)
    amend = rsub.add_parser(
        "amend",
        help="add what a report made by older code lacks: the whole-cohort nearest-patient test, on the very "
        "samples it evaluated (checked), with verdict (a) re-read; the utility per source, re-read from its stored "
        "holdout predictions; TSTR on the whole synthetic set, on those samples drawn again; verdict (b) re-read "
        "with the DP bound composed over every run on the training patients; every other number is kept",
    )
    _model_argument(amend, dataset=True)
    amend.set_defaults(func=_amend)
    table = rsub.add_parser("table", help="print the README's Markdown tables from saved reports")
    table.add_argument(
        "models", metavar="MODEL", nargs="*", help="generator folders or names (default: every shipped one)"
    )
    table.set_defaults(func=_table)
    slides = rsub.add_parser(
        "slides", help="write a self-contained slide deck (HTML, opens offline) from saved reports"
    )
    slides.add_argument("models", metavar="MODEL", nargs="+", help="generator folders or names (one or more)")
    slides.add_argument("--out", required=True, metavar="FILE", help="the deck to write (.html)")
    slides.add_argument("--title", default="synthvu: synthetic spine MRI", help="the title slide's heading")
    slides.set_defaults(func=_slides)
    seeds = rsub.add_parser(
        "seeds",
        help="how far utility moves with the training seed alone: generators grouped by recipe (dataset, every "
        "training setting but the seed, evaluation), each recipe's spread of TSTR/TRTR over its runs, and each later "
        "recipe against the first with a Welch 95%% interval over training seeds where both have three runs or more "
        "(never runs a model)",
    )
    seeds.add_argument("models", metavar="MODEL", nargs="+", help="generator folders or names (two or more)")
    seeds.add_argument("--json", action="store_true", help="print the groups, runs and differences as JSON")
    seeds.set_defaults(func=_seeds)


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

    if args.n_synthetic is not None and args.n_synthetic < 1:
        raise SelectionError(f"--n-synthetic must be at least 1 (got {args.n_synthetic})")
    folder = _resolve(args.model)
    check_writable(folder / "report", "report")  # before any work
    from synthvu_core.evaluation import volume
    from synthvu_core.models.registry import load_card

    if volume.is_volume_card(load_card(folder)):
        if args.controls:
            raise SelectionError(f"{folder.name}: --controls is for VU generators; a sub-volume evaluation always "
                                 "runs its one attack (pairwise, pixel space) with its controls")
        found = volume.evaluate_volume_generator(folder, dataset=args.dataset, n_synthetic=args.n_synthetic,
                                                 seed=args.seed)
        print("\n".join(volume.summary_lines(found)))
        print(f"report written to {folder / 'report' / volume.VOLUME_REPORT}")
        return 0
    report = evaluate_generator(
        folder,
        dataset=args.dataset,
        n_synthetic=VU_N_SYNTHETIC if args.n_synthetic is None else args.n_synthetic,
        controls=args.controls,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(summary_table(report))
    print(f"report written to {folder / 'report'}")
    return 0


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _power_word(curve: dict[str, Any]) -> str:
    """A short power cell: yes / no / detects / no room / — (not checked)."""
    status = curve.get("status") or {True: "power", False: "no_power"}.get(curve.get("has_power"), "not_checked")
    return {"power": "yes", "no_power": "no", "detects": "detects", "no_room": "no room"}.get(status, "—")


def _ci(s: dict, key: str) -> str:
    v = s.get(key)
    if v is None:
        return "—"
    lo, hi = s.get(f"{key}_ci_low"), s.get(f"{key}_ci_high")
    return f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")


def _red(text: str) -> str:
    """Red on a terminal, plain text in a pipe or a file."""
    return f"\033[31m{text}\033[0m" if sys.stdout.isatty() else text


def utility_lines(report) -> list[str]:  # noqa: ANN001 - Report, imported lazily
    """Utility with its chance level, the usefulness label and per-class recall (TRTR and TSTR on the holdout)."""
    from synthvu_core.evaluation.utility import PATIENT_SEED_INTERVAL, report_usefulness
    from synthvu_core.names import ONE_GENERATOR

    s, u = report.scalars, report.meta.get("utility") or {}
    arrays = report.arrays
    label = report_usefulness(s, report.meta, arrays.get("utility/trtr/recall"))
    over = "holdout patients and " if u.get("interval") == PATIENT_SEED_INTERVAL else ""
    chance = "—" if label.chance is None else f"{label.chance:.3f}"
    lines = [
        f"utility (mean [95% CI] over {over}{len(u.get('seeds') or [])} classifier seeds; chance {chance})  "
        + "  ".join(f"{k.upper()} {_ci(s, f'utility.{k}.balanced_accuracy')}" for k in ("trtr", "tstr", "trts"))
        + f"  TSTR/TRTR {_ci(s, 'utility.tstr_over_trtr')}",
        "usefulness  " + (_red(label.text) if label.level == "not_useful" else label.text),
        f"            {ONE_GENERATOR}",
    ]
    from synthvu_core.evaluation.release_utility import release_text

    classes = list(report.meta.get("classes") or [])
    release = release_text(s, arrays, classes, report.meta.get("missing") or {})
    return lines + ([release] if release else []) + recall_lines(arrays, classes, label.chance) + source_lines(report)


def source_lines(report) -> list[str]:  # noqa: ANN001 - Report, imported lazily
    """TRTR, TSTR and TSTR/TRTR on each source's holdout VUs alone, each against that source's chance; a TSTR at
    or below it is marked, and whether TRTR is too."""
    from synthvu_core.evaluation.source_utility import MIN_PATIENTS, source_rows, untested_text

    rows = source_rows(report.scalars, report.meta.get("missing") or {})
    untested = untested_text(report.scalars, report.meta)
    if not rows:
        return [f"utility per source: {untested}"] if untested else []
    lines = ["utility per source (each source's holdout VUs alone; balanced accuracy over their classes; 95% CI over "
             "that source's holdout patients and seeds)",
             f"  {'source':<16}{'holdout':<20}{'chance':<8}{'TRTR':<24}{'TSTR':<24}TSTR/TRTR"]
    for r in rows:
        chance = "—" if r.chance is None else f"{r.chance:.3f}"
        cells = [x.short() for x in (r.trtr, r.tstr, r.ratio)]
        lines.append(f"  {r.name:<16}{r.support:<20}{chance:<8}{cells[0]:<24}{cells[1]:<24}{cells[2]}")
        if r.mark():
            lines.append("    " + _red(r.mark()))
    if any(r.n_patients is not None and r.n_patients < MIN_PATIENTS for r in rows):
        lines.append(f"  (no interval below {MIN_PATIENTS} holdout patients of a source: a value on one or two "
                     "patients says little about that site's next patient)")
    return lines + ([f"  {untested}"] if untested else [])


def recall_lines(arrays: dict, classes: list[str], chance: float | None) -> list[str]:
    """Per-class recall of TRTR and TSTR on the holdout, each with its interval and the VUs and patients it rests
    on; a TSTR recall at or below chance is marked, and whether TRTR is too."""
    from synthvu_core.evaluation.utility import REAL_ALSO_AT_CHANCE, recall_table

    rows, absent = recall_table(arrays)
    if not rows and not absent:
        return []
    name = lambda i: classes[i] if i < len(classes) else str(i)  # noqa: E731
    lines = ["recall per class (pooled over seeds; 95% CI over holdout patients and seeds)",
             f"  {'class':<10}{'holdout':<20}  {'TRTR':<32}  TSTR"]
    for r in rows:
        cells = [x.cell() if x is not None else "—" for x in (r.trtr, r.tstr)]
        low = r.tstr is not None and r.tstr.at_or_below(chance)
        mark = "  at or below chance" + (f"; {REAL_ALSO_AT_CHANCE}" if r.real_fails_too(chance) else "")
        lines.append(f"  {name(r.index):<10}{r.support:<20}  {cells[0]:<32}  {cells[1]}" + (_red(mark) if low else ""))
    if absent:
        lines.append("  absent from the holdout (not counted): " + ", ".join(name(i) for i in absent))
    return lines


def summary_table(report) -> str:  # noqa: ANN001 - Report, imported lazily
    """A plain-text summary: utility (mean [CI] over seeds), fidelity, the attacks with their 5 % control and
    independent control AUCs, power, both verdicts."""
    from synthvu_core.evaluation.cohort import cohort_line
    from synthvu_core.evaluation.verdicts import LEVEL_WORDS
    from synthvu_core.names import INDEPENDENT_CONTROL, POWER_FRACTION, graded_control

    s, m = report.scalars, report.meta
    lines = [
        f"model {m.get('model', '?')} · dataset {m.get('dataset_fingerprint')} · "
        f"{m.get('n_synthetic')} synthetic VUs (seed {m.get('synthetic_seed')})"
    ]
    if getattr(report, "integrity", ""):
        lines.append(f"report      {report.integrity}")
    lines += utility_lines(report)
    lines.append(
        "fidelity    FD {}  precision {}  recall {}  density {}  coverage {}".format(
            *(_fmt(s.get(f"fidelity.{k}")) for k in ("frechet_distance", "precision", "recall", "density", "coverage"))
        )
    )
    src = m.get("sources") or {}
    if src.get("real"):
        acc = src.get("check_accuracy")
        lines.append(
            "sources     "
            + "  ".join(f"{k} {src['synthetic'][k]:.0%} of samples (real {v:.0%})" for k, v in src["real"].items())
            + (f"  (source classifier balanced accuracy {acc:.2f} on real holdout)" if acc is not None else "")
        )
        lines += [f"WARNING     {w}" for w in src.get("warnings", [])]
    if "n_member_patients" in m:
        lines.append(
            f"membership  {m['n_member_patients']} member patients ({m['n_members']} VUs) vs "
            f"{m['n_nonmember_patients']} "
            f"non-member patients ({m['n_nonmembers']} VUs), {m.get('vus_per_patient')} VUs per patient"
        )
    power = m.get("power") or {}
    ind = report.controls.get(INDEPENDENT_CONTROL)
    lines.append(
        f"{'privacy':<26}{'AUC [95% CI]':>22} {'TPR@1%FPR':>22} {'p':>7} {'power@5%':>9} {'5% control AUC':>22} "
        f"{'independent AUC':>22}"
    )
    names = sorted(
        {".".join(k.split(".")[1:3]) for k in s if k.startswith("privacy.") and not k.startswith("privacy.worst")}
    )
    for n in names:
        if s.get(f"privacy.{n}.auc") is None:
            lines.append(f"  {n:<24}{'—':>22}  ({m.get('missing', {}).get(f'privacy.{n}.auc', '')})")
            continue
        tpr = (
            _ci(s, f"privacy.{n}.tpr_at_1pct_fpr")
            if s.get(f"privacy.{n}.tpr_at_1pct_fpr") is not None
            else "not estimable"
        )
        pw = _power_word(power.get(n.replace(".", "/"), {}))
        ctl = report.controls.get(graded_control(POWER_FRACTION))
        lines.append(
            f"  {n:<24}{_ci(s, f'privacy.{n}.auc'):>22} {tpr:>22} {_fmt(s.get(f'privacy.{n}.p_value')):>7} "
            f"{pw:>9} {_ci(ctl.scalars, f'privacy.{n}.auc') if ctl else '—':>22} "
            f"{_ci(ind.scalars, f'privacy.{n}.auc') if ind else '—':>22}"
        )
    lines.append("cohort      " + cohort_line(s, m.get("missing")))
    for threat, v in (m.get("verdicts") or {}).items():
        word = LEVEL_WORDS.get(str(v.get("level")), str(v.get("level")))
        lines.append(f"verdict {threat} [{word}]: {v.get('text')}")
    for name, ctl in report.controls.items():
        lines.append(f"control {name:<14} pairwise pixel AUC {_ci(ctl.scalars, 'privacy.pairwise.pixel.auc')}")
    return "\n".join(lines)


def _show(args: argparse.Namespace) -> int:
    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.report import load_report

    folder = _resolve(args.model)
    report = load_report(folder)
    if report is None and _show_volume(folder, args):
        return 0
    if report is None:
        raise ReportError(f"{folder / 'report'}: no report yet; run `python -m synthvu_core evaluate {args.model}`")
    if args.json:
        doc = {
            "scalars": report.scalars,
            "controls": {n: c.scalars for n, c in report.controls.items()},
            "meta": {
                k: report.meta.get(k)
                for k in ("model", "dataset_fingerprint", "n_synthetic", "synthetic_seed", "created")
            },
        }
        doc["privacy"] = _privacy_summary(folder)
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(summary_table(report))
        p = _privacy_summary(folder)
        print(f"privacy: {p['this_run']}")
        if p["audit"]:
            print(f"audit: {p['audit']}")
    return 0


def _vu_reports_only(folder: Path, action: str) -> None:
    """Refuse ``report ACTION`` of a sub-volume generator in one line (it has no VU report for ACTION to read; its
    ``volume_report.json`` is read by ``report show``, ``report table`` and ``report slides``) instead of saying
    "no report yet" of a generator that has one."""
    from synthvu_core.errors import ReportError, SynthVUError
    from synthvu_core.evaluation import volume
    from synthvu_core.models.registry import load_card

    try:
        card = load_card(folder)
    except SynthVUError:
        return
    if volume.is_volume_card(card):
        raise ReportError(f"{folder}: a sub-volume generator; `report {action}` reads VU reports only (its "
                          f"{volume.VOLUME_REPORT} is read by `report show`, `report table` and `report slides`)")


def _show_volume(folder: Path, args: argparse.Namespace) -> bool:
    """``report show`` of a sub-volume generator: its ``report/volume_report.json`` printed (True); False where the
    folder is no sub-volume generator; :class:`ReportError` where it is one without a report of its own."""
    from synthvu_core.errors import ReportError, SynthVUError
    from synthvu_core.evaluation import volume
    from synthvu_core.models.registry import load_card

    try:
        card = load_card(folder)
    except SynthVUError:  # no readable card: the VU report's own message says what is missing
        return False
    if not volume.is_volume_card(card):
        return False
    report = volume.load_volume_report(folder, card)
    if report is None:
        raise ReportError(f"{folder / 'report' / volume.VOLUME_REPORT}: no sub-volume report yet; run `python -m "
                          f"synthvu_core evaluate {args.model}`")
    if args.json:
        privacy = report.get("privacy") if isinstance(report.get("privacy"), dict) else {}
        doc = {
            "unit": "subvolume",
            "scalars": report["scalars"],
            "controls": privacy.get("controls") or {},  # the pairwise pixel attack's scalars on each control
            "meta": {"model": report.get("model"), "dataset_fingerprint": report.get("dataset"),
                     "n_synthetic": report.get("n_synthetic"), "synthetic_seed": report.get("seed")},
            "volume_report": report,
            "privacy": _privacy_summary(folder),
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return True
    print(volume.measured_line(report))
    print("\n".join(volume.summary_lines(report)))
    print(f"training privacy: {_privacy_summary(folder)['this_run']}")
    return True


def _amend(args: argparse.Namespace) -> int:
    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.amend import (
        add_cohort_test,
        add_composed_bound,
        add_release_utility,
        add_source_utility,
    )

    folder, failed, report = _resolve(args.model), [], None
    _vu_reports_only(folder, "amend")
    # each on its own: one's failure does not stop the others
    for step in (add_cohort_test, add_source_utility, add_release_utility, add_composed_bound):
        try:
            report, done = step(folder, dataset=args.dataset)
            print(f"{folder.name}: {done}")
        except ReportError as err:
            failed.append(str(err))
    verdict = ((report.meta.get("verdicts") or {}) if report is not None else {}).get("released_samples")
    if verdict:
        print(f"verdict (a): {verdict['level']}: {verdict['text']}")
    if failed:
        raise ReportError("; ".join(dict.fromkeys(failed)))  # a report every step fails on: said once
    return 0


def _privacy_summary(folder: Path) -> dict[str, Any]:
    """This run's DP line (with the dataset's composed epsilon, from the card's ledger) and the audit's line."""
    from synthvu_core.errors import SynthVUError
    from synthvu_core.models.audit import audit_line, load_audit
    from synthvu_core.models.commands import privacy_text
    from synthvu_core.models.ledger import composed_of
    from synthvu_core.models.registry import load_card

    try:
        card = load_card(folder)
    except SynthVUError:  # a report folder without a readable card: the report's numbers still show
        return {"this_run": "not recorded (no readable card.json)", "epsilon": None, "composed_epsilon": None,
                "composed_bound": "none recorded", "audit": None}
    found = composed_of(card)
    audit = load_audit(folder)
    return {
        "this_run": privacy_text(card.get("dp"), card),
        "epsilon": (card.get("dp") or {}).get("epsilon"),
        "composed_epsilon": None if found is None else (None if found[0] == float("inf") else found[0]),
        "composed_bound": "none recorded" if found is None else ("infinite" if found[0] == float("inf") else "finite"),
        "audit": None if audit is None else audit_line(audit),
    }


def _verify(args: argparse.Namespace) -> int:
    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.evaluation.verify import verify_report

    folder = _resolve(args.model)
    saved = load_report(folder)
    if saved is None:
        _vu_reports_only(folder, "verify")
        raise ReportError(
            f"{folder / 'report'}: no report to verify; run `python -m synthvu_core evaluate {args.model}`"
        )
    fresh, diffs = verify_report(folder, saved, dataset=args.dataset, progress=not args.quiet)
    n = len(set(fresh.scalars)) + sum(len(c.scalars) for c in fresh.controls.values())
    if diffs:
        across = _across_machines(saved, fresh)
        if across is not None and not across:
            from synthvu_core.evaluation.tolerance_rules import UNCHECKED_AT, across_machine_tolerances

            loose = ", ".join(f"{g} ({t:g})" for g, t in across_machine_tolerances() or () if t >= UNCHECKED_AT)
            moved = sum(not d.startswith("verdict ") for d in diffs)  # scalars; a counted-family line is no scalar
            print(f"{folder / 'report'}: reproduced within the tolerance measured across machines: {moved} of "
                  f"{n} scalars differ beyond the same-machine tolerance, none beyond the across-machine one; "
                  f"{_counted_change(saved, fresh)}"
                  + (f". Not checked across machines (they move this much between CPUs): {loose}; attacks in these "
                     "spaces may enter or leave the counted family there" if loose else ""))
            _print_environment(saved.meta.get("numerics"))
            return 0
        shown = diffs if across is None else across
        what = "tolerance" if across is None else "the tolerance measured across machines"
        print(f"{folder / 'report'}: {len(shown)} difference(s) beyond {what}, re-run from scratch:")
        print("\n".join(f"  {d}" for d in shown))
        _print_environment(saved.meta.get("numerics"))
        return 1
    print(f"{folder / 'report'}: reproduced: {n} scalars within tolerance, verdicts and counted attacks identical")
    return 0


def _counted_change(saved, fresh) -> str:  # noqa: ANN001 - Reports, imported lazily
    """Verdicts identical (checked); the counted family identical, or which unchecked attacks entered or left it."""
    def counted(r) -> set[str]:  # noqa: ANN001
        return set(((r.meta.get("verdicts") or {}).get("released_samples") or {}).get("counted") or [])

    left, entered = sorted(counted(saved) - counted(fresh)), sorted(counted(fresh) - counted(saved))
    if not left and not entered:
        return "verdicts and counted attacks identical"
    moved = "; ".join(f"{how}: {', '.join(names)}" for how, names in (("left", left), ("entered", entered)) if names)
    return f"verdicts identical, counted attacks identical but for attacks unchecked across machines ({moved})"


def _across_machines(saved, fresh) -> list[str] | None:  # noqa: ANN001 - Reports, imported lazily
    """The differences beyond the across-machine tolerance where the report records its numeric environment, the
    re-run's is another and such a tolerance is measured; None otherwise (the same-machine tolerance applies)."""
    from synthvu_core.evaluation.threads import environment_changes, numeric_environment
    from synthvu_core.evaluation.tolerance_rules import across_machine_tolerances
    from synthvu_core.evaluation.verify import differences

    rules, recorded = across_machine_tolerances(), saved.meta.get("numerics")
    if rules is None or not recorded or not environment_changes(recorded, numeric_environment()):
        return None
    return differences(saved, fresh, rules, across_machines=True)


def _print_environment(saved: dict | None) -> None:
    """Where the re-run's numeric environment differs from the report's: the differences above may be rounding
    of another CPU's kernels, which the same-machine tolerance does not cover."""
    from synthvu_core.evaluation.threads import environment_changes, numeric_environment

    changes = environment_changes(saved, numeric_environment())
    if changes:
        print("The re-run's numeric environment differs from the report's, so differences from kernel rounding are "
              "possible (the same-machine tolerance is for a re-run on the report's own machine):")
        print("\n".join(f"  {c}" for c in changes))


def _table(args: argparse.Namespace) -> int:
    """The tables; a generator named on the command line whose report cannot be read is named, with the problem, on
    stderr (exit 2, the others' rows still printed); shipped ones without a report are left out quietly."""
    from synthvu_core.evaluation.table import tables

    skipped: list[str] = []
    if args.models:
        folders = [_resolve(m) for m in args.models]
    else:
        from synthvu_core.models.registry import list_generators

        folders = [g.path for g in list_generators() if g.source == "shipped"]
    print(tables(folders, skipped), end="")
    if args.models and skipped:
        for why in skipped:
            print(f"synthvu: error: {why}", file=sys.stderr)
        return 2
    return 0


def _seeds(args: argparse.Namespace) -> int:
    from synthvu_core.errors import SelectionError
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.evaluation.training_seeds import as_json, group_lines, group_runs
    from synthvu_core.models.registry import load_card

    found = []
    for model in args.models:
        folder = _resolve(model)
        report = load_report(folder)
        if report is None:
            _vu_reports_only(folder, "seeds")
            raise SelectionError(f"{folder}: no saved report: run `python -m synthvu_core evaluate {folder}` first")
        found.append((folder, load_card(folder), report))
    names = [str(card.get("name") or folder.name) for folder, card, _ in found]
    if len(set(names)) < len(names):  # runs of one recipe often share a name: tell them apart by their folders
        names = [str(folder) for folder, _, _ in found]
    groups = group_runs([(n, card, report) for n, (_, card, report) in zip(names, found)])
    print(json.dumps(as_json(groups), indent=2) if args.json else "\n".join(group_lines(groups)))
    return 0


def _slides(args: argparse.Namespace) -> int:
    """The deck is drawn by the dashboard's figure code (``dashboard/slides.py``), found beside the package."""
    from synthvu_core.errors import SynthVUError
    from synthvu_core.locations import app_root
    from synthvu_core.storage import atomic_path, check_suffix, check_writable

    out = check_writable(check_suffix(args.out, (".html",), "slide deck"), "slide deck")
    root = app_root()
    if root is None:
        raise SynthVUError("dashboard/: the dashboard is not installed beside synthvu_core, so no slides can be drawn")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from dashboard.slides import deck_html, entries_from_folders
    from synthvu_core.evaluation.volume import is_volume_card
    from synthvu_core.models.registry import load_card

    folders = [_resolve(m) for m in args.models]
    volume = [f for f in folders if is_volume_card(load_card(f))]
    if volume and len(folders) > 1:
        raise SynthVUError(f"{volume[0]}: a sub-volume generator gets a deck of its own; give it alone")
    if volume:
        from dashboard.volume_slides import volume_deck_html

        text = volume_deck_html(volume[0], title=args.title)
    else:
        text = deck_html(entries_from_folders(folders), title=args.title)
    with atomic_path(out) as tmp:
        tmp.write_text(text, encoding="utf-8")
    print(f"slide deck written to {out} ({len(text) / 1e6:.1f} MB, opens offline)")
    return 0
