"""Human-readable model cards: ``README.md`` in the Hugging Face model-card layout (YAML metadata, then
sections), written from a generator's ``card.json`` and its evaluation report.

``python -m synthvu_core models card MODEL`` writes ``MODEL/README.md``; ``models card --all`` rewrites
the card of every shipped generator. No number is typed in by hand: every value comes from the card or
the report, and a value the report lacks is said to be not measured, with the report's reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthvu_core.names import CLINICAL_REPORT_FILE, NOT_COVERED_BY_DP, ONE_GENERATOR, REPORT_DIR
from synthvu_core.records import epochs_text

if TYPE_CHECKING:
    import numpy as np

    from synthvu_core.records import Report

README_FILE = "README.md"
ATTACK_NAMES = {"pairwise": "pairwise (distance to closest record)", "distribution": "distribution (Monte-Carlo)",
                "domias": "DOMIAS (density ratio)", "discriminator": "discriminator (white-box)"}
SPACES = ("pixel", "embedding", "umap")


def _num(value: Any, digits: int = 3) -> str:
    return "not measured" if value is None else f"{float(value):.{digits}f}"


def _yaml(name: str, card: Mapping[str, Any], scalars: Mapping[str, float | None]) -> str:
    """YAML front matter (strings written as JSON strings, which YAML reads unchanged)."""
    dp = card.get("dp") or {}
    tags = ["synthetic-data", "medical-imaging", "mri", "spine", "gan", "pytorch"]
    if dp:
        tags.append("differential-privacy")
    lines = ["---", "license: apache-2.0", "library_name: synthvu", "tags:"] + [f"- {t}" for t in tags]
    metrics = [(k, label) for k, label in (("utility.tstr.balanced_accuracy", "TSTR balanced accuracy"),
                                           ("utility.tstr_over_trtr", "TSTR / TRTR"),
                                           ("fidelity.frechet_distance", "Frechet distance (embedding)"),
                                           ("privacy.worst.auc", "worst membership-inference AUC"))
               if scalars.get(k) is not None]
    if metrics:
        dataset = (card.get("dataset") or {}).get("recipe", {}).get("name") or "own NIfTI data"
        lines += ["model-index:", f"- name: {json.dumps(name)}", "  results:", "  - task:",
                  "      type: image-generation", "      name: conditional synthetic VU generation",
                  "    dataset:", f"      type: {json.dumps(dataset)}", f"      name: {json.dumps(dataset)}",
                  "    metrics:"]
        for key, label in metrics:
            lines += [f"    - type: {json.dumps(key)}", f"      name: {json.dumps(label)}",
                      f"      value: {float(scalars[key]):.4f}"]
    return "\n".join(lines + ["---", ""])


def _data_section(card: Mapping[str, Any]) -> list[str]:
    ds = card.get("dataset") or {}
    recipe = ds.get("recipe") or {}
    split = ds.get("split") or {}
    split_txt = " / ".join(f"{k} {split[k]}" for k in ("train", "holdout", "reference") if k in split) or "not recorded"
    if recipe:
        what = (f"the built-in procedural spine phantom **{recipe.get('name')}** ({recipe.get('n_patients')} synthetic "
                f"patients, seed {recipe.get('seed')}, {recipe.get('contrast')} contrast): no real patient is involved")
    else:
        n = len(ds["sources"]) if isinstance(ds.get("sources"), list) else ds.get("sources", "an unrecorded number of")
        what = f"real NIfTI volumes ({n} source files)"
    d, h, w = card["shape"]
    if (card.get("architecture") or {}).get("spatial_dims") == 3:
        mm = (ds.get("spacing") or ["?"])[0]
        unit, units = (f"Sub-volumes: {d}x{h}x{w} voxels of {mm} mm (left-right, superior-inferior, "
                       "anterior-posterior) centred on a disc"), "sub-volumes"
    else:
        unit, units = f"Vertebral units (VUs): {d} parasagittal slices of {h}x{w} pixels centred on a disc", "VUs"
    return [
        "## Training data",
        "",
        f"Trained on {what}. {unit}; classes ({card['scheme']} scheme): {', '.join(card['classes'])}.",
        "",
        f"- dataset fingerprint: `{ds.get('fingerprint')}`",
        f"- patient-wise split: {split_txt} (seed {split.get('seed', '?')}"
        f"{', stratified by source and levels' if split.get('stratify') else ''}); only the train part was seen in "
        "training",
        f"- training {units}: {ds.get('n_train', 'not recorded')}",
        "",
    ]


_RELATION = {"patient": "add or remove one patient (all of that patient's VUs)", "vu": "add or remove one VU"}


def _privacy_section(card: Mapping[str, Any], audit: Mapping[str, Any] | None = None) -> list[str]:
    dp = card.get("dp")
    out = ["## Privacy unit and (epsilon, delta)", ""]
    if not dp:
        return out + [
            "Trained **without differential privacy**: there is no formal guarantee. The membership-inference",
            "attacks below are the only evidence of how much the generator leaks its training patients.",
            f"Privacy ledger of its training data: {_composed_line(card)}.",
            "",
        ]
    unit = dp.get("unit") or dp.get("privacy_unit")
    unit_txt = (
        f"one **{unit}**"
        if unit
        else "one **VU** (a training example; the card names no other unit). A "
        "patient contributes several VUs, so a patient is protected only at the group-privacy level (about "
        "epsilon times the VUs per patient)"
    )
    return out + [
        f"- privacy unit: {unit_txt}; neighbouring datasets: "
        f"{dp.get('neighbouring', _RELATION.get(unit, 'not stated'))}",
        f"- epsilon = {_num(dp.get('epsilon'), 2)} at delta = {dp.get('delta', 0):.2g} for this run "
        f"({dp.get('accountant', '?')} accountant)",
        f"- {_composed_line(card)}",
        f"- DP-SGD on the {dp.get('private_module', 'discriminator')}: noise multiplier "
        f"{_num(dp.get('noise_multiplier'))}, clipping norm {_num(dp.get('clip_norm', dp.get('max_grad_norm')))} "
        f"({'per patient' if unit == 'patient' else 'per example'}), sampling {dp.get('sampling', '?')} at rate "
        f"{_num(dp.get('sample_rate'), 4)}",
        "- the generator sees real data only through the private discriminator, so its weights carry the same "
        "(epsilon, delta) by post-processing",
        f"- class list and prior: {dp.get('classes', 'the classes the train split holds')}; "
        f"{dp.get('class_prior', 'the train split label frequencies, outside this accounting')}",
        "- training checkpoint: "
        + dp.get("checkpoint", "private material where kept (it holds the mechanism random state)"),
        *([f"- {audit_line(audit)}"] if audit else []),
        "",
    ]


def audit_line(audit: Mapping[str, Any]) -> str:
    from synthvu_core.models.audit import audit_line as line

    return line(audit)


def _composed_line(card: Mapping[str, Any]) -> str:
    from synthvu_core.models.ledger import composed_text

    text = composed_text(card)
    if text is None:
        runs = (card.get("dp") or {}).get("private_runs")
        return (f"{runs} DP run(s) on these data declared by hand, not composed; the card records no privacy ledger"
                if runs else "the card records no privacy ledger: other runs on these data are not composed")
    return text.replace("ε", "epsilon").replace("∞", "infinity")


def _metric_rows(scalars: Mapping[str, float | None], missing: Mapping[str, str]) -> list[str]:
    def val(key: str) -> str:
        v = scalars.get(key)
        lo, hi = scalars.get(key + "_ci_low"), scalars.get(key + "_ci_high")
        ci = f" [{_num(lo)}, {_num(hi)}]" if v is not None and lo is not None and hi is not None else ""
        return _num(v) + ci if v is not None or key not in missing else f"not computable ({missing[key]})"

    rows = ["| metric | value |", "|---|---|"]
    for key, label in (
        ("utility.trtr.balanced_accuracy", "TRTR balanced accuracy (real -> real)"),
        ("utility.tstr.balanced_accuracy", "TSTR balanced accuracy (synthetic -> real)"),
        ("utility.trts.balanced_accuracy", "TRTS balanced accuracy (real -> synthetic)"),
        ("utility.tstr_over_trtr", "TSTR / TRTR"),
        ("fidelity.frechet_distance", "Frechet distance"),
        ("fidelity.precision", "precision"),
        ("fidelity.recall", "recall"),
        ("fidelity.density", "density"),
        ("fidelity.coverage", "coverage"),
    ):
        if key in scalars:
            rows.append(f"| {label} | {val(key)} |")
    return rows


def _utility_lines(report: Report) -> list[str]:
    """Chance, the usefulness label and per-class recall of TRTR and TSTR on the real holdout."""
    from synthvu_core.evaluation.utility import report_usefulness

    arrays = report.arrays
    label = report_usefulness(report.scalars, report.meta, arrays.get("utility/trtr/recall"))
    chance = "not measured" if label.chance is None else f"{label.chance:.3f}"
    text = f"**{label.text}**" if label.level == "not_useful" else label.text
    out = [f"Chance level of the balanced accuracies (1 / classes present in the holdout): {chance}. "
           f"Usefulness: {text}. The utility intervals are over holdout patients and classifier seeds; "
           f"{ONE_GENERATOR}.", ""]
    from synthvu_core.evaluation.release_utility import release_text

    classes = list(report.meta.get("classes") or [])
    release = release_text(report.scalars, arrays, classes, report.meta.get("missing") or {})
    out += [release, ""] if release else []
    return out + _recall_table(arrays, classes, label.chance) + _source_table(report)


def _source_table(report: Report) -> list[str]:
    """TRTR, TSTR and TSTR/TRTR on each source's holdout VUs alone (datasets of several sources)."""
    from synthvu_core.evaluation.source_utility import source_caption_text, source_rows, untested_text

    rows = source_rows(report.scalars, report.meta.get("missing") or {})
    untested = untested_text(report.scalars, report.meta)
    if not rows:
        return [f"Utility per source: {untested}.", ""] if untested else []
    out = ["| source | holdout | chance | TRTR | TSTR | TSTR / TRTR |", "|---|---|---|---|---|---|"]
    for r in rows:
        tstr = f"**{r.tstr.short()}: {r.mark()}**" if r.mark() else r.tstr.short()
        chance = "—" if r.chance is None else f"{r.chance:.3f}"
        out.append(f"| {r.name} | {r.support} | {chance} | {r.trtr.short()} | {tstr} | {r.ratio.short()} |")
    return out + ["", source_caption_text(report.scalars, report.meta), ""]


