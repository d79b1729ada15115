"""Compare: two to four generators side by side; the choice lives in the URL (``?compare=a&compare=b``)."""

import streamlit as st

from dashboard import frame, loaders, style
from dashboard.compare import (
    MAX_COMPARED,
    MIN_COMPARED,
    Compared,
    distinct_ids,
    generator_label,
    headline_columns,
    mixed_datasets,
    training_seed_text,
    utility_measure,
)
from dashboard.compare import shared_umap_problem as umap_problem
from dashboard.compare_figures import measure_figure, tradeoff_compare_figure, umap_compare_figure
from dashboard.images import labelled_rows, montage
from dashboard.summary import verdict

PER_POSITION = 6  # VUs per montage row
SEED = 0


def _entries(picked: list[str], by_id: dict) -> list[Compared]:
    from synthvu_core.errors import SynthVUError

    out = []
    for ident in picked:
        g = by_id[ident]
        try:
            view = loaders.report(g.path, (g.card.get("dataset") or {}).get("fingerprint"))
        except SynthVUError as e:
            st.error(frame.say(e))
            view = None
        out.append(Compared(ident=ident, path=g.path, card=g.card, view=view, source=g.source))
    return out


def _montages(entries: list[Compared]) -> None:
    cols = st.columns(len(entries))
    for col, e in zip(cols, entries):
        stamp = loaders.weights_stamp(e.path)
        rows = []
        for position in e.classes:
            images, _, _ = loaders.samples(str(e.path), stamp, PER_POSITION, position, SEED)
            rows.append((position, montage(images, slice_index=images.shape[1] // 2, ncols=PER_POSITION, zoom=1)))
        col.image(
            labelled_rows(rows),
            caption=f"{e.ident}: synthetic VUs per position (middle slice, seed {SEED})",
            width="stretch",
        )


def render(_sel: frame.Selection | None) -> None:
    gens = frame.all_generators()
    ids = distinct_ids([(g.name, g.path) for g in gens])
    by_id = dict(zip(ids, gens))
    picked = st.multiselect(
        f"Generators ({MIN_COMPARED} to {MAX_COMPARED})",
        ids,
        key="compare",
        bind="query-params",
        max_selections=MAX_COMPARED,
        format_func=lambda i: generator_label(i, by_id[i].source),
        help="The choice is kept in the page's link: copy it to reopen the same comparison.",
    )
    if len(picked) < MIN_COMPARED:
        st.info(f"Pick {MIN_COMPARED} to {MAX_COMPARED} generators to see them side by side.")
        return
    entries = _entries(picked, by_id)
    frame.slides_button(entries, "synthvu-slides.html", key="compare_slides")
    import pandas as pd

    mixed = mixed_datasets([e for e in entries if e.view is not None])  # the generators the figures draw
    if mixed:
        st.warning(mixed)
    st.table(pd.DataFrame(headline_columns(entries)).set_index("measure"))
    cols = st.columns(len(entries))
    for col, e in zip(cols, entries):
        v = verdict(e.view, e.card)
        col.markdown(f"**{frame.plain(generator_label(e.ident, e.source))}**")
        {"leak": col.error, "caution": col.warning, "ok": col.success}.get(v.level, col.info)(v.text)
    with_report = [e for e in entries if e.view is not None]
    if not with_report:
        return
    c1, c2 = st.columns(2)
    utility = measure_figure(with_report, utility_measure(with_report))
    c1.plotly_chart(utility, width="stretch", key="cmp_tstr", config=style.plot_config())
    c2.plotly_chart(measure_figure(with_report, "auc"), width="stretch", key="cmp_auc", config=style.plot_config())
    st.plotly_chart(
        tradeoff_compare_figure(with_report), width="stretch", key="cmp_tradeoff", config=style.plot_config()
    )
    seeds = training_seed_text(with_report)
    if seeds:
        st.subheader("Runs of one recipe: the spread over training seeds")
        st.markdown(seeds)
    st.subheader("Synthetic VUs per position")
    _montages(entries)
    st.subheader("One UMAP")
    problem = umap_problem(with_report)
    if problem:
        st.info(f"Not drawn on one set of axes: {problem}.")
    else:
        st.plotly_chart(umap_compare_figure(with_report), width="stretch", key="cmp_umap", config=style.plot_config())


frame.run_page("Compare generators", render, needs_generator=False)
