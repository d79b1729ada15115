"""Trade-offs: every generator with a report on one chart, privacy risk against utility."""

import streamlit as st

from dashboard import frame, loaders
from dashboard.figures import tradeoff_figure
from dashboard.summary import epsilon_of, fmt, headline
from synthvu_core.errors import SynthVUError


def render(_sel: frame.Selection | None) -> None:
    frame.url_state("tradeoff_controls", "controls", cast=bool)
    rows, skipped = [], []
    for info in frame.all_generators():
        try:
            view = loaders.report(info.path, (info.card.get("dataset") or {}).get("fingerprint"))
        except SynthVUError as e:
            skipped.append(f"{info.name}: " + ("its report does not belong to its dataset" if frame.public_mode() else str(e)))
            continue
        if view is None:
            skipped.append(f"{info.name}: no report yet")
            continue
        h = headline(view, info.card)
        rows.append({"name": info.name, "tstr": h.tstr, "trtr": h.trtr, "worst_auc": h.worst_auc,
                     "worst_tpr1": h.worst_tpr1, "epsilon": epsilon_of(info.card, view)})
        if st.session_state.get("tradeoff_controls"):
            for cname, cview in view.controls.items():
                ch = headline(cview)
                rows.append({"name": f"{info.name}: {cname} control", "tstr": ch.tstr, "worst_auc": ch.worst_auc,
                             "worst_tpr1": ch.worst_tpr1, "epsilon": None, "control": True})
    if not rows:
        st.info("No generator has a report yet: compute one (Overview page, or `python -m synthvu_core evaluate MODEL`).")
    else:
        c1, c2 = st.columns([2, 1])
        frame.url_state("tradeoff_axis", "risk", ["worst_auc", "worst_tpr1"])
        key = c1.radio("Privacy risk", ["worst_auc", "worst_tpr1"], horizontal=True, key="tradeoff_axis",
                       format_func=lambda k: {"worst_auc": "worst attack AUC", "worst_tpr1": "worst TPR at 1% FPR"}[k])
        c2.toggle("Show the controls", key="tradeoff_controls")
        trtrs = [r["trtr"] for r in rows if r.get("trtr") is not None]
        st.plotly_chart(tradeoff_figure(rows, key, trtr=trtrs[0] if trtrs else None), width="stretch", key="tradeoff")
        st.dataframe(
            [{"generator": r["name"], "TSTR": fmt(r["tstr"]), "worst AUC": fmt(r["worst_auc"]),
              "worst TPR @ 1% FPR": fmt(r["worst_tpr1"]), "DP ε": "—" if r["epsilon"] is None else f"{r['epsilon']:.2f}"}
             for r in rows],
            hide_index=True, width="stretch",
        )
        st.caption("Diamonds were trained with differential privacy (ε in the legend); circles without. Lower is more private, "
                   "further right is more useful. A DP guarantee bounds every attack, including ones not run here.")
    for s in skipped:
        st.caption(s)


frame.run_page("Trade-offs", render, needs_generator=False)