def _recall_table(arrays: Mapping[str, np.ndarray], classes: list[str], chance: float | None) -> list[str]:
    """Per-class recall of TRTR and TSTR on the holdout with intervals and the VUs and patients each rests on."""
    from synthvu_core.evaluation.utility import REAL_ALSO_AT_CHANCE, recall_table

    rows, absent = recall_table(arrays)
    if not rows and not absent:
        return []
    name = lambda i: classes[i] if i < len(classes) else str(i)  # noqa: E731
    out = ["| class | holdout | TRTR recall | TSTR recall |", "|---|---|---|---|"]
    for r in rows:
        trtr, tstr = (x.cell() if x is not None else "—" for x in (r.trtr, r.tstr))
        if r.tstr is not None and r.tstr.at_or_below(chance):
            tstr = f"**{tstr}, at or below chance**" + (f" ({REAL_ALSO_AT_CHANCE})" if r.real_fails_too(chance) else "")
        out.append(f"| {name(r.index)} | {r.support} | {trtr} | {tstr} |")
    gone = f" Absent from the holdout (not counted in balanced accuracy or chance): {', '.join(map(name, absent))}." \
        if absent else ""
    return out + ["", "Recall pooled over the classifier seeds, 95 % interval over holdout patients and seeds, at "
                  "least the exact binomial interval over the class's patients (none where one patient holds the "
                  f"class).{gone}", ""]


