"""Privacy: membership attacks against the training patients, their controls, and a verdict."""

import numpy as np
import streamlit as st

from dashboard import frame, loaders, style
from dashboard.figures import patient_figure, power_figure, ratio_histogram, roc_figure
from dashboard.images import montage
from dashboard.summary import (
    ATTACK_CHECK_COLUMNS,
    ATTACK_NAMES,
    ATTACK_RESULT_COLUMNS,
    SPACES,
    ReportView,
    attack_rows,
    attacks_present,
    audit_text,
    cohort_text,
    columns_of,
    epsilon_text,
    independent_rows,
    independent_text,
    membership_text,
    power_rows,
    verdict,
    with_ci,
)
from synthvu_core.records import attack_key

N_PAIRS = 8
SPACE_NAMES = {"pixel": "pixel", "embedding": "embedding (encoder fitted on reference patients)",
               "umap": "UMAP (2-D, fitted on reference patients)"}
DESIGN = (
    "**How to read this page.** Members are the VUs of **training patients**, non-members those of **held-out "
    "patients** "
    "of the same source, with equal numbers of patients and of VUs per patient on both sides. Every space an attack "
    "uses "
    "(the embedding encoder, the attack UMAP, DOMIAS's reference density) is fitted on **reference patients only**, "
    "one half "
    "of them; the other half builds the **independent control**, whose AUC CI must cover 0.5 in every counted attack "
    "at a 5% family-wise error rate, as the verdict (Bonferroni over the counted attacks). The **graded controls** "
    "mix "
    "1%, 5% and 20% lightly perturbed member VUs into the generator's own samples; **power** is the rise of an "
    "attack's AUC on a mixture over its AUC on the generator's own samples (paired CI). An attack counts in a verdict "
    "where the 5% rise's CI lies above 0, or where it already detects membership on the generator's own samples (own "
    "AUC CI above 0.5: a finding whatever the power, *no room to rise* near AUC 1); the others have *no power on this "
    "data*. TPR at a false-positive "
    "rate is "
    "shown only with at least 10 expected false positives, otherwise *not estimable*. CIs are 95% patient-clustered "
    "intervals (Student-t, built to hold with few patients); "
    "p-values come from permuting membership between patients. **Verdict (a)** reads the released samples: the study's "
    "pairwise pixel attack (pre-specified primary) and the strongest other attack with power (max-statistic adjusted), "
    "and the **whole-cohort nearest-patient test** (each sample's nearest real VU among *all* patients; its p-value "
    "from random relabellings of as many patients as training patients, exact because the split is a uniform draw; a "
    "significant result needs no power check), combined by Holm; an AUC significantly below 0.5 or an independent "
    "control off chance reads *design imbalance*; "
    "no attack with power, or fewer patients per side than needed to detect 5% member copies, *inconclusive*. "
    "**Verdict (b)** reads the white-box discriminator attack alone: significant, *leak* or *caution*; not "
    "significant with fewer than 10 patients per side or without a permutation test, *inconclusive*; else *ok*."
)


def render(sel: frame.Selection) -> None:
    _verdicts(sel)
    _controls(sel.report)
    present = _attack_tables(sel.report)
    if present is None:
        return
    space = _space_row(sel, present)
    _patient_level(sel, present, space)
    closest_pairs(sel)


def _verdicts(sel: frame.Selection) -> None:
    """The DP guarantee, its audit, both verdicts and the membership design."""
    rep = sel.report
    st.subheader("Differential privacy")
    st.markdown(frame.plain(epsilon_text(sel.card)))
    audit = audit_text(loaders.audit_of(sel.path), sel.card)
    st.caption(audit or "No audit of this generator's recipe (`python -m synthvu_core audit MODEL --dataset DATASET`).")
    st.subheader("Verdict (a): released samples")
    v = verdict(rep, sel.card)
    frame.show_verdict(v.level, v.text)
    st.subheader("Verdict (b): released discriminator")
    d = verdict(rep, sel.card, "released_discriminator")
    frame.show_verdict(d.level, d.text, icon=":material/key:")
    if membership_text(rep):
        st.caption("Membership design: " + membership_text(rep))
    st.caption("Whole-cohort nearest-patient test (in verdict (a)): " + cohort_text(rep))
    with st.expander("Definitions: design, controls, verdicts"):
        st.markdown(DESIGN)


