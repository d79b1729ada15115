"""Trade-offs: the privacy-utility frontier of ONE dataset (the selected generator's) over patient-level ε, then
that dataset's generators on one chart. Generators of other datasets (other classes, other holdouts) are never
drawn on the same axis."""

import streamlit as st

from dashboard import frame, loaders, style, volumes
from dashboard.figures import frontier_figure, patients_figure, tradeoff_figure
from dashboard.patient_counts import patients_axis, size_family
from dashboard.summary import (
    cohort_family,
    composed_bound_holds,
    composed_short,
    dataset_label,
    epsilon_of,
    fmt,
    headline,
    recipe_key,
    usefulness_of,
)
from synthvu_core.errors import SynthVUError
from synthvu_core.records import RATIO_KEY, attack_key, utility_key


def _row(info: object, view: object) -> dict:
    """What the page draws of one generator (numbers read from its card and report)."""
    card = info.card
    dp = card.get("dp") or {}
    h = headline(view, card)
    row = {"name": info.name, "epsilon": epsilon_of(card, view), "composed": composed_short(card),
           "bound_holds": composed_bound_holds(card) if dp else None, "tstr": h.tstr, "trtr": h.trtr, "ratio": h.ratio,
           "risk": h.worst_auc, "worst_auc": h.worst_auc, "worst_tpr1": h.worst_tpr1,
           "route": "pretrained" if (card.get("training") or {}).get("init_from") else "scratch",
           "dataset": (card.get("dataset") or {}).get("fingerprint"), "dataset_label": dataset_label(card),
           "family": cohort_family(card), "recipe": recipe_key(card), "size_family": size_family(card),
           "cohort": ((card.get("dataset") or {}).get("recipe") or {}).get("name"),
           "classes": tuple(card.get("classes") or ()), "unit": dp.get("unit"), "delta": dp.get("delta"),
           "n_patients": dp.get("n_patients"), "chance": usefulness_of(view).chance,
           "useful": usefulness_of(view).level}
    for key, scalar in (("tstr", utility_key("tstr")), ("ratio", RATIO_KEY)):
        row[f"{key}_lo"], row[f"{key}_hi"] = view.interval(scalar)
    worst = view.worst_attack()
    if worst is not None:
        row["risk_lo"], row["risk_hi"] = view.interval(attack_key(*worst))
    return row


def _cell(r: dict, key: str) -> str:
    return fmt(r[key]) + (f" [{fmt(r[key + '_lo'])}, {fmt(r[key + '_hi'])}]" if r.get(key + "_lo") is not None else "")


def _protects(rows: list[dict], fp: str, n: int | None) -> str:
    """What the DP points claim: each point's ε is its own run's; a patient is protected only by the bound composed
    over every run on its patients, which a run without DP on them voids."""
    dp = [r for r in rows if r["dataset"] == fp and r["unit"] == "patient"]
    if not dp or not n:
        return ""
    void = sorted(r["name"] for r in dp if r["bound_holds"] is False)
    head = f" Each DP point's ε is its own run's ({n} train patients); runs on the same patients compose."
    if void:
        return head + (f" Composed over every run on this dataset's patients the bound is void (ε = ∞: a run without "
                       f"DP used them) for {', '.join(void)}: released together, they protect no patient.")
    return head + " The composed ε of each is in the table."


def _frontier(rows: list[dict], label: str, fp: str) -> None:
    """The selected dataset's frontier: its patient-level DP generators and its non-DP baselines, with those of the
    other cohorts of its phantom recipe (``rows`` holds them: replicate runs, twin baselines)."""
    mine = [r for r in rows if r["unit"] == "patient" or r["epsilon"] is None]
    st.subheader("Privacy-utility frontier")
    if not any(r["unit"] == "patient" for r in mine):
        st.info(f"No generator of dataset {label} trained with patient-level DP has a report yet: the figure shows "
                "its non-DP generators only.")
    own = [r for r in mine if r["dataset"] == fp] or mine
    trtr = next((r["trtr"] for r in own if r["trtr"] is not None), None)
    chance = next((r["chance"] for r in own if r["chance"] is not None), None)
    fig = frontier_figure(mine, fingerprint=fp, dataset_label=label, trtr=trtr, chance=chance,
                          family=next((r["family"] for r in own if r.get("family")), None))
    st.plotly_chart(fig, width="stretch", config=style.plot_config(), key="frontier")
    several = len({r["dataset"] for r in mine}) > 1  # a cohort column only where cohorts of the recipe are drawn
    frame.table(  # cells wrap: every column stays on a 1280-px screen
        [
            {
                "generator": r["name"],
                **({"cohort": r.get("cohort") or "—"} if several else {}),
                "route": r["route"],
                "ε (patient)": "∞ (no DP)" if r["epsilon"] is None else f"{r['epsilon']:.2f}",
                "composed ε (every run on its patients)": r["composed"],
                "δ": "—" if r["delta"] is None else f"{r['delta']:.0e}",
                "TSTR": _cell(r, "tstr"),
                "usefulness": {"not_useful": "NOT USEFUL (reaches chance)", "above_chance": "above chance"}.get(
                    r["useful"], "—"),
                "TSTR/TRTR": _cell(r, "ratio"),
                "worst AUC": _cell(r, "risk"),
                "worst TPR @ 1% FPR": fmt(r["worst_tpr1"]),
            }
            for r in sorted(mine, key=lambda r: (r["route"], float("inf") if r["epsilon"] is None else r["epsilon"]))
        ]
    )
    n = next((r["n_patients"] for r in mine if r["n_patients"]), None)
    others = sorted({str(r.get("cohort")) for r in mine if r["dataset"] != fp})
    if others:
        st.caption(
            f"Also drawn: the runs on {len(others)} other cohort(s) of the same phantom recipe (other seed, other "
            f"patients, each evaluated on its own holdout): {', '.join(others)}. Their DP runs are replicates of "
            "this cohort's (the run-to-run spread per ε); their non-DP runs are baselines trained on a twin cohort, "
            "so they spend none of this cohort's privacy. The TRTR line is this cohort's."
        )
    protects = _protects(mine, fp, n)
    st.caption(
        f"Dataset {label}: TRTR {fmt(trtr)}, chance {fmt(chance)} (1 / classes in the holdout). Both panels share "
        f"one log ε axis; generators trained without DP sit at \"no DP (ε = ∞)\".{protects} Where several runs of "
        "one recipe (the same training command but for seed and paths) share an ε the bar is the run-to-run range "
        "(open markers: the runs); a single run carries its report's 95% interval (TSTR: holdout patients and "
        "classifier seeds)."
    )


