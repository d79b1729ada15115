"""Clinical: synthetic patients (a clinical row and its VUs) of a joint generator, against the real ones."""

import streamlit as st

from dashboard import clinical, frame, style

RISK_TEXT = dict(clinical.RISKS)


def _ci(part: dict) -> str:
    ci = part.get("interval")
    return f"{part['balanced_accuracy' if 'balanced_accuracy' in part else 'risk']:.3f}" + (
        f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " (interval not estimable)")


def _auc(part: dict) -> str:
    ci = part.get("interval")
    return f"{part['auc']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " (interval not estimable)")


def _utility(rep: dict) -> None:
    u, r = rep["utility"], rep["recognition"]
    st.subheader("Joint utility: the disc grade from the VU")
    cols = st.columns(4)
    cols[0].metric("TRTR", f"{u['trtr']['balanced_accuracy']:.3f}")
    cols[0].caption(_ci(u["trtr"]))
    cols[1].metric("TSTR", f"{u['tstr']['balanced_accuracy']:.3f}")
    cols[1].caption(_ci(u["tstr"]))
    ratio = u["ratio"]
    cols[2].metric("TSTR / TRTR", f"{ratio['value']:.3f}")
    lo_hi = ratio.get("interval")
    cols[2].caption(f"[{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi else "interval not estimable")
    cols[3].metric("Requested grade recognised", f"{r['balanced_accuracy']:.3f}")
    cols[3].caption(f"{_ci(r)}; chance {r['chance']:.2f}")
    st.plotly_chart(clinical.utility_figure(rep), width="stretch", config=style.plot_config(), key="clin-utility")
    st.caption(f"Balanced accuracy over the grades 1-5 present (chance {u['chance']:.2f}); TRTR and TSTR: mean over "
               f"classifier seeds {u['seeds']}, 95 % interval over {u['n_test_patients']} holdout patients and seeds. "
               f"Recognition: the classifier trained on real VUs, applied to {r['n']} generated VUs each asked for a "
               "grade; interval over the generated VUs.")


def _fidelity(rep: dict) -> None:
    f = rep["fidelity"]
    st.subheader("Table fidelity: real (train patients) against the released synthetic table")
    ag = f["age_grade"]
    ci = ag["real"]["interval"]
    text = (f"Age-grade association (Spearman rho of age and mean lumbar grade): real {ag['real']['rho']:.3f} "
            + (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "(interval not estimable)")
            + f", synthetic {ag['synthetic']['rho']:.3f}.")
    (st.success if ag["within_real_interval"] else st.warning)(
        text + (" Within the real interval." if ag["within_real_interval"] else " Outside the real interval."))
    left, right = st.columns(2)
    left.plotly_chart(clinical.age_grade_figure(rep), width="stretch", config=style.plot_config(), key="clin-age")
    choices = [c for c, m in f["marginals"].items() if m["metric"] == "tvd"]
    column = right.selectbox("Column", choices, index=choices.index("grade_L4/L5") if "grade_L4/L5" in choices else 0)
    right.plotly_chart(clinical.marginal_figure(rep, column), width="stretch", config=style.plot_config(),
                       key="clin-marginal")
    st.caption(f"Mean Kolmogorov-Smirnov statistic over numeric columns {f['mean_ks']:.3f}; mean total variation over "
               f"categorical and grade columns {f['mean_tvd']:.3f}; mean absolute difference of pairwise Spearman "
               f"associations {f['association']['mean_abs_difference']:.3f}.")
    with st.expander("Pairwise associations"):
        a, b = st.columns(2)
        a.plotly_chart(clinical.association_figure(rep, "real"), width="stretch", config=style.plot_config(),
                    key="clin-assoc-real")
        b.plotly_chart(clinical.association_figure(rep, "synthetic"), width="stretch", config=style.plot_config(),
                    key="clin-assoc-syn")


def _privacy(rep: dict) -> None:
    st.subheader("Table privacy")
    p, leak = rep["privacy"]["released"], rep["privacy"]["leaky_control"]
    st.plotly_chart(clinical.risk_figure(rep), width="stretch", config=style.plot_config(), key="clin-risk")
    rows = []
    said = clinical.readings(p["caught"], leak["caught"])
    for (name, part), reading in zip((("released table", p), ("leaky control (rows copied from members)", leak)),
                                     said):
        rows.append({"table": name, **{RISK_TEXT[k]: _ci(part[k]) for k in RISK_TEXT},
                     "DCR AUC": _auc(part["dcr"]), "reading": reading})
    frame.table(rows)
    total = p.get("n_members_total", p["n_members"])
    attacked = (f"{p['n_members']} of the {total} train patients' rows, drawn to the control's size" if total !=
                p["n_members"] else f"{p['n_members']} train patients' rows")
    st.caption(f"anonymeter (attacked: {attacked}; control: {p['n_control']} other "
               f"patients' rows; {p['n_synthetic']} synthetic rows). A risk is how much better the attack does on the "
               "members than on the control, with anonymeter's 95 % interval. DCR: distance of each real row to its "
               "closest synthetic row, members against non-members (ROC AUC, 0.5 = no signal). A table is caught "
               "where a risk's interval lies above 0 or the DCR AUC's above 0.5; the released table is read "
               "\"not caught\" only where the same tests catch the leaky control, else \"inconclusive (no power)\". "
               "So few patients give wide intervals.")


def _joint_attack(rep: dict) -> None:
    st.subheader("Joint membership attack: the row and the VUs of a patient together")
    j = rep.get("joint_membership")
    if j is None:
        st.info("This report predates the joint attack: run `python -m synthvu_core clinical evaluate MODEL` again.")
        return
    st.plotly_chart(clinical.joint_attack_figure(rep), width="stretch", config=style.plot_config(), key="clin-joint")
    said = clinical.readings(j["released"]["caught"], j["leaky_control"]["caught"])
    rows = [{"synthetic set": name, **{text: _auc(j[key][part]) for part, text in clinical.JOINT_PARTS},
             "reading": reading}
            for (key, name), reading in zip((("released", "released"), ("leaky_control", "leaky control")), said)]
    frame.table(rows)
    r = j["released"]
    st.caption(f"{r['n_member_patients']} training (member) against {r['n_nonmember_patients']} holdout patients, "
               f"{r['n_candidate_vus']} VUs. Row: minus the distance of the patient's row to the closest synthetic "
               "row; VUs: the pairwise attack (minus nearest / median distance to the synthetic VUs) averaged over "
               "the patient's VUs; together: the mean of the two scores' ranks. Intervals over patients; caught "
               f"where the joint interval lies above 0.5. Leaky control: {j['leaky_control'].get('definition', '')}. "
               f"TPR at a low false-positive rate: {r['tpr_at_low_fpr']}.")


def _eps(value: float | None) -> str:
    return "no DP (infinite)" if value is None else f"{value:.2f}"


def _budget(card: dict) -> None:
    b = clinical.privacy_budget(card)
    st.subheader("Differential privacy of the pair")
    cols = st.columns(3)
    cols[0].metric("VU generator epsilon", _eps(b["vus"]))
    cols[1].metric("Table epsilon", _eps(b["table"]))
    cols[2].metric("Composed epsilon", _eps(b["composed"]) if b["runs"] else "not recorded")
    text = (f"Per patient, delta {b['delta']:g}. Composed: RDP over every run on these patients in the dataset's "
            f"ledger ({b['runs']} runs), the two parts of this generator included." if b["runs"] else
            "This card records no privacy ledger: no composed budget can be stated.")
    if b["composed"] is None and b["runs"]:
        text += " A run without DP on these patients makes the composed epsilon infinite."
    (st.caption if b["composed"] is not None else st.warning)(text)


@frame.fragment
def _generate(sel: frame.Selection) -> None:
    st.subheader("Generate: the same noise, each grade")
    levels = ["L3/L4", "L4/L5", "L5/S1", "C5/C6", "T6/T7"]
    a, b, c = st.columns(3)
    level = a.selectbox("Level", levels, index=1, key="clin-level")
    n = b.slider("VUs per grade", 2, 8, 6, key="clin-n")
    seed = c.number_input("Seed", 0, 10_000, 0, key="clin-seed")
    with st.spinner("Sampling"):
        png = clinical.grade_strip(sel.path, level, int(n), int(seed))
    frame.show_image(png, f"VUs at {level}, middle slice; one row per requested disc grade (1 = healthy, "
                          "5 = most degenerated), the same noise down each column")


def render(sel: frame.Selection) -> None:
    st.markdown("A **synthetic patient** is a clinical row (age, sex, curvature, a degeneration grade per disc, "
                "finding counts) and VUs generated for each disc's position **and grade**. This page measures "
                "the pair: "
                "does a generated VU show the grade it was asked for, does a grade classifier trained on synthetic "
                "patients work on real ones, does the table keep the real associations, and does it leak its patients.")
    if not clinical.is_joint(sel.card):
        st.info(f"{sel.name} is not a joint generator (its card has no clinical block): select one trained with "
                "`python -m synthvu_core clinical train`.")
        return
    _budget(sel.card)
    rep = clinical.report(sel.path)
    if rep is None:
        st.info(f"{sel.name} has no clinical report yet: run `python -m synthvu_core clinical evaluate MODEL`.")
    else:
        _utility(rep)
        _fidelity(rep)
        _privacy(rep)
        _joint_attack(rep)
    _generate(sel)


frame.run_page("Clinical", render)
