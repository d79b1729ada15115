"""Utility: does a VU-position classifier trained on synthetic VUs work on real ones?"""

import streamlit as st

from dashboard import frame, style
from dashboard.figures import confusion_figure, recall_figure, utility_figure
from dashboard.summary import (
    SETTING_NAMES,
    UTILITY_SETTINGS,
    chance_text,
    fmt,
    missing_lines,
    usefulness_box,
    utility_rows,
    with_ci,
)
from synthvu_core.names import ONE_GENERATOR, STUDY_RATIO, STUDY_TRTR, STUDY_TSTR
from synthvu_core.records import RATIO_KEY, utility_key


def render(sel: frame.Selection) -> None:
    rep = sel.report
    st.markdown(
        "One classifier definition predicts the VU position; it is trained on real or synthetic VUs and tested on "
        "real or synthetic ones. **TSTR close to TRTR** means the synthetic VUs carry what the real ones teach. "
        "Every number is the **mean over classifier seeds with a 95% interval over holdout patients and seeds** "
        "(patient bootstrap; the TSTR training subset is drawn with the same seed as its classifier); "
        f"{ONE_GENERATOR}. **Chance** is "
        "1 / the number of classes present in the holdout; a generator whose TSTR interval reaches it is **not "
        "useful for this task**. TRTR, the holdout set and the TSTR training size (the real train split's) belong to "
        "the dataset, so every generator of one dataset is compared against the same TRTR. The published study "
        "reports "
        f"TRTR {STUDY_TRTR:.3f}, TSTR {STUDY_TSTR:.3f} (ratio {STUDY_RATIO:.2f}) on T1 trial data; a ratio on other "
        "data (the phantom included) is not the study's ratio."
    )
    kind, text = usefulness_box(rep, sel.classes)
    getattr(st, kind)(f"{text}. {chance_text(rep)}.")
    spread = frame.recipe_spread_text(sel)
    if spread:
        st.info(spread)
    cols = st.columns(4)
    for col, s in zip(cols, UTILITY_SETTINGS):
        key = utility_key(s)
        col.metric(s.upper(), fmt(rep.scalar(key)), help=rep.definitions.get(key) or SETTING_NAMES[s])
        col.caption(with_ci(rep, key))
    cols[3].metric(
        "TSTR / TRTR", fmt(rep.ratio, 3), help=rep.definitions.get(RATIO_KEY)
    )
    cols[3].caption(with_ci(rep, RATIO_KEY))
    st.dataframe(utility_rows(rep), hide_index=True, width="stretch")
    st.plotly_chart(utility_figure(rep), width="stretch", config=style.plot_config(), key="utility_bars")
    for line in missing_lines(rep.missing_of("utility")):
        st.caption(line)

    st.subheader("Confusion matrices")
    figs = [(s, confusion_figure(rep, s, sel.classes)) for s in UTILITY_SETTINGS]
    figs = [(s, f) for s, f in figs if f is not None]
    if not figs:
        st.info("The report holds no confusion matrices.")
    # one matrix at a time, full width: three side by side leave cells too narrow for their numbers at 1280 px
    for tab, (s, f) in zip(st.tabs([s.upper() for s, _ in figs]) if figs else [], figs):
        tab.plotly_chart(f, width="stretch", config=style.plot_config(), key=f"confusion_{s}")
    rec = recall_figure(rep, sel.classes)
    if rec is not None:
        st.subheader("Recall per position")
        st.plotly_chart(rec, width="stretch", config=style.plot_config(), key="recall")
        st.caption("Each TRTR and TSTR bar's interval is over holdout patients and classifier seeds; a position with "
                   "one holdout patient has none (its recall is that patient's VUs, right or wrong), nor has any "
                   "position of a report that stores no per-patient predictions (re-run evaluate). Under each "
                   "position: its holdout patients. Dashed: chance.")
    notes = {k: v for k, v in rep.meta.get("notes", {}).items() if k.startswith("utility")}
    if notes or rep.meta.get("tstr_train_size"):
        with st.expander("Notes"):
            u = rep.meta.get("utility") or {}
            if rep.meta.get("tstr_train_size"):
                st.write(
                    f"TSTR classifier trained on {rep.meta['tstr_train_size']} synthetic VUs per seed"
                    + (
                        f"; seeds {u['seeds']}; holdout {u.get('n_holdout')} VUs of {u.get('holdout_patients')} "
                        "patients."
                        if u
                        else "."
                    )
                )
            st.write("Confusion matrices and recall are pooled over the seeds; a class absent from the holdout has no "
                     "recall and counts neither in balanced accuracy nor in chance.")
            for k, v in notes.items():
                st.write(f"{k}: {v}")


frame.run_page("Utility", render, needs_report=True)
