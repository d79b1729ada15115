"""Overview: what synthvu does, the selected generator's card and headline numbers."""

import streamlit as st

from dashboard import frame
from dashboard.loaders import audit_of
from dashboard.summary import (
    audit_text,
    chance_text,
    composed_text,
    epsilon_text,
    fmt,
    headline,
    level_word,
    membership_text,
    recall_rows,
    release_sentence,
    source_caption,
    source_table,
    untested_sources,
    usefulness_box,
    verdict,
    with_ci,
)
from synthvu_core.names import STUDY_RATIO
from synthvu_core.records import RATIO_KEY, epochs_text

ABOUT = (
    "synthvu trains conditional generators that make **synthetic spine MRI vertebral units** (VUs: "
    "9 parasagittal slices around one intervertebral disc) for a requested position. "
    "It measures whether they are **useful** (does a classifier trained on synthetic VUs work on real ones?) "
    "and whether they **leak** the patients they were trained on (membership attacks in several spaces). "
    "This dashboard lets you explore the samples and every number, and present them."
)


def card_table(card: dict) -> dict:
    arch, train, ds = card.get("architecture", {}), card.get("training", {}), card.get("dataset", {})
    recipe = ds.get("recipe") or {}
    return {
        "architecture": arch.get("name", "—"),
        "conditioning": f"{card.get('scheme', '—')}: {', '.join(card.get('classes', []))}",
        "VU shape (C × H × W)": " × ".join(str(s) for s in card.get("shape", [])),
        "training": f"{epochs_text(train.get('epochs'))} epochs, {train.get('steps', '—')} steps, batch "
                    f"{train.get('batch_size', '—')}, lr {train.get('lr', '—')}",
        "dataset": f"{recipe.get('name') or 'your NIfTI data'} (fingerprint {ds.get('fingerprint', '—')})",
        "differential privacy": epsilon_text(card),
        "discriminator": "kept (private)" if (card.get("discriminator") or {}).get("kept") else "not kept",
        "created": card.get("created", "—"),
    }


def render(sel: frame.Selection | None) -> None:
    st.markdown(ABOUT)
    if sel is None:
        st.info("No generator installed yet: see **Models & data** to train one on the phantom or on your NIfTI data.")
        return
    st.header(frame.plain(sel.name))
    frame.slides_button([frame.compared_of(sel)], f"{sel.name}-slides.html", key="overview_slides")
    h = headline(sel.report, sel.card)
    rep = sel.report
    c = st.columns(4)
    c[0].metric(
        "TRTR balanced accuracy",
        fmt(h.trtr),
        help="Classifier trained on real, tested on real holdout (mean over seeds).",
    )
    c[1].metric(
        "TSTR balanced accuracy",
        fmt(h.tstr),
        help="Classifier trained on synthetic, tested on real holdout (mean over seeds).",
    )
    if rep is not None:
        c[0].caption(chance_text(rep))
    if rep is not None and h.ratio is not None:
        c[1].caption(
            f"TSTR / TRTR {with_ci(rep, RATIO_KEY)}; the study's {STUDY_RATIO:.2f} was measured on T1 "
            "trial data, "
            "not on this data"
        )
    c[2].metric(
        "Worst counted AUC",
        fmt(h.worst_auc),
        help="0.5 = chance; the highest AUC among the attacks counted in verdict (a): those with power (they detect "
        "5% member copies mixed into the samples: AUC CI on that mixture above 0.5).",
    )
    c[3].metric(
        "DP ε",
        "∞" if h.epsilon is None else f"{h.epsilon:.2f}",
        help="Differential privacy budget of this run (lower = stronger guarantee); every run on the same data "
        "composes, see below.",
    )
    for line in (composed_text(sel.card), audit_text(audit_of(sel.path), sel.card)):
        if line:
            c[3].caption(line)
    if rep is None:
        frame.report_missing(sel)
    else:
        kind, text = usefulness_box(rep, sel.classes)
        st.markdown("**Utility on this task**")
        getattr(st, kind)(text)
        if release := release_sentence(rep, sel.classes):
            st.caption(release)
        rows = recall_rows(rep, sel.classes)
        if rows:
            st.caption("Recall per class on the real holdout (pooled over classifier seeds; absent = no VU of the "
                       "class in the holdout, so it counts neither in balanced accuracy nor in chance; more than four "
                       "such classes fold into one column). *TSTR 95% CI*: the interval of each class's TSTR recall "
                       "over holdout patients and classifier seeds, at least the exact binomial interval over its "
                       "patients (none where one patient holds the class); the last "
                       "rows say how many holdout VUs and patients each recall rests on: on one or two VUs it moves "
                       "in steps of 1 or 1/2.")
            st.dataframe(rows, hide_index=True, width="stretch")
        by_source = source_table(rep)
        if by_source:
            st.markdown("**Utility per source**")
            st.caption(source_caption(rep))
            st.dataframe(by_source, hide_index=True, width="stretch")
        elif untested := untested_sources(rep):
            st.caption(f"Utility per source: {untested}.")
        st.markdown("**Privacy verdict (a): released samples**")
        v = verdict(rep, sel.card)
        frame.show_verdict(v.level, v.text)
        d = verdict(rep, sel.card, "released_discriminator")
        st.caption(f"Verdict (b), released discriminator ({level_word(d.level)}): {d.text}")
        if membership_text(rep):
            st.caption("Membership design: " + membership_text(rep))
    st.subheader("Card")
    rows = (f"| {k} | {frame.plain(v)} |" for k, v in card_table(sel.card).items())  # card text: plain, never Markdown
    st.markdown("| | |\n|---|---|\n" + "\n".join(rows))


frame.run_page("synthvu", render, needs_generator=False)