def _attack_rows(report: Report) -> list[str]:
    """Every attack with its AUC, and beside it its AUC on the 5 % graded control and on the independent control."""
    from synthvu_core.names import INDEPENDENT_CONTROL, POWER_FRACTION, graded_control

    scalars = report.scalars
    controls = getattr(report, "controls", {}) or {}
    graded, ind = controls.get(graded_control(POWER_FRACTION)), controls.get(INDEPENDENT_CONTROL)
    counted = set(((report.meta.get("verdicts") or {}).get("released_samples") or {}).get("counted") or [])
    rows = [
        "| attack | space | AUC [95% CI] | TPR at 1% FPR | patient-level AUC | 5% control AUC [95% CI] | "
        "independent control AUC [95% CI] | in verdict (a) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for attack, name in ATTACK_NAMES.items():
        for space in SPACES:
            p = f"privacy.{attack}.{space}"
            if scalars.get(f"{p}.auc") is None:
                continue
            role = "—" if attack == "discriminator" else ("counted" if f"{attack}/{space}" in counted else "no power")
            rows.append(
                f"| {name} | {space} | {_auc_ci(scalars, p)} | "
                f"{_num(scalars.get(f'{p}.tpr_at_1pct_fpr'))} | {_num(scalars.get(f'{p}.patient_auc'))} | "
                f"{_auc_ci(graded.scalars, p) if graded else '—'} | "
                f"{_auc_ci(ind.scalars, p) if ind else '—'} | {role} |"
            )
    return rows


def _auc_ci(scalars: Mapping[str, float | None], p: str) -> str:
    lo, hi = scalars.get(f"{p}.auc_ci_low"), scalars.get(f"{p}.auc_ci_high")
    ci = f" [{_num(lo)}, {_num(hi)}]" if lo is not None and hi is not None else ""
    return f"{_num(scalars.get(f'{p}.auc'))}{ci}"


def stored_report_version(folder: str | Path) -> int | None:
    """The ``report_version`` a generator folder's saved report declares (read from its JSON, no number of it
    trusted); None where there is no report or it declares none."""
    from synthvu_core.names import REPORT_DIR, REPORT_FILE

    try:
        version = json.loads((Path(folder) / REPORT_DIR / REPORT_FILE).read_text())["meta"].get("report_version")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _unread_report_lines(name: str, folder: Path) -> list[str]:
    """Why a saved report that exists is not quoted: written by an older evaluation, or not this generator's."""
    from synthvu_core.records import REPORT_VERSION

    rerun = f"`python -m synthvu_core evaluate {name} --controls`"
    version = stored_report_version(folder)
    if version is not None and version < REPORT_VERSION:
        return [
            f"**Stale evaluation report**: the saved report was written by evaluation version {version}; the "
            f"current evaluation is version {REPORT_VERSION} (other utility intervals, power and verdicts). Its "
            "numbers are **not quoted** here: utility, fidelity and privacy of this generator are not measured by "
            f"the current evaluation. Regenerate the report with {rerun}.",
            "",
        ]
    return [
        "**Evaluation report not quoted**: the saved report is not this generator's current one (other weights, "
        f"or it cannot be read), so its numbers are **not quoted** here. Regenerate it with {rerun}.",
        "",
    ]


def _evaluation_section(report: Report | None, name: str = "MODEL", folder: Path | None = None) -> list[str]:
    from synthvu_core.names import REPORT_DIR, REPORT_FILE

    out = ["## Evaluation", ""]
    if report is None and folder is not None and (folder / REPORT_DIR / REPORT_FILE).is_file():
        return out + _unread_report_lines(name, folder)
    if report is None:
        return out + [
            "No evaluation report: utility, fidelity and privacy are **not measured**. Compute it with",
            "`python -m synthvu_core evaluate MODEL --controls`.",
            "",
        ]
    meta, scalars = report.meta, report.scalars
    out += [
        f"From the evaluation report ({meta.get('n_synthetic', '?')} synthetic VUs, seed {meta.get('seed', '?')}, "
        f"created {meta.get('created', '?')}). Utility: a VU-position classifier tested on the real holdout split. "
        f"Privacy: membership-inference attacks on {meta.get('n_members', '?')} member and "
        f"{meta.get('n_nonmembers', '?')} non-member VUs ({meta.get('n_member_patients', '?')} and "
        f"{meta.get('n_nonmember_patients', '?')} patients); AUC 0.5 and TPR 0.01 are chance; intervals are "
        "patient-clustered 95% CIs.",
        "",
    ]
    out += (_verdict_lines(meta) + _metric_rows(scalars, report.missing()) + [""] + _utility_lines(report)
            + _attack_rows(report) + [""])
    out.append(
        f"Strongest attack: AUC {_num(scalars.get('privacy.worst.auc'))}, TPR at 1% FPR "
        f"{_num(scalars.get('privacy.worst.tpr_at_1pct_fpr'))}."
    )
    for name, ctl in sorted(getattr(report, "controls", {}).items()):
        out.append(_control_line(name, ctl.scalars))
    return out + [""]


def _volume_evaluation_section(card: Mapping[str, Any], folder: Path) -> list[str]:
    """The evaluation of a sub-volume generator, from ``report/volume_report.json`` (quoted only where it is this
    generator's: its name and dataset fingerprint match the card)."""
    from synthvu_core.evaluation.volume import VOLUME_REPORT, summary_lines
    from synthvu_core.names import REPORT_DIR

    out = ["## Evaluation", ""]
    path = folder / REPORT_DIR / VOLUME_REPORT
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        report = None
    from synthvu_core.evaluation.volume import report_of

    if not report_of(report, card):
        return out + [
            "No sub-volume evaluation report of this generator: utility, fidelity and privacy are **not measured**. "
            "Compute it with `python -m synthvu_core evaluate MODEL`.",
            "",
        ]
    c, smp = report.get("counts") or {}, report.get("sampling") or {}
    out += [
        f"From the sub-volume evaluation report ({report.get('n_synthetic', '?')} synthetic sub-volumes, seed "
        f"{report.get('seed', '?')}, {smp.get('steps', '?')} flow steps, guidance {smp.get('guidance', '?')}). "
        f"Utility: a 3-D position classifier trained on {c.get('real_train', '?')} real or "
        f"{c.get('synthetic_for_tstr', '?')} synthetic sub-volumes, tested on {c.get('real_holdout', '?')} real "
        f"holdout sub-volumes of {c.get('holdout_patients', '?')} patients; balanced accuracy over classifier seeds "
        f"{report.get('seeds')}, 95% interval over holdout patients and seeds.",
        "",
    ]
    return out + [f"- {line}" for line in summary_lines(report)] + [""]


def _control_line(name: str, scalars: Mapping[str, float | None]) -> str:
    """A control's highest attack AUC, naming the attack and space (controls record no ``privacy.worst``)."""
    aucs = {
        k: float(v)
        for k, v in scalars.items()
        if k.startswith("privacy.") and k.endswith(".auc") and not k.startswith("privacy.worst.") and v is not None
    }
    if not aucs:
        return f"Control *{name}*: no attack measured."
    key = max(aucs, key=lambda k: aucs[k])
    attack, space = key.split(".")[1:3]
    return f"Control *{name}*: highest attack AUC {_num(aucs[key])} ({attack} attack, {space} space)."


#: Verdicts as the report states them, one line per threat model (the evaluation's own words).
_THREATS = {"released_samples": "Verdict (a), released samples", "released_discriminator":
            "Verdict (b), released discriminator"}


def _verdict_lines(meta: Mapping[str, Any]) -> list[str]:
    from synthvu_core.evaluation.verdicts import LEVEL_WORDS

    verdicts = meta.get("verdicts") or {}
    if not verdicts:
        return ["No privacy verdict in this report: re-run `python -m synthvu_core evaluate MODEL --controls`.", ""]
    lines = []
    for threat, label in _THREATS.items():
        v = verdicts.get(threat) or {}
        if v:
            word = LEVEL_WORDS.get(str(v.get("level")), v.get("level", "?"))
            lines += [f"**{label}** ({word}): {' '.join(str(v.get('text', '')).split())}", ""]
    return lines


def _limits_and_sharing(card: Mapping[str, Any]) -> list[str]:
    from synthvu_core.models.ledger import composed_of

    private = bool(card.get("dp"))
    phantom = bool((card.get("dataset") or {}).get("recipe"))
    data_limit = (
        "- A phantom-trained generator says nothing about real anatomy or pathology."
        if phantom
        else "- Trained on real scans from one cohort: it may not transfer to another scanner, protocol or population."
    )
    found = composed_of(card)
    if not private or (found is not None and found[0] == float("inf")):
        bound = " no formal bound holds for the training patients (see the privacy ledger above)."
    elif found is None:
        bound = " the (epsilon, delta) bound of this run holds for any attack; other runs on the data are not composed."
    else:
        bound = " the composed (epsilon, delta) bound holds for any attack."
    return [
        "## Limitations",
        "",
        "- Membership-inference AUCs are measured against the attacks listed, not against every possible attack;"
        + bound,
        "- The utility classifier predicts the VU's position only; other downstream tasks are not measured.",
        data_limit,
        "- Not for diagnosis or any clinical decision.",
        *([f"- The DP bound: {NOT_COVERED_BY_DP}."] if private else []),
        "",
        "## Sharing",
        "",
        "**Share only the generator weights** (`generator.safetensors`) with `card.json`, this README and the public "
        "report that `python -m synthvu_core share MODEL --out DIR` writes (aggregate numbers only). Never share the "
        "discriminator of a generator trained without DP (it is a membership oracle), the report's `arrays.npz` (real "
        "VUs' embeddings and UMAP coordinates, per-candidate and per-patient scores) or the training checkpoint "
        "(private material: under DP it holds the mechanism's random state).",
        "",
    ]


def _ci_text(part: Mapping[str, Any], key: str) -> str:
    ci = part.get("interval")
    return f"{_num(part.get(key))}" + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else " (interval not estimable)")