def _patients_axis(rows: list[dict], selected: dict, label: str) -> None:
    """Utility at one ε against the number of private patients: patient-level DP generators on cohorts of the selected
    dataset's recipe that differ only in their patients and how many (``dashboard.patient_counts``), or why not."""
    axis = patients_axis(rows, selected, label)
    st.subheader("How many patients do we need?")
    if axis.why_not:
        st.info(axis.why_not)
        return
    st.plotly_chart(patients_figure(axis.rows), width="stretch", config=style.plot_config(), key="patients")
    st.caption(
        "Each point is a generator fine-tuned with patient-level DP on a private phantom cohort of that many train "
        f"patients ({', '.join(selected['classes'])} classes), evaluated on its own cohort: the recipe of dataset "
        f"{label} with other patients and another size ({', '.join(map(str, axis.sizes))} train patients), each with "
        "its own holdout. A TSTR/TRTR ratio, so each point is read against its own cohort's TRTR."
    )


def _every_generator(rows: list[dict], label: str) -> None:
    st.subheader(f"Every generator of dataset {label}")
    c1, c2 = st.columns([2, 1])
    risks = {"worst_auc": "worst attack AUC", "worst_tpr1": "worst TPR at 1% FPR"}
    key = frame.url_radio(c1, "Privacy risk", risks, "tradeoff_axis", "risk")
    c2.toggle("Show the controls", key="tradeoff_controls")
    trtr = next((r["trtr"] for r in rows if r.get("trtr") is not None), None)
    chance = next((r["chance"] for r in rows if r.get("chance") is not None), None)
    st.plotly_chart(tradeoff_figure(rows, key, trtr=trtr, chance=chance), width="stretch",
                    config=style.plot_config(), key="tradeoff")
    st.caption(
        "Diamonds were trained with differential privacy (ε in the legend); circles without. Lower is more private, "
        "further right is more useful. A DP guarantee bounds every attack, including ones not run here."
    )


def _controls(info: object, view: object) -> list[dict]:
    return [
        {"name": f"{info.name}: {cname} control", "tstr": headline(c).tstr, "worst_auc": headline(c).worst_auc,
         "worst_tpr1": headline(c).worst_tpr1, "epsilon": None, "control": True}
        for cname, c in view.controls.items()
    ]


def render(sel: frame.Selection | None) -> None:
    frame.url_state("tradeoff_controls", "controls", cast=bool)
    rows, skipped, controls = [], [], []
    for info in frame.all_generators():
        try:
            view = loaders.report(info.path, (info.card.get("dataset") or {}).get("fingerprint"))
        except SynthVUError as e:
            skipped.append(f"{frame.plain(info.name)}: {frame.say(e)}")  # stale or foreign; paths shortened in public
            continue
        if view is None:
            note = volumes.no_vu_report_note(info.path, info.card)  # a sub-volume generator: where its report is
            skipped.append(f"{frame.plain(info.name)}: {frame.plain_but_code(note)}")
            continue
        rows.append(_row(info, view))
        if st.session_state.get("tradeoff_controls"):
            controls += [dict(c, dataset=rows[-1]["dataset"]) for c in _controls(info, view)]
    if not rows:
        st.info("No generator has a report yet: compute one (Overview page, or `python -m synthvu_core evaluate "
                "MODEL`).")
    else:
        fp = (sel.card.get("dataset") or {}).get("fingerprint") if sel is not None else None
        if fp not in {r["dataset"] for r in rows}:  # the selected generator has no report: the largest dataset
            fps = [r["dataset"] for r in rows]
            fp = max(set(fps), key=fps.count)
        mine = [r for r in rows if r["dataset"] == fp]
        label = mine[0]["dataset_label"]
        family = mine[0]["family"]
        kin = [r for r in rows if r["dataset"] != fp and family is not None and r["family"] == family
               and r["cohort"] != mine[0]["cohort"]]  # other seeds of the recipe; not another build of this cohort
        st.caption(f"Dataset {label}: {len(mine)} generator(s) with a report. Select a generator of another dataset "
                   "in the sidebar to see that dataset's trade-offs; datasets are never mixed on one axis.")
        _frontier(mine + kin, label, fp)
        _patients_axis(rows, mine[0], label)
        _every_generator(mine + [c for c in controls if c["dataset"] == fp], label)
        others = sorted({r["dataset_label"] for r in rows if r["dataset"] != fp})
        if others:
            st.caption("Other datasets with reports (select one of their generators): " + "; ".join(others))
    for s in skipped:
        st.caption(s)


frame.run_page("Trade-offs", render, needs_generator=False)