def _controls(rep: ReportView) -> None:
    """Power on the graded controls, and the independent (negative) control."""
    st.subheader("Power on the graded controls")
    power = power_rows(rep)
    if power:
        st.caption(
            "Power = detection of 1/5/20% of the released samples replaced by lightly perturbed member VUs: an "
            "attack has power where its AUC CI on the 5% mixture lies above 0.5 because of the copies (they raise its "
            "AUC), and only attacks with power count "
            "in verdict (a). The rise over the generator's own AUC (paired 95% CI) is shown beside it. Too few "
            "patients for that power, or no attack with it, make verdict (a) inconclusive."
        )
        frame.table(power)
        curve = power_figure(rep)
        if curve is not None:
            st.plotly_chart(curve, width="stretch", config=style.plot_config(), key="power_curve")
    else:
        st.caption(
            "This report has no graded controls (run `python -m synthvu_core evaluate MODEL --controls`): "
            "the attacks' power is unchecked."
        )
    indep = independent_rows(rep)
    if indep:
        st.caption(
            "Independent (negative) control: built from reference patients outside both candidate groups. Where "
            "an attack counts in verdict (a), its AUC interval must cover 0.5 at a 5% family-wise error rate, as "
            "the verdict (Bonferroni over the counted attacks); the pointwise 95% intervals are shown beside it. "
            + independent_text(rep)
        )
        frame.table(indep)


def _attack_tables(rep: ReportView) -> list[tuple[str, str]] | None:
    """Every attack's result and checks; the (attack, space) pairs present, None where the report holds none."""
    st.subheader("Every attack")
    present = attacks_present(rep)
    rows = attack_rows(rep)
    if not rows:
        st.info("The report holds no membership attack results.")
        return None
    frame.table(columns_of(rows, ATTACK_RESULT_COLUMNS))
    st.caption("AUC 0.5, TPR 0.01 at 1% FPR and top-k share 0.5 are chance.")
    st.caption("How each attack was checked: its power, its AUC on the 5% graded and the independent control, and "
               "its role in verdict (a).")
    frame.table(columns_of(rows, ATTACK_CHECK_COLUMNS))
    skipped = sorted(
        {
            f"{k.split('.')[1]} / {k.split('.')[2]}: {why}"
            for k, why in rep.meta.get("missing", {}).items()
            if k.startswith("privacy.") and k.endswith((".auc", ".tpr_at_1pct_fpr")) and k.split(".")[1] != "worst"
        }
    )
    if skipped:
        with st.expander(f"Not measured or not estimable ({len(skipped)})"):
            for s in skipped:
                st.write(s)
    return present


def _space_row(sel: frame.Selection, present: list[tuple[str, str]]) -> str:
    """The space picker, the ROC curves of that space and its pairwise distance ratios; returns the space."""
    rep = sel.report
    spaces = [s for s in SPACES if any(sp == s for _, sp in present)]
    space = frame.url_radio(st, "Space", {s: SPACE_NAMES[s] for s in spaces}, "privacy_space", "space")
    frame.url_state("privacy_log", "log", cast=bool)
    log = st.toggle("Log-scale ROC (low false-positive rates)", key="privacy_log")
    c1, c2 = st.columns(2)
    roc = roc_figure(rep, space, log_fpr=log)
    if roc is not None:
        c1.plotly_chart(roc, width="stretch", config=style.plot_config(), key=f"roc_{space}_{log}")
    hist = None if sel.public else ratio_histogram(rep, space)  # per-candidate ratios stay on the server in public mode
    if sel.public:
        c2.caption("Public mode: only aggregate numbers; the per-candidate distance ratios are not sent.")
    elif hist is not None:
        c2.plotly_chart(hist, width="stretch", config=style.plot_config(), key=f"ratio_{space}")
    else:
        c2.caption("No pairwise distance ratios in this space.")
    return space