def _clinical_report_lines(rep: Mapping[str, Any]) -> list[str]:
    """The joint evaluation's headline numbers (``report/clinical.json``), each with its interval."""
    u, r = rep["utility"], rep["recognition"]
    ag = rep["fidelity"]["age_grade"]
    out = [
        f"- requested grade recognised in {r['n']} generated VUs (classifier trained on real VUs): balanced accuracy "
        f"{_ci_text(r, 'balanced_accuracy')}, chance {_num(r.get('chance'), 2)}; recall per grade "
        f"{' / '.join(_num(x, 2) for x in r['recall'])}",
        f"- disc grade from the VU: TRTR {_ci_text(u['trtr'], 'balanced_accuracy')}, TSTR "
        f"{_ci_text(u['tstr'], 'balanced_accuracy')}, TSTR / TRTR {_ci_text(u['ratio'], 'value')} "
        f"(chance {_num(u.get('chance'), 2)})",
        f"- age-grade association (Spearman rho): real {_num(ag['real']['rho'])} "
        f"[{_num(ag['real']['interval'][0])}, {_num(ag['real']['interval'][1])}], synthetic "
        f"{_num(ag['synthetic']['rho'])}: {'within' if ag['within_real_interval'] else 'outside'} the real interval",
    ]
    from synthvu_core.evaluation.clinical import reading

    control = rep["privacy"]["leaky_control"]["caught"]
    for name, text in (("released", "released table"), ("leaky_control", "leaky control")):
        p = rep["privacy"][name]
        said = reading(p["caught"], control) if name == "released" else ("caught" if p["caught"] else "not caught")
        out.append(f"- table privacy, {text}: singling out {_ci_text(p['singling_out'], 'risk')}, linkability "
                   f"{_ci_text(p['linkability'], 'risk')}, inference {_ci_text(p['inference'], 'risk')}, DCR AUC "
                   f"{_ci_text(p['dcr'], 'auc')}; {said}")
    joint = rep.get("joint_membership") or {}
    for name, text in (("released", "released pair"), ("leaky_control", "leaky control")):
        j = joint.get(name)
        if j:
            said = (reading(j["caught"], bool((joint.get("leaky_control") or {}).get("caught"))) if name == "released"
                    else ("caught" if j["caught"] else "not caught"))
            out.append(f"- joint membership attack (patients; row and VUs together), {text}: AUC "
                       f"{_ci_text(j['joint'], 'auc')} (row alone {_ci_text(j['row'], 'auc')}, VUs alone "
                       f"{_ci_text(j['vus'], 'auc')}); {said}")
    return out


