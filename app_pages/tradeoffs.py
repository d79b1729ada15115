"""Trade-offs: the privacy-utility frontier over patient-level ε, then every generator on one chart."""

import streamlit as st

from dashboard import frame, loaders, style
from dashboard.figures import frontier_figure, patients_figure, tradeoff_figure
from dashboard.summary import epsilon_of, fmt, headline, worst_attack
from synthvu_core.errors import SynthVUError


def _frontier_row(info: object, view: object) -> dict:
    """What the frontier draws of one generator (numbers read from its card and report)."""
    card = info.card
    dp = card.get("dp") or {}
    h = headline(view, card)
    row = {"name": info.name, "epsilon": epsilon_of(card, view), "ratio": h.ratio, "risk": h.worst_auc,
           "route": "pretrained" if (card.get("training") or {}).get("init_from") else "scratch",
           "dataset": (card.get("dataset") or {}).get("fingerprint"), "unit": dp.get("unit"), "delta": dp.get("delta"),
           "n_patients": dp.get("n_patients"), "tpr1": h.worst_tpr1}
    lo, hi = view.scalar("utility.tstr_over_trtr_ci_low"), view.scalar("utility.tstr_over_trtr_ci_high")
    row.update(ratio_lo=lo, ratio_hi=hi)
    worst = worst_attack(view)
    if worst is not None:
        p = f"privacy.{worst[0]}.{worst[1]}."
        row.update(risk_lo=view.scalar(p + "auc_ci_low"), risk_hi=view.scalar(p + "auc_ci_high"))
    return row


def _frontier(rows: list[dict]) -> None:
    """The frontier of the dataset with the most patient-level DP generators (and its non-DP baselines)."""
    private = [r for r in rows if r["unit"] == "patient"]
    if not private:
        st.info("No generator trained with patient-level DP has a report yet: no frontier to draw.")
        return
    datasets = [r["dataset"] for r in private]
    ds = max(set(datasets), key=datasets.count)
    mine = [r for r in rows if r["dataset"] == ds and (r["unit"] == "patient" or r["epsilon"] is None)]
    st.subheader("Privacy-utility frontier")
    st.plotly_chart(frontier_figure(mine), width="stretch", config=style.plot_config(), key="frontier")
    st.dataframe(
        [
            {
                "generator": r["name"],
                "route": r["route"],
                "ε (patient)": "∞ (no DP)" if r["epsilon"] is None else f"{r['epsilon']:.2f}",
                "δ": "—" if r["delta"] is None else f"{r['delta']:.0e}",
                "TSTR/TRTR": fmt(r["ratio"])
                + (f" [{fmt(r['ratio_lo'])}, {fmt(r['ratio_hi'])}]" if r.get("ratio_lo") is not None else ""),
                "worst AUC": fmt(r["risk"])
                + (f" [{fmt(r['risk_lo'])}, {fmt(r['risk_hi'])}]" if r.get("risk_lo") is not None else ""),
                "worst TPR @ 1% FPR": fmt(r["tpr1"]),
            }
            for r in sorted(
                mine, key=lambda r: (r["route"], r["epsilon"] if r["epsilon"] is not None else float("inf"))
            )
        ],
        hide_index=True,
        width="stretch",
    )
    n = next((r["n_patients"] for r in private if r["n_patients"]), None)
    st.caption(
        f"Every DP generator here protects a patient ({n} train patients); dashed lines are generators trained "
        "without DP on the same data and schedule. Intervals are the reports' 95% intervals where they have one."
    )


def _patients_axis(rows: list[dict]) -> None:
    """Utility at one ε against the number of private patients, where DP generators of that ε exist on
    cohorts of at least two sizes (fine-tuned from the public prior)."""
    private = [r for r in rows if r["unit"] == "patient" and r["route"] == "pretrained" and r["epsilon"] is not None]
    sizes: dict[float, set] = {}
    for r in private:
        sizes.setdefault(round(float(r["epsilon"]), 1), set()).add(r["n_patients"])
    keep = {e for e, n in sizes.items() if len(n) >= 2}
    if not keep:
        return
    pts = [r for r in private if round(float(r["epsilon"]), 1) in keep]
    st.subheader("How many patients do we need?")
    st.plotly_chart(patients_figure(pts), width="stretch", config=style.plot_config(), key="patients")
    st.caption(
        "Each point is a generator fine-tuned with patient-level DP on a private phantom cohort of that many train "
        "patients, evaluated on its own cohort (same recipe, different patients). At a fixed ε the noise per step "
        "falls as 1/N: more patients buy utility at the same privacy."
    )


def render(_sel: frame.Selection | None) -> None:
    frame.url_state("tradeoff_controls", "controls", cast=bool)
    rows, skipped, frontier = [], [], []
    for info in frame.all_generators():
        try:
            view = loaders.report(info.path, (info.card.get("dataset") or {}).get("fingerprint"))
        except SynthVUError as e:
            skipped.append(f"{frame.plain(info.name)}: {frame.say(e)}")  # stale or foreign; paths shortened in public
            continue
        if view is None:
            skipped.append(f"{frame.plain(info.name)}: no report yet")
            continue
        h = headline(view, info.card)
        frontier.append(_frontier_row(info, view))
        rows.append(
            {
                "name": info.name,
                "tstr": h.tstr,
                "trtr": h.trtr,
                "worst_auc": h.worst_auc,
                "worst_tpr1": h.worst_tpr1,
                "epsilon": epsilon_of(info.card, view),
            }
        )
        if st.session_state.get("tradeoff_controls"):
            for cname, cview in view.controls.items():
                ch = headline(cview)
                rows.append(
                    {
                        "name": f"{info.name}: {cname} control",
                        "tstr": ch.tstr,
                        "worst_auc": ch.worst_auc,
                        "worst_tpr1": ch.worst_tpr1,
                        "epsilon": None,
                        "control": True,
                    }
                )
    _frontier(frontier)
    _patients_axis(frontier)
    st.subheader("Every generator")
    if not rows:
        st.info(
            "No generator has a report yet: compute one (Overview page, or `python -m synthvu_core evaluate MODEL`)."
        )
    else:
        c1, c2 = st.columns([2, 1])
        frame.url_state("tradeoff_axis", "risk", ["worst_auc", "worst_tpr1"])
        key = c1.radio(
            "Privacy risk",
            ["worst_auc", "worst_tpr1"],
            horizontal=True,
            key="tradeoff_axis",
            format_func=lambda k: {"worst_auc": "worst attack AUC", "worst_tpr1": "worst TPR at 1% FPR"}[k],
        )
        c2.toggle("Show the controls", key="tradeoff_controls")
        trtrs = [r["trtr"] for r in rows if r.get("trtr") is not None]
        st.plotly_chart(tradeoff_figure(rows, key, trtr=trtrs[0] if trtrs else None),
            width="stretch", config=style.plot_config(), key="tradeoff",
        )
        st.dataframe(
            [
                {
                    "generator": r["name"],
                    "TSTR": fmt(r["tstr"]),
                    "worst AUC": fmt(r["worst_auc"]),
                    "worst TPR @ 1% FPR": fmt(r["worst_tpr1"]),
                    "DP ε": "—" if r["epsilon"] is None else f"{r['epsilon']:.2f}",
                }
                for r in rows
            ],
            hide_index=True,
            width="stretch",
        )
        st.caption(
            "Diamonds were trained with differential privacy (ε in the legend); circles without. Lower is more "
            "private, "
            "further right is more useful. A DP guarantee bounds every attack, including ones not run here."
        )
    for s in skipped:
        st.caption(s)


frame.run_page("Trade-offs", render, needs_generator=False)