def _patient_level(sel: frame.Selection, present: list[tuple[str, str]], space: str) -> None:
    """One attack's per-patient scores (never in public mode) and its patient-level AUC and TPR."""
    rep = sel.report
    st.subheader("Patient level")
    attacks = [a for a, sp in present if sp == space]
    frame.url_state("privacy_attack", "attack", attacks)
    attack = st.selectbox("Attack", attacks, format_func=lambda a: ATTACK_NAMES.get(a, a), key="privacy_attack")
    pf = None if sel.public else patient_figure(rep, attack, space)  # per-patient scores: never in public mode
    if pf is not None or sel.public:
        c1, c2 = st.columns([2, 1])
        if pf is not None:
            c1.plotly_chart(pf, width="stretch", config=style.plot_config(), key=f"patient_{attack}_{space}")
        else:
            c1.caption("Public mode: per-patient attack scores are not sent; the patient-level numbers are aggregates.")
        with c2:  # a table: an interval or "not estimable …" wraps where a metric would cut it
            frame.table(
                [
                    {"patient level": "AUC [95% CI]", "value": with_ci(rep, attack_key(attack, space, "patient_auc"))},
                    {
                        "patient level": "TPR @ 1% FPR",
                        "value": with_ci(rep, attack_key(attack, space, "patient_tpr_at_1pct_fpr")),
                    },
                ]
            )


def closest_pairs(sel: frame.Selection) -> None:
    rep = sel.report
    if not rep.has("privacy/closest/synthetic_index", "privacy/closest/distance"):
        return
    st.subheader("Closest real–synthetic pairs (pixel space)")
    if sel.public:
        st.caption("Public mode: neither the pairs' images nor their per-candidate distances are shown.")
        return
    dist = rep.array("privacy/closest/distance")
    cand = rep.array("privacy/closest/candidate_index")
    member = rep.array("candidates/is_member")
    kinds = [
        "training" if member is not None and cand is not None and member[int(c)] else "held-out"
        for c in (cand if cand is not None else [])
    ]
    st.caption(
        f"The {min(N_PAIRS, len(dist))} candidates nearest to a synthetic VU: "
        + ", ".join(f"{k} ({d:.1f})" for k, d in zip(kinds[:N_PAIRS], dist[:N_PAIRS]))
    )
    syn_rows = tuple(int(i) for i in rep.array("privacy/closest/synthetic_index")[:N_PAIRS])
    n_syn, seed = int(rep.meta.get("n_synthetic", max(syn_rows) + 1)), int(rep.meta.get("synthetic_seed", 0))
    syn = loaders.synthetic_by_index(str(sel.path), loaders.weights_stamp(sel.path), n_syn, seed, syn_rows)
    real_rows = rep.array("privacy/closest/dataset_index")
    if real_rows is None and cand is not None and rep.has("candidates/index"):
        real_rows = rep.array("candidates/index")[np.asarray(cand, dtype=int)]
    real = frame.real_vus(sel, np.asarray(real_rows[:N_PAIRS]), key="closest_real") if real_rows is not None else None
    mid = syn.shape[1] // 2
    if real is not None:
        frame.show_image(
            montage(real, slice_index=mid, ncols=N_PAIRS),
            "nearest candidates, middle slice",
            real=True,
            width="stretch",
        )
    frame.show_image(
        montage(syn, slice_index=mid, ncols=N_PAIRS), "their closest synthetic VUs, middle slice", width="stretch"
    )


frame.run_page("Privacy", render, needs_report=True)