def _clinical_section(card: Mapping[str, Any], folder: Path) -> list[str]:
    """Synthetic patients: the grade condition, the released table and the joint evaluation (joint generators only)."""
    block = card.get("clinical")
    if not isinstance(block, Mapping):
        return []
    table = block.get("table") or {}
    dp = table.get("dp")
    out = ["## Synthetic patients", "",
           f"A joint generator: the VUs are conditioned on the position and on the {block.get('second_condition')} "
           f"({', '.join(block.get('conditions') or [])}); a synthetic patient is a row of the released table "
           "`clinical_synthetic.csv` and one VU per disc with that row's grade there "
           "(`python -m synthvu_core clinical sample MODEL`).", ""]
    if table:
        kind = (f"differentially private ({table['method']}, epsilon {_num(dp.get('epsilon'), 2)} at delta "
                f"{dp.get('delta', 0):.2g}, rho-zCDP over patients' rows, composed in the privacy ledger)" if dp
                else "without differential privacy")
        out += [f"- table: {table.get('rows_sampled')} rows sampled from {table.get('library')} {table.get('version')} "
                f"{table.get('method')} fitted on {table.get('rows_fitted')} train patients' rows, {kind}", ""]
    path = folder / REPORT_DIR / CLINICAL_REPORT_FILE
    try:
        rep = json.loads(path.read_text()) if path.is_file() else None
        lines = _clinical_report_lines(rep) if rep else None
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        lines = None
    if lines is None:
        return out + ["Joint evaluation: not measured (`python -m synthvu_core clinical evaluate MODEL`).", ""]
    return out + [f"Joint evaluation (`report/clinical.json`, seed {rep.get('seed')}):", "", *lines, ""]


