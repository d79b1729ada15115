"""Privacy: membership attacks against the training patients, their controls, and a verdict."""

import numpy as np
import streamlit as st

from dashboard import frame, loaders
from dashboard.figures import patient_figure, ratio_histogram, roc_figure
from dashboard.images import montage
from dashboard.summary import ATTACK_NAMES, SPACES, attack_rows, attacks_present, control_rows, fmt, verdict

N_PAIRS = 8
SPACE_NAMES = {"pixel": "pixel", "embedding": "embedding (classifier features)", "umap": "UMAP (2-D, the study's)"}


def number_table(rows: list[dict]) -> list[dict]:
    return [{k: (fmt(v) if isinstance(v, float) or v is None else v) for k, v in r.items()} for r in rows]


def render(sel: frame.Selection) -> None:
    rep = sel.report
    v = verdict(rep, sel.card)
    {"leak": st.error, "caution": st.warning, "ok": st.success}.get(v.level, st.info)(v.text)
    st.markdown(
        "Members are the VUs of **training patients**, non-members those of **held-out patients** of the same source. "
        "Each attack scores every candidate (higher = more likely a member). AUC 0.5 and TPR 1% at 1% FPR are chance."
    )
    present = attacks_present(rep)
    if any(a == "discriminator" for a, _ in present) or (sel.card.get("discriminator") or {}).get("kept"):
        st.warning(
            "**A released discriminator is itself a leak.** The discriminator attack reads the discriminator's "
            "real-probability, which it learned on the training VUs: keep `discriminator.safetensors` private and "
            "share only the generator.", icon=":material/key:"
        )

    st.subheader("Beside its controls")
    st.caption("The copy control returns lightly perturbed training VUs (the attacks must find it); the independent "
               "control is trained on patients outside both candidate groups (its AUC must cover 0.5).")
    st.dataframe(number_table(control_rows(rep, sel.name)), hide_index=True, width="stretch")
    if not rep.controls:
        st.caption("This report has no controls (run `python -m synthvu_core evaluate MODEL --controls`).")

    st.subheader("Every attack")
    rows = attack_rows(rep)
    if not rows:
        st.info("The report holds no membership attack results.")
        return
    st.dataframe(number_table(rows), hide_index=True, width="stretch")
    skipped = sorted({f"{k.split('.')[1]} / {k.split('.')[2]}: {why}" for k, why in rep.meta.get("missing", {}).items()
                      if k.startswith("privacy.") and k.endswith(".auc") and k.split(".")[1] != "worst"})
    if skipped:
        with st.expander(f"Not measured ({len(skipped)})"):
            for s in skipped:
                st.write(s)

    spaces = [s for s in SPACES if any(sp == s for _, sp in present)]
    frame.url_state("privacy_space", "space", spaces)
    space = st.radio("Space", spaces, horizontal=True, format_func=lambda s: SPACE_NAMES[s], key="privacy_space")
    frame.url_state("privacy_log", "log", cast=bool)
    log = st.toggle("Log-scale ROC (low false-positive rates)", key="privacy_log")
    c1, c2 = st.columns(2)
    roc = roc_figure(rep, space, log_fpr=log)
    if roc is not None:
        c1.plotly_chart(roc, width="stretch", key=f"roc_{space}_{log}")
    hist = None if sel.public else ratio_histogram(rep, space)  # per-candidate ratios stay on the server in public mode
    if sel.public:
        c2.caption("Public mode: only aggregate numbers; the per-candidate distance ratios are not sent.")
    elif hist is not None:
        c2.plotly_chart(hist, width="stretch", key=f"ratio_{space}")
    else:
        c2.caption("No pairwise distance ratios in this space.")

    st.subheader("Patient level")
    attacks = [a for a, sp in present if sp == space]
    frame.url_state("privacy_attack", "attack", attacks)
    attack = st.selectbox("Attack", attacks, format_func=lambda a: ATTACK_NAMES.get(a, a), key="privacy_attack")
    pf = None if sel.public else patient_figure(rep, attack, space)  # per-patient scores: never in public mode
    if pf is not None or sel.public:
        c1, c2 = st.columns([2, 1])
        if pf is not None:
            c1.plotly_chart(pf, width="stretch", key=f"patient_{attack}_{space}")
        else:
            c1.caption("Public mode: per-patient attack scores are not sent; the patient-level numbers are aggregates.")
        c2.metric("Patient-level AUC", fmt(rep.scalar(f"privacy.{attack}.{space}.patient_auc")))
        c2.metric("Patient-level TPR @ 1% FPR", fmt(rep.scalar(f"privacy.{attack}.{space}.patient_tpr_at_1pct_fpr")))

    closest_pairs(sel)


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
    kinds = ["training" if member is not None and cand is not None and member[int(c)] else "held-out" for c in (cand if cand is not None else [])]
    st.caption(f"The {min(N_PAIRS, len(dist))} candidates nearest to a synthetic VU: "
               + ", ".join(f"{k} ({d:.1f})" for k, d in zip(kinds[:N_PAIRS], dist[:N_PAIRS])))
    syn_rows = tuple(int(i) for i in rep.array("privacy/closest/synthetic_index")[:N_PAIRS])
    n_syn, seed = int(rep.meta.get("n_synthetic", max(syn_rows) + 1)), int(rep.meta.get("synthetic_seed", 0))
    syn = loaders.synthetic_by_index(str(sel.path), loaders.weights_stamp(sel.path), n_syn, seed, syn_rows)
    real_rows = rep.array("privacy/closest/dataset_index")
    if real_rows is None and cand is not None and rep.has("candidates/index"):
        real_rows = rep.array("candidates/index")[np.asarray(cand, dtype=int)]
    real = frame.real_vus(sel, np.asarray(real_rows[:N_PAIRS]), key="closest_real") if real_rows is not None else None
    mid = syn.shape[1] // 2
    if real is not None:
        frame.show_image(montage(real, slice_index=mid, ncols=N_PAIRS), "nearest candidates, middle slice", real=True, width="stretch")
    frame.show_image(montage(syn, slice_index=mid, ncols=N_PAIRS), "their closest synthetic VUs, middle slice", width="stretch")


frame.run_page("Privacy", render, needs_report=True)