def render(folder: str | Path) -> str:
    """The README.md text of a generator folder (its card and, where present, its report).

    Args:
        folder: a generator folder (``card.json``, optional ``report/``).
    """
    from synthvu_core.errors import ReportError
    from synthvu_core.evaluation.report import load_report
    from synthvu_core.evaluation.volume import is_volume_card
    from synthvu_core.models.audit import load_audit
    from synthvu_core.models.registry import load_card

    folder = Path(folder)
    card = load_card(folder)
    volume = is_volume_card(card)
    unit = "3-D sub-volumes" if volume else "vertebral units"
    try:
        report = load_report(folder, expected_fingerprint=card["dataset"]["fingerprint"])
    except ReportError:  # stale or unreadable: its numbers are never shown as this generator's
        report = None
    scalars = report.scalars if report is not None else {}
    tr = card.get("training") or {}
    arch = card.get("architecture") or {}
    head = [
        f"# {card['name']}",
        "",
        f"A conditional generator of synthetic spine MRI {unit} (synthvu, architecture "
        f"`{arch.get('name')}`, latent dimension {card['latent_dim']}), conditioned on the VU position "
        f"({', '.join(card['classes'])}).",
        "",
        "## Intended use",
        "",
        f"Synthetic {'sub-volumes' if volume else 'VUs'} for method development, teaching and sharing where the real "
        "scans cannot be shared: "
        "pre-training or augmenting VU-position classifiers, testing pipelines, and demonstrating privacy "
        f"evaluation. Sample with `python -m synthvu_core sample MODEL --position {card['classes'][-1]} --n 100 "
        "--out vus.npz`.",
        "",
    ]
    training = [
        "## Training",
        "",
        f"{tr.get('steps', '?')} steps ({epochs_text(tr.get('epochs'))} epochs), batch {tr.get('batch_size', '?')}, "
        f"learning rate {tr.get('lr', '?')}, seed {tr.get('seed', '?')}, {_num(tr.get('seconds'), 0)} s on "
        f"{tr.get('device', '?')}; weights {tr.get('weights_dtype', '?')} "
        f"({tr.get('generator_weights', 'as trained')}). "
        f"Code version {card.get('code_version')}, created {card.get('created')}.",
        "",
        *_distilled_lines(tr),
    ]
    body = (
        head
        + _data_section(card)
        + _privacy_section(card, load_audit(folder))
        + training
        + (_volume_evaluation_section(card, folder) if volume else _evaluation_section(report, card["name"], folder))
        + _clinical_section(card, folder)
        + _limits_and_sharing(card)
    )
    return _yaml(card["name"], card, scalars) + "\n" + "\n".join(body).rstrip() + "\n"


def _distilled_lines(tr: dict[str, Any]) -> list[str]:
    """How a few-step student came about (empty for a generator trained on data)."""
    src = tr.get("distilled_from")
    if not isinstance(src, dict):
        return []
    err = tr.get("held_out_latent_mse") or {}
    return [
        f"Distilled from `{src.get('name')}` ({src.get('sampling_steps')} steps, guidance {src.get('guidance')}) "
        f"into {tr.get('sampling_steps')} unguided step(s) on {tr.get('pairs')} of the teacher's own samples; it "
        "read no data, so the teacher's privacy guarantee and ledger are its own. Held-out latent error against "
        f"the teacher: {_num(err.get('student'), 4)} (the teacher itself run with {tr.get('sampling_steps')} "
        f"step(s): {_num(err.get('teacher_at_k_steps'), 4)}; latent variance {_num(err.get('target_var'), 3)}).",
        "",
    ]


def write(folder: str | Path, out: str | Path | None = None) -> Path:
    """Write the README.md of a generator folder (atomically); returns its path.

    Args:
        folder: the generator folder.
        out: where to write (default ``folder/README.md``).
    """
    from synthvu_core.storage import atomic_path

    path = Path(out) if out is not None else Path(folder) / README_FILE
    text = render(folder)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
